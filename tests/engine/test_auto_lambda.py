"""The automatic diversity weight: its update rule, bounds, the weights it ends with and its
checkpointed state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hydraplus.config import StudentSpec
from hydraplus.core.containers import MultiHeadStudent
from hydraplus.core.schedules import LambdaSchedule
from hydraplus.core.uncertainty import classification_uncertainty, total_variation
from hydraplus.engine import auto_lambda
from hydraplus.engine.auto_lambda import (
    CUT,
    RAMP,
    AutoLambda,
    Candidate,
    Candidates,
    Fit,
    ProbeSet,
    fit_to,
    guard_inputs,
    off_data,
    rise_limit,
    student_fit,
    teacher_probe,
    typical_epistemic,
)
from hydraplus.engine.modules import DistillModule


def test_the_update_moves_lambda_toward_the_target_in_bounded_steps() -> None:
    control = AutoLambda(2.0, target=0.1)
    assert control.update(0.05) == pytest.approx(2.0 * RAMP)  # first step after the warm-up: the ramp
    start = 2.0 * RAMP
    start *= (0.1 / 0.12) ** 0.5
    assert control.update(0.12) == pytest.approx(start)  # too uncertain: times (target / measured)^0.5
    assert control.update(0.1) == pytest.approx(start)  # matched: unchanged
    assert control.update(1e-9) == pytest.approx(start * 4.0)  # rises by at most max_up (4x)
    assert control.update(1e9) == pytest.approx(start * 4.0 / 1.25)  # falls by at most 1.25x
    low = AutoLambda(1e-4, target=1.0, started=True)
    assert low.update(100.0) == 0.0  # below its floor it is off...
    assert low.update(100.0) == 0.0
    assert low.update(1e-3) == 1e-4  # ...and a rise from 0 goes to the floor
    with pytest.raises(ValueError, match="must start above 0"):
        AutoLambda(0.0, target=0.1)
    with pytest.raises(ValueError, match=r"epistemic uncertainty on the probe set is 0\.0"):
        AutoLambda(1.0, target=0.0)


def test_short_runs_may_raise_lambda_faster() -> None:
    assert rise_limit(10) == pytest.approx(10.0)  # 1e-3 to 1 in 3 epochs
    assert rise_limit(200) == pytest.approx(1000 ** (1 / 60))  # 1.122
    assert rise_limit(1000) == 1.1


def test_a_student_at_the_target_after_the_warm_up_gets_no_diversity() -> None:
    control = AutoLambda(1.0, target=0.1)
    assert control.update(0.3) == 0.0  # the lambda = 0 student is already as uncertain as the teacher
    assert control.update(0.3) == 0.0


def test_the_guard_cuts_lambda_and_caps_it_when_the_fit_breaks() -> None:
    control = AutoLambda(1.0, target=0.1, started=True)
    assert control.update(0.01, Fit(0.10, 0.95)) == pytest.approx(10**0.5)  # the reference: no cut
    assert control.reference == Fit(0.10, 0.95)
    # within the tolerance (KL 0.10 * 1.1 + 0.002 = 0.112 and agreement 0.94 allowed) but not the best
    # fit so far: lambda holds instead of rising
    assert control.update(0.01, Fit(0.112, 0.94)) == pytest.approx(10**0.5)
    assert control.update(0.01, Fit(0.09, 0.95)) == pytest.approx(10.0)  # a new best: it rises
    assert control.update(0.01, Fit(0.102, 0.96)) == pytest.approx(10 * CUT)  # KL > 0.09 * 1.1 + 0.002: cut
    assert control.ceiling == pytest.approx(10 * CUT)
    assert control.reference == Fit(0.09, 0.96)  # the best of each measure so far
    assert control.update(0.01, Fit(0.09, 0.96)) == pytest.approx(10 * CUT)  # wants up: capped
    assert control.update(0.01, Fit(0.09, 0.949)) == pytest.approx(10 * CUT**2)  # agreement fell
    assert control.update(1.0, Fit(0.09, 0.96)) == pytest.approx(10 * CUT**2 / 1.25)  # falls freely


def test_the_fit_is_the_kl_of_the_mean_prediction_and_the_class_agreement() -> None:
    teacher = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    student = torch.tensor([[0.25, 0.75], [0.8, 0.2]], dtype=torch.float64)
    fit = fit_to(teacher, student, "classification")
    expected = (0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
                + 0.9 * math.log(0.9 / 0.8) + 0.1 * math.log(0.1 / 0.2)) / 2
    assert fit.kl == pytest.approx(expected)
    assert fit.agreement == 0.5  # argmax: 0 vs 1, then 0 vs 0
    gaussian = fit_to(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 2.0]]), "regression")
    assert gaussian.kl == pytest.approx(0.5 * (0.5 + 0.5 - 1 + math.log(2.0)))
    assert gaussian.agreement is None
    assert not Fit(0.2).worse_than(Fit(0.2, 0.9))  # no agreement to compare: the KL alone


def test_the_guard_uses_a_seeded_sample_of_the_training_inputs() -> None:
    x = torch.arange(3000.0).reshape(-1, 1)
    sample = guard_inputs(x, seed=3)
    assert sample.shape == (1000, 1) and len(set(sample.flatten().tolist())) == 1000
    torch.testing.assert_close(sample, guard_inputs(x, seed=3))
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(1, 3) for _ in range(2)])
    probe = teacher_probe(student, torch.randn(20, 1), "classification", train=x[:50], seed=3)
    assert probe.guard is not None and probe.guard.inputs.shape == (50, 1)
    assert student_fit(student, probe.guard, "classification") == Fit(0.0, 1.0)  # itself: a perfect fit


def test_typical_epistemic_is_the_geometric_mean_of_the_mutual_information_over_the_probe() -> None:
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(4)])
    probe = ProbeSet(torch.randn(50, 2), target=1.0, floor=1e-9)
    values = classification_uncertainty(student(probe.inputs).detach().double())["epistemic"]
    expected = values.clamp_min(1e-9).log().mean().exp()
    assert typical_epistemic(student, probe, "classification", batch_size=7) == pytest.approx(float(expected))
    assert student.training  # its mode is given back


def test_the_geometric_mean_follows_the_bulk_not_the_largest_values(monkeypatch: pytest.MonkeyPatch) -> None:
    values = torch.tensor([0.01, 0.01, 0.01, 10.0], dtype=torch.float64)
    monkeypatch.setattr(auto_lambda, "epistemic_values", lambda *args, **kwargs: values)
    probe = teacher_probe(nn.Identity(), torch.zeros(4, 2), "classification")
    assert probe.target == pytest.approx((0.01**3 * 10.0) ** 0.25)  # 0.056, where the mean is 2.5
    assert probe.floor == pytest.approx(1e-5 * 2.5075)
    monkeypatch.setattr(auto_lambda, "epistemic_values", lambda *args, **kwargs: torch.zeros(4))
    with pytest.raises(ValueError, match=r"epistemic uncertainty on the probe set is 0\.0"):
        teacher_probe(nn.Identity(), torch.zeros(4, 2), "classification")


def test_the_module_needs_a_probe_and_checkpoints_lambda() -> None:
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(2)])
    spec = StudentSpec("hydra+", heads=2, lam=LambdaSchedule(1.0, auto=True))
    with pytest.raises(ValueError, match="an automatic lambda needs a probe set"):
        DistillModule(student, "hydra+", "classification", spec)
    probe = ProbeSet(torch.randn(8, 2), 0.05, 1e-7)
    module = DistillModule(student, "hydra+", "classification", spec, probe=probe)
    assert module.current_lambda() == 0.0  # the warm-up
    module.auto_lambda.update(0.01, Fit(0.1, 0.9))  # type: ignore[union-attr]
    module.auto_lambda.update(0.01, Fit(0.5, 0.9))  # type: ignore[union-attr]  # a cut
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = DistillModule(student, "hydra+", "classification", spec, probe=probe)
    restored.on_load_checkpoint(checkpoint)
    assert restored.auto_lambda == module.auto_lambda
    with pytest.raises(ValueError, match="an automatic lambda has no ramp"):
        LambdaSchedule(1.0, 0, 5, auto=True)


def test_lambda_remembers_whether_it_ever_left_zero() -> None:
    stays = AutoLambda(1.0, target=0.1)
    stays.update(0.3)  # at the target after the warm-up: 0
    stays.update(0.2)
    assert not stays.raised
    rises = AutoLambda(1.0, target=0.1)
    rises.update(0.05)
    assert rises.raised
    rises.update(10.0)
    rises.value = 0.0  # back at 0 later: the run has still left the lambda = 0 path
    assert rises.raised and rises.state()["raised"] is True


def _candidate(epoch: int, kl: list[float], tv: float, agreement: float | None = 0.9) -> Candidate:
    return Candidate(epoch, torch.tensor(kl, dtype=torch.float64), agreement, tv)


def test_candidates_keep_the_closest_histogram_among_fits_as_good_as_the_best() -> None:
    best = _candidate(5, [0.10, 0.20, 0.30, 0.40], tv=0.50)
    # per-input differences from the best 0.01, 0.03, 0.01, 0.03: mean 0.02, standard error
    # std([.01, .03, .01, .03]) / 2 = 0.0115 / 2 = 0.0058 < 0.02: not as good
    worse = _candidate(3, [0.11, 0.23, 0.31, 0.43], tv=0.10)
    # differences 0.03, -0.02, 0.03, -0.02: mean 0.005 <= its standard error 0.0289 / 2: as good
    close = _candidate(7, [0.13, 0.18, 0.33, 0.38], tv=0.40)
    assert not worse.as_good_as(best) and close.as_good_as(best)
    assert not _candidate(8, [0.1, 0.2, 0.3, 0.4], tv=0.1, agreement=0.89).as_good_as(best)  # agreement fell
    kept = Candidates()
    for candidate in (worse, best, close):
        kept.add(candidate, {"w": torch.full((1,), float(candidate.epoch))})
    assert [c.epoch for c, _ in kept.kept] == [5, 7]  # epoch 3 dropped once the best came
    chosen, weights = kept.chosen()
    assert chosen.epoch == 7 and weights["w"].item() == 7.0  # the closer histogram
    kept.add(_candidate(9, [0.13, 0.18, 0.33, 0.38], tv=0.45), {"w": torch.zeros(1)})
    assert [c.epoch for c, _ in kept.kept] == [5, 7]  # epoch 7 beats it on every measure
    restored = Candidates()
    restored.restore(kept.state())
    assert [(c.epoch, c.tv) for c, _ in restored.kept] == [(5, 0.5), (7, 0.4)]
    with pytest.raises(ValueError, match="no candidate"):
        Candidates().chosen()


def test_off_data_is_the_geometric_mean_and_the_histogram_distance_from_the_teacher() -> None:
    torch.manual_seed(0)
    teacher = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(4)])
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(4)])
    inputs = torch.randn(200, 2)
    probe = teacher_probe(teacher, inputs, "classification")
    assert probe.upper == pytest.approx(math.log(3))
    measured = off_data(student, probe, "classification")
    values = classification_uncertainty(student(inputs).detach().double())["epistemic"]
    assert measured.typical == pytest.approx(typical_epistemic(student, probe, "classification"))
    assert measured.tv == pytest.approx(total_variation(values.float(), probe.teacher_values.float(),
                                                        math.log(3), 50))
    assert off_data(teacher, probe, "classification").tv == 0.0


def test_measuring_leaves_the_student_alone_and_a_run_at_zero_keeps_its_weights() -> None:
    """What makes a run whose lambda stayed 0 the lambda = 0 run, bit for bit."""
    torch.manual_seed(0)
    core = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5))
    student = MultiHeadStudent(core, [nn.Linear(8, 3) for _ in range(2)])
    spec = StudentSpec("hydra+", heads=2, lam=LambdaSchedule(1.0, auto=True))
    x = torch.randn(40, 2)
    probe = teacher_probe(student, torch.randn(30, 2) * 5, "classification", train=x, seed=1)
    module = DistillModule(student, "hydra+", "classification", spec, probe=probe)
    weights = {k: v.clone() for k, v in student.state_dict().items()}
    rng = torch.get_rng_state()
    module._measure(3)
    assert torch.equal(torch.get_rng_state(), rng) and student.training
    assert all(torch.equal(v, weights[k]) for k, v in student.state_dict().items())
    assert [c.epoch for c, _ in module.candidates.kept] == [3]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)  # later weights
    module._choose()  # lambda never left 0: nothing is restored
    assert not any(torch.equal(v, weights[k]) for k, v in student.state_dict().items())
    module.auto_lambda.raised, module._chosen = True, False  # type: ignore[union-attr]
    module._choose()  # it did: the only candidate's weights come back
    assert all(torch.equal(v, weights[k]) for k, v in student.state_dict().items())
