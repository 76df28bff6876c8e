"""The preset targets' table on two hand-made seeds: means, bounds and margins."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import preset_targets


def _row(error: float, epistemic: float = 0.1, spearman: float = 0.9, tv: float = 0.2) -> dict:
    """An image evaluation's row as the runs before schema 2 wrote it (read through the upgrade)."""
    return {"clean": {"error": error, "ece": 0.01, "nll": 0.3, "epistemic_entropy": epistemic},
            "fidelity": {"clean": {"epistemic_spearman": spearman}},
            "shift_histograms": {"tv": {"epistemic": tv}}}


def _seed(folder: Path, seed: int, student_error: float) -> None:
    models = {"ensemble": _row(0.08, epistemic=0.2), "member": _row(0.09), "member-best": _row(0.085),
              "hydra+-2": _row(student_error, epistemic=0.16, spearman=0.95, tv=0.1),
              "hydra-2": _row(0.09, tv=0.3), "hydra+-2-spread": _row(student_error, epistemic=0.2, tv=0.15),
              "hydra-2-spread": _row(0.09, tv=0.05)}
    (folder / f"seed-{seed}").mkdir(parents=True)
    evaluation = {"kind": "image", "task": "classification", "models": models, "problem": {}, "settings": {}}
    (folder / f"seed-{seed}" / "evaluation.json").write_text(json.dumps(evaluation))


def test_the_targets_table(tmp_path: Path, capsys) -> None:
    _seed(tmp_path, 0, 0.081)
    _seed(tmp_path, 1, 0.083)
    assert preset_targets.main([str(tmp_path), "--heads", "2", "--max-gap", "0.3", "--min-spearman", "0.98",
                                "--best-ece", "1.5", "--best-nll", "0.25"]) == 0
    text = capsys.readouterr().out
    assert "member-best error %: 8.50 ± 0.00" in text
    # 8.20 +- 0.14 against the best member's 8.50 (met by 0.3) and the ensemble's 8.00 + 0.3 (by 0.1)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert "| error below the best member's (%) | hydra+-2 | 8.20 ± 0.14 | 8.50 | yes | +0.3 |" in rows
    assert ("| error within 0.3 points of the ensemble's (%) | hydra+-2 | 8.20 ± 0.14 | 8.30 | yes "
            "| +0.1 |") in rows
    assert ("| epistemic entropy ≥ 0.75 × the ensemble's | hydra+-2 | 0.800 ± 0.000 | 0.750 | yes "
            "| +0.05 |") in rows
    assert "| epistemic Spearman ≥ 0.98 | hydra+-2 | 0.950 ± 0.000 | 0.980 | **no** | -0.03 |" in rows
    assert ("| epistemic TV the smallest of the multi-head students | hydra+-2 | 0.100 ± 0.000 | 0.300 | yes "
            "| +0.2 |") in rows
    assert ("| NLL no worse than the best earlier row | hydra+-2 | 0.300 ± 0.000 | 0.250 | **no** "
            "| -0.05 |") in rows
    # spread-scaled rows are held to the same targets, their TV against the other spread-scaled rows
    assert ("| epistemic TV the smallest of the multi-head students | hydra+-2-spread | 0.150 ± 0.000 "
            "| 0.050 | **no** | -0.1 |") in rows
    assert ("| epistemic entropy ≥ 0.75 × the ensemble's | hydra+-2-spread | 1.000 ± 0.000 | 0.750 | yes "
            "| +0.25 |") in rows
