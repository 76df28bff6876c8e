"""Deployment formats: `torch.export` programs (`pt2`) and ONNX graphs (`onnx`), each with a JSON card
(`cards`)."""
