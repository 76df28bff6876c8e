"""Saved ``torch.export`` programs as modules: the student and teacher a distil run keeps (its
architectures may be a user's own, which no config can rebuild)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, fx, nn
from torch.export.passes import move_to_device_pass

from hydraplus.export.onnx import uniform_dropout
from hydraplus.inputs.teachers import read_program


def _uniform_dropouts(module: fx.GraphModule) -> fx.GraphModule:
    """The graph's test-time dropouts with masks from uniform noise (`uniform_dropout`)."""
    for node in module.graph.nodes:
        if node.target is torch.ops.aten.dropout.default and node.args[2:] == (True,):
            node.target, node.args = uniform_dropout, node.args[:2]
    module.recompile()
    return module


class LoadedProgram(nn.Module):
    """A saved torch.export program as a module. It runs as exported in train and eval mode alike;
    ``.to(device)`` moves the whole program (devices its graph names too; dtypes stay); test-time
    dropout draws its masks from uniform noise (the same distribution), as ONNX keeps that sampling."""

    def __init__(self, program: torch.export.ExportedProgram, device: torch.device):
        super().__init__()
        self.program, self.device = program, device
        self.body = _uniform_dropouts(program.module())

    def train(self, mode: bool = True) -> LoadedProgram:
        self.training = mode  # the program's graph has no modes
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> LoadedProgram:
        device = fn(torch.empty(0, device=self.device)).device
        if device != self.device:
            moved = move_to_device_pass(self.program, device)
            self.program, self.device, self.body = moved, device, _uniform_dropouts(moved.module())
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def load_program(path: Path) -> LoadedProgram:
    """A program written by `finish_distil_run`, on the CPU."""
    if not path.is_file():
        raise FileNotFoundError(f"program not found: {path}")
    return LoadedProgram(read_program(path), torch.device("cpu"))
