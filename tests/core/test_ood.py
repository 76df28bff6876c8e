"""OOD detection: AUROC / AUPR / FPR95 with OOD as the positive class, on hand-checked cases."""

from __future__ import annotations

import math

import pytest
import torch

from hydraplus.core.ood import detection_scores, ood_detection


def test_perfect_separation() -> None:
    scores = detection_scores(torch.tensor([0.0, 0.1, 0.2]), torch.tensor([0.5, 0.9]))
    assert scores == pytest.approx({"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0})


def test_reversed_scores_give_auroc_0() -> None:
    scores = detection_scores(torch.tensor([0.5, 0.9]), torch.tensor([0.0, 0.1]))
    # Flagging both OOD inputs (threshold 0.0) flags every in-distribution input too.
    assert scores["auroc"] == pytest.approx(0.0) and scores["fpr95"] == pytest.approx(1.0)


def test_identical_scores_are_chance() -> None:
    scores = detection_scores(torch.full((6,), 0.3), torch.full((2,), 0.3))
    # AUROC counts ties as half; precision is the OOD share (2 / 8) at the only threshold,
    # which flags every input
    assert scores == pytest.approx({"auroc": 0.5, "aupr": 0.25, "fpr95": 1.0})


def test_hand_computed_case() -> None:
    # OOD 0.8 beats all three in-distribution scores, OOD 0.3 beats only 0.1: AUROC = 4 / 6.
    # Ranked: 0.8 (OOD), 0.4, 0.35, 0.3 (OOD), 0.1: precision 1 at recall 1/2, 2/4 at recall 1,
    # so AP = 0.5 * 1 + 0.5 * 0.5 = 0.75. Detecting >= 95% of two OOD inputs means both, so the
    # threshold is 0.3, which also flags 0.4 and 0.35: FPR95 = 2 / 3.
    scores = detection_scores(torch.tensor([0.1, 0.4, 0.35]), torch.tensor([0.8, 0.3]))
    assert scores == pytest.approx({"auroc": 4 / 6, "aupr": 0.75, "fpr95": 2 / 3})


def test_fpr95_by_hand_on_six_points() -> None:
    # Ranked: 0.9 (OOD), 0.7 (in), 0.6 (OOD), 0.5 (in), 0.4 (OOD), 0.2 (in). TPR reaches 1 (the only
    # level >= 95% with three OOD inputs) at threshold 0.4, where 0.7 and 0.5 are flagged: 2 / 3.
    scores = detection_scores(torch.tensor([0.7, 0.5, 0.2]), torch.tensor([0.9, 0.6, 0.4]))
    assert scores["fpr95"] == pytest.approx(2 / 3)
    # Pairs won: 0.9 beats 3, 0.6 beats 2, 0.4 beats 1 -> AUROC 6 / 9;
    # AP = (1 + 2/3 + 3/5) / 3 at recalls 1/3, 2/3, 1.
    assert scores["auroc"] == pytest.approx(6 / 9)
    assert scores["aupr"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_fpr95_may_miss_one_in_twenty() -> None:
    # 19 of 20 OOD inputs at 1.0 is a TPR of exactly 95%: the threshold 1.0 flags no in-distribution
    # input. Requiring all 20 would flag the in-distribution inputs above the last OOD one (0.0).
    ood = torch.cat([torch.ones(19), torch.zeros(1)])
    in_scores = torch.tensor([0.5, 0.5, 0.9, -1.0])
    assert detection_scores(in_scores, ood)["fpr95"] == pytest.approx(0.0)
    assert detection_scores(in_scores, ood[1:])["fpr95"] == pytest.approx(3 / 4)


def test_large_scores_keep_their_order() -> None:
    # Variances far above 1: torchmetrics would squash them with a sigmoid into ties at 1.0.
    scores = detection_scores(torch.tensor([40.0, 50.0]), torch.tensor([60.0, 1e6]))
    assert scores == pytest.approx({"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0})


def test_ood_detection_on_logits() -> None:
    c = 4
    confident = torch.tensor([10.0, 0.0, 0.0, 0.0]).expand(5, 3, c)  # agreeing, certain members
    disagreeing = torch.eye(c)[:3].mul(10.0).expand(4, 3, c)  # each member sure of another class
    out = ood_detection(confident, disagreeing)
    measures, keys = ("msp", "predictive", "epistemic"), ("auroc", "aupr", "fpr95")
    logit_measures = ("energy", "maxlogit")  # the outputs are logits
    assert set(out) == {f"{m}_{k}" for m in (*measures, *logit_measures) for k in keys}
    assert all(v == pytest.approx(0.0 if k.endswith("fpr95") else 1.0) for k, v in out.items()
               if k.split("_")[0] in measures)
    # Every input's members have one logit of 10 and three of 0: equal energies and max logits.
    assert out["energy_auroc"] == out["maxlogit_auroc"] == pytest.approx(0.5)
    assert ood_detection(disagreeing, confident)["epistemic_auroc"] == pytest.approx(0.0)


def test_ood_detection_scores_by_hand() -> None:
    # Two members, two classes, given as probabilities. In-distribution: a confident input and a hard
    # one on which the members agree. OOD: members that disagree strongly, and mildly.
    members = {
        "a": [[0.99, 0.01], [0.99, 0.01]],  # 1 - MSP 0.01, epistemic 0
        "b": [[0.6, 0.4], [0.6, 0.4]],  # 1 - MSP 0.4, epistemic 0
        "c": [[0.95, 0.05], [0.05, 0.95]],  # mean (0.5, 0.5): 1 - MSP 0.5, epistemic ~0.49
        "d": [[0.9, 0.1], [0.7, 0.3]],  # mean (0.8, 0.2): 1 - MSP 0.2, epistemic ~0.03
    }
    logits = {k: torch.tensor(v).log() for k, v in members.items()}
    out = ood_detection(torch.stack([logits["a"], logits["b"]]), torch.stack([logits["c"], logits["d"]]))
    # MSP ranks c (OOD), b (in), d (OOD), a (in): AUROC 3/4, AP = (1 + 2/3) / 2, and flagging d flags b.
    # With two classes the predictive entropy ranks as MSP does.
    for measure in ("msp", "predictive"):
        assert out[f"{measure}_auroc"] == pytest.approx(3 / 4)
        assert out[f"{measure}_aupr"] == pytest.approx(5 / 6)
        assert out[f"{measure}_fpr95"] == pytest.approx(1 / 2)
    # Only the disagreement separates the sets.
    assert [out[f"epistemic_{k}"] for k in ("auroc", "aupr", "fpr95")] == pytest.approx([1.0, 1.0, 0.0])
    # Log-probabilities are no logits: no energy or max-logit scores.
    assert not any(k.startswith(("energy", "maxlogit")) for k in out)


@pytest.mark.parametrize(
    ("in_scores", "ood_scores", "match"),
    [
        (torch.tensor([]), torch.tensor([1.0]), "in-distribution scores must be a non-empty 1-D"),
        (torch.tensor([1.0]), torch.ones(2, 2), "OOD scores must be a non-empty 1-D"),
        (torch.tensor([math.nan]), torch.tensor([1.0]), "NaN or infinite"),
    ],
)
def test_errors(in_scores: torch.Tensor, ood_scores: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        detection_scores(in_scores, ood_scores)
