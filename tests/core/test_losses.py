"""Every loss (docs/method.md#losses, #regression) against arithmetic written out by hand on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hydraplus.core.losses import (
    LossWeights,
    aggregation_loss,
    combine,
    correctness_loss,
    dirichlet_nll,
    distillation_terms,
    diversity_loss,
    gaussian_aggregation_loss,
    gaussian_individuality_loss,
    gaussian_kl,
    gaussian_nll,
    individuality_loss,
    l2_penalty,
    pair_indices,
)

LOG_2PI = math.log(2 * math.pi)


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax over the last axis of z / T."""
    e = np.exp(z / temperature - np.max(z / temperature, axis=-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) = sum_c p_c (log p_c - log q_c) of two probability vectors."""
    return float(np.sum(p * (np.log(p) - np.log(q))))


def t(a: list | np.ndarray) -> torch.Tensor:
    """A float64 tensor (so hand arithmetic and the loss agree to ~1e-12)."""
    return torch.tensor(np.asarray(a), dtype=torch.float64)


# --- L1 correctness -----------------------------------------------------------------------


def test_correctness_loss_by_hand() -> None:
    # B = 2 examples, M = 2 heads, C = 3 classes.
    s = np.array([[[1.0, 2.0, 0.0], [0.5, -1.0, 2.0]],
                  [[0.0, 0.0, 3.0], [2.0, 1.0, 1.0]]])
    y = [1, 2]
    # CE(s_m, y) = -log softmax(s_m)[y]; average over heads and batch.
    ce = [-math.log(softmax(s[b, m])[y[b]]) for b in range(2) for m in range(2)]
    expected = sum(ce) / 4
    got = correctness_loss(t(s), torch.tensor(y))
    assert got.item() == pytest.approx(expected, rel=1e-10)
    # Explicit arithmetic for one term: logits [1, 2, 0], label 1.
    z = math.exp(1) + math.exp(2) + math.exp(0)
    assert ce[0] == pytest.approx(-(2 - math.log(z)))


# --- L2 aggregation -----------------------------------------------------------------------


def test_aggregation_loss_by_hand_with_temperature() -> None:
    temperature = 2.0
    teacher = np.array([[[1.0, 2.0, 3.0], [3.0, 0.0, -1.0]]])  # N = 2
    student = np.array([[[0.0, 1.0, 1.0], [2.0, 2.0, 0.0], [1.0, -1.0, 0.5]]])  # M = 3
    p = (softmax(teacher[0, 0], temperature) + softmax(teacher[0, 1], temperature)) / 2
    q = sum(softmax(student[0, m], temperature) for m in range(3)) / 3
    expected = temperature**2 * kl(p, q)
    got = aggregation_loss(t(teacher), t(student), temperature)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    # T matters: at T = 1 the value is different.
    assert aggregation_loss(t(teacher), t(student), 1.0).item() != pytest.approx(expected, rel=1e-3)


def test_aggregation_loss_is_kl_of_the_means_not_mean_of_kls() -> None:
    # Two heads that disagree perfectly average to the teacher's uniform mixture: L2 = 0.
    teacher = t([[[0.0, 0.0], [0.0, 0.0]]])
    student = t([[[5.0, -5.0], [-5.0, 5.0]]])
    assert aggregation_loss(teacher, student).item() == pytest.approx(0.0, abs=1e-12)
    assert individuality_loss(teacher, student).item() > 1.0


def test_aggregation_loss_zero_probabilities_stay_finite() -> None:
    teacher = t([[[1000.0, -1000.0, 0.0]]])  # p = (1, 0, 0) exactly in float64
    student = t([[[0.0, 0.0, 0.0]]])
    got = aggregation_loss(teacher, student)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(math.log(3), rel=1e-9)  # KL((1,0,0) || uniform)


def test_aggregation_loss_averages_over_batch() -> None:
    teacher = np.array([[[1.0, 0.0]], [[0.0, 2.0]]])
    student = np.array([[[0.0, 0.0]], [[1.0, 1.0]]])
    expected = (kl(softmax(teacher[0, 0]), softmax(student[0, 0]))
                + kl(softmax(teacher[1, 0]), softmax(student[1, 0]))) / 2
    assert aggregation_loss(t(teacher), t(student)).item() == pytest.approx(expected, rel=1e-10)


# --- L3 individuality ---------------------------------------------------------------------


def test_pair_indices_follow_i_mod_n_and_i_mod_m() -> None:
    ti, si = pair_indices(2, 3)
    assert ti.tolist() == [0, 1, 0] and si.tolist() == [0, 1, 2]
    ti, si = pair_indices(3, 2)
    assert ti.tolist() == [0, 1, 2] and si.tolist() == [0, 1, 0]
    ti, si = pair_indices(4, 4)
    assert ti.tolist() == si.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("n", "m", "pairs", "wrong_pairs"),
    [
        # K = 3: pair i joins member i mod N with head i mod M.
        (2, 3, [(0, 0), (1, 1), (0, 2)], [(0, 0), (1, 1), (1, 2)]),
        (3, 2, [(0, 0), (1, 1), (2, 0)], [(0, 0), (1, 1), (2, 1)]),
        (2, 2, [(0, 0), (1, 1)], [(0, 1), (1, 0)]),
    ],
)
def test_individuality_loss_pairing_by_hand(
    n: int, m: int, pairs: list[tuple[int, int]], wrong_pairs: list[tuple[int, int]]
) -> None:
    temperature = 3.0
    rng = np.random.default_rng(n * 10 + m)
    teacher = rng.normal(size=(1, n, 3)) * 2
    student = rng.normal(size=(1, m, 3)) * 2

    def by_hand(ps: list[tuple[int, int]]) -> float:
        kls = [kl(softmax(teacher[0, i], temperature), softmax(student[0, j], temperature)) for i, j in ps]
        return temperature**2 * sum(kls) / len(ps)

    got = individuality_loss(t(teacher), t(student), temperature).item()
    assert got == pytest.approx(by_hand(pairs), rel=1e-10)
    assert got != pytest.approx(by_hand(wrong_pairs), rel=1e-3)


def test_individuality_loss_zero_when_heads_copy_members() -> None:
    teacher = t([[[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]]])
    assert individuality_loss(teacher, teacher.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_losses_reject_non_positive_temperature(bad: float) -> None:
    x = t([[[1.0, 0.0]]])
    with pytest.raises(ValueError, match="temperature"):
        aggregation_loss(x, x, bad)
    with pytest.raises(ValueError, match="temperature"):
        individuality_loss(x, x, bad)
    with pytest.raises(ValueError, match="temperature"):
        dirichlet_nll(x[:, 0], x, bad)


# --- EnDD Dirichlet NLL -------------------------------------------------------------------


def test_dirichlet_nll_by_hand() -> None:
    temperature = 2.0
    head = np.array([[1.0, 2.0, 0.5]])  # [B=1, C=3]
    teacher = np.array([[[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]]])  # [B=1, N=2, C=3]
    alpha = np.exp(head[0] / temperature)
    log_p0 = np.log(softmax(teacher[0, 0], temperature))
    log_p1 = np.log(softmax(teacher[0, 1], temperature))
    mean_log_p = (log_p0 + log_p1) / 2
    nll = (sum(math.lgamma(a) for a in alpha) - math.lgamma(alpha.sum())
           - sum((alpha[c] - 1) * mean_log_p[c] for c in range(3)))
    expected = temperature**2 * nll
    got = dirichlet_nll(t(head), t(teacher), temperature)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_dirichlet_nll_matches_torch_dirichlet_log_prob() -> None:
    # With one member, the NLL is -log Dir(p | alpha) (T = 1).
    head = t([[0.3, 1.2, -0.4]])
    teacher = t([[[0.5, -0.5, 1.0]]])
    p = torch.softmax(teacher[0, 0], -1)
    expected = -torch.distributions.Dirichlet(head[0].exp()).log_prob(p)
    # -log Dir(p | a) = sum lgamma(a) - lgamma(sum a) - sum (a - 1) log p: exactly the EnDD loss.
    assert dirichlet_nll(head, teacher).item() == pytest.approx(expected.item(), rel=1e-10)


# --- regression ---------------------------------------------------------------------------


def test_gaussian_nll_by_hand() -> None:
    # B = 2, M = 2 heads: (mu, log var).
    out = np.array([[[1.0, 0.0], [2.0, math.log(4.0)]],
                    [[0.0, math.log(0.25)], [-1.0, 0.0]]])
    y = [1.5, 0.5]
    terms = []
    for b in range(2):
        for m in range(2):
            mu, var = out[b, m, 0], math.exp(out[b, m, 1])
            terms.append(0.5 * (math.log(var) + (y[b] - mu) ** 2 / var + LOG_2PI))
    expected = sum(terms) / 4
    assert gaussian_nll(t(out), t(y)).item() == pytest.approx(expected, rel=1e-10)
    # One term explicitly: mu=1, var=1, y=1.5 -> 0.5 * (0 + 0.25 + log 2 pi).
    assert terms[0] == pytest.approx(0.5 * (0.25 + LOG_2PI))


def test_gaussian_kl_by_hand() -> None:
    mu_p, var_p, mu_q, var_q = 1.0, 2.0, -0.5, 0.5
    expected = 0.5 * (math.log(var_q / var_p) + (var_p + (mu_p - mu_q) ** 2) / var_q - 1)
    got = gaussian_kl(t(mu_p), t(var_p), t(mu_q), t(var_q))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_p, math.sqrt(var_p)), torch.distributions.Normal(mu_q, math.sqrt(var_q))
    )
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)  # torch's Normal is float32 here
    assert gaussian_kl(t(0.3), t(1.7), t(0.3), t(1.7)).item() == pytest.approx(0.0, abs=1e-14)


def test_gaussian_aggregation_loss_moment_matching_by_hand() -> None:
    # One example; teacher N = 2, student M = 3.
    teacher = np.array([[[0.0, math.log(1.0)], [2.0, math.log(3.0)]]])
    student = np.array([[[1.0, math.log(0.5)], [1.5, math.log(1.0)], [-0.5, math.log(2.0)]]])
    # Teacher mixture: mean (0 + 2)/2 = 1, var = (1 + 3)/2 + ((0-1)^2 + (2-1)^2)/2 = 2 + 1 = 3.
    mu_t, var_t = 1.0, 3.0
    mus = [1.0, 1.5, -0.5]
    mu_s = sum(mus) / 3
    var_s = (0.5 + 1.0 + 2.0) / 3 + sum((x - mu_s) ** 2 for x in mus) / 3
    expected = 0.5 * (math.log(var_s / var_t) + (var_t + (mu_t - mu_s) ** 2) / var_s - 1)
    got = gaussian_aggregation_loss(t(teacher), t(student))
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    ("n", "m", "pairs"), [(2, 3, [(0, 0), (1, 1), (0, 2)]), (3, 2, [(0, 0), (1, 1), (2, 0)])]
)
def test_gaussian_individuality_loss_by_hand(n: int, m: int, pairs: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(7 + n)
    teacher = rng.normal(size=(2, n, 2))
    student = rng.normal(size=(2, m, 2))

    def kl_g(a: np.ndarray, b: np.ndarray) -> float:
        vp, vq = math.exp(a[1]), math.exp(b[1])
        return 0.5 * (math.log(vq / vp) + (vp + (a[0] - b[0]) ** 2) / vq - 1)

    expected = np.mean([[kl_g(teacher[b, i], student[b, j]) for i, j in pairs] for b in range(2)])
    got = gaussian_individuality_loss(t(teacher), t(student))
    assert got.item() == pytest.approx(float(expected), rel=1e-10)


def test_gaussian_individuality_matches_the_reference_form_up_to_a_constant() -> None:
    """docs/method.md#regression: the reference code's 0.5((var_t + (mu_t - mu_s)^2) / var_s + log var_s),
    i.e. the KL minus teacher-only terms."""
    teacher = t([[[0.5, 0.2], [-1.0, -0.3]]])

    def reference_form(s: torch.Tensor) -> torch.Tensor:
        mu_t, var_t, mu_s, var_s = teacher[..., 0], teacher[..., 1].exp(), s[..., 0], s[..., 1].exp()
        return (0.5 * ((var_t + (mu_t - mu_s) ** 2) / var_s + var_s.log())).mean()

    s1, s2 = t([[[0.0, 0.0], [1.0, 0.5]]]), t([[[2.0, -1.0], [0.3, 1.5]]])
    diff_ours = gaussian_individuality_loss(teacher, s1) - gaussian_individuality_loss(teacher, s2)
    assert diff_ours.item() == pytest.approx((reference_form(s1) - reference_form(s2)).item(), rel=1e-10)


# --- L4 diversity -------------------------------------------------------------------------


def test_diversity_identical_rows_give_one_per_row() -> None:
    # Two heads with the same row: mean = row, cos = 1, (1 + 1)/2 = 1 per (head, row).
    rows = t([[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]])
    assert diversity_loss([rows]).item() == pytest.approx(2.0, rel=1e-12)


def test_diversity_orthogonal_rows_by_hand() -> None:
    # Rows (1, 0) and (0, 1): mean (0.5, 0.5); cos with each = 0.5 / (1 * sqrt(0.5)) = 1/sqrt 2.
    rows = t([[[1.0, 0.0]], [[0.0, 1.0]]])
    expected = 2 * (1 + 1 / math.sqrt(2)) / 2
    assert diversity_loss([rows]).item() == pytest.approx(expected, rel=1e-12)


def test_diversity_opposite_rows_have_zero_mean() -> None:
    # Rows r and -r: the mean row is 0, its cosine is taken as 0, so each term is 1/2.
    rows = t([[[1.0, -2.0]], [[-1.0, 2.0]]])
    assert diversity_loss([rows]).item() == pytest.approx(1.0, rel=1e-12)


def test_diversity_sums_over_layers_heads_and_rows_by_hand() -> None:
    layer1 = np.array([[[1.0, 2.0, 0.5], [0.0, 1.0, -1.0]],
                       [[2.0, -1.0, 0.0], [1.0, 1.0, 1.0]],
                       [[-1.0, 0.5, 2.0], [0.5, 0.0, 1.0]]])  # M = 3, 2 units, fan-in 2 + bias
    layer2 = np.array([[[1.0, 0.0]], [[0.0, 2.0]], [[3.0, 1.0]]])  # M = 3, 1 unit
    expected = 0.0
    for layer in (layer1, layer2):
        mean = layer.mean(0)
        for m in range(layer.shape[0]):
            for r in range(layer.shape[1]):
                a, b = mean[r], layer[m, r]
                cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
                expected += (1 + cos) / 2
    got = diversity_loss([t(layer1), t(layer2)])
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # The cosine is per row, not over the whole layer.
    flat = layer1.reshape(3, 1, -1)
    assert diversity_loss([t(flat), t(layer2)]).item() != pytest.approx(expected, rel=1e-3)


def cosine_form(head_rows: list[torch.Tensor]) -> torch.Tensor:
    """L4 as written: each row's cosine with its layer's mean row, by torch's cosine_similarity."""
    total = torch.zeros((), dtype=torch.float64)
    for rows in head_rows:
        mean = rows.mean(0, keepdim=True).expand_as(rows)
        total = total + ((1 + torch.nn.functional.cosine_similarity(mean, rows, dim=-1, eps=1e-8)) / 2).sum()
    return total


def test_diversity_value_and_gradient_equal_the_cosine_form() -> None:
    # The Gram-matrix computation and its hand-written backward against autograd through cosines.
    g = torch.Generator().manual_seed(0)
    rows = [torch.randn(4, 6, 9, dtype=torch.float64, generator=g).requires_grad_(),
            torch.randn(4, 3, 7, dtype=torch.float64, generator=g).requires_grad_()]
    ours, reference = diversity_loss(rows), cosine_form(rows)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-12)
    for got, want in zip(torch.autograd.grad(ours, rows), torch.autograd.grad(reference, rows), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, b: diversity_loss([a, b]), tuple(rows))


def test_diversity_gradient_is_finite_where_the_mean_row_is_zero() -> None:
    rows = t([[[1.0, -2.0]], [[-1.0, 2.0]]]).requires_grad_()
    diversity_loss([rows]).backward()
    assert rows.grad is not None and torch.isfinite(rows.grad).all()


def test_diversity_rejects_empty_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="rows"):
        diversity_loss([])
    with pytest.raises(ValueError, match="shape"):
        diversity_loss([torch.ones(2, 3)])


# --- weight decay and the total -----------------------------------------------------------


def test_l2_penalty_by_hand() -> None:
    params = [t([1.0, -2.0]), t([[3.0]])]
    assert l2_penalty(params).item() == pytest.approx(0.5 * (1 + 4 + 9))
    assert l2_penalty([]).item() == 0.0


def test_l2_penalty_gradient_is_autograds_through_pow_bit_for_bit() -> None:
    torch.manual_seed(0)
    params = [torch.randn(64, 33, requires_grad=True), torch.randn(7, requires_grad=True),
              torch.randn(3, requires_grad=False)]
    weight = 3.7e-4  # the caller's weight decay, as in `combine`
    ours = torch.autograd.grad(weight * l2_penalty(params), params[:2])
    reference = torch.autograd.grad(weight * (0.5 * sum(p.pow(2).sum() for p in params)), params[:2])
    for a, b in zip(ours, reference, strict=True):
        assert torch.equal(a, b)
    assert params[0].grad is None and l2_penalty(params).item() == pytest.approx(
        0.5 * sum(float(p.detach().square().sum()) for p in params))


def test_combine_total_by_hand() -> None:
    terms = {
        "correctness": t(1.5), "aggregation": t(0.7), "individuality": t(2.0),
        "diversity": t(10.0), "weight_decay": t(300.0), "kl": t(50.0),
    }
    weights = LossWeights(alpha=0.9, beta=0.25, t_mean=1.0, t_ind=3.0)
    got = combine(terms, weights, lam=4.0, wd=1e-3, kl_coeff=0.01)
    expected = 0.9 * (0.75 * 0.7 + 0.25 * 2.0) + 0.1 * 1.5 + 4.0 * 10.0 + 1e-3 * 300.0 + 0.01 * 50.0
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # Optional terms are optional.
    base = {k: terms[k] for k in ("correctness", "aggregation", "individuality")}
    assert combine(base, weights, lam=4.0, wd=1e-3).item() == pytest.approx(
        0.9 * (0.75 * 0.7 + 0.25 * 2.0) + 0.1 * 1.5, rel=1e-12)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"lam": -0.1, "wd": 0.0}, "lambda"),
    ({"lam": 0.0, "wd": -1e-4}, "weight decay"),
    ({"lam": 0.0, "wd": 0.0, "kl_coeff": -1.0}, "kl_coeff"),
])
def test_combine_rejects_negative_coefficients(kwargs: dict, word: str) -> None:
    terms = {"correctness": t(1.0), "aggregation": t(1.0), "individuality": t(1.0)}
    with pytest.raises(ValueError, match=word):
        combine(terms, LossWeights(), **kwargs)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"alpha": -0.1}, "alpha"),
    ({"alpha": 1.5}, "alpha"),
    ({"beta": -0.01}, "beta"),
    ({"beta": 2.0}, "beta"),
    ({"t_mean": 0.0}, "t_mean"),
    ({"t_ind": -1.0}, "t_ind"),
])
def test_loss_weights_validation(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        LossWeights(**kwargs)


def test_loss_weights_accept_the_boundaries() -> None:
    for a in (0.0, 1.0):
        assert LossWeights(alpha=a, beta=a).alpha == a


def test_distillation_terms_match_the_individual_losses() -> None:
    rng = np.random.default_rng(3)
    teacher, student = t(rng.normal(size=(4, 3, 5))), t(rng.normal(size=(4, 2, 5)))
    y = torch.tensor([0, 4, 2, 1])
    w = LossWeights(alpha=0.9, beta=0.5, t_mean=2.0, t_ind=3.0)
    terms = distillation_terms("classification", teacher, student, y, w)
    assert terms["correctness"].item() == pytest.approx(correctness_loss(student, y).item())
    assert terms["aggregation"].item() == pytest.approx(aggregation_loss(teacher, student, 2.0).item())
    assert terms["individuality"].item() == pytest.approx(individuality_loss(teacher, student, 3.0).item())
    # Hydra (alpha = beta = 1): no L1 and no L2 are computed.
    hydra = distillation_terms("classification", teacher, student, y, LossWeights(1.0, 1.0))
    assert hydra["correctness"].item() == 0.0 and hydra["aggregation"].item() == 0.0
    assert hydra["individuality"].item() > 0.0
    # Regression uses the Gaussian forms.
    tr, sr = t(rng.normal(size=(4, 3, 2))), t(rng.normal(size=(4, 2, 2)))
    yr = t(rng.normal(size=4))
    reg = distillation_terms("regression", tr, sr, yr, LossWeights(0.9, 0.5))
    assert reg["correctness"].item() == pytest.approx(gaussian_nll(sr, yr).item())
    assert reg["aggregation"].item() == pytest.approx(gaussian_aggregation_loss(tr, sr).item())
    assert reg["individuality"].item() == pytest.approx(gaussian_individuality_loss(tr, sr).item())


def test_distillation_terms_validate_inputs() -> None:
    x = t(np.zeros((2, 3, 4)))
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="task"):
        distillation_terms("ranking", x, x, y, LossWeights())
    with pytest.raises(ValueError, match="output size"):
        distillation_terms("classification", x, t(np.zeros((2, 3, 5))), y, LossWeights())
