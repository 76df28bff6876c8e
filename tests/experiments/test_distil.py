"""`hydraplus.distil`: any user's trained modules, any data form, one call."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import hydraplus
from hydraplus.config import ConfigError
from hydraplus.core.containers import MultiHeadStudent
from hydraplus.inputs.arrays import as_tensors
from hydraplus.inputs.contracts import ContractNote, Members
from hydraplus.pipeline.distil import split_member


class TinyCNN(nn.Module):
    """A user's own architecture (hydraplus ships nothing like it): conv, pool, linear."""

    def __init__(self, width: int = 6, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(2),
                                      nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(4 * width, 16), nn.GELU())
        self.classifier = nn.Linear(16, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.hidden(self.features(x)))


def images(n: int = 240, seed: int = 0) -> tuple[Tensor, Tensor]:
    """8 x 8 one-channel images whose class is the quadrant that holds a bright blob."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for i, label in enumerate(y.tolist()):
        r, c = divmod(label, 2)
        x[i, 0, 4 * r: 4 * r + 4, 4 * c: 4 * c + 4] += 1.0
    return x, y


def train_members(make: type[nn.Module] | list, x: Tensor, y: Tensor, steps: int = 60) -> list[nn.Module]:
    members = make if isinstance(make, list) else [make() for _ in range(3)]
    for i, member in enumerate(members):
        torch.manual_seed(i)
        opt = torch.optim.Adam(member.parameters(), lr=0.02)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,))
            loss = nn.functional.cross_entropy(member(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [m.eval() for m in members]


def accuracy(probs: Tensor, y: Tensor) -> float:
    return (probs.argmax(-1) == y).float().mean().item()


def test_a_users_cnn_ensemble_distils_in_one_call(tmp_path: Path) -> None:
    x, y = images()
    members = train_members(TinyCNN, x, y)
    result = hydraplus.distil(members, (x, y), heads=3, epochs=15, lam=0.05, lr=0.01, batch_size=32,
                              out=tmp_path)
    assert isinstance(result.model, MultiHeadStudent) and result.model.num_heads == 3
    assert result.spec.name == "hydra+-3" and result.task == "classification"
    test_x, test_y = images(90, seed=1)
    out = result.predict(test_x)
    assert out["probs"].shape == (90, 3) and out["epistemic"].shape == (90,)
    torch.testing.assert_close(out["predictive"], out["aleatoric"] + out["epistemic"])
    teacher_probs = torch.stack([m(test_x) for m in members], 1).softmax(-1).mean(1)
    assert accuracy(out["probs"], test_y) >= accuracy(teacher_probs.detach(), test_y) - 0.1
    assert (tmp_path / "hydra+-3" / "model.pt").is_file()
    assert list((tmp_path / "cache").glob("teacher-*.npy"))  # the teacher ran once, cached


def test_the_automatic_split_reproduces_the_member() -> None:
    x, _ = images(8)
    member = TinyCNN().eval()
    core, head = split_member(member, None, x)
    assert len(core) == 2 and len(head) == 1  # before the last block with weights
    student = MultiHeadStudent(core, [copy.deepcopy(head) for _ in range(3)]).eval()
    with torch.no_grad():
        expected = member(x)
        for k in range(3):
            torch.testing.assert_close(student(x)[:, k], expected)
    core, head = split_member(member, "hidden", x)
    assert len(core) == 1 and len(head) == 2


def test_bad_splits_say_what_to_pass() -> None:
    x, _ = images(4)
    member = TinyCNN()
    with pytest.raises(ValueError, match=r"split 'head' names no module of the first member; its children "
                                         r"are \['features', 'hidden', 'classifier'\]"):
        split_member(member, "head", x)
    with pytest.raises(ValueError, match=r"split 'hiden' names no module of the first member; the closest "
                                         r"module paths are \['hidden'"):
        split_member(member, "hiden", x)

    class Skip(TinyCNN):
        def forward(self, x: Tensor) -> Tensor:
            features = self.features(x)
            return self.classifier(self.hidden(features)) + features[:, :3]

    with pytest.raises(ValueError, match=r"cannot cut the first member \(Skip\) into a core and heads; tried "
                                         r".*torch.fx graph: not at 'classifier': 2 values cross the cut.*"
                                         r"Pass split= .* or student="):
        split_member(Skip(), None, x)


def test_heterogeneous_members_on_tabular_data_with_a_given_core_and_head() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    members = train_members([nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)),
                             nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Linear(32, 2)),
                             nn.Sequential(nn.Linear(5, 2))], x, y)
    pair = (nn.Sequential(nn.Linear(5, 16), nn.ReLU()), lambda: nn.Linear(16, 2))
    x_val = torch.randn(100, 5, generator=g)
    y_val = (x_val[:, 0] + x_val[:, 1] > 0).long()
    result = hydraplus.distil(members, (x.numpy(), y.numpy()), method="hydra", epochs=10, batch_size=32,
                              lr=0.02, student=pair, val=(x_val, y_val))
    assert result.model.num_heads == 3
    assert accuracy(result.predict(x)["probs"], y) > 0.85
    assert result.metrics is not None and result.metrics["test_size"] == 100
    student_error = result.metrics["models"]["student"]["clean"]["error"]
    assert student_error == pytest.approx((1 - accuracy(result.predict(x_val)["probs"], y_val)), abs=1e-6)


def test_a_regression_teacher_and_a_dataloader() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(160, 1, generator=g) * 4 - 2
    y = torch.sin(x[:, 0]) + 0.1 * torch.randn(160, generator=g)
    members = [nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 2)) for _ in range(4)]
    result = hydraplus.distil(members, DataLoader(TensorDataset(x, y), batch_size=50), method="gauss",
                              epochs=3, split=2)
    out = result.predict(x)
    assert result.task == "regression" and result.spec.samples == 4
    assert out["mean"].shape == (160,) and bool((out["variance"] > 0).all())


class MeanVariance(nn.Module):
    """A regression member giving (mean, variance), its variance through a softplus, or a mean alone."""

    def __init__(self, outputs: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh())
        self.out, self.positive = nn.Linear(16, outputs), nn.Softplus()

    def forward(self, x: Tensor) -> Tensor:
        out = self.out(self.body(x))
        if out.shape[1] == 1:
            return out[:, 0]
        return torch.stack([out[:, 0], self.positive(out[:, 1]) + 1e-3], -1)


@pytest.mark.parametrize(("kind", "outputs"), [("variance", 2), ("mean", 1)])
def test_regression_members_giving_a_variance_or_a_mean_teach_a_student_cut_from_them(kind: str,
                                                                                      outputs: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 1, generator=g) * 6 - 3
    y = torch.sin(x[:, 0]) + 0.1 * torch.randn(256, generator=g)
    members = []
    for i in range(3):
        torch.manual_seed(i)
        member = MeanVariance(outputs)
        opt = torch.optim.Adam(member.parameters(), lr=0.01)
        for _ in range(300):
            out = member(x)
            loss = nn.functional.gaussian_nll_loss(out[:, 0], y, out[:, 1]) if outputs == 2 else \
                nn.functional.mse_loss(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        members.append(member.eval())
    result = hydraplus.distil(members, (x, y), heads=3, epochs=10, batch_size=32, lr=0.01, lam=0.05,
                              regression_output=kind)
    rows = result.model.head_weight_rows()  # heads: the members' last Linear, new, giving 2 values
    assert [tuple(layer.shape) for layer in rows] == [(3, 2, 17)]
    assert not any(isinstance(m, nn.Softplus) for m in result.model.modules())
    with torch.no_grad():
        teacher_mean = torch.stack([m(x) if outputs == 1 else m(x)[:, 0] for m in members]).mean(0)
    got = result.predict(x)
    rmse = (got["mean"] - teacher_mean).square().mean().sqrt()
    assert rmse < 0.4 * (y.mean() - teacher_mean).square().mean().sqrt()  # measured: 0.14 and 0.08 of 0.71
    assert float(got["aleatoric"].mean()) < 0.1  # (mean, log-variance): a variance read as such would be >= 1


def test_members_ending_in_softmax_teach_through_their_logits() -> None:
    x, y = images(64)
    members = [nn.Sequential(*TinyCNN().children(), nn.Softmax(-1)) for _ in range(2)]
    with pytest.warns(ContractNote, match=r"member\(s\) 0, 1 end in nn.Softmax"):
        result = hydraplus.distil(members, (x, y), method="hydra", epochs=1, split="1")
    with torch.no_grad():
        expected = torch.stack([m(x[:4]) for m in members], 1)
        torch.testing.assert_close(result.teacher(x[:4]).softmax(-1), expected)
    assert not any(isinstance(m, nn.Softmax) for m in result.model.modules())  # heads output logits


def test_errors_name_the_problem(tmp_path: Path) -> None:
    x, y = images(16)
    uneven = Members([TinyCNN(classes=3), TinyCNN(classes=4)])
    with pytest.raises(ValueError, match=r"member 0: \[3\], member 1: \[4\]"):
        uneven(x)
    with pytest.raises(ConfigError, match=r"distil \(hydra\+\).lambda must be a number, 'auto'"):
        hydraplus.distil([TinyCNN(), TinyCNN()], (x, y), epochs=1, lam="automatic")
    with pytest.raises(ValueError, match=r"train targets must be class labels in \[0, 2\] \(3 classes\), "
                                         r"found \[3\]"):
        hydraplus.distil([TinyCNN(), TinyCNN()], (x, y + 1), method="hydra", epochs=1)
    with pytest.raises(ValueError, match="needs the teacher as a list of modules"):
        hydraplus.distil(lambda inputs: torch.zeros(len(inputs), 2, 3), (x, y), method="hydra", epochs=1)
    with pytest.raises(FileNotFoundError, match="data file not found"):
        as_tensors(tmp_path / "missing.npz", "train")
    np.savez(tmp_path / "images.npz", x_train=np.zeros((4, 8, 8, 1), np.uint8), y_train=np.zeros(4, np.int64))
    got_x, got_y = as_tensors(tmp_path / "images.npz", "train")
    assert got_x.shape == (4, 1, 8, 8) and got_x.dtype == torch.float32 and got_y.dtype == torch.int64


def test_an_automatic_lambda_uses_the_given_ood_inputs_as_its_probe() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    y = (x[:, 0] > 0).long()
    members = train_members([nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2)) for _ in range(3)],
                            x, y)
    far = 6 + torch.randn(100, 2, generator=g)
    result = hydraplus.distil(members, (x, y), epochs=4, batch_size=50, ood=(far, torch.zeros(100)))
    assert result.spec.name == "hydra+-3-auto" and result.spec.lam.auto
    default = hydraplus.distil(members, (x, y), epochs=2, batch_size=50)
    assert default.spec.lam.auto  # lam="auto" unless a number is given


def test_a_student_factory_gets_the_heads_and_outputs_and_a_wrong_shape_is_named() -> None:
    x, y = images(32)
    calls = []

    def factory(heads: int, outputs: int) -> tuple[nn.Module, object]:
        calls.append((heads, outputs))
        return TinyCNN().features, lambda: nn.Linear(24, outputs)

    result = hydraplus.distil([TinyCNN(), TinyCNN()], (x, y), heads=4, epochs=1, batch_size=16, lam=0.05,
                              student=factory)
    assert calls == [(4, 3)] and result.model.num_heads == 4
    wrong = MultiHeadStudent(TinyCNN().features, [nn.Linear(24, 5) for _ in range(2)])
    with pytest.raises(ValueError, match=r"the student gives outputs of shape \[2, 2, 5\] on inputs of shape "
                                         r"\[2, 1, 8, 8\]; it must give \[B, M, D\] = \[2, 2, 3\]"):
        hydraplus.distil([TinyCNN(), TinyCNN()], (x, y), method="hydra", epochs=1, student=wrong)
