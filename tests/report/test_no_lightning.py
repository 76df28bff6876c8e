"""Reports read JSON and draw figures, and the evaluation measures models: importing them must not
pull in Lightning."""

from __future__ import annotations

import subprocess
import sys

MODULES = ("compare", "distil", "members", "figures", "image_figures", "markdown", "tables")
CHECK = (f"import sys, hydraplus.evaluation, {', '.join(f'hydraplus.report.{m}' for m in MODULES)}\n"
         "assert not any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules), "
         "sorted(m for m in sys.modules if 'lightning' in m)[:5]")


def test_report_imports_no_lightning() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
