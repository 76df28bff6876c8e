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
    Fit,
    ProbeSet,
    Selection,
    diversity_epochs,
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
    assert control.start(0.05) == pytest.approx(2.0 * RAMP)  # the lambda = 0 student: the ramp
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


def test_the_diversity_phase_is_30_percent_of_the_epochs_and_lambda_can_climb_in_it() -> None:
    assert [diversity_epochs(e) for e in (1, 3, 10, 20, 200)] == [2, 2, 3, 6, 60]
    assert rise_limit(10) == pytest.approx(1000**0.5)  # 1e-3 to 1 in the phase's 3 epochs
    assert rise_limit(200) == pytest.approx(1000 ** (1 / 59))  # 1.124
    assert rise_limit(1000) == 1.1


def test_a_lambda_0_student_at_the_target_gets_no_diversity_phase() -> None:
    control = AutoLambda(1.0, target=0.1)
    assert control.start(0.3, Fit(0.1, 0.9)) == 0.0  # as uncertain as the teacher already
    assert control.started and control.reference == Fit(0.1, 0.9)


def test_the_guard_cuts_lambda_and_caps_it_when_the_fit_falls_short_of_the_lambda_0_students() -> None:
    control = AutoLambda(1.0, target=0.1)
    control.start(0.01, Fit(0.10, 0.95))  # the lambda = 0 student: the reference
    control.value = 1.0
    # within the tolerance (KL 0.10 * 1.1 + 0.002 = 0.112, agreement down to 0.94): it rises
    assert control.update(0.01, Fit(0.112, 0.94)) == pytest.approx(10**0.5)
    assert control.update(0.01, Fit(0.113, 0.95)) == pytest.approx(10**0.5 * CUT)  # KL too high: cut
    assert control.ceiling == pytest.approx(10**0.5 * CUT)
    assert control.update(0.01, Fit(0.10, 0.95)) == pytest.approx(10**0.5 * CUT)  # wants up: capped
    assert control.update(0.01, Fit(0.10, 0.939)) == pytest.approx(10**0.5 * CUT**2)  # agreement fell
    assert control.update(1.0, Fit(0.10, 0.95)) == pytest.approx(10**0.5 * CUT**2 / 1.25)  # falls freely
    assert control.reference == Fit(0.10, 0.95)  # it never moves


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


def _module() -> tuple[DistillModule, MultiHeadStudent]:
    torch.manual_seed(0)
    core = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5))
    student = MultiHeadStudent(core, [nn.Linear(8, 3) for _ in range(2)])
    spec = StudentSpec("hydra+", heads=2, lam=LambdaSchedule(1.0, auto=True))
    probe = teacher_probe(student, torch.randn(30, 2) * 5, "classification", train=torch.randn(40, 2), seed=1)
    return DistillModule(student, "hydra+", "classification", spec, probe=probe), student


def test_the_module_needs_a_probe_with_a_guard_and_checkpoints_its_state() -> None:
    student = MultiHeadStudent(nn.Identity(), [nn.Linear(2, 3) for _ in range(2)])
    spec = StudentSpec("hydra+", heads=2, lam=LambdaSchedule(1.0, auto=True))
    with pytest.raises(ValueError, match="an automatic lambda needs a probe set"):
        DistillModule(student, "hydra+", "classification", spec)
    with pytest.raises(ValueError, match=r"teacher_probe\(\.\.\., train=\.\.\.\)"):
        DistillModule(student, "hydra+", "classification", spec,
                      probe=ProbeSet(torch.randn(8, 2), 0.05, 1e-7))
    module, _ = _module()
    assert module.extra_epochs == 2 and module.current_lambda() == 0.0  # the lambda = 0 phase
    module.selection.set_reference(module._measure(5), module.student.state_dict())
    module.auto_lambda.start(0.0, module._fit)  # type: ignore[union-attr]
    module.phase, module.phase_start = "diversity", 5
    assert module.current_lambda() == pytest.approx(RAMP) and module.early_stopping_done
    weights = {f"student.{k}": v for k, v in module.student.state_dict().items()}
    checkpoint: dict = {"epoch": 5, "state_dict": weights}
    module.on_save_checkpoint(checkpoint)
    restored, _ = _module()  # the same probe, a fresh controller
    restored.on_load_checkpoint(checkpoint)
    assert restored.auto_lambda == module.auto_lambda
    assert (restored.phase, restored.phase_start) == ("diversity", 5)
    assert restored.selection.reference is not None and restored.selection.reference[0].epoch == 5
    assert restored._pending is not None and restored._pending[0] == 6  # its epoch end is taken again
    with pytest.raises(ValueError, match="an automatic lambda has no ramp"):
        LambdaSchedule(1.0, 0, 5, auto=True)


def _candidate(epoch: int, kl: list[float], tv: float, halves: tuple[float, float] | None = None,
               agreement: float | None = 0.9) -> Candidate:
    return Candidate(epoch, torch.tensor(kl, dtype=torch.float64), agreement, tv, halves or (tv, tv))


def test_a_candidate_is_kept_only_with_as_good_a_fit_and_a_closer_histogram_on_both_halves() -> None:
    zero = _candidate(5, [0.10, 0.20, 0.30, 0.40], tv=0.50)
    # per-input differences 0.01, 0.03, 0.01, 0.03: mean 0.02 above the standard error
    # std([.01, .03, .01, .03]) / 2 = 0.0058: not as good
    worse = _candidate(7, [0.11, 0.23, 0.31, 0.43], tv=0.10)
    # differences 0.03, -0.02, 0.03, -0.02: mean 0.005 <= its standard error 0.0289 / 2: as good
    close = _candidate(8, [0.13, 0.18, 0.33, 0.38], tv=0.40)
    assert not worse.as_good_as(zero) and close.as_good_as(zero)
    assert not _candidate(9, [0.1, 0.2, 0.3, 0.4], tv=0.1, agreement=0.89).as_good_as(zero)  # agreement fell
    one_half = _candidate(10, [0.1, 0.2, 0.3, 0.4], tv=0.30, halves=(0.2, 0.51))
    assert close.closer_than(zero) and not one_half.closer_than(zero)  # one half got worse
    assert not _candidate(10, [0.1, 0.2, 0.3, 0.4], tv=0.5 - 1e-8).closer_than(zero)  # float rounding
    selection = Selection()
    with pytest.raises(ValueError, match="lambda = 0 student"):
        selection.chosen()
    selection.set_reference(zero, {"w": torch.zeros(1)})
    assert selection.chosen()[0] is zero  # nothing accepted: the lambda = 0 student
    for candidate in (worse, one_half, close):
        selection.offer(candidate, {"w": torch.full((1,), float(candidate.epoch))})
    chosen, weights = selection.chosen()
    assert chosen.epoch == 8 and weights["w"].item() == 8.0
    farther = _candidate(11, [0.1, 0.2, 0.3, 0.4], tv=0.45)
    assert not selection.offer(farther, {"w": torch.zeros(1)})  # accepted, but farther than the best
    assert selection.offer(_candidate(12, [0.1, 0.2, 0.3, 0.4], tv=0.35), {"w": torch.ones(1)})
    restored = Selection()
    restored.restore(selection.state())
    assert restored.chosen()[0].epoch == 12 and restored.reference is not None
    torch.testing.assert_close(restored.reference[0].kl, zero.kl)


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
    assert measured.tv_halves[1] == pytest.approx(total_variation(values[100:].float(),
                                                                  probe.teacher_values[100:].float(),
                                                                  math.log(3), 50))
    assert off_data(teacher, probe, "classification")[1:] == (0.0, (0.0, 0.0))


def test_measuring_leaves_the_student_and_the_random_state_alone() -> None:
    """What makes a run whose lambda stays 0 the lambda = 0 run, bit for bit."""
    module, student = _module()
    weights = {k: v.clone() for k, v in student.state_dict().items()}
    rng = torch.get_rng_state()
    candidate = module._measure(3)
    assert torch.equal(torch.get_rng_state(), rng) and student.training
    assert all(torch.equal(v, weights[k]) for k, v in student.state_dict().items())
    assert candidate.epoch == 3 and candidate.kl.shape == (40,) and module._fit == candidate.fit
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)  # later weights
    module._choose()  # no diversity phase: the weights stay
    assert not any(torch.equal(v, weights[k]) for k, v in student.state_dict().items())
    module.selection.set_reference(candidate, weights)
    module.phase_start = 3
    module._choose()  # after one: the chosen weights (here the lambda = 0 student's) come back
    assert all(torch.equal(v, weights[k]) for k, v in student.state_dict().items())
