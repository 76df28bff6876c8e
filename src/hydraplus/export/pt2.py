"""Export a model as a `torch.export` program with a dynamic batch size, checked against the model.

The program loads with ``torch.export.load(path).module()``; no hydraplus needed.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from hydraplus.io import atomic_write_bytes

MAX_BATCH = 65536
TOLERANCE = 1e-5


def export_model(model: nn.Module, example: torch.Tensor, path: Path) -> torch.export.ExportedProgram:
    """Export ``model`` (eval mode) with a dynamic batch dimension, check that the serialised
    program reproduces the model's outputs (same random seed for sampling models), then write
    it atomically to ``path``."""
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()
    wider = torch.cat([example, example[:1]])  # another batch size than the traced one
    with torch.no_grad(), torch.random.fork_rng():  # the caller's random state is left alone
        torch.manual_seed(0)
        expected = model(wider)
        torch.manual_seed(0)
        got = loaded(wider)
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=0, atol=TOLERANCE):
        raise RuntimeError(f"the exported program for {path.name} does not reproduce the model "
                           f"(max difference {(got - expected).abs().max().item():.3g})")
    atomic_write_bytes(path, buffer.getvalue())
    return program
