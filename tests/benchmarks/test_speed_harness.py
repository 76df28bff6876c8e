"""The speed benchmark's timing harness: compared callables take turns, medians per callable."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import speed


def test_callables_take_turns_after_their_warmup() -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    medians = speed.median_seconds(fns, torch.device("cpu"), warmup=2, repeats=3)
    assert calls == ["a", "a", "b", "b", "c", "c"] + ["a", "b", "c"] * 3
    assert set(medians) == {"a", "b", "c"} and all(m >= 0 for m in medians.values())
