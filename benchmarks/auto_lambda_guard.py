"""The automatic lambda's guard on seven problems: does ``lam="auto"`` keep the student's fit?

For each problem five members are trained the way a user would (plain Adam loops, small MLPs or
CNNs), then `hydraplus.distil` (5 heads, the rest its defaults) distils them three times: with
lambda = 0 (Hydra's student), with a fixed lambda (the paper's for the closest setting) and with
``lam="auto"``. Each student is scored on the problem's test split against the teacher: ECE
(classification; for regression the quantile calibration error of the Gaussian prediction),
agreement of the predicted class with the teacher's, error (RMSE for regression) and the total
variation between its and the teacher's epistemic-uncertainty histograms on off-data inputs (an
off-data probe drawn with another seed than the controller's). The auto student passes when

- its ECE <= max(2 x the teacher's, the teacher's + 3 points),
- its agreement >= the lambda = 0 student's - 1 point,
- its epistemic TV <= the lambda = 0 student's (both rounded to 3 decimals, as the table shows them:
  an auto student whose lambda stayed near 0 differs from the lambda = 0 one by round-off).

    OMP_NUM_THREADS=1 python benchmarks/auto_lambda_guard.py --seeds 0 1 2

writes ``README.md`` and ``results.json`` there (``--seeds`` picks the draws, 0 1 2 by default:
each seed draws the data split, the members and the students; the guard's constants were chosen on
seed 1).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import hydraplus
from hydraplus.core.uncertainty import (
    classification_uncertainty,
    predictive_gaussian,
    regression_uncertainty,
    total_variation,
)
from hydraplus.data.images import read_fashion_mnist
from hydraplus.data.probe import off_data_probe
from hydraplus.data.sources import get_source
from hydraplus.data.toy import make_regression, make_spiral
from hydraplus.evaluation.images import classification_metrics
from hydraplus.inputs.contracts import Members

ROOT = Path(__file__).resolve().parents[1]
# The shared data folder beside the checkout, or HYDRAPLUS_SHARED_DATA; Fashion-MNIST where the
# library looks by default (Debian's package), or HYDRAPLUS_FASHION_MNIST.
SHARED_DATA = Path(os.environ.get("HYDRAPLUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
CIFAR = SHARED_DATA / "cifar10_train.npz"
CIFAR_MINI = SHARED_DATA / "cifar10_mini.npz"  # the small problem's images
FASHION = Path(os.environ.get("HYDRAPLUS_FASHION_MNIST", str(get_source("fashion-mnist").default_path)))
HEADS = 5
MEMBERS = 5
TV_BINS = 50
EVAL_PROBE_SEED = 12345  # the controller's probe is drawn with the distil seed; this one differs


@dataclass
class Setup:
    """A problem with its trained members and how to distil it."""

    name: str
    task: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    members: list[nn.Module]
    epochs: int  # of distillation
    fixed_lam: float  # the paper's lambda for the closest setting
    lam_source: str


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _cnn(channels: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, classes))


def _member_loss(out: Tensor, y: Tensor, task: str) -> Tensor:
    if task == "classification":
        return F.cross_entropy(out, y)
    mean, log_var = out[:, 0], out[:, 1].clamp(-10, 10)
    return 0.5 * (log_var + (y - mean) ** 2 / log_var.exp()).mean()


def train_members(make: Callable[[], nn.Module], x: Tensor, y: Tensor, task: str, epochs: int,
                  seed: int, lr: float = 1e-2, batch: int = 64) -> list[nn.Module]:
    """Five members, each its own initialisation and data order (what a user's loop does)."""
    members = []
    for i in range(MEMBERS):
        torch.manual_seed(1000 * seed + i)
        model = make()
        opt = torch.optim.Adam(model.parameters(), lr)
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(batch):
                opt.zero_grad()
                _member_loss(model(x[idx]), y[idx], task).backward()
                opt.step()
        members.append(model.eval())
    return members


def _standardised(x_train: np.ndarray, x_test: np.ndarray) -> tuple[Tensor, Tensor]:
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    return (torch.tensor((x_train - mean) / std, dtype=torch.float32),
            torch.tensor((x_test - mean) / std, dtype=torch.float32))


def _sklearn(name: str, x: np.ndarray, y: np.ndarray, seed: int, hidden: int, member_epochs: int,
             epochs: int, scale: bool = True) -> Setup:
    from sklearn.model_selection import train_test_split

    xa, xb, ya, yb = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    if scale:
        xtr, xte = _standardised(xa, xb)
    else:
        xtr, xte = torch.tensor(xa, dtype=torch.float32), torch.tensor(xb, dtype=torch.float32)
    ytr, yte = torch.tensor(ya), torch.tensor(yb)
    classes = int(y.max()) + 1
    members = train_members(lambda: _mlp([x.shape[1], hidden, classes]), xtr, ytr, "classification",
                            member_epochs, seed)
    return Setup(name, "classification", xtr, ytr, xte, yte, members, epochs, 9.0, "spiral's, M = 5")


def _toy(problem: Any, name: str, task: str, widths: list[int], lam: float, note: str, seed: int,
         small: bool) -> Setup:
    """A toy problem with members and students trained for the paper's 200 epochs (100 if small)."""
    epochs = 100 if small else 200
    members = train_members(lambda: _mlp(widths), problem.x_train, problem.y_train, task, epochs, seed)
    return Setup(name, task, problem.x_train, problem.y_train, problem.x_test, problem.y_test, members,
                 epochs, lam, note)


def spiral(seed: int, small: bool = False) -> Setup:
    return _toy(make_spiral(seed), "spiral", "classification", [2, 64, 64, 3], 9.0, "spiral, M = 5",
                seed, small)


def regression(seed: int, small: bool = False) -> Setup:
    return _toy(make_regression(seed), "toy regression", "regression", [1, 64, 64, 2], 0.005,
                "toy regression, M = 5", seed, small)


def digits(seed: int, small: bool = False) -> Setup:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _sklearn("digits", d.data / 16.0, d.target, seed, 64, 15 if small else 30, 20, scale=False)


def breast_cancer(seed: int, small: bool = False) -> Setup:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return _sklearn("breast_cancer", d.data, d.target, seed, 32, 30, 60)


def synthetic100(seed: int, small: bool = False) -> Setup:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3000 if small else 6000, n_features=40, n_informative=30,
                               n_redundant=0, n_classes=100, n_clusters_per_class=1, class_sep=3.0,
                               random_state=seed)
    return _sklearn("synthetic-100", x, y, seed, 128, 15 if small else 20, 20)


def _images(name: str, x: Tensor, y: Tensor, seed: int, n_train: int, n_test: int) -> tuple[Tensor, ...]:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, te = order[:n_train], order[n_train:n_train + n_test]
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    mean, std = x[tr].mean((0, 2, 3), keepdim=True), x[tr].std((0, 2, 3), keepdim=True)
    x = (x - mean) / std
    return x[tr], y[tr].long(), x[te], y[te].long()


def fashion_mnist(seed: int, small: bool = False) -> Setup:
    """5,000 training and 1,000 test images of Fashion-MNIST's training split (1,500 and 500 if small)."""
    raw = read_fashion_mnist(FASHION, train=True)
    n_train, n_test = (1500, 500) if small else (5000, 1000)
    xtr, ytr, xte, yte = _images("fashion", raw.x, raw.y, seed, n_train, n_test)
    xtr, xte = xtr.flatten(1), xte.flatten(1)
    members = train_members(lambda: _mlp([784, 128, 10]), xtr, ytr, "classification", 5, seed, lr=1e-3)
    return Setup(f"Fashion-MNIST {n_train / 1000:g}k", "classification", xtr, ytr, xte, yte, members, 10,
                 0.001, "Fashion-MNIST preset, M = 5")


def cifar10(seed: int, small: bool = False) -> Setup:
    """5,000 training and 1,000 test images of the CIFAR-10 training split (1,500 and 500 of the
    small split's if small), members a small CNN."""
    with np.load(CIFAR_MINI if small else CIFAR) as arrays:
        x = torch.from_numpy(arrays["x_train"] if "x_train" in arrays else arrays["x"])
        y = torch.from_numpy(arrays["y_train"] if "y_train" in arrays else arrays["y"])
    if x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    n_train, n_test = (1500, 500) if small else (5000, 1000)
    xtr, ytr, xte, yte = _images("cifar", x, y.reshape(-1), seed, n_train, n_test)
    members = train_members(lambda: _cnn(3, 10), xtr, ytr, "classification", 6, seed, lr=2e-3)
    return Setup(f"CIFAR-10 {n_train / 1000:g}k", "classification", xtr, ytr, xte, yte, members, 10, 0.1,
                 "paper's CIFAR-10, M = 5")


PROBLEMS: dict[str, Callable[..., Setup]] = {
    "spiral": spiral, "regression": regression, "digits": digits, "breast_cancer": breast_cancer,
    "synthetic100": synthetic100, "fashion": fashion_mnist, "cifar10": cifar10,
}


@torch.no_grad()
def outputs(model: nn.Module, x: Tensor) -> Tensor:
    """``[B, K, D]`` outputs of a teacher (members stacked) or a student."""
    model.eval()
    return torch.cat([model(chunk) for chunk in x.split(1024)])


def regression_calibration(out: Tensor, y: Tensor) -> float:
    """Mean |observed - nominal| coverage of the central intervals of the moment-matched Gaussian at
    9 levels (the regression counterpart of the ECE)."""
    mean, var = predictive_gaussian(out)
    z = ((y - mean).abs() / var.sqrt()).double()
    levels = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)
    half = torch.special.ndtri(0.5 + levels / 2)
    covered = (z[None, :] <= half[:, None]).double().mean(1)
    return float((covered - levels).abs().mean())


def _classes(out: Tensor) -> Tensor:
    """The class of the mean predictive distribution of ``[B, K, C]`` logits."""
    return out.softmax(-1).mean(1).argmax(-1)


def scores(setup: Setup, teacher_out: Tensor, student_out: Tensor, teacher_probe: Tensor,
           student_probe: Tensor) -> dict[str, float | None]:
    """ECE, error, agreement and epistemic TV of one model's outputs (the teacher's against itself)."""
    if setup.task == "classification":
        metrics = classification_metrics(student_out, setup.y_test, student_out.shape[-1])
        agreement = float((_classes(student_out) == _classes(teacher_out)).float().mean())
        upper = math.log(student_out.shape[-1])
        epi_s = classification_uncertainty(student_probe.double())["epistemic"]
        epi_t = classification_uncertainty(teacher_probe.double())["epistemic"]
        ece, error = metrics["ece"], metrics["error"]
    else:
        ece, agreement = regression_calibration(student_out, setup.y_test), None
        error = float((student_out[..., 0].mean(1) - setup.y_test).pow(2).mean().sqrt())
        epi_s = regression_uncertainty(student_probe.double())["epistemic"]
        epi_t = regression_uncertainty(teacher_probe.double())["epistemic"]
        upper = float(torch.quantile(torch.cat([epi_s, epi_t]).float(), 0.99)) or 1.0
    return {"ece": ece, "error": error, "agreement": agreement,
            "tv_epistemic": total_variation(epi_s.float(), epi_t.float(), upper, TV_BINS)}


def run_problem(setup: Setup, seed: int = 0) -> dict[str, Any]:
    """The teacher and the three students of one problem, scored, with the auto student's checks."""
    teacher = Members(setup.members)
    probe = off_data_probe(setup.x_train, seed=EVAL_PROBE_SEED)
    teacher_out, teacher_probe = outputs(teacher, setup.x_test), outputs(teacher, probe)
    rows: dict[str, Any] = {"teacher": scores(setup, teacher_out, teacher_out, teacher_probe, teacher_probe)}
    lambdas: dict[str, Any] = {}
    agrees: dict[str, Tensor] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fixed = f"lambda={setup.fixed_lam:g}"
        for label, lam in (("lambda=0", 0.0), (fixed, setup.fixed_lam), ("auto", "auto")):
            start = time.perf_counter()
            out = Path(tmp) / "auto" if lam == "auto" else None  # its log shows the lambdas it took
            contract = {"regression_output": "log_variance"} if setup.task == "regression" else {}
            result = hydraplus.distil(setup.members, (setup.x_train, setup.y_train), heads=HEADS,
                                      epochs=setup.epochs, lam=lam, seed=seed, out=out, **contract)
            student_out = outputs(result.model, setup.x_test)
            rows[label] = scores(setup, teacher_out, student_out, teacher_probe, outputs(result.model, probe))
            if setup.task == "classification":
                agrees[label] = (_classes(student_out) == _classes(teacher_out)).double()
            rows[label]["seconds"] = time.perf_counter() - start
            lambdas[label] = lam
        auto_lambda = lambda_log(next((Path(tmp) / "auto").glob("*/log/metrics.csv")))
    t, zero, auto = rows["teacher"], rows["lambda=0"], rows["auto"]
    if agrees:
        paired = agrees["auto"] - agrees["lambda=0"]
        auto["agreement_paired_se"] = float(paired.std() / math.sqrt(len(paired)))
    checks = {"ece": auto["ece"] <= max(2 * t["ece"], t["ece"] + 0.03),
              "agreement": auto["agreement"] is None or auto["agreement"] >= zero["agreement"] - 0.01,
              "tv_epistemic": round(auto["tv_epistemic"], 3) <= round(zero["tv_epistemic"], 3)}
    return {"problem": setup.name, "task": setup.task, "train": len(setup.x_train), "test": len(setup.x_test),
            "classes": int(teacher_out.shape[-1]) if setup.task == "classification" else None,
            "input": list(setup.x_train.shape[1:]), "epochs": setup.epochs, "fixed_lambda": setup.fixed_lam,
            "fixed_lambda_source": setup.lam_source, "rows": rows, "checks": checks,
            "passed": all(checks.values()), "auto_lambda": auto_lambda}


def lambda_log(path: Path) -> dict[str, Any]:
    """The lambdas an auto run took (its ``train/lambda`` column): the largest, and on how many epochs
    it was above 0."""
    with path.open() as f:
        lambdas = [float(row["train/lambda"]) for row in csv.DictReader(f) if row.get("train/lambda")]
    raised = sum(v > 0 for v in lambdas)
    return {"max": max(lambdas, default=0.0), "epochs_above_0": raised, "epochs": len(lambdas),
            "summary": f"{max(lambdas, default=0.0):.2g} ({raised} of {len(lambdas)} epochs > 0)"}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _spread(values: list[float | None], scale: float, digits: int) -> str:
    """``mean ± std`` of ``values`` (times ``scale``; sample std, 0 for one value); – for None."""
    if any(v is None for v in values):
        return "–"
    data = np.array(values, dtype=float) * scale
    std = float(data.std(ddof=1)) if len(data) > 1 else 0.0
    return f"{data.mean():.{digits}f} ± {std:.{digits}f}"


def _failed(result: dict[str, Any]) -> str:
    return "yes" if result["passed"] else "no: " + ", ".join(k for k, v in result["checks"].items() if not v)


def margins(runs: dict[int, list[dict[str, Any]]]) -> str:
    """The smallest margin of each check over every problem and seed (negative: failed by that much)."""
    found: dict[str, tuple[float, str]] = {}
    for seed, results in runs.items():
        for r in results:
            t, zero, auto = r["rows"]["teacher"], r["rows"]["lambda=0"], r["rows"]["auto"]
            where = f"{r['problem']}, seed {seed}"
            values = {"ECE": 100 * (max(2 * t["ece"], t["ece"] + 0.03) - auto["ece"]),
                      "TV": round(zero["tv_epistemic"], 3) - round(auto["tv_epistemic"], 3)}
            if auto["agreement"] is not None:
                values["agreement"] = 100 * (auto["agreement"] - (zero["agreement"] - 0.01))
            for name, value in values.items():
                if name not in found or value < found[name][0]:
                    found[name] = (value, where)
    shown = {"ECE": "{:.2f} points", "agreement": "{:.2f} points", "TV": "{:.3f}"}
    return "Smallest margins: " + "; ".join(f"{name} {shown[name].format(value)} ({where})"
                                            for name, (value, where) in found.items()) + "."


def markdown(runs: dict[int, list[dict[str, Any]]], command: str, seconds: float) -> str:
    """The README: per problem and model the mean ± std over the seeds, then each seed's checks."""
    seeds = list(runs)
    first = runs[seeds[0]]
    lines = [
        "# The automatic lambda's guard on seven problems", "",
        "Five members trained like a user would (small MLPs, a small CNN on CIFAR-10), distilled by "
        "`hydraplus.distil(members, (x, y), heads=5, epochs=E, lam=...)` with lambda = 0, the paper's "
        "fixed lambda for the closest setting, and the default `lam=\"auto\"`. Scored on each problem's "
        "test split; epistemic TV is the total variation between the student's and the teacher's "
        "epistemic-uncertainty histograms (50 bins) on 1,000 off-data inputs drawn with another seed "
        "than the controller's probe. For the toy regression, the ECE column is the mean coverage error "
        "of the central intervals of the Gaussian prediction at levels 0.1-0.9, and the error is the RMSE.",
        "",
        "The auto student passes when its ECE <= max(2 x the teacher's, the teacher's + 3 points), its "
        "agreement with the teacher's class >= the lambda = 0 student's - 1 point, and its epistemic TV "
        "<= the lambda = 0 student's (at 3 decimals).", "",
        f"Seeds {', '.join(map(str, seeds))} (each seed draws the data split, the members and the "
        f"students); {seconds / 60:.1f} minutes on one CPU thread. Reproduce with `{command}`.", "",
        "An automatic run is the lambda = 0 run until that run ends; when its student is less uncertain "
        "than the ensemble on the controller's probe, a diversity phase of 30% more epochs follows, and "
        "the run ends with the phase's epoch whose epistemic histogram on the probe is closest to the "
        "ensemble's among those that fit the teacher as well on the held-out split and beat the lambda = 0 "
        "student's histogram on the whole probe and each half, else with the lambda = 0 student "
        "([docs/method.md](../../method.md#automatic-lambda)). The last column counts its epochs, "
        "those of the phase included.", "",
        f"## Mean ± std over the {len(seeds)} seeds", "",
        "| problem | train / test | classes | epochs | model | ECE % | error % (RMSE) | agreement % "
        "| epistemic TV | auto passes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, result in enumerate(first):
        per_seed = [runs[seed][i] for seed in seeds]
        for label in result["rows"]:
            rows = [r["rows"][label] for r in per_seed]
            regression = result["task"] == "regression"
            err = _spread([r["error"] for r in rows], 1 if regression else 100, 3 if regression else 2)
            tv = "–" if label == "teacher" else _spread([r["tv_epistemic"] for r in rows], 1, 3)
            ok = f"{sum(r['passed'] for r in per_seed)} of {len(seeds)}" if label == "auto" else ""
            lines.append(f"| {result['problem']} | {result['train']} / {result['test']} | "
                         f"{result['classes'] or '–'} | {result['epochs']} | {label} | "
                         f"{_spread([r['ece'] for r in rows], 100, 2)} | {err} | "
                         f"{_spread([r['agreement'] for r in rows], 100, 2)} | {tv} | {ok} |")
    lines += ["", "## Each seed's checks", "",
              "| problem | seed | auto ECE % (bound) | auto agreement % (lambda = 0's - 1) "
              "| auto TV (lambda = 0's) | auto's largest lambda (epochs above 0) | passes |",
              "|---|---|---|---|---|---|---|"]
    for i in range(len(first)):
        for seed in seeds:
            r = runs[seed][i]
            t, zero, auto = r["rows"]["teacher"], r["rows"]["lambda=0"], r["rows"]["auto"]
            bound = max(2 * t["ece"], t["ece"] + 0.03)
            agreement = ("–" if auto["agreement"] is None
                         else f"{_pct(auto['agreement'])} ({_pct(zero['agreement'] - 0.01)})")
            lines.append(f"| {r['problem']} | {seed} | {_pct(auto['ece'])} ({_pct(bound)}) | {agreement} | "
                         f"{auto['tv_epistemic']:.3f} ({zero['tv_epistemic']:.3f}) | "
                         f"{r.get('auto_lambda', {}).get('summary', '–')} | {_failed(r)} |")
    total = sum(len(results) for results in runs.values())
    passed = sum(r["passed"] for results in runs.values() for r in results)
    lines += ["", f"The auto student passes on {passed} of {total} problem-seeds. {margins(runs)}", ""]
    fixed = [f"{r['problem']} {r['fixed_lambda']:g} ({r['fixed_lambda_source']})" for r in first]
    lines += ["Fixed lambdas: " + "; ".join(fixed) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "auto-lambda")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    runs: dict[int, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        runs[seed] = []
        for name in args.problems:
            t0 = time.perf_counter()
            runs[seed].append(run_problem(PROBLEMS[name](seed), seed))
            rows = {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                    for k, v in runs[seed][-1]["rows"].items()}
            print(f"seed {seed} {name}: {time.perf_counter() - t0:.0f} s, passed={runs[seed][-1]['passed']} "
                  + json.dumps(rows), flush=True)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    command = ("OMP_NUM_THREADS=1 python benchmarks/auto_lambda_guard.py --seeds "
               + " ".join(map(str, args.seeds)))
    if args.problems != list(PROBLEMS):
        command += " --problems " + " ".join(args.problems)
    saved = {"seeds": args.seeds, "seconds": seconds, "runs": {str(k): v for k, v in runs.items()}}
    (args.out / "results.json").write_text(json.dumps(saved, indent=2))
    (args.out / "README.md").write_text(markdown(runs, command, seconds))
    return 0 if all(r["passed"] for results in runs.values() for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
