"""The member reference: each member of the ensemble judged alone, as a model a user gets for free.

Every evaluation (image, toy and distil runs) scores each member on the same inputs as the other
models, from its own slice ``[:, i:i+1]`` of the ensemble's outputs (what a one-member ensemble of
it outputs), and reports two rows beside the ensemble and the students:

* ``member``: the mean over the members of every quantity (its spread over the members is in the
  per-member rows, kept under the evaluation's ``members`` key);
* ``member-best``: the member a practitioner would ship alone: the lowest validation error (RMSE for
  regression; ties broken by the lower NLL) where a validation split exists, else the lowest test
  error (``selected_by`` says which).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from hydraplus.core.losses import gaussian_nll
from hydraplus.spec import MEMBER, MEMBER_BEST

Row = dict[str, Any]


def member_outputs(outputs: Tensor) -> list[Tensor]:
    """Each member's outputs ``[B, 1, D]`` of the ensemble's ``[B, N, D]``."""
    return [outputs[:, i : i + 1] for i in range(outputs.shape[1])]


def member_scores(outputs: Tensor, y: Tensor, task: str) -> dict[str, list[float]]:
    """Each member's ``error`` (classification; RMSE for regression) and ``nll`` on targets ``y``, from
    the ensemble's outputs ``[B, N, D]``: what the best member is chosen by (the NLL breaks ties)."""
    if task == "classification":
        error = (outputs.argmax(-1) != y.view(-1, 1)).double().mean(0)
        index = y.view(-1, 1, 1).expand(-1, outputs.shape[1], 1)
        nll = -F.log_softmax(outputs.double(), -1).gather(-1, index).squeeze(-1)
        return {"error": error.tolist(), "nll": nll.mean(0).tolist()}
    error = (outputs[..., 0].double() - y.double().view(-1, 1)).pow(2).mean(0).sqrt()
    nll = [gaussian_nll(out.double(), y.double()).item() for out in member_outputs(outputs)]
    return {"error": error.tolist(), "nll": nll}


def mean_row(rows: Sequence[Any]) -> Any:
    """The mean over ``rows`` of every number, key by key and item by item (nested dicts and lists);
    None where no row has a number; other values (strings) as the first row has them."""
    first = rows[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(r, dict) and k in r for r in rows)]
        return {k: mean_row([r[k] for r in rows]) for k in keys}
    if isinstance(first, list) and all(isinstance(r, list) and len(r) == len(first) for r in rows):
        return [mean_row([r[i] for r in rows]) for i in range(len(first))]
    numbers = [float(r) for r in rows if isinstance(r, int | float) and not isinstance(r, bool)]
    if numbers:
        return statistics.fmean(numbers)
    return None if first is None else first


def best_member(scores: Mapping[str, Sequence[float]]) -> int:
    """The index of the lowest ``error``, ties broken by the lower ``nll`` (then the first)."""
    error, nll = scores["error"], scores["nll"]
    return min(range(len(error)), key=lambda i: (error[i], nll[i], i))


def summarize(rows: list[Row], scores: Mapping[str, Sequence[float]], selected_by: str
              ) -> tuple[dict[str, Row], dict[str, Any]]:
    """``({"member": mean row, "member-best": best row}, record)``: the record keeps every member's row,
    the ``scores`` the best was chosen by (`member_scores`), its index and ``selected_by`` (e.g.
    ``"validation error"``)."""
    if not rows or any(len(values) != len(rows) for values in scores.values()):
        raise ValueError(f"need one score per member, got {[len(v) for v in scores.values()]} "
                         f"for {len(rows)} members")
    best = best_member(scores)
    record = {"count": len(rows), "best": best, "selected_by": selected_by,
              "scores": {key: list(values) for key, values in scores.items()}, "rows": rows}
    return {MEMBER: mean_row(rows), MEMBER_BEST: rows[best]}, record


def with_members(models: dict[str, Row], members: dict[str, Row]) -> dict[str, Row]:
    """``models`` with the member rows right after the ensemble's (or the teacher's)."""
    out: dict[str, Row] = {}
    for name, row in models.items():
        out[name] = row
        if name in ("ensemble", "teacher"):
            out.update(members)
    if not any(name in models for name in ("ensemble", "teacher")):
        out.update(members)
    return out
