"""The recipe search on a tiny finished run: variants parsed, the run's own student and each variant
scored on the validation split, a Markdown table of the results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from _dummies import image_config, image_problem
from hydraplus.pipeline.config_run import run_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import recipe_search as search


def test_variants_override_one_student_and_the_head_width() -> None:
    raw = image_config()
    overrides = "epochs=3,core_init=member,lambda=auto,t_ind=2,hidden=16"
    config, entry = search.variant(raw, "hydra+", 2, overrides)
    assert entry == {"method": "hydra+", "heads": 2, "epochs": 3, "core_init": "member", "lambda": "auto",
                     "t_ind": 2.0}
    assert config["arch"]["head"]["hidden"] == 16 and raw["arch"]["head"]["hidden"] == 8
    assert search.variant(raw, "hydra+", 2, "baseline")[1] == {"method": "hydra+", "heads": 2}


def test_search_scores_on_validation_and_tabulates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for where in ("hydraplus.pipeline.config_run", "recipe_search"):
        monkeypatch.setattr(f"{where}.load_problem", lambda *a, **k: image_problem())
    config = image_config(epochs=1, students=[{"method": "hydra+", "heads": 2}])
    run_experiment(config, tmp_path / "run", seed=0, progress=False)
    out = tmp_path / "search.json"
    monkeypatch.setattr(sys, "argv", ["recipe_search", str(tmp_path / "run"), "--seed", "0", "--heads", "2",
                                      "--out", str(out), "epochs=2,mixup=0.4"])
    search.main()
    results = json.loads(out.read_text())
    names = list(results)
    assert names[:2] == ["ensemble", "member (mean of 2)"] and names[2].startswith("member-best (member ")
    assert names[3:] == ["hydra+-2 (the run's)", "epochs=2,mixup=0.4"]
    row = results["epochs=2,mixup=0.4"]
    assert 0 <= row["error_%"] <= 100 and 0 <= row["tv_shift"] <= 1 and row["epochs_run"] == 2
    assert row["epistemic_ratio"] > 0
    table = search.markdown({"late": row, **results})
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]][4] == "| late"  # after the references
    table = search.markdown(results)
    assert table.splitlines()[0].startswith("| variant | val error % | ECE % |")
    assert "| epochs=2,mixup=0.4 | " in table and len(table.splitlines()) == 7
    assert table.splitlines()[3].startswith("| member (mean of 2) | ")
    members = [results["member (mean of 2)"], *(v for k, v in results.items() if k.startswith("member-best"))]
    assert members[1]["error_%"] <= members[0]["error_%"]


def test_a_sampling_student_scores_the_same_twice() -> None:
    class Sampler(torch.nn.Module):
        """A student whose outputs are random draws, like EnDD's Dirichlet samples."""

        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scale * torch.randn(len(x), 4, 3)

    x = torch.zeros(6, 2)
    first = search.student_outputs(Sampler(), x, x, seed=3, precision="32")
    torch.randn(5)  # whatever ran in between
    second = search.student_outputs(Sampler(), x, x, seed=3, precision="32")
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], first[1])  # the shifted copy gets its own draws
