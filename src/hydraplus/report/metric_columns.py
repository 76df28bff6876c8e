"""Table columns made from the metric definitions (`hydraplus.metrics`), and the intros of the
calibration and interval tables that the image, toy and distil reports share."""

from __future__ import annotations

from collections.abc import Sequence

from hydraplus.metrics import Metric, path, shown
from hydraplus.report.tables import Column, at

CALIBRATION_INTRO = ("Adaptive ECE: 10 equal-mass bins. After temperature scaling (where the run has a "
                     "validation split): one temperature T fitted on it (NLL of the mean prediction), "
                     "then ECE (10 bins) and NLL on the test set. "
                     "AUGRC: area under the generalised risk-coverage curve; risk at c%: the "
                     "error rate of the c% most confident inputs. All in % but NLL and T.")
INTERVALS_INTRO = ("Share of test targets inside the central 50/90/95% interval of the predictive "
                   "(moment-matched Gaussian) distribution, and the intervals' mean width.")


def column(metric: Metric) -> Column:
    """The column of ``metric`` (read where every evaluation keeps it, `hydraplus.metrics.PLACES`)."""
    return Column(metric.title, at(*path(metric)), metric.scale, metric.fmt, metric.spread)


def columns(table: str, task: str | None = None, batch_sizes: Sequence[int] = ()) -> list[Column]:
    """The columns of ``table`` (`hydraplus.metrics`) for evaluations of ``task``, in order; a latency
    gives one column per batch size of ``batch_sizes``."""
    return [column(one) for metric in shown(table, task) for one in metric.expanded(batch_sizes)]
