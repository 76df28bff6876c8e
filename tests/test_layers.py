"""The import-layer contract (pyproject.toml, run by scripts/test.sh) holds, and breaks on an upward
import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(tree / "pyproject.toml")],
                          cwd=tree, env=env, capture_output=True, text=True, check=False)


def test_the_contract_holds_and_an_upward_import_breaks_it(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "src" / "hydraplus", tmp_path / "src" / "hydraplus",
                    ignore=shutil.ignore_patterns("__pycache__"))
    kept = _lint(tmp_path)
    assert kept.returncode == 0 and "1 kept, 0 broken" in kept.stdout, kept.stdout + kept.stderr
    checks = tmp_path / "src" / "hydraplus" / "core" / "checks.py"
    checks.write_text(checks.read_text() + "\nfrom hydraplus.config import ConfigError  # noqa: E402\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0 and "BROKEN" in broken.stdout
    assert "hydraplus.core.checks -> hydraplus.config" in broken.stdout, broken.stdout
