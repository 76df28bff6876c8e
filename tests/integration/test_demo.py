"""The quick demo end to end: report, metrics, figures and the --quiet output."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from _dummies import numbers_in
from hydraplus.cli import main
from hydraplus.report.figures import DPI, SPIRAL_PANEL_INCHES

SPIRAL_MODELS = ["ensemble", "hydra+-20", "hydra+-20-auto", "hydra+-10", "hydra+-5", "hydra-20",
                 "drop", "gauss", "endd"]
REGRESSION_MODELS = SPIRAL_MODELS[:-1]
MEMBER_ROWS = ["member", "member-best"]  # each member alone, after the ensemble
SPIRAL_ROWS = [SPIRAL_MODELS[0], *MEMBER_ROWS, *SPIRAL_MODELS[1:]]
REGRESSION_ROWS = [REGRESSION_MODELS[0], *MEMBER_ROWS, *REGRESSION_MODELS[1:]]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "run"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["demo", "--quick", "--quiet", "--out", str(out)])
    assert code == 0
    return out, buffer.getvalue()


def test_quiet_prints_only_the_report_path(demo_run: tuple[Path, str]) -> None:
    out, printed = demo_run
    assert printed.splitlines() == [str(out / "report.md")]


def test_metrics_list_every_model_with_finite_numbers(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["results"]["toy-spiral"]) == SPIRAL_ROWS
    assert list(metrics["results"]["toy-regression"]) == REGRESSION_ROWS
    for name, members in metrics["members"].items():
        assert members["count"] == len(members["rows"]) == len(members["scores"]["error"]) == 5, name
        assert members["selected_by"].startswith(("validation error", "validation RMSE"))
        assert metrics["results"][name]["member-best"] == members["rows"][members["best"]]
    for rows in metrics["results"].values():
        for name, row in rows.items():
            assert {"clean", "probe", "tv", "profile"} <= set(row), name  # every evaluation's layout
            assert all(math.isfinite(value) for value in numbers_in(row)), name
    assert metrics["seed"] == 0 and metrics["quick"] is True
    assert set(metrics["versions"]) == {"hydraplus", "torch", "python"}
    assert metrics["config"]["toy-spiral"]["ensemble"]["members"] == 5


def test_report_has_every_model_and_both_figures(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    report = (out / "report.md").read_text()
    for name in [*SPIRAL_MODELS, "member (mean ± std of 5)"]:
        assert f"| {name} |" in report
    assert "| member (best: #" in report
    assert "![toy-spiral](toy-spiral.png)" in report
    assert "![toy-regression](toy-regression.png)" in report


def test_figures_are_pngs_of_the_expected_size(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    width, height = png_size(out / "toy-spiral.png")
    assert (width, height) == (round((3 * SPIRAL_PANEL_INCHES + 0.9) * DPI),
                               round(len(SPIRAL_MODELS) * SPIRAL_PANEL_INCHES * DPI))
    assert png_size(out / "toy-regression.png") == (round(4 * 3.2 * DPI), round(2 * 2.6 * DPI))
    assert (out / "toy-spiral.png").stat().st_size > 10_000


def test_checkpoints_are_saved_and_reevaluated(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    for name in SPIRAL_MODELS:
        assert (out / "toy-spiral" / name / "model.pt").is_file()
    assert main(["evaluate", str(out / "toy-spiral"), "--quiet"]) == 0
    evaluation = json.loads((out / "toy-spiral" / "evaluation.json").read_text())
    assert (evaluation["kind"], evaluation["task"], evaluation["problem"]) == ("toy", "classification",
                                                                               {"name": "spiral"})
    assert list(evaluation["models"]) == SPIRAL_ROWS
    reported = json.loads((out / "metrics.json").read_text())["results"]["toy-spiral"]
    for name in SPIRAL_ROWS:  # reloaded weights + seeded sampling give the report's numbers
        expected = reported[name]
        assert evaluation["models"][name].keys() == expected.keys(), name
        for group, values in expected.items():  # each group's numbers (clean, probe, tv, profile, train)
            assert evaluation["models"][name][group] == pytest.approx(values, rel=1e-6, abs=1e-9), name


def test_existing_run_folder_is_refused(demo_run: tuple[Path, str], capsys: pytest.CaptureFixture) -> None:
    out, _ = demo_run
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--resume" in err[0]
