"""Columns of the calibration, selective-prediction and interval metrics (docs/method.md#metrics),
shared by the image, toy and distil tables; ``path`` leads to the metrics in a model's row
(``("clean",)`` for image runs, ``()`` for toy runs, ``("test",)`` for distil runs)."""

from __future__ import annotations

from hydraplus.core.metrics import INTERVALS
from hydraplus.core.selective import RISK_COVERAGES
from hydraplus.report.tables import Column, at

CALIBRATION_INTRO = ("Adaptive ECE: 10 equal-mass bins. After temperature scaling (where the run has a "
                     "validation split): one temperature T fitted on it (NLL of the mean prediction), "
                     "then ECE (10 bins) and NLL on the test set. "
                     "AUGRC: area under the generalised risk-coverage curve; risk at c%: the "
                     "error rate of the c% most confident inputs. All in % but NLL and T.")
INTERVALS_INTRO = ("Share of test targets inside the central 50/90/95% interval of the predictive "
                   "(moment-matched Gaussian) distribution, and the intervals' mean width.")


def calibration_columns(*path: str) -> list[Column]:
    """Adaptive ECE, ECE and NLL after temperature scaling, the temperature, AUGRC and the risks at
    fixed coverage."""
    return [Column("adaptive ECE %", at(*path, "ece_adaptive"), 100.0, ".2f"),
            Column("ECE % (T-scaled)", at(*path, "ece_ts"), 100.0, ".2f"),
            Column("NLL (T-scaled)", at(*path, "nll_ts")),
            Column("T", at(*path, "temperature"), fmt=".3f"),
            Column("AUGRC %", at(*path, "augrc"), 100.0, ".2f"),
            *(Column(f"risk@{c}% %", at(*path, f"risk_{c}"), 100.0, ".2f") for c in RISK_COVERAGES)]


def interval_columns(*path: str) -> list[Column]:
    """Coverage (%) and mean width of each central interval of the regression predictive Gaussian."""
    return [*(Column(f"coverage {q}% %", at(*path, f"coverage_{q}"), 100.0, ".1f") for q in INTERVALS),
            *(Column(f"width {q}%", at(*path, f"width_{q}")) for q in INTERVALS)]
