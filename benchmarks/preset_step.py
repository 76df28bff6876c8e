"""What the step benchmarks share: a preset's fixed-lambda Hydra+ student with one batch of random
inputs and cached-teacher outputs, and their command-line arguments."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from hydraplus.config.load import load_config
from hydraplus.methods.base import StudentMethod, get_method
from hydraplus.pipeline.builders import build_student
from hydraplus.spec import StudentSpec

IMAGE_SHAPES = {"fashion-mnist": (1, 28, 28)}  # any other image preset: 3 x 32 x 32


@dataclass
class PresetStep:
    """The student (laid out as the preset trains it: channels-last), its spec and method, and a batch."""

    spec: StudentSpec
    student: nn.Module
    method: StudentMethod
    x: Tensor
    y: Tensor
    teacher: Tensor


def preset_step(preset: str, batch: int, seed: int) -> PresetStep:
    """The preset's fixed-lambda Hydra+ student and a seeded batch of ``batch`` inputs."""
    torch.manual_seed(seed)
    config = load_config(preset)
    spec = next((s for s in config.students if s.method == "hydra+" and not s.lam.auto), None)
    if spec is None:
        raise SystemExit(f"preset {preset!r} has no Hydra+ student with a fixed lambda")
    student = build_student(config, spec)
    x = torch.randn(batch, *IMAGE_SHAPES.get(config.data.name, (3, 32, 32)))
    classes = student(x[:1]).shape[-1]
    y = torch.randint(0, classes, (batch,))
    teacher = torch.randn(batch, config.ensemble.members, classes).log_softmax(-1)
    return PresetStep(spec, student, get_method(spec.method), x, y, teacher)


def step_arguments(description: str, preset: str, repeats: int, out_file: str) -> argparse.ArgumentParser:
    """The arguments every step benchmark takes (``out_file`` names what ``--out`` receives)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("preset", nargs="?", default=preset)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help=f"folder for {out_file}")
    return parser
