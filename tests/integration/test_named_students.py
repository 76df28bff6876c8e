"""Two students of one method and number of heads in one config, under their own names, end to end:
trained into their own folders, evaluated and compared side by side, reloaded by name."""

from __future__ import annotations

import json
from pathlib import Path

from _dummies import toy_config
from hydraplus.cli import main
from hydraplus.pipeline.config_run import load_trained


def test_variants_of_one_student_run_side_by_side(tmp_path: Path) -> None:
    config = toy_config(epochs=3, members=2, batch_size=64, students=[
        {"method": "hydra+", "heads": 2},
        {"method": "hydra+", "heads": 2, "name": "hydra+-2-stopped", "lr": 0.005, "epochs": 6, "patience": 2},
    ])
    path = tmp_path / "variants.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "out"
    assert main(["train", str(path), "--out", str(out), "--seeds", "0", "--quiet"]) == 0
    run = out / "seed-0"
    for name in ("hydra+-2", "hydra+-2-stopped"):
        assert (run / name / "model.pt").is_file() and (run / name / "log" / "metrics.csv").is_file()
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert list(evaluation["models"]) == ["ensemble", "member", "member-best", "hydra+-2", "hydra+-2-stopped"]
    stopped = evaluation["models"]["hydra+-2-stopped"]["early_stopping"]
    assert stopped["max_epochs"] == 6 and 1 <= stopped["best_epoch"] <= stopped["epochs_run"] <= 6
    assert "early_stopping" not in evaluation["models"]["hydra+-2"]
    assert "| hydra+-2-stopped |" in (run / "evaluation.md").read_text()
    _, parsed, models = load_trained(run)
    assert [spec.name for spec in parsed.students] == ["hydra+-2", "hydra+-2-stopped"]
    assert models.specs["hydra+-2-stopped"].lr == 0.005
    assert models.early_stopping["hydra+-2-stopped"] == stopped
    assert main(["compare", str(out), "--quiet"]) == 0
    compare = (out / "compare.md").read_text()
    assert "| hydra+-2 | 1 |" in compare and "| hydra+-2-stopped | 1 |" in compare
