"""The spread-scale benchmark: the factor fitted to the ensemble's mean epistemic entropy on one
validation half, the student with and without it scored on the other half of a tiny finished run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from _dummies import image_config, image_problem
from hydraplus.core.spread import SPREAD_RANGE
from hydraplus.pipeline.config_run import run_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import spread_scale as spread


def test_halves_are_a_seeded_partition() -> None:
    fit, held = spread.halves(9, seed=3)
    assert len(fit) == 4 and len(held) == 5
    assert sorted(torch.cat([fit, held]).tolist()) == list(range(9))
    assert torch.equal(fit, spread.halves(9, seed=3)[0]) and not torch.equal(fit, spread.halves(9, seed=4)[0])


def test_a_run_gets_a_scale_per_multi_head_student(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hydraplus.pipeline.config_run.load_problem", lambda *a, **k: image_problem())
    monkeypatch.setattr("spread_scale.load_problem", lambda *a, **k: image_problem())
    config = image_config(epochs=1, students=[{"method": "hydra+", "heads": 2}, {"method": "endd"}])
    run_experiment(config, tmp_path / "run", seed=0, progress=False)
    out = tmp_path / "spread.json"
    argv = ["spread_scale", str(tmp_path / "run"), "--seed", "0", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    spread.main()
    results = json.loads(out.read_text())
    assert list(results["students"]) == ["hydra+-2"]  # EnDD has one head: nothing to spread
    entry = results["students"]["hydra+-2"]
    assert SPREAD_RANGE[0] <= entry["scale"] <= SPREAD_RANGE[1]
    assert results["fit_inputs"] + results["scored_inputs"] == len(image_problem().x_val)
    assert set(entry["unscaled"]) == set(entry["scaled"]) >= {"error_%", "epistemic_ratio", "tv_shift"}
    table = spread.markdown(results).splitlines()
    assert len(table) == 4 and table[2].startswith("| hydra+-2 | 1 | ")
    assert table[3].startswith(f"| hydra+-2 | {entry['scale']:g} | ")
