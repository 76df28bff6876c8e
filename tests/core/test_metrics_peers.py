"""Every metric computed both ways: hydraplus against torch-uncertainty, pytorch-ood, scikit-learn and
scipy on seeded synthetic 8-member, 10-class ensembles and on edge cases; equal to 1e-6, or differing
by the convention docs/method.md documents, asserted exactly."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from pytorch_ood.detector import EnergyBased, MaxLogit
from pytorch_ood.metrics import functional as ood_functional
from scipy import optimize, special, stats
from sklearn import metrics as skm
from torch_uncertainty.metrics import (
    AUGRC,
    AURC,
    AdaptiveCalibrationError,
    BrierScore,
    CalibrationError,
    CategoricalNLL,
    RiskAtxCov,
)

from hydraplus.core.calibration import (
    adaptive_calibration_error,
    confidence_bins,
    expected_calibration_error,
    fit_temperature,
    temperature_metrics,
)
from hydraplus.core.fidelity import fidelity
from hydraplus.core.metrics import ClassificationMetrics, RegressionMetrics
from hydraplus.core.ood import detection_scores, ood_detection, ood_scores
from hydraplus.core.ranks import average_ranks, spearman
from hydraplus.core.selective import selective_metrics, selective_risks
from hydraplus.core.uncertainty import classification_uncertainty, log_predictive
from hydraplus.evaluation.images import reliability

N, K, C = 5000, 8, 10


def ensemble(accuracy_boost: float, seed: int, n: int = N,
             spread: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[n, 8, 10]`` of members that share a noisy signal for the true class, and the labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    shared = torch.randn(n, 1, C, generator=g) * 1.5
    shared[torch.arange(n), 0, y] += accuracy_boost
    return shared + spread * torch.randn(n, K, C, generator=g), y


ENSEMBLES = {"70%": (3.25, 0), "92%": (4.8, 1)}  # boost of the true class, seed


@pytest.fixture(params=list(ENSEMBLES), scope="module")
def data(request: pytest.FixtureRequest) -> tuple[torch.Tensor, torch.Tensor]:
    return ensemble(*ENSEMBLES[request.param])


def _probs(logits: torch.Tensor) -> torch.Tensor:
    return log_predictive(logits).exp()


def _confidence_correct(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    confidence, predicted = _probs(logits).max(-1)
    return confidence, predicted == y


def test_the_synthetic_ensembles_have_the_intended_accuracies() -> None:
    for (boost, seed), target in zip(ENSEMBLES.values(), (0.70, 0.92), strict=True):
        logits, y = ensemble(boost, seed)
        assert (_probs(logits).argmax(-1) == y).double().mean().item() == pytest.approx(target, abs=0.02)


# ---- calibration -------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [10, 15])
def test_ece_equals_torch_uncertainty_without_confidences_of_one(data, n_bins: int) -> None:
    logits, y = data
    probs = _probs(logits)
    assert probs.max() < 1.0
    peer = CalibrationError(task="multiclass", num_classes=C, num_bins=n_bins, norm="l1")
    peer.update(probs, y)
    confidence, correct = _confidence_correct(logits, y)
    assert expected_calibration_error(confidence, correct, n_bins) == pytest.approx(peer.compute().item(),
                                                                                     abs=1e-6)


def _nudged_below_one(probs: torch.Tensor) -> torch.Tensor:
    """Top probabilities of exactly 1.0 moved to the largest float32 below 1, 1 - 2^-24 (the peer
    bins in float32; the prediction is the same)."""
    return torch.where(probs == 1.0, 1.0 - 2.0**-24, probs)


def test_ece_puts_confidences_of_one_into_the_last_bin() -> None:
    # 70 inputs at confidence exactly 1.0 (10 of them wrong) beside 30 at 0.95, all right.
    probs = torch.zeros(100, 3, dtype=torch.float64)
    probs[:70, 0] = 1.0
    probs[70:, 0], probs[70:, 1] = 0.95, 0.05
    y = torch.zeros(100, dtype=torch.long)
    y[:10] = 1
    confidence, predicted = probs.max(-1)
    correct = predicted == y
    # By hand, one bin [0.9, 1]: mean confidence (70 + 28.5) / 100, accuracy 0.9.
    assert expected_calibration_error(confidence, correct, 10) == pytest.approx(0.985 - 0.9, abs=1e-12)
    # torchmetrics gives 1.0 an 11th bin: |1 - 0.9857| * 0.7 + |0.95 - 1| * 0.3.
    peer = CalibrationError(task="multiclass", num_classes=3, num_bins=10, norm="l1")
    peer.update(probs, y)
    assert peer.compute().item() == pytest.approx(0.7 * (1 - 60 / 70) + 0.3 * 0.05, abs=1e-6)
    # The documented difference exactly: the peer agrees once 1.0 is moved just below 1.
    nudged = CalibrationError(task="multiclass", num_classes=3, num_bins=10, norm="l1")
    nudged.update(_nudged_below_one(probs), y)
    assert expected_calibration_error(confidence, correct, 10) == pytest.approx(nudged.compute().item(),
                                                                                 abs=1e-6)


@pytest.mark.parametrize("case", ["all correct", "n = 7", "class never predicted", "on a bin edge"])
def test_ece_edge_cases_equal_torchmetrics(case: str) -> None:
    logits, y = ensemble(3.0, 5, n=200)
    probs = _probs(logits)
    if case == "all correct":
        y = probs.argmax(-1)
    elif case == "n = 7":
        probs, y = probs[:7], y[:7]
    elif case == "class never predicted":
        keep = probs.argmax(-1) != 3
        probs, y = probs[keep], y[keep]
    else:  # confidences exactly on the edges 0.5 and 0.8
        probs = torch.zeros(6, C, dtype=torch.float64)
        probs[:3, 0], probs[:3, 1:] = 0.5, 0.5 / 9
        probs[3:, 2], probs[3:, [0, 1]] = 0.8, 0.1
        y = torch.tensor([0, 0, 1, 2, 2, 2])
    confidence, predicted = probs.max(-1)
    peer = CalibrationError(task="multiclass", num_classes=C, num_bins=10, norm="l1")
    peer.update(probs, y)
    ours = expected_calibration_error(confidence, predicted == y, 10)
    assert ours == pytest.approx(peer.compute().item(), abs=1e-6)
    if case == "on a bin edge":  # 0.5 goes to [0.5, 0.6) and 0.8 to [0.8, 0.9), as in torchmetrics
        bins = confidence_bins(confidence, predicted == y, 10)
        assert bins.count.tolist() == [0, 0, 0, 0, 0, 3, 0, 0, 3, 0]
        assert ours == pytest.approx((3 * abs(0.5 - 2 / 3) + 3 * abs(0.8 - 1.0)) / 6, abs=1e-12)


def test_reliability_diagram_uses_the_bins_of_the_ece(data) -> None:
    logits, y = data
    diagram = reliability(logits, y)
    confidence, correct = _confidence_correct(logits, y)
    bins = confidence_bins(confidence, correct, 10)
    assert diagram["count"] == bins.count.tolist()
    gap = sum(n * abs(a - c) for n, a, c in zip(diagram["count"], diagram["accuracy"], diagram["confidence"],
                                                   strict=True) if n) / len(y)
    assert gap == pytest.approx(expected_calibration_error(confidence, correct, 10), abs=1e-12)


def test_adaptive_ece_equals_torch_uncertainty(data) -> None:
    logits, y = data
    confidence, correct = _confidence_correct(logits, y)
    assert confidence.unique().numel() == len(confidence)  # no ties: the peer's order is ours
    peer = AdaptiveCalibrationError(task="multiclass", num_classes=C, num_bins=10, norm="l1")
    peer.update(_probs(logits), y)
    ours = adaptive_calibration_error(confidence, correct, 10)
    assert ours == pytest.approx(peer.compute().item(), abs=1e-6)


def test_adaptive_ece_with_ties_does_not_depend_on_the_order() -> None:
    confidence = torch.tensor([0.9] * 6 + [0.6] * 4, dtype=torch.float64)
    correct = torch.tensor([1, 1, 1, 0, 0, 0, 1, 0, 1, 1], dtype=torch.bool)
    # Bins of 5: {0.6 x4 (3/4 right), one 0.9 (1/2 right)}, {0.9 x5 (1/2 right)}.
    want = (abs(2.4 + 0.9 - 3.5) + abs(4.5 - 2.5)) / 10
    shuffled = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    for perm in (torch.arange(10), torch.arange(10).flip(0), shuffled):
        ours = adaptive_calibration_error(confidence[perm], correct[perm], 2)
        assert ours == pytest.approx(want, abs=1e-12)


def test_nll_and_brier_equal_scikit_learn_and_torch_uncertainty(data) -> None:
    logits, y = data
    metrics = ClassificationMetrics(C)
    metrics.update(logits, y)
    out = metrics.compute()
    probs = _probs(logits)
    labels = list(range(C))
    assert out["nll"] == pytest.approx(skm.log_loss(y.numpy(), probs.numpy(), labels=labels), abs=1e-6)
    nll = CategoricalNLL()
    nll.update(probs, y)
    assert out["nll"] == pytest.approx(nll.compute().item(), abs=1e-6)
    brier = BrierScore(num_classes=C)
    brier.update(probs, y)
    assert out["brier"] == pytest.approx(brier.compute().item(), abs=1e-6)
    accuracy = skm.accuracy_score(y.numpy(), probs.argmax(-1).numpy())
    assert out["error"] == pytest.approx(1 - accuracy, abs=1e-12)


def test_nll_of_a_certain_wrong_prediction_is_not_capped() -> None:
    # Softmax in float32 gives the true class probability 0 (NLL capped near 87 nats); in log space
    # the NLL is the logit gap.
    logits = torch.tensor([[[120.0, 0.0]]]).expand(1, 4, 2)
    metrics = ClassificationMetrics(2)
    metrics.update(logits, torch.tensor([1]))
    assert metrics.compute()["nll"] == pytest.approx(120.0, abs=1e-9)


def test_temperature_scaling_finds_the_nll_minimum(data) -> None:
    logits, y = data
    log_probs = log_predictive(logits)
    half = N // 2
    temperature = fit_temperature(log_probs[:half], y[:half])

    def nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(log_probs[:half] / math.exp(log_t), y[:half]).item()

    reference = optimize.minimize_scalar(nll, bounds=(-4, 4), method="bounded", options={"xatol": 1e-10})
    assert math.log(temperature) == pytest.approx(reference.x, abs=1e-4)
    out = temperature_metrics(log_probs[:half], y[:half], log_probs[half:], y[half:])
    scaled = torch.softmax(log_probs[half:] / out["temperature"], -1)
    labels = list(range(C))
    assert out["nll_ts"] == pytest.approx(skm.log_loss(y[half:].numpy(), scaled.numpy(), labels=labels),
                                          abs=1e-6)
    confidence, predicted = scaled.max(-1)
    want = expected_calibration_error(confidence, predicted == y[half:])
    assert out["ece_ts"] == pytest.approx(want, abs=1e-12)


def test_temperature_on_all_correct_data_sharpens_until_the_nll_vanishes() -> None:
    # No finite minimum: the fit stops where the NLL is flat at 0, within `TEMPERATURE_RANGE`.
    log_probs = torch.log_softmax(torch.tensor([[3.0, 0.0], [0.0, 2.0]], dtype=torch.float64), -1)
    temperature = fit_temperature(log_probs, torch.tensor([0, 1]))
    assert 1e-2 <= temperature < 0.1
    assert torch.nn.functional.cross_entropy(log_probs / temperature, torch.tensor([0, 1])).item() < 1e-9


# ---- selective prediction ------------------------------------------------------------------------


def _trapezoid_over_one_minus_one_over_n(values: torch.Tensor) -> float:
    """torch-uncertainty's normalisation of the mean over coverages 1/n .. 1: the trapezoid rule
    between the first and last coverage, divided by 1 - 1/n."""
    n = len(values)
    return ((values.sum() - (values[0] + values[-1]) / 2) / (n - 1)).item()


def test_aurc_augrc_and_risk_at_coverage_equal_torch_uncertainty(data) -> None:
    logits, y = data
    ours = selective_metrics(logits, y)
    confidence, correct = _confidence_correct(logits, y)
    risk = selective_risks(confidence, ~correct)
    coverage = torch.arange(1, N + 1, dtype=torch.float64) / N
    probs = _probs(logits)
    for metric, curve, key in ((AURC(), risk, "aurc"), (AUGRC(), coverage * risk, "augrc")):
        metric.update(probs, y)
        assert ours[key] == pytest.approx(curve.mean().item(), abs=1e-12)
        # The documented difference, exactly: torch-uncertainty integrates by the trapezoid rule.
        assert metric.compute().item() == pytest.approx(_trapezoid_over_one_minus_one_over_n(curve), abs=1e-6)
    for c in (80, 95):
        peer = RiskAtxCov(cov_threshold=c / 100)
        peer.update(probs, y)
        assert ours[f"risk_{c}"] == pytest.approx(peer.compute().item(), abs=1e-6)


@pytest.mark.parametrize("case", ["all correct", "n = 7", "class never predicted"])
def test_selective_metrics_edge_cases_equal_torch_uncertainty(case: str) -> None:
    logits, y = ensemble(3.0, 13, n=300)
    predicted = _probs(logits).argmax(-1)
    if case == "all correct":
        y = predicted
    elif case == "n = 7":
        logits, y = logits[:7], y[:7]
    else:
        keep = predicted != 3
        logits, y = logits[keep], y[keep]
    ours, probs = selective_metrics(logits, y), _probs(logits)
    confidence, correct = _confidence_correct(logits, y)
    risk = selective_risks(confidence, ~correct)
    peer = AURC()
    peer.update(probs, y)
    assert peer.compute().item() == pytest.approx(_trapezoid_over_one_minus_one_over_n(risk), abs=1e-6)
    for c in (80, 95):
        at = RiskAtxCov(cov_threshold=c / 100)
        at.update(probs, y)
        assert ours[f"risk_{c}"] == pytest.approx(at.compute().item(), abs=1e-6)
    if case == "all correct":
        assert ours == {"aurc": 0.0, "augrc": 0.0, "risk_80": 0.0, "risk_95": 0.0}


def test_aurc_with_ties_is_the_mean_over_the_orders_of_the_tied_inputs() -> None:
    confidence = torch.tensor([0.9, 0.9, 0.9, 0.7, 0.7, 0.5], dtype=torch.float64)
    errors = torch.tensor([1, 0, 0, 1, 0, 1], dtype=torch.bool)
    curves = []
    for first in itertools.permutations(range(3)):
        for second in itertools.permutations(range(3, 5)):
            order = torch.tensor([*first, *second, 5])
            curves.append(errors[order].double().cumsum(0) / torch.arange(1, 7))
    want = torch.stack(curves).mean(0)
    torch.testing.assert_close(selective_risks(confidence, errors), want, rtol=0, atol=1e-12)
    for perm in itertools.permutations(range(6)):
        perm = torch.tensor(perm)
        area = selective_risks(confidence[perm], errors[perm]).mean().item()
        assert area == pytest.approx(want.mean().item(), abs=1e-12)


def test_aurc_of_an_overconfident_ensemble_does_not_depend_on_the_order() -> None:
    logits, y = ensemble(2.1, 3, n=2000, spread=0.0)
    logits = logits * 60  # many confidences of exactly 1.0
    assert (_probs(logits).max(-1).values == 1.0).sum() > 100
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(1))
    assert selective_metrics(logits, y) == pytest.approx(selective_metrics(logits[perm], y[perm]), abs=1e-12)


# ---- out-of-distribution detection -----------------------------------------------------------------


@pytest.mark.parametrize("decimals", [None, 1])  # continuous scores, or heavily tied ones
def test_detection_scores_equal_scikit_learn_and_pytorch_ood(decimals: int | None) -> None:
    g = torch.Generator().manual_seed(7)
    inside, outside = torch.randn(5000, generator=g, dtype=torch.float64), \
        1.0 + torch.randn(3000, generator=g, dtype=torch.float64)
    if decimals is not None:
        inside, outside = inside.round(decimals=decimals), outside.round(decimals=decimals)
    ours = detection_scores(inside, outside)
    scores = torch.cat([inside, outside])
    is_ood = np.r_[np.zeros(5000), np.ones(3000)]
    labels = torch.tensor(np.where(is_ood == 1, -1, 0))  # pytorch-ood: labels < 0 are OOD
    assert ours["auroc"] == pytest.approx(skm.roc_auc_score(is_ood, scores.numpy()), abs=1e-6)
    assert ours["auroc"] == pytest.approx(ood_functional.auroc(scores, labels).item(), abs=1e-6)
    assert ours["auroc"] == pytest.approx(stats.norm.cdf(1 / math.sqrt(2)), abs=0.02)  # known overlap
    assert ours["aupr"] == pytest.approx(skm.average_precision_score(is_ood, scores.numpy()), abs=1e-6)
    # pytorch-ood's AUPR-OUT is the trapezoid under the same precision-recall curve (documented).
    precision, recall, _ = skm.precision_recall_curve(is_ood, scores.numpy())
    assert ood_functional.aupr(scores, labels).item() == pytest.approx(skm.auc(recall, precision), abs=1e-9)
    assert ours["fpr95"] == pytest.approx(ood_functional.fpr_at_tpr(scores, labels, 0.95).item(), abs=1e-6)
    fpr, tpr, _ = skm.roc_curve(is_ood, scores.numpy(), drop_intermediate=False)
    assert ours["fpr95"] == pytest.approx(fpr[np.searchsorted(tpr, 0.95)], abs=1e-6)


def test_energy_and_max_logit_equal_pytorch_ood_for_one_member() -> None:
    logits, _ = ensemble(2.0, 9, n=300)
    single = logits[:, :1]
    scores = ood_scores(single)
    torch.testing.assert_close(scores["energy"], EnergyBased.score(single[:, 0].double()), rtol=0, atol=1e-9)
    torch.testing.assert_close(scores["maxlogit"], MaxLogit.score(single[:, 0].double()), rtol=0, atol=1e-9)
    # Several members: the members' mean of each score.
    members = ood_scores(logits)
    want = torch.stack([EnergyBased.score(logits[:, k].double()) for k in range(K)]).mean(0)
    torch.testing.assert_close(members["energy"], want, rtol=0, atol=1e-9)


def test_ood_detection_with_known_overlap() -> None:
    inside, _ = ensemble(4.0, 11, n=2000)
    outside = 0.6 * ensemble(0.0, 12, n=2000, spread=2.5)[0]  # no signal, disagreeing members
    out = ood_detection(inside, outside)
    for measure in ("msp", "predictive", "epistemic", "energy", "maxlogit"):
        assert out[f"{measure}_auroc"] > 0.9
    same = ood_detection(inside[:1000], inside[1000:])  # the same distribution: AUROC about 0.5
    assert all(abs(same[f"{m}_auroc"] - 0.5) < 0.05 for m in ("msp", "predictive", "epistemic", "energy"))


# ---- uncertainty and fidelity ----------------------------------------------------------------------


def _mutual_information_reference(logits: torch.Tensor) -> np.ndarray:
    """scipy in float64: mean over members of KL(p_k || p̄) with scipy.special.rel_entr."""
    p = special.softmax(logits.double().numpy(), axis=-1)
    mean = p.mean(1, keepdims=True)
    return special.rel_entr(p, mean).sum(-1).mean(1)


def test_mutual_information_of_near_agreeing_heads_is_exact() -> None:
    g = torch.Generator().manual_seed(3)
    base = 3 * torch.randn(N, 1, C, generator=g)
    logits = base + 1e-3 * torch.randn(N, K, C, generator=g)  # MI around 1e-7
    mi = classification_uncertainty(logits)["epistemic"]
    reference = _mutual_information_reference(logits)
    assert np.median(reference) < 1e-6
    assert (mi > 0).all()  # none clamped away
    np.testing.assert_allclose(mi.numpy(), reference, rtol=1e-6, atol=1e-15)
    assert mi.mean().item() == pytest.approx(reference.mean(), rel=1e-9)


def test_mutual_information_equals_the_entropy_difference_on_diverse_members(data) -> None:
    logits, _ = data
    u = classification_uncertainty(logits)
    np.testing.assert_allclose(u["epistemic"].numpy(), _mutual_information_reference(logits), rtol=1e-9,
                               atol=1e-12)
    p = special.softmax(logits.double().numpy(), axis=-1)
    np.testing.assert_allclose(u["predictive"].numpy(), stats.entropy(p.mean(1), axis=-1), atol=1e-9)
    np.testing.assert_allclose(u["aleatoric"].numpy(), stats.entropy(p, axis=-1).mean(1), atol=1e-9)


def test_spearman_equals_scipy_with_many_ties() -> None:
    g = torch.Generator().manual_seed(4)
    tied = torch.zeros(70_000, dtype=torch.float64)  # more ties than int32 rank sums survive
    a = torch.cat([tied, torch.rand(10_000, generator=g, dtype=torch.float64)])
    b = a + 0.5 * torch.rand(80_000, generator=g, dtype=torch.float64)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-9)
    np.testing.assert_allclose(average_ranks(a).numpy(), stats.rankdata(a.numpy()), rtol=0, atol=0)
    assert spearman(torch.ones(5), torch.arange(5.0)) == 0.0


def test_fidelity_spearman_of_near_agreeing_heads_equals_scipy_on_float64_mi() -> None:
    g = torch.Generator().manual_seed(6)
    base = 3 * torch.randn(N, 1, C, generator=g)
    student = base + 1e-3 * torch.randn(N, 4, C, generator=g)
    teacher = base + 1e-3 * torch.randn(N, K, C, generator=g)
    want = stats.spearmanr(_mutual_information_reference(student), _mutual_information_reference(teacher))
    assert fidelity(student, teacher)["epistemic_spearman"] == pytest.approx(want.statistic, abs=1e-6)


# ---- regression ------------------------------------------------------------------------------------


def test_central_intervals_equal_scipy() -> None:
    g = torch.Generator().manual_seed(8)
    out = torch.stack([torch.randn(N, K, generator=g), torch.randn(N, K, generator=g) - 1], -1)
    y = torch.randn(N, generator=g)
    metrics = RegressionMetrics()
    metrics.update(out, y)
    got = metrics.compute()
    o = out.double().numpy()
    mu, var = o[..., 0].mean(1), np.exp(o[..., 1]).mean(1) + o[..., 0].var(1)
    for q in (50, 90, 95):
        low, high = stats.norm.interval(q / 100, loc=mu, scale=np.sqrt(var))
        inside = (y.double().numpy() >= low) & (y.double().numpy() <= high)
        assert got[f"coverage_{q}"] == pytest.approx(inside.mean(), abs=1e-12)
        assert got[f"width_{q}"] == pytest.approx((high - low).mean(), rel=1e-9)
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y.numpy(), mu)), rel=1e-9)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y.numpy(), mu), rel=1e-9)
