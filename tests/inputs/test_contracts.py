"""The output-contract table: every convention a user's teacher may follow gives the teacher's
true numbers (computed by hand from the raw members), or a one-line error; and the targets'
conversions. Teacher side only (no training) except where a row's point is the student."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import OrderedDict, namedtuple
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torchvision.models import GoogLeNetOutputs

import hydraplus
from hydraplus.core.uncertainty import regression_uncertainty
from hydraplus.export.pt2 import export_model
from hydraplus.inputs.arrays import as_tensors, normalize
from hydraplus.inputs.contracts import (
    MEAN_ONLY_LOG_VARIANCE,
    ContractNote,
    read_targets,
    strip_output_activation,
)
from hydraplus.inputs.teachers import input_normalization
from hydraplus.pipeline.distil import as_teacher, read_teacher_and_targets

N, C = 3, 4


def tabular(n: int = 24, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    return x, torch.randint(0, C, (n,), generator=g)


def linears(d: int = C, count: int = N) -> list[nn.Module]:
    torch.manual_seed(0)
    return [nn.Linear(5, d).eval() for _ in range(count)]


def true_probs(logits: list[Tensor]) -> Tensor:
    """The ensemble's predictive probabilities by hand: the mean of the members' softmax."""
    return sum(z.softmax(-1) for z in logits) / len(logits)


def teacher_probs(teacher: Any, x: Tensor, y: Tensor, **kwargs: Any) -> Tensor:
    read, task, _ = read_teacher_and_targets(teacher, x, y, **kwargs)
    assert task == "classification"
    with torch.no_grad():
        return read(x).softmax(-1).mean(1)


class Wrap(nn.Module):
    """A member whose forward returns ``shape(logits)`` (an opaque forward, not a Sequential)."""

    def __init__(self, member: nn.Module, shape: Callable[[Tensor], Any]):
        super().__init__()
        self.member, self.shape = member, shape

    def forward(self, x: Tensor) -> Any:
        return self.shape(self.member(x))


@dataclasses.dataclass
class Scored:
    scores: Tensor
    features: Tensor


class HFOutput(OrderedDict):
    """Hugging Face's ModelOutput in miniature: a dict whose keys are attributes too."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


Pair = namedtuple("Pair", ["logits", "aux"])


@pytest.mark.parametrize(("shape", "output", "said"), [
    (lambda z: z, None, None),                                                       # logits
    (lambda z: z.softmax(-1), None, "outputs are probabilities"),                    # softmax probs
    (lambda z: z.log_softmax(-1), None, None),                                       # log-softmax: logits
    (lambda z: (z, z.sum()), 0, None),                                               # tuple
    (lambda z: [z.sum(), z], -1, None),                                              # list
    (lambda z: {"scores": z, "hidden": z * 2}, "scores", None),                      # dict
    (lambda z: Scored(z, z * 2), "scores", None),                                    # dataclass
    (lambda z: Pair(z, z * 2), None, r"returns Pair: its \.logits are read"),        # namedtuple
    (lambda z: HFOutput(loss=z.sum(), logits=z), None, r"its 'logits' are read"),    # HF-style output
    (lambda z: GoogLeNetOutputs(z, z * 2, z * 3), None, r"GoogLeNetOutputs: its \.logits"),  # torchvision
])
def test_each_member_convention_gives_the_true_predictive_probabilities(
        shape: Callable[[Tensor], Any], output: Any, said: str | None) -> None:
    x, y = tabular()
    members = linears()
    with torch.no_grad():
        expected = true_probs([m(x) for m in members])
    teacher = [Wrap(m, shape) for m in members]
    if said is None:
        got = teacher_probs(teacher, x, y, output=output)
    else:
        with pytest.warns(ContractNote, match=said):
            got = teacher_probs(teacher, x, y, output=output)
    torch.testing.assert_close(got, expected)


@dataclasses.dataclass
class Classified:
    """A Hugging Face-style output: a dataclass with ``.logits``."""

    logits: Tensor
    hidden: Tensor


class AuxNet(nn.Module):
    """A member with an auxiliary head beside its classifier, returning both in a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
        self.aux, self.fc = nn.Linear(8, 2), nn.Linear(8, C)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.body(x)
        return {"aux": self.aux(h), "logits": self.fc(h)}


def mlp(shape: Callable[[Tensor], Any]) -> nn.Module:
    return Wrap(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, C)), shape)


@pytest.mark.parametrize(("member", "output"), [
    (lambda: mlp(lambda z: (z, z.sum())), 0),                               # tuple
    (AuxNet, "logits"),                                                     # dict, an auxiliary head
    (lambda: mlp(lambda z: Scored(z, z * 2)), "scores"),                    # dataclass
    (lambda: mlp(lambda z: Classified(z, z.relu())), None),                 # Hugging Face-style
    (lambda: mlp(lambda z: Pair(z, z * 2)), None),                          # namedtuple
    (lambda: mlp(lambda z: GoogLeNetOutputs(z, z * 2, z * 3)), None),       # torchvision
])
def test_members_returning_tuples_dicts_or_objects_teach_a_student_cut_at_their_predictions(
        member: Callable[[], nn.Module], output: Any) -> None:
    x, y = tabular()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ContractNote)
        result = hydraplus.distil([member(), member()], (x, y), epochs=1, batch_size=12, output=output,
                                  lam=0.05)
    with torch.no_grad():
        assert result.model(x).shape == (len(x), 2, C)  # [B, M, C] logits
    rows = result.model.head_weight_rows()  # [M, outputs, inputs + bias] per layer: new last Linears
    assert [tuple(layer.shape) for layer in rows] == [(2, C, 9)]
    assert not any("aux" in name for name in result.model.state_dict())  # the auxiliary head is dropped


@pytest.mark.parametrize("activation", [nn.Softmax(-1), nn.LogSoftmax(-1)])
def test_members_ending_in_an_activation_are_read_as_their_logits(activation: nn.Module) -> None:
    x, y = tabular()
    members = [nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, C), activation))
               for _ in range(N)]
    with torch.no_grad():
        expected = true_probs([m(x).log() if isinstance(activation, nn.Softmax) else m(x) for m in members])
    with pytest.warns(ContractNote, match="end in nn.Softmax/nn.LogSoftmax"):
        read, _, _ = read_teacher_and_targets(members, x, y)
    with torch.no_grad():
        torch.testing.assert_close(read(x).softmax(-1).mean(1), expected)
        stripped, kind = strip_output_activation(members[0])
        torch.testing.assert_close(stripped(x), members[0][2][0](members[0][1](members[0][0](x))))
    assert kind in ("probabilities", "log_probabilities")
    assert not any(isinstance(m, nn.Softmax | nn.LogSoftmax) for m in read.teacher.modules())
    assert strip_output_activation(members[0][0]) == (members[0][0], "logits")


class Classifier(nn.Module):
    """A user's member whose forward runs its children in order, the last a Softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
        self.classifier = nn.Linear(8, C)
        self.softmax = nn.Softmax(-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.softmax(self.classifier(self.features(x)))


def test_a_module_whose_forward_ends_in_its_softmax_child_is_cut_without_it() -> None:
    x, y = tabular(40)
    members = [Classifier().eval() for _ in range(N)]
    with torch.no_grad():
        expected = true_probs([m(x).log() for m in members])
    with pytest.warns(ContractNote, match=r"member\(s\) 0, 1, 2 end in nn.Softmax"):
        result = hydraplus.distil(members, (x, y), method="hydra", epochs=1, batch_size=20)
    with torch.no_grad():
        torch.testing.assert_close(result.teacher(x).softmax(-1).mean(1), expected)
    assert not any(isinstance(m, nn.Softmax) for m in result.model.modules())  # heads output logits


class SoftmaxInForward(nn.Module):
    """A member applying ``F.softmax`` in its forward (no Softmax module to strip)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
        self.fc = nn.Linear(8, C)

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.softmax(self.fc(self.features(x)), dim=-1)


class SoftmaxInClassifier(nn.Module):
    """A member whose Softmax is nested in its classifier block (not its last child)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(8, C), nn.Softmax(-1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def agreeing(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    """One of N members that mostly agree: the same initial weights, slightly perturbed (``seed``),
    the last Linear scaled up for confident probabilities."""
    torch.manual_seed(0)
    member = make()
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in member.parameters():
            param.add_(0.1 * torch.randn_like(param))
        [*_, last] = (m for m in member.modules() if isinstance(m, nn.Linear))
        last.weight.mul_(6)
    return member.eval()


@pytest.mark.parametrize("form", ["functional", "nested classifier", "pt2"])
def test_a_student_of_softmax_members_outputs_logits(form: str, tmp_path: Path) -> None:
    x, y = tabular(120)
    make = SoftmaxInForward if form == "functional" else SoftmaxInClassifier
    members = [agreeing(make, i) for i in range(N)]
    teacher: list[Any] = members
    if form == "pt2":
        teacher = [tmp_path / f"{i}.pt2" for i in range(N)]
        for member, path in zip(members, teacher, strict=True):
            export_model(member, x[:2], path)
    with torch.no_grad():
        expected = sum(m(x) for m in members) / N  # the members' mean probabilities
    with pytest.warns(ContractNote, match="outputs are probabilities"):
        result = hydraplus.distil(teacher, (x, y), method="hydra", heads=2, epochs=40, batch_size=36,
                                  lr=0.05)
    with torch.no_grad():
        torch.testing.assert_close(result.teacher(x).softmax(-1).mean(1), expected)  # read right
        out = result.model.eval()(x)  # [B, M, C]
    assert not torch.allclose(out.sum(-1), torch.ones(len(x), 2), atol=1e-3)  # not probabilities
    assert (out < 0).any()
    agreement = (out.softmax(-1).mean(1).argmax(-1) == expected.argmax(-1)).float().mean().item()
    assert agreement >= 0.8
    assert not any(isinstance(m, nn.Softmax) for m in result.model.modules())


class Stacked(nn.Module):
    """One module running every member, its outputs in a given layout."""

    def __init__(self, members: list[nn.Module], layout: str):
        super().__init__()
        self.members, self.layout = nn.ModuleList(members), layout

    def forward(self, x: Tensor) -> Tensor:
        outs = [m(x) for m in self.members]
        if self.layout == "flat":
            return torch.cat(outs)  # [N·B, C], member-major, as torch-uncertainty's deep ensembles
        return torch.stack(outs, 0 if self.layout == "NBD" else 1)


@pytest.mark.parametrize("layout", ["BND", "NBD", "flat"])
@pytest.mark.parametrize("members", [None, N])
def test_one_module_running_every_member(layout: str, members: int | None) -> None:
    x, y = tabular()
    ms = linears()
    with torch.no_grad():
        expected = true_probs([m(x) for m in ms])
    if layout == "BND":
        got = teacher_probs(Stacked(ms, layout), x, y, members=members)
    else:
        with pytest.warns(ContractNote, match=rf"outputs are \[N.*read as {N} members"):
            got = teacher_probs(Stacked(ms, layout), x, y, members=members)
    torch.testing.assert_close(got, expected)


def test_torch_uncertaintys_deep_ensemble_gives_its_members() -> None:
    from torch_uncertainty.methods import deep_ensembles

    x, y = tabular()
    ms = linears()
    ensemble = deep_ensembles(ms, reset_model_parameters=False)
    with torch.no_grad():
        assert ensemble(x).shape == (N * len(x), C)  # what torch-uncertainty gives: [N·B, C]
        expected = true_probs([m(x) for m in ms])
    read, _, _ = read_teacher_and_targets(ensemble, x, y)
    assert read.members == N
    with torch.no_grad():
        torch.testing.assert_close(read(x).softmax(-1).mean(1), expected)


def regression_members() -> list[nn.Module]:
    return linears(d=2)


@pytest.mark.parametrize(("kind", "spread"), [
    ("log_variance", lambda s: s),
    ("variance", lambda s: s.exp()),
    ("std", lambda s: (s / 2).exp()),
])
def test_regression_members_give_the_true_predictive_std(kind: str,
                                                         spread: Callable[[Tensor], Tensor]) -> None:
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(1))
    y = torch.randn(20, generator=torch.Generator().manual_seed(2))
    members = regression_members()
    with torch.no_grad():
        outs = [m(x) for m in members]  # (mean, log-variance)
        means, variances = torch.stack([o[:, 0] for o in outs]), torch.stack([o[:, 1].exp() for o in outs])
    true_std = (variances.mean(0) + means.var(0, unbiased=False)).sqrt()
    teacher = [Wrap(m, lambda o: torch.stack([o[:, 0], spread(o[:, 1])], -1)) for m in members]
    read, task, _ = read_teacher_and_targets(teacher, x, y, regression_output=kind)
    with torch.no_grad():
        got = regression_uncertainty(read(x))["predictive"].sqrt()
    assert task == "regression"
    torch.testing.assert_close(got, true_std)


def test_mean_only_members_spread_is_all_the_uncertainty() -> None:
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(1))
    y = torch.randn(20, generator=torch.Generator().manual_seed(2))
    members = linears(d=1)
    with torch.no_grad():
        means = torch.stack([m(x)[:, 0] for m in members])
    for teacher in ([Wrap(m, lambda o: o[:, 0]) for m in members], members):  # [B] and [B, 1] outputs
        with pytest.warns(ContractNote, match="means only"):
            read, task, _ = read_teacher_and_targets(teacher, x, y)
        with torch.no_grad():
            out = read(x)
            parts = regression_uncertainty(out)
        assert task == "regression" and out.shape == (20, N, 2)
        assert bool((out[..., 1] == MEAN_ONLY_LOG_VARIANCE).all())
        torch.testing.assert_close(parts["epistemic"], means.var(0, unbiased=False))
        assert float(parts["aleatoric"].max()) < 1e-12  # e^-30: zero to any printed precision
    result = hydraplus.distil(members, (x, y), method="hydra", epochs=1, batch_size=10,
                              student=(nn.Identity(), lambda: nn.Linear(5, 2)), regression_output="mean")
    assert bool(torch.isfinite(result.predict(x)["mean"]).all())


def test_impossible_or_unreadable_outputs_are_refused_with_the_reason() -> None:
    x, y = tabular()
    members = linears()
    with pytest.raises(ValueError, match=r"teacher member 0 returns a tuple of 2 \(0: \[2, 4\], 1: \[\]\), "
                                         r"not a tensor: pass output="):
        read_teacher_and_targets([Wrap(m, lambda z: (z, z.sum())) for m in members], x, y)
    with pytest.raises(ValueError, match=r"returns a dict with keys \['a'\], which has no part output='b'"):
        read_teacher_and_targets([Wrap(m, lambda z: {"a": z}) for m in members], x, y, output="b")
    with pytest.raises(ValueError, match=r"returns a tensor; output=0 is for tuple, dict or object outputs"):
        read_teacher_and_targets(members, x, y, output=0)
    with pytest.raises(ValueError, match=r"the teacher has 1 member: .* two or more members disagree on"):
        read_teacher_and_targets(members[:1], x, y)
    with pytest.raises(ValueError, match=r"the teacher has 1 member"):
        read_teacher_and_targets(members[0], x, y)  # one module giving [B, C]: one member
    with pytest.raises(ValueError, match=r"members=4, but the teacher is a list of 3 members"):
        read_teacher_and_targets(members, x, y, members=4)
    with pytest.raises(ValueError, match=r"outputs of shape \[6, 4\] for a batch of 2; .* with members=2"):
        read_teacher_and_targets(Stacked(members, "flat"), x, y, members=2)
    g = torch.Generator().manual_seed(0)
    reg = [Wrap(m, lambda o: torch.stack([o[:, 0], o[:, 1] - 5], -1)) for m in regression_members()]
    with pytest.raises(ValueError, match=r"negative variance \(-\d.*regression_output='variance' needs "
                                         r"values >= 0: if they are log-variances, pass "
                                         r"regression_output='log_variance'"):
        read_teacher_and_targets(reg, x, torch.randn(24, generator=g), regression_output="variance")
    with pytest.raises(ValueError, match=r"regression_output='mean' needs 1 output\(s\) per member, the "
                                         r"teacher gives 2"):
        read_teacher_and_targets(regression_members(), x, torch.randn(24, generator=g),
                                 regression_output="mean")
    with pytest.raises(ValueError, match=r"regression_output must be one of"):
        read_teacher_and_targets(members, x, y, regression_output="sigma")


# --- targets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "said"), [
    (lambda y: y.float(), r"float labels 0\.\.3 read as class indices"),
    (lambda y: y.to(torch.int32), "int32 labels read as int64"),
    (lambda y: y.to(torch.int16), "int16 labels read as int64"),
    (lambda y: y.to(torch.uint8), "uint8 labels read as int64"),
    (lambda y: y[:, None], r"\[N, 1\] flattened to \[N\]"),
    (lambda y: nn.functional.one_hot(y, C), r"one-hot \[N, 4\] read as class indices"),
])
def test_labels_are_converted_and_the_conversion_is_said(given: Callable[[Tensor], Tensor],
                                                        said: str) -> None:
    _, y = tabular()
    with pytest.warns(ContractNote, match=said):
        task, got = read_targets(given(y), "train", C)
    assert task == "classification" and got.dtype == torch.int64 and torch.equal(got, y)


def test_targets_that_are_not_labels() -> None:
    x, y = tabular()
    task, got = read_targets(y.float() + 0.5, "train", C)
    assert task == "regression" and got.dtype == torch.float32  # non-integer floats: regression, as before
    assert read_targets(y.float() * 10, "train", C)[0] == "regression"  # beyond the teacher's outputs
    with pytest.raises(ValueError, match=r"^train targets have shape \[24, 4\]: give one target per example"):
        read_targets(torch.full((24, C), 0.25), "train", C)
    with pytest.raises(ValueError, match=r"^train: the targets are strings \(e\.g\. 'cat'\); encode them "
                                         r"as class indices 0\.\.C-1 first, e\.g\. classes, "
                                         r"y = np\.unique\(y, return_inverse=True\)"):
        hydraplus.distil(linears(), (x.numpy(), np.array(["cat", "dog"] * 12)), epochs=1)


def test_integer_inputs_are_read_as_floats_said_once() -> None:
    x, y = tabular()
    with pytest.warns(ContractNote, match=r"train inputs: int64 values read as float32"):
        got, _ = as_tensors((x.round().long(), y), "train")
    assert got.dtype == torch.float32 and torch.equal(got, x.round())


# --- data edge cases -------------------------------------------------------------------------------


def test_an_npz_without_training_arrays_is_refused_naming_its_keys(tmp_path: Path) -> None:
    x, y = tabular()
    np.savez(tmp_path / "test-only.npz", x_test=x.numpy(), y_test=y.numpy())
    with pytest.raises(ValueError, match=r"^train: .*test-only\.npz has none of the array pairs "
                                         r"x_train/y_train, x/y \(a test split is never trained on\); "
                                         r"it has \['x_test', 'y_test'\]"):
        hydraplus.distil(linears(), tmp_path / "test-only.npz", epochs=1, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    got_x, _ = as_tensors(tmp_path / "test-only.npz", "test")  # evaluation data may be a test split
    torch.testing.assert_close(got_x, x)


def test_a_refused_run_writes_nothing_and_never_blocks_the_next(tmp_path: Path) -> None:
    x, y = tabular(40)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="the teacher has 1 member"):
        hydraplus.distil(linears(count=1), (x, y), method="hydra", epochs=1, out=out)
    with pytest.raises(ValueError, match=r"train targets must be class labels in \[0, 3\]"):
        hydraplus.distil(linears(), (x, y + 1), method="hydra", epochs=1, out=out)
    with pytest.raises(ValueError, match=r"ood: the data is empty"):
        hydraplus.distil(linears(), (x, y), epochs=1, out=out, ood=np.zeros((0, 5)))
    assert not out.exists()
    student = (nn.Identity(), lambda: nn.Linear(5, C))
    result = hydraplus.distil(linears(), (x, y.to(torch.int32)), method="hydra", epochs=1, batch_size=20,
                              student=student, out=out, val=(x, y.to(torch.int32)))  # int32 labels end to end
    assert (out / "config.json").is_file() and result.metrics is not None
    assert result.metrics["test_size"] == 40


def test_ood_takes_what_val_and_evaluate_take(tmp_path: Path) -> None:
    x, y = tabular(40)
    far = 6 + np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32)
    np.savez(tmp_path / "ood.npz", x_test=far)
    student = (nn.Linear(5, 8), lambda: nn.Linear(8, C))
    for ood in (far, torch.from_numpy(far), tmp_path / "ood.npz", (far, np.zeros(30, np.int64))):
        result = hydraplus.distil(linears(), (x, y), epochs=1, batch_size=20, student=student, ood=ood,
                                  val=(x, y))
        assert result.metrics is not None and result.metrics["ood_size"] == 30


def test_python_out_follows_the_clis_rule(tmp_path: Path) -> None:
    x, y = tabular(40)
    out = tmp_path / "run"
    settings: dict[str, Any] = {"method": "hydra", "epochs": 1, "batch_size": 20,
                                "student": (nn.Identity(), lambda: nn.Linear(5, C))}
    hydraplus.distil(linears(), (x, y), out=out, **settings)
    with pytest.raises(ValueError, match=r"already holds a run; pass --resume \(resume=True\) to continue "
                                         r"it or --overwrite \(overwrite=True\) to replace it"):
        hydraplus.distil(linears(), (x, y), out=out, **settings)
    (out / "marker").write_text("a user's file beside the run")
    with pytest.raises(ValueError, match=r"holds files that are not a hydraplus run's \(marker\)"):
        hydraplus.distil(linears(), (x, y), out=out, overwrite=True, **settings)
    (out / "marker").unlink()
    (out / "evaluation.md").write_text("from the first run")
    hydraplus.distil(linears(), (x, y), out=out, overwrite=True, **settings)
    assert not (out / "evaluation.md").exists() and (out / "config.json").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a run")
    with pytest.raises(ValueError, match=r"holds no hydraplus run .*--overwrite deletes runs only"):
        hydraplus.distil(linears(), (x, y), out=mine, overwrite=True, **settings)
    assert (mine / "notes.txt").read_text() == "not a run"


def test_a_normalisation_card_applies_to_its_own_program_only(tmp_path: Path) -> None:
    card = {"normalization": {"mean": [0.5], "std": [0.25]}}
    for name in "abc":
        (tmp_path / f"{name}.pt2").write_bytes(b"")
    (tmp_path / "a.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"teacher file\(s\) .*b\.pt2, .*c\.pt2 have no input "
                                         r"normalisation card while .*a\.json has one"):
        input_normalization([tmp_path / f"{name}.pt2" for name in "abc"])
    assert input_normalization([tmp_path / "b.pt2", tmp_path / "c.pt2"]) is None
    (tmp_path / "b.json").write_text(json.dumps(card))
    assert input_normalization([tmp_path / "a.pt2", tmp_path / "b.pt2"])["mean"] == [0.5]


def test_members_with_differing_cards_each_see_their_own_normalisation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(12, 3)) for _ in range(2)]
    cards = [{"mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]},
             {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.1]}]
    paths = []
    for k, (member, card) in enumerate(zip(members, cards, strict=True)):
        path = tmp_path / f"m{k}.pt2"
        batch = {0: torch.export.Dim("batch")}
        program = torch.export.export(member, (torch.rand(4, 3, 2, 2),), dynamic_shapes=(batch,))
        torch.export.save(program, path)
        (tmp_path / f"m{k}.json").write_text(json.dumps({"normalization": card}))
        paths.append(path)
    norm = input_normalization(paths)
    assert norm["mean"] == cards[0]["mean"] and norm["files"] == cards
    teacher = as_teacher(paths)
    teacher.renormalize(norm, norm["files"])
    raw = torch.rand(5, 3, 2, 2)
    given = normalize(raw, norm["mean"], norm["std"], "x")
    out = teacher(given)
    for k, (member, card) in enumerate(zip(members, cards, strict=True)):
        expected = member(normalize(raw, card["mean"], card["std"], "x"))
        assert torch.allclose(out[:, k], expected, atol=1e-5)
