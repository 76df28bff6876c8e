"""Speed benchmark of the fast paths against naive ones, in one run.

1. Distillation training throughput on the SVHN-LeNet setting (N = M = 20, batch 256,
   random 32x32x3 inputs): cached teacher outputs + batched heads (our default) vs the
   teacher's members run one after another every step + looped heads; and, for reference,
   our augmented path (random crop + flip: the whole teacher runs on every augmented batch).
2. Inference latency at batch 1 and 256: Hydra+-20 LeNet student vs the 20-member
   LeNet ensemble, next to their FLOP ratio.
3. Ensemble training wall time on the spiral MLP setting (N = 20): batched members
   (one pass per step) vs 20 single-member ensembles trained one after another.
4. Peak memory of every configuration, each in a fresh process (forked from a server
   that imported torch once): growth of the process's peak RSS (``VmHWM``, else
   ``ru_maxrss``) over its post-import value on CPU, of ``torch.cuda.max_memory_allocated``
   over the baseline allocation on CUDA.

Times are medians over repeats after warm-up (``time.perf_counter``, synchronised on CUDA).
The configurations compared in one row take turns repeat by repeat, so a machine that
speeds up or slows down during the run affects both sides of each ratio alike.
Writes ``speed.json`` and ``speed.md`` into ``--out``.

    HYDRAPLUS_ALLOCATOR=default python benchmarks/speed.py --device cpu --threads 2 --out docs/benchmarks

(glibc's default allocator, so rows stay comparable with earlier runs; `benchmarks/paths.py`
compares the allocator setting and the numerical paths.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from hydraplus.config import EnsembleSettings, load_config
from hydraplus.core.augment import Augmentation
from hydraplus.core.containers import Ensemble, MultiHeadStudent
from hydraplus.core.losses import LossWeights, combine, distillation_terms, diversity_loss, l2_penalty
from hydraplus.core.profile import count_flops
from hydraplus.data.toy import make_toy
from hydraplus.engine.data import SeededAugment, seeded_loader
from hydraplus.models import lenet_core, lenet_head, lenet_member
from hydraplus.models.registry import build

MEMBERS = HEADS = 20
BATCH = 256
# SVHN student settings of the reference (docs/method.md#architectures-and-hyperparameters).
SVHN_WEIGHTS = LossWeights(alpha=0.95, beta=0.9, t_mean=1.0, t_ind=5.0)
SVHN_LR, SVHN_LAMBDA, SVHN_WD = 1e-3, 5e-4, 1e-7
CLIP_NORM = 5.0
TARGETS = {"distillation_speedup": 3.0, "inference_fraction_of_flop_ratio": 0.7,
           "ensemble_training_speedup": 3.0}
PROBES = ("distil-default", "distil-augmented", "distil-naive", "student-b1", "ensemble-b1", "student-b256",
          "ensemble-b256", "spiral-batched", "spiral-sequential")


@dataclass(frozen=True)
class Settings:
    """Sizes and repeat counts (``--quick`` shrinks them to finish in under a minute)."""

    distil_examples: int
    distil_warmup: int
    distil_repeats: int
    infer_warmup: int
    infer_repeats_b1: int
    infer_repeats_b256: int
    spiral_epochs: int
    spiral_repeats: int
    probe_runs: int

    @classmethod
    def of(cls, quick: bool) -> Settings:
        if quick:
            return cls(256, 1, 1, 1, 10, 1, 20, 1, 1)
        return cls(2048, 2, 10, 2, 50, 10, 200, 3, 2)


# --- helpers ------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fns: dict[str, Callable[[], Any]], device: torch.device, warmup: int,
                   repeats: int) -> dict[str, float]:
    """Median wall time of each callable over ``repeats`` calls after ``warmup`` calls.

    The callables take turns (one call of each per repeat), so drift in the machine's speed
    is shared between them instead of biasing their ratio.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def cycle(loader: DataLoader) -> Iterator[tuple[Tensor, ...]]:
    """Batches of a seeded loader, epoch after epoch."""
    for epoch in itertools.count():
        loader.sampler.set_epoch(epoch)
        yield from loader


def optimiser_step(params: list[Tensor], opt: torch.optim.Optimizer, loss: Tensor,
                   clip: Callable[[], Any]) -> None:
    """Backward, NaN gradients zeroed, clipping, Adam step (as the training modules do)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for p in params:
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
    clip()
    opt.step()


# --- 1. distillation ----------------------------------------------------------------------


def lenet_teacher(batched: bool | None, device: torch.device) -> Ensemble:
    """The same 20 LeNet members (fixed seed), stacked, looped or auto, in eval mode."""
    torch.manual_seed(1)
    return Ensemble([lenet_member() for _ in range(MEMBERS)], batched=batched).to(device).eval()


def svhn_like(examples: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(examples, 3, 32, 32, generator=g), torch.randint(0, 10, (examples,), generator=g)


def distil_step(kind: str, device: torch.device, examples: int, teacher_file: Path | None
                ) -> Callable[[], None]:
    """One Hydra+ training step (full loss, Adam) of the default, augmented or naive path.

    The augmented path is what the engine does with ``augment`` on: batched heads, the
    teacher in its default layout for the device (as the runner builds it) on every batch.
    """
    x, y = svhn_like(examples)
    torch.manual_seed(3)
    student = MultiHeadStudent.from_factories(lenet_core, lenet_head, HEADS,
                                              batched=kind != "naive").to(device)
    params = list(student.parameters())
    opt = torch.optim.Adam(params, lr=SVHN_LR)
    teacher: Ensemble | None = None
    augment = SeededAugment(Augmentation(), seed=0) if kind == "augmented" else None
    if kind == "default":
        assert teacher_file is not None
        cached = torch.from_numpy(np.load(teacher_file, mmap_mode="c"))
        batches = cycle(seeded_loader((x, y, cached), BATCH, seed=0))
    else:
        layout = False if kind == "naive" else (None if device.type == "cpu" else True)
        teacher = lenet_teacher(batched=layout, device=device)
        batches = cycle(seeded_loader((x, y), BATCH, seed=0))
    counter = itertools.count()

    def step() -> None:
        xb, yb, *rest = (t.to(device, non_blocking=True) for t in next(batches))
        if augment is not None:
            xb = augment(xb, 0, next(counter))
        if teacher is None:
            tb = rest[0]
        else:
            with torch.no_grad():
                tb = teacher(xb)
        terms = distillation_terms("classification", tb, student(xb), yb, SVHN_WEIGHTS)
        terms["diversity"] = diversity_loss(student.head_weight_rows())
        terms["weight_decay"] = l2_penalty(params)
        loss = combine(terms, SVHN_WEIGHTS, SVHN_LAMBDA, SVHN_WD)
        optimiser_step(params, opt, loss, lambda: nn.utils.clip_grad_norm_(params, CLIP_NORM))

    return step


def build_cache(device: torch.device, examples: int, cache_dir: Path) -> tuple[Path, float]:
    """Compute the teacher-output cache for the distillation data; its file and seconds."""
    from hydraplus.engine.cache import teacher_outputs  # imports Lightning: only here, not in probes

    x, _ = svhn_like(examples)
    teacher = lenet_teacher(batched=True, device=device)
    sync(device)
    start = time.perf_counter()
    teacher_outputs(teacher, x, cache_dir, batch_size=BATCH)
    sync(device)
    seconds = time.perf_counter() - start
    (path,) = cache_dir.glob("teacher-*.npy")
    return path, seconds


def bench_distillation(device: torch.device, s: Settings, teacher_file: Path, cache_s: float
                       ) -> dict[str, Any]:
    out: dict[str, Any] = {"setting": f"SVHN-LeNet, N = M = {MEMBERS}, batch {BATCH}, random 32x32x3 inputs",
                           "examples": s.distil_examples,
                           "cache_build_s": cache_s,
                           "cache_build_samples_per_s": s.distil_examples / cache_s}
    steps = {kind: distil_step(kind, device, s.distil_examples, teacher_file)
             for kind in ("default", "augmented", "naive")}
    for kind, seconds in median_seconds(steps, device, s.distil_warmup, s.distil_repeats).items():
        out[kind] = {"step_s": seconds, "samples_per_s": BATCH / seconds}
        print(f"  distillation {kind}: {BATCH / seconds:.1f} samples/s", flush=True)
    out["speedup"] = out["default"]["samples_per_s"] / out["naive"]["samples_per_s"]
    out["augmented_speedup"] = out["augmented"]["samples_per_s"] / out["naive"]["samples_per_s"]
    return out


def bench_external_teacher(s: Settings) -> dict[str, Any]:
    """`hydraplus.distil` from the teacher as 20 plain modules (as a user brings them) against the
    same members in hydraplus' `Ensemble`: epochs of distillation from the cached outputs."""
    import hydraplus

    x, y = svhn_like(s.distil_examples)
    torch.manual_seed(1)
    members = [lenet_member().eval() for _ in range(MEMBERS)]
    teachers = {"external": members, "ensemble": Ensemble(members).eval()}
    out: dict[str, Any] = {"setting": "hydraplus.distil, SVHN-LeNet student, cached teacher outputs"}
    with tempfile.TemporaryDirectory() as tmp:
        def run(kind: str) -> Callable[[], None]:
            def call() -> None:
                hydraplus.distil(teachers[kind], (x, y), student=(lenet_core(), lenet_head), heads=HEADS,
                                 epochs=2, lam=SVHN_LAMBDA, lr=SVHN_LR, batch_size=BATCH,
                                 out=Path(tmp) / kind)
            return call

        seconds = median_seconds({kind: run(kind) for kind in teachers}, torch.device("cpu"), 1,
                                 max(1, s.distil_repeats // 5))
    for kind, value in seconds.items():
        out[kind] = {"seconds": value, "samples_per_s": 2 * s.distil_examples / value}
        print(f"  distil from {kind} teacher: {out[kind]['samples_per_s']:.1f} samples/s", flush=True)
    out["external_over_ensemble"] = out["external"]["samples_per_s"] / out["ensemble"]["samples_per_s"]
    return out


# --- 2. inference -------------------------------------------------------------------------


def inference_model(kind: str, device: torch.device) -> nn.Module:
    if kind == "ensemble":
        return lenet_teacher(batched=True, device=device)
    torch.manual_seed(4)
    return MultiHeadStudent.from_factories(lenet_core, lenet_head, HEADS).to(device).eval()


def inference_call(kind: str, batch: int, device: torch.device) -> Callable[[], None]:
    model = inference_model(kind, device)
    x = torch.randn(batch, 3, 32, 32, device=device)

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run


def bench_inference(device: torch.device, s: Settings) -> dict[str, Any]:
    example = torch.randn(1, 3, 32, 32, device=device)
    flops = {kind: count_flops(inference_model(kind, device), example) for kind in ("student", "ensemble")}
    ratio = flops["ensemble"] / flops["student"]
    out: dict[str, Any] = {"flops_per_image": flops, "flop_ratio": ratio}
    for batch, repeats in ((1, s.infer_repeats_b1), (BATCH, s.infer_repeats_b256)):
        calls = {kind: inference_call(kind, batch, device) for kind in ("student", "ensemble")}
        ms = {kind: 1e3 * seconds
              for kind, seconds in median_seconds(calls, device, s.infer_warmup, repeats).items()}
        speedup = ms["ensemble"] / ms["student"]
        out[f"batch_{batch}"] = {"student_ms": ms["student"], "ensemble_ms": ms["ensemble"],
                                 "speedup": speedup, "fraction_of_flop_ratio": speedup / ratio}
        print(f"  inference batch {batch}: student {ms['student']:.2f} ms, ensemble {ms['ensemble']:.2f} ms",
              flush=True)
    return out


# --- 3. ensemble training -----------------------------------------------------------------


def train_spiral(ensemble: Ensemble, x: Tensor, y: Tensor, epochs: int, settings: EnsembleSettings,
                 device: torch.device, seed: int) -> None:
    """The EnsembleModule step in a plain loop: summed member CE + L2, Adam, cosine, clipping."""
    params = list(ensemble.parameters())
    opt = torch.optim.Adam(params, lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loader = seeded_loader((x, y), settings.batch_size, seed, streams=ensemble.size)
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            out = ensemble(xb, per_member=True)
            b, n, d = out.shape
            fit = F.cross_entropy(out.reshape(b * n, d), yb.reshape(-1), reduction="none").view(b, n).mean(0)
            loss = fit.sum() + settings.weight_decay * l2_penalty(params)
            optimiser_step(params, opt, loss, lambda: ensemble.clip_member_grad_norms(CLIP_NORM))
        sched.step()


def spiral_run(kind: str, device: torch.device, epochs: int) -> Callable[[], None]:
    """Train the spiral ensemble batched, or its members one after another."""
    config = load_config("toy-spiral")
    problem = make_toy("spiral", seed=0)
    settings, arch = config.ensemble, config.arch

    def run() -> None:
        torch.manual_seed(5)
        if kind == "batched":
            ensemble = Ensemble.from_factory(lambda: build(arch, "member"), MEMBERS, batched=True).to(device)
            train_spiral(ensemble, problem.x_train, problem.y_train, epochs, settings, device, seed=0)
            return
        for i in range(MEMBERS):
            single = Ensemble([build(arch, "member")], batched=False).to(device)
            train_spiral(single, problem.x_train, problem.y_train, epochs, settings, device, seed=i)

    return run


def bench_spiral(device: torch.device, s: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"setting": f"toy-spiral MLP 2-100-100-100-100-3, N = {MEMBERS}, "
                                      f"{s.spiral_epochs} epochs", "epochs": s.spiral_epochs}
    runs = {kind: spiral_run(kind, device, s.spiral_epochs) for kind in ("batched", "sequential")}
    for kind, seconds in median_seconds(runs, device, 0, s.spiral_repeats).items():
        out[f"{kind}_s"] = seconds
        print(f"  spiral ensemble {kind}: {seconds:.2f} s", flush=True)
    out["speedup"] = out["sequential_s"] / out["batched_s"]
    return out


# --- 4. peak memory (one fresh process per configuration) ---------------------------------


def probe_callable(name: str, device: torch.device, s: Settings, teacher_file: Path | None
                   ) -> Callable[[], None]:
    if name.startswith("distil-"):
        return distil_step(name.removeprefix("distil-"), device, s.distil_examples, teacher_file)
    if name.startswith("spiral-"):
        return spiral_run(name.removeprefix("spiral-"), device, epochs=2)
    kind, batch = name.split("-b")
    return inference_call(kind, int(batch), device)


def peak_rss_kib() -> int:
    """This process's own peak RSS in KiB.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` also counts the parent's peak, which a
    child inherits across fork and exec, so in a forked probe it would hide the growth.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def warm_up_runtime() -> None:
    """Touch the conv, matmul, autograd and Adam kernels once, so their one-off buffers
    (thread pools, BLAS and oneDNN state) are not counted against the first configuration."""
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 64, 4))
    opt = torch.optim.Adam(conv.parameters())
    conv(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    torch.bmm(torch.randn(4, 2, 8), torch.randn(4, 8, 3))


def probe(name: str, device: torch.device, s: Settings, teacher_file: Path | None) -> float:
    """Peak memory (MiB) that building configuration ``name`` and running it adds."""
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        warm_up_runtime()
        base = peak_rss_kib()
    fn = probe_callable(name, device, s, teacher_file)
    for _ in range(s.probe_runs):
        fn()
    if device.type == "cuda":
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return (peak_rss_kib() - base) / 1024


def probe_in_child(name: str, device_type: str, threads: int, s: Settings, teacher_file: str) -> float:
    torch.set_num_threads(threads)
    return probe(name, torch.device(device_type), s, Path(teacher_file))


def measure_memory(device: torch.device, threads: int, s: Settings, teacher_file: Path) -> dict[str, float]:
    """Each configuration in its own fresh process, forked from a server that imported torch once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__"])
    peaks = {}
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for name in PROBES:
            peaks[name] = pool.apply(probe_in_child, (name, device.type, threads, s, str(teacher_file)))
            print(f"  peak memory {name}: {peaks[name]:.0f} MiB", flush=True)
    return peaks


# --- report -------------------------------------------------------------------------------


def machine(device: torch.device, threads: int) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "logical_cpus": os.cpu_count(), "threads": threads, "device": device.type,
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def verdict(value: float, target: float) -> str:
    return "yes" if value >= target else "NO"


def markdown(result: dict[str, Any]) -> str:
    m, d, inf, sp, mem = (result[k] for k in ("machine", "distillation", "inference", "ensemble_training",
                                              "peak_memory_mib"))
    b1, b256 = inf["batch_1"], inf[f"batch_{BATCH}"]
    frac = TARGETS["inference_fraction_of_flop_ratio"]
    rows = [
        ("Distillation throughput, " + d["setting"],
         f"{d['default']['samples_per_s']:.1f} samples/s (cached teacher, batched heads)",
         f"{d['naive']['samples_per_s']:.1f} samples/s (teacher every step, looped members and heads)",
         f"{d['speedup']:.2f}x", f">= {TARGETS['distillation_speedup']:.0f}x",
         verdict(d["speedup"], TARGETS["distillation_speedup"])),
        ("Distillation throughput with augmentation (crop 4 + flip), same setting",
         f"{d['augmented']['samples_per_s']:.1f} samples/s (teacher on every augmented batch, "
         "batched heads)",
         f"{d['naive']['samples_per_s']:.1f} samples/s (as above)",
         f"{d['augmented_speedup']:.2f}x", "-", "-"),
        ("Inference latency, batch 1",
         f"{b1['student_ms']:.2f} ms (Hydra+-{HEADS} student)",
         f"{b1['ensemble_ms']:.2f} ms (Ensemble-{MEMBERS})",
         f"{b1['speedup']:.2f}x ({100 * b1['fraction_of_flop_ratio']:.0f}% of FLOP ratio)", "-", "-"),
        (f"Inference latency, batch {BATCH}",
         f"{b256['student_ms']:.1f} ms (Hydra+-{HEADS} student)",
         f"{b256['ensemble_ms']:.1f} ms (Ensemble-{MEMBERS})",
         f"{b256['speedup']:.2f}x ({100 * b256['fraction_of_flop_ratio']:.0f}% of FLOP ratio "
         f"{inf['flop_ratio']:.2f}x)", f">= {100 * frac:.0f}% of FLOP ratio",
         verdict(b256["fraction_of_flop_ratio"], frac)),
        ("Ensemble training wall time, " + sp["setting"],
         f"{sp['batched_s']:.2f} s (batched members)",
         f"{sp['sequential_s']:.2f} s (one member after another)",
         f"{sp['speedup']:.2f}x", f">= {TARGETS['ensemble_training_speedup']:.0f}x",
         verdict(sp["speedup"], TARGETS["ensemble_training_speedup"])),
    ]
    if "external_teacher" in result:
        ext = result["external_teacher"]
        rows.insert(2, ("Distillation from a user's teacher (20 plain modules) vs the same members in "
                        "hydraplus' Ensemble, " + ext["setting"],
                        f"{ext['external']['samples_per_s']:.1f} samples/s (external)",
                        f"{ext['ensemble']['samples_per_s']:.1f} samples/s (Ensemble)",
                        f"{ext['external_over_ensemble']:.2f}x", "~1x", "-"))
    flops = inf["flops_per_image"]
    lines = [
        "# Speed benchmark",
        "",
        f"Command: `{result['command']}`" + (" (quick mode: indicative only)" if result["quick"] else ""),
        "",
        "| Benchmark | Ours | Naive baseline | Speed-up | Target | Met |",
        "|---|---|---|---|---|---|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"FLOPs per image (2 x multiply-adds): student {flops['student'] / 1e6:.1f} M, "
        f"ensemble {flops['ensemble'] / 1e6:.1f} M. Teacher-output cache built once for "
        f"{d['examples']} examples in {d['cache_build_s']:.2f} s "
        f"({d['cache_build_samples_per_s']:.0f} samples/s).",
        "",
        "| Configuration | Peak memory MiB |",
        "|---|---|",
        *(f"| {name} | {value:.0f} |" for name, value in mem.items()),
        "",
        "Peak memory: " + ("growth of `torch.cuda.max_memory_allocated`" if m["device"] == "cuda" else
                           "growth of the peak RSS (`VmHWM`, else `ru_maxrss`)") +
        f" while building and running the configuration {result['settings']['probe_runs']} time(s), "
        "each in a fresh process.",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in m.items()),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, finishes in under a minute")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    settings = Settings.of(args.quick)
    print(f"speed benchmark on {device}, {args.threads} threads{', quick' if args.quick else ''}", flush=True)
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]), "quick": args.quick,
        "settings": asdict(settings), "targets": TARGETS, "machine": machine(device, args.threads),
    }
    with tempfile.TemporaryDirectory() as tmp:
        teacher_file, cache_s = build_cache(device, settings.distil_examples, Path(tmp))
        result["distillation"] = bench_distillation(device, settings, teacher_file, cache_s)
        if device.type == "cpu":
            result["external_teacher"] = bench_external_teacher(settings)
        result["inference"] = bench_inference(device, settings)
        result["ensemble_training"] = bench_spiral(device, settings)
        result["peak_memory_mib"] = measure_memory(device, args.threads, settings, teacher_file)
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "speed.json"
    if previous.exists() and "paths" in (kept := json.loads(previous.read_text())):
        result["paths"] = kept["paths"]  # benchmarks/paths.py's ratios, written there
    previous.write_text(json.dumps(result, indent=2) + "\n")
    report = markdown(result)
    (args.out / "speed.md").write_text(report)
    print()
    print(report)


if __name__ == "__main__":
    main()
