"""Spread scaling: the heads moved from their mean by one factor, and the factor fitted so that the
student's mean epistemic uncertainty equals the teacher's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hydraplus.core.spread import SPREAD_RANGE, SpreadScaled, fit_spread_scale, mean_epistemic, spread
from hydraplus.core.uncertainty import regression_uncertainty


def logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_one_keeps_the_student_and_zero_makes_the_heads_agree() -> None:
    out = logits(5, 3, 4)
    assert torch.allclose(spread(out, 1.0, "classification"), out, rtol=0, atol=1e-6)  # the logits
    agreed = F.softmax(spread(out, 0.0, "classification"), -1)
    assert torch.allclose(agreed, agreed[:, :1].expand_as(agreed))
    assert mean_epistemic(spread(out, 0.0, "classification"), "classification") < 1e-7


def test_classification_by_hand() -> None:
    # two heads over two classes, p = (0.8, 0.2) and (0.5, 0.5): at s = 2 the first head's logits
    # are 1.5 log p_1 - 0.5 log p_2, so its odds are (0.8 / 0.2)^1.5 / (0.5 / 0.5)^0.5 = 8
    p = torch.tensor([[[0.8, 0.2], [0.5, 0.5]]], dtype=torch.float64)
    first = F.softmax(spread(p.log(), 2.0, "classification")[0, 0], -1)
    assert torch.allclose(first, torch.tensor([8 / 9, 1 / 9], dtype=torch.float64))


def test_logits_and_log_probabilities_give_the_same_probabilities() -> None:
    out = 3 * logits(6, 4, 5) + logits(6, 4, 1, seed=1)  # each head its own constant shift
    log_p = F.log_softmax(out.double(), -1)
    centre = log_p.mean(1, keepdim=True)
    assert torch.allclose(F.softmax(spread(out.double(), 1.7, "classification"), -1),
                          F.softmax(centre + 1.7 * (log_p - centre), -1))


def test_regression_moves_the_means_and_keeps_the_variances() -> None:
    out = torch.tensor([[[1.0, -1.0], [3.0, 0.5]]])  # means 1 and 3 (centre 2), log-variances
    moved = spread(out, 3.0, "regression")
    assert torch.allclose(moved[..., 0], torch.tensor([[-1.0, 5.0]]))
    assert torch.equal(moved[..., 1], out[..., 1])
    before, after = (regression_uncertainty(o)["epistemic"] for o in (out, moved))
    assert torch.allclose(after, 9 * before)  # the variance of the means grows as s^2


@pytest.mark.parametrize("scale", [0.4, 1.7, 5.0])
def test_the_fit_recovers_the_scale_that_made_the_teacher(scale: float) -> None:
    student = logits(64, 4, 5)
    teacher = spread(student, scale, "classification")
    assert fit_spread_scale(student, teacher, "classification") == pytest.approx(scale, rel=1e-5)
    student = torch.cat([logits(64, 4, 1, seed=1), logits(64, 4, 1, seed=2)], -1)
    teacher = spread(student, scale, "regression")
    assert fit_spread_scale(student, teacher, "regression") == pytest.approx(scale)


def test_the_fit_matches_a_teacher_of_another_size() -> None:
    student, teacher = logits(50, 3, 6, seed=1), 2 * logits(50, 8, 6, seed=2)
    scale = fit_spread_scale(student, teacher, "classification")
    assert scale > 1  # the wider teacher disagrees more
    assert mean_epistemic(spread(student, scale, "classification"), "classification") == pytest.approx(
        mean_epistemic(teacher, "classification"), rel=1e-6)


def test_the_fit_stays_in_range() -> None:
    student = 1e-3 * logits(20, 2, 3)  # heads nearly agree: no finite scale reaches the teacher
    assert fit_spread_scale(student, 50 * logits(20, 2, 3, seed=1), "classification") == pytest.approx(
        SPREAD_RANGE[1])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="agree on every input"):
        fit_spread_scale(logits(4, 3, 5)[:, :1].expand(4, 3, 5), logits(4, 2, 5), "classification")
    with pytest.raises(ValueError, match="same, non-empty inputs"):
        fit_spread_scale(logits(4, 3, 5), logits(5, 2, 5), "classification")
    with pytest.raises(ValueError, match=r"expected regression outputs \[B, K, 2\]"):
        spread(logits(4, 3, 5), 1.0, "regression")
    with pytest.raises(ValueError, match="task must be"):
        spread(logits(4, 3, 5), 1.0, "ranking")
    with pytest.raises(ValueError, match="finite and >= 0"):
        SpreadScaled(torch.nn.Identity(), -1.0, "classification")


def test_the_module_scales_its_students_outputs_and_saves_the_scale() -> None:
    student = torch.nn.Sequential(torch.nn.Linear(3, 12), torch.nn.Unflatten(1, (4, 3)))
    x = logits(6, 3)
    module = SpreadScaled(student, 1.5, "classification")
    out = module(x)
    assert out.dtype == torch.float32 and out.shape == (6, 4, 3)
    assert torch.allclose(out, spread(student(x), 1.5, "classification").float())
    assert module.state_dict()["scale"] == torch.tensor(1.5)
    exported = torch.export.export(module, (x,))
    assert torch.allclose(exported.module()(x), out)


def test_moved_outputs_are_the_same_floats_whatever_their_layout() -> None:
    torch.manual_seed(0)
    head_major = torch.randn(8, 3000, 10).transpose(0, 1)  # [B, M, D] as a batched student returns it
    scaled = SpreadScaled(nn.Identity(), 1.37, "classification")
    assert not head_major.is_contiguous()
    assert torch.equal(scaled.moved(head_major), scaled.moved(head_major.contiguous()))
