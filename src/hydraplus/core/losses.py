"""The four Hydra+ losses (docs/method.md#losses, #regression) and the baselines' own terms.

Shapes: teacher outputs ``[B, N, D]``, student outputs ``[B, M, D]``; D = classes
(logits) or 2 (regression: mean, log-variance). Every loss is averaged over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hydraplus.core.distributions import concentrations_from_logits, split_gaussian

TASKS = ("classification", "regression")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def pair_indices(n: int, m: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """K = max(N, M) pairs; pair i joins member ``i mod N`` with head ``i mod M``."""
    k = torch.arange(max(n, m), device=device)
    return k % n, k % m


def _mean_log_probs(logits: Tensor, temperature: float) -> Tensor:
    """log of the average softmax over dim 1: ``[B, K, C] -> [B, C]``."""
    log_p = F.log_softmax(logits / temperature, dim=-1)
    return torch.logsumexp(log_p, dim=1) - math.log(logits.shape[1])


def _kl_from_logs(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) over the last dim from log-probabilities (0 log 0 = 0)."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


# --- classification ---------------------------------------------------------------


def correctness_loss(student: Tensor, target: Tensor) -> Tensor:
    """L1: cross-entropy of every head with the labels ``[B]``, or with soft labels ``[B, C]``
    (class probabilities, e.g. mixup's), averaged over heads."""
    b, m, c = student.shape
    return F.cross_entropy(student.reshape(b * m, c), target.repeat_interleave(m, dim=0))


def aggregation_loss(teacher: Tensor, student: Tensor, temperature: float = 1.0) -> Tensor:
    """L2: T^2 KL(mean_n softmax_T(t_n) || mean_m softmax_T(s_m))."""
    _check_temperature(temperature)
    kl = _kl_from_logs(_mean_log_probs(teacher, temperature), _mean_log_probs(student, temperature))
    return temperature**2 * kl.mean()


def individuality_loss(teacher: Tensor, student: Tensor, temperature: float = 1.0) -> Tensor:
    """L3: T^2 (1/K) sum_i KL(softmax_T(t_{i mod N}) || softmax_T(s_{i mod M}))."""
    _check_temperature(temperature)
    ti, si = pair_indices(teacher.shape[1], student.shape[1], teacher.device)
    log_t = F.log_softmax(teacher[:, ti] / temperature, dim=-1)
    log_s = F.log_softmax(student[:, si] / temperature, dim=-1)
    return temperature**2 * _kl_from_logs(log_t, log_s).mean()


def dirichlet_nll(head_logits: Tensor, teacher: Tensor, temperature: float = 1.0) -> Tensor:
    """EnDD: T^2 times the Dirichlet negative log-likelihood of the members' probabilities.

    Concentrations are ``exp(head_logits / T)``; members' probabilities ``softmax(t_n / T)``.
    """
    _check_temperature(temperature)
    alpha = concentrations_from_logits(head_logits, temperature)
    mean_log_p = F.log_softmax(teacher / temperature, dim=-1).mean(dim=1)
    nll = (
        torch.lgamma(alpha).sum(-1)
        - torch.lgamma(alpha.sum(-1))
        - ((alpha - 1.0) * mean_log_p).sum(-1)
    )
    return temperature**2 * nll.mean()


# --- regression ---------------------------------------------------------------------


def gaussian_nll(out: Tensor, target: Tensor) -> Tensor:
    """L1 (regression): Gaussian NLL of each head, averaged over heads and batch."""
    mu, var = split_gaussian(out)
    y = target.reshape(-1, 1).to(mu)
    return (0.5 * (var.log() + (y - mu).pow(2) / var + math.log(2 * math.pi))).mean()


def gaussian_kl(mu_p: Tensor, var_p: Tensor, mu_q: Tensor, var_q: Tensor) -> Tensor:
    """KL(N(mu_p, var_p) || N(mu_q, var_q)), elementwise."""
    return 0.5 * (var_q.log() - var_p.log() + (var_p + (mu_p - mu_q).pow(2)) / var_q - 1.0)


def moment_matched(out: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of the equal-weight mixture over dim 1: ``[B, K, 2] -> [B], [B]``."""
    mu, var = split_gaussian(out)
    return mu.mean(1), var.mean(1) + mu.var(1, unbiased=False)


def gaussian_aggregation_loss(teacher: Tensor, student: Tensor) -> Tensor:
    """L2 (regression): KL between the moment-matched teacher and student mixtures."""
    return gaussian_kl(*moment_matched(teacher), *moment_matched(student)).mean()


def gaussian_individuality_loss(teacher: Tensor, student: Tensor) -> Tensor:
    """L3 (regression): mean over the K pairs of KL(member i mod N || head i mod M)."""
    ti, si = pair_indices(teacher.shape[1], student.shape[1], teacher.device)
    return gaussian_kl(*split_gaussian(teacher[:, ti]), *split_gaussian(student[:, si])).mean()


# --- weights ------------------------------------------------------------------------


class _Gram(torch.autograd.Function):
    """``x xᵀ`` per batch entry (``[B, M, F] -> [B, M, M]``), its gradient ``(S + Sᵀ) x`` one product
    (autograd would form ``S x`` and ``Sᵀ x`` separately and add them, two more passes over x)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.bmm(x, x.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), x)


def diversity_loss(head_rows: Sequence[Tensor], eps: float = 1e-8) -> Tensor:
    """L4: sum over layers, heads and output units of (1 + cos(mean row, head's row)) / 2.

    ``head_rows``: one ``[M, units, fan_in(+1)]`` tensor per Linear/Conv layer of the heads,
    each row an output unit's incoming weights with its bias appended. A norm below ``eps`` counts
    as ``eps`` (as `torch.nn.functional.cosine_similarity`): a zero mean row has cosine 0.

    Every quantity is read off the heads' Gram matrix per unit, G = R Rᵀ (``[units, M, M]``):
    r_i·mean = Σ_j G_ij / M, |r_i|² = G_ii, |mean|² = Σ_jk G_jk / M². One batched matrix product
    forward and one backward replace a dozen elementwise passes over the rows (the wide heads'
    weights), which made a Fashion-MNIST Hydra+-10 step 1.6× the λ = 0 one (1.1× now).
    """
    if not head_rows:
        raise ValueError("diversity_loss needs the heads' weight rows, got none")
    total = head_rows[0].new_zeros(())
    for rows in head_rows:
        if rows.dim() != 3:
            raise ValueError(f"weight rows must be [M, units, fan_in], got shape {tuple(rows.shape)}")
        heads = rows.shape[0]
        gram = _Gram.apply(rows.transpose(0, 1))
        dots = gram.sum(-1) / heads
        row_norms = gram.diagonal(dim1=-2, dim2=-1).clamp_min(eps**2).sqrt()
        mean_norm = (gram.sum((-2, -1)) / heads**2).clamp_min(eps**2).sqrt().unsqueeze(-1)
        cos = dots / (row_norms * mean_norm)
        total = total + ((1.0 + cos) / 2.0).sum()
    return total


class _HalfSquaredNorm(torch.autograd.Function):
    """``0.5 Σ_p ||p||²`` over tensors, its gradient ``g p`` in one pass per tensor. Autograd's own
    (through ``pow``) forms ``p¹``, then ``2p``, then ``(g / 2) 2p``: the same floats in three
    passes over every weight, 5% of a CIFAR-10 Hydra+-8 step."""

    @staticmethod
    def forward(ctx: Any, *params: Tensor) -> Tensor:
        ctx.save_for_backward(*params)
        total = params[0].pow(2).sum()
        for p in params[1:]:
            total = total + p.pow(2).sum()
        return 0.5 * total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return tuple(grad * p if needed else None
                     for p, needed in zip(ctx.saved_tensors, ctx.needs_input_grad, strict=True))


def l2_penalty(params: Iterable[Tensor]) -> Tensor:
    """0.5 * ||theta||^2 (the explicit weight decay term, times wd by the caller)."""
    params = tuple(params)
    return _HalfSquaredNorm.apply(*params) if params else torch.zeros(())


# --- the total ----------------------------------------------------------------------


@dataclass(frozen=True)
class LossWeights:
    """Mixing weights and temperatures of the Hydra+ total loss."""

    alpha: float = 0.9
    beta: float = 1.0
    t_mean: float = 1.0
    t_ind: float = 1.0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("t_mean", "t_ind"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} (temperature) must be > 0, got {value}")


def distillation_terms(
    task: str, teacher: Tensor, student: Tensor, target: Tensor, weights: LossWeights
) -> dict[str, Tensor]:
    """L1, L2 and L3 for one batch, as a dict (terms with zero weight are skipped)."""
    check_task(task)
    if teacher.shape[0] != student.shape[0] or teacher.shape[-1] != student.shape[-1]:
        raise ValueError(
            f"teacher outputs {tuple(teacher.shape)} and student outputs {tuple(student.shape)} "
            "must agree in batch size and output size"
        )
    terms: dict[str, Tensor] = {}
    zero = student.new_zeros(())
    regression = task == "regression"
    terms["correctness"] = (
        (gaussian_nll(student, target) if regression else correctness_loss(student, target))
        if weights.alpha < 1 else zero
    )
    use_agg = weights.alpha > 0 and weights.beta < 1
    use_ind = weights.alpha > 0 and weights.beta > 0
    if regression:
        terms["aggregation"] = gaussian_aggregation_loss(teacher, student) if use_agg else zero
        terms["individuality"] = gaussian_individuality_loss(teacher, student) if use_ind else zero
    else:
        terms["aggregation"] = aggregation_loss(teacher, student, weights.t_mean) if use_agg else zero
        terms["individuality"] = (
            individuality_loss(teacher, student, weights.t_ind) if use_ind else zero
        )
    return terms


def combine(
    terms: dict[str, Tensor], weights: LossWeights, lam: float, wd: float, kl_coeff: float = 0.0
) -> Tensor:
    """alpha((1-beta) L2 + beta L3) + (1-alpha) L1 + lambda L4 + wd 0.5||theta||^2 + kl_coeff KL.

    ``diversity``, ``weight_decay`` and ``kl`` are optional entries of ``terms``.
    """
    if lam < 0:
        raise ValueError(f"lambda (diversity weight) must be >= 0, got {lam}")
    if wd < 0:
        raise ValueError(f"weight decay must be >= 0, got {wd}")
    if kl_coeff < 0:
        raise ValueError(f"kl_coeff must be >= 0, got {kl_coeff}")
    a, b = weights.alpha, weights.beta
    total = (
        a * ((1 - b) * terms["aggregation"] + b * terms["individuality"])
        + (1 - a) * terms["correctness"]
    )
    if "diversity" in terms:
        total = total + lam * terms["diversity"]
    if "weight_decay" in terms:
        total = total + wd * terms["weight_decay"]
    if "kl" in terms:
        total = total + kl_coeff * terms["kl"]
    return total
