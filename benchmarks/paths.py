"""Numerical paths of the distillation step and of inference, with and without the allocator setting.

The SVHN-LeNet setting (N = M = 20, batch 256, random 32x32x3 inputs, cached teacher outputs,
the full Hydra+ loss through the method object, Adam, clipping) in these paths: the engine's path
when the speed work began (float32 NCHW, and the LeNet layers as they were then: ReLUs out of
place and before each max-pool; ``fp32_nchw_as_filed``, the reference of every speed-up), today's
code in float32 NCHW, bf16 autocast, channels-last, both, and both with the student (and for
inference the ensemble too) compiled by ``torch.compile``; plus the naive path (the 20 members
run every step one after another, heads looped: what the authors' code does). Inference: the
Hydra+-20 student against the 20-member ensemble at batch 1 and 256 in each path. The paths of
one allocator setting take turns repeat by repeat in one process; each allocator setting is its
own process (glibc's setting is process-wide), run one after the other.

    OMP_NUM_THREADS=2 python benchmarks/paths.py --out docs/benchmarks

Writes ``paths.json`` and ``paths.md``, and its ratios into ``speed.json`` under ``paths`` (keys
name the path: ``bf16_channels_last_speedup`` is that path's distillation images/s over the
as-filed path's, both in this run; ``..._vs_current_fp32_nchw`` over today's code in float32).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

PATHS = {"fp32_nchw_as_filed": ("32", False, False), "fp32_nchw": ("32", False, False),
         "bf16": ("bf16-mixed", False, False), "channels_last": ("32", True, False),
         "bf16_channels_last": ("bf16-mixed", True, False),
         "bf16_channels_last_compiled": ("bf16-mixed", True, True)}
TODAY = "fp32_nchw_as_filed"  # the reference of every speed-up: the engine's path when the work began
MEMBERS = HEADS = 20
BATCH = 256
TARGETS = {"distillation_vs_today": 5.0, "distillation_vs_naive": 10.0, "b1_fraction_of_flop_ratio": 0.7}


def as_filed(model: nn.Module) -> nn.Module:
    """Undo, in place, the layer changes made for speed since the work began: out-of-place ReLUs,
    and a ReLU before each max-pool instead of after it (same values and gradients, slower)."""
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.MaxPool2d) and isinstance(module[i + 1], nn.ReLU):
                    module[i], module[i + 1] = module[i + 1], module[i]
    return model


def median_times(fns: dict[str, Callable[[], Any]], warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds per call; the callables take turns so drift hits them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


def measure(warmup: int, repeats: int, infer_repeats: int) -> dict[str, Any]:
    """Every path's distillation step and inference latencies, in this process."""
    from hydraplus.config import StudentSpec
    from hydraplus.core.containers import Ensemble, MultiHeadStudent
    from hydraplus.core.memory_format import use_channels_last
    from hydraplus.core.precision import autocast
    from hydraplus.core.profile import count_flops
    from hydraplus.core.schedules import LambdaSchedule
    from hydraplus.methods import get_method
    from hydraplus.models import lenet_core, lenet_head, lenet_member

    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (BATCH,), generator=g)
    torch.manual_seed(1)
    members = [lenet_member() for _ in range(MEMBERS)]
    with torch.no_grad():
        cached = Ensemble(members, batched=False)(x)
    spec = StudentSpec("hydra+", heads=HEADS, alpha=0.95, beta=0.9, t_ind=5.0, lam=LambdaSchedule(5e-4),
                       lr=1e-3, weight_decay=1e-7)
    method = get_method("hydra+")

    def laid_out(model: nn.Module, name: str) -> nn.Module:
        _, channels_last, compiled = PATHS[name]
        if name == TODAY:
            as_filed(model)
        if channels_last:
            use_channels_last(model)
        if compiled:
            model.compile()
        return model

    def student(name: str) -> nn.Module:
        torch.manual_seed(3)
        return laid_out(MultiHeadStudent.from_factories(lenet_core, lenet_head, HEADS), name)

    def step(model: nn.Module, precision: str,
             teacher: Callable[[Tensor], Tensor] | None) -> Callable[[], None]:
        params = list(model.parameters())
        opt = torch.optim.Adam(params, lr=spec.lr)

        def run() -> None:
            with autocast(precision, "cpu"):
                t = cached if teacher is None else teacher(x)
                terms = method.loss_terms(model, x, y, t, "classification", spec, spec.lam.value)
                loss = method.total(terms, spec, spec.lam.value)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()

        return run

    naive_teacher = Ensemble(members, batched=False).eval()

    def run_teacher(inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return naive_teacher(inputs)

    naive_student = MultiHeadStudent.from_factories(lenet_core, lenet_head, HEADS, batched=False)
    steps = {name: step(student(name), PATHS[name][0], None) for name in PATHS}
    steps["naive"] = step(naive_student, "32", run_teacher)
    seconds = median_times(steps, warmup, repeats)
    out: dict[str, Any] = {"distillation_images_per_s": {k: BATCH / v for k, v in seconds.items()}}

    def teacher_step(name: str) -> Callable[[], None]:
        """The student's step with the ensemble run on every batch, as augmentation makes it."""
        teacher = laid_out(Ensemble(copy.deepcopy(members)).eval(), name)

        def run_it(inputs: Tensor) -> Tensor:
            with torch.no_grad():
                return teacher(inputs)

        return step(student(name), PATHS[name][0], run_it)

    def ensemble_step(name: str) -> Callable[[], None]:
        """One training step of the N members (cross-entropy per member, summed; Adam, clipping)."""
        torch.manual_seed(1)
        ensemble = laid_out(Ensemble([lenet_member() for _ in range(MEMBERS)]), name)
        params = list(ensemble.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        targets = y.repeat_interleave(MEMBERS)

        def run() -> None:
            with autocast(PATHS[name][0], "cpu"):
                logits = ensemble(x)
            loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), targets) * MEMBERS
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()

        return run

    for key, make in (("augmented_distillation_images_per_s", teacher_step),
                      ("ensemble_training_images_per_s", ensemble_step)):
        slow = median_times({name: make(name) for name in PATHS}, 1, max(3, repeats // 2))
        out[key] = {k: BATCH / v for k, v in slow.items()}

    example = torch.randn(1, 3, 32, 32)
    ensemble = Ensemble(members).eval()
    flops = {"student": count_flops(student("fp32_nchw").eval(), example),
             "ensemble": count_flops(ensemble, example)}
    out["flop_ratio"] = flops["ensemble"] / flops["student"]
    for batch in (1, BATCH):
        inputs = torch.randn(batch, 3, 32, 32)
        calls: dict[str, Callable[[], None]] = {}
        for name, (precision, _, _) in PATHS.items():
            teacher = laid_out(Ensemble(copy.deepcopy(members)).eval(), name)
            for kind, model in (("student", student(name).eval()), ("ensemble", teacher)):
                def call(model: nn.Module = model, precision: str = precision,
                         inputs: Tensor = inputs) -> None:
                    with torch.inference_mode(), autocast(precision, "cpu"):
                        model(inputs)
                calls[f"{name}/{kind}"] = call
        ms = {k: 1e3 * v for k, v in median_times(calls, 2, infer_repeats if batch == 1 else repeats).items()}
        out[f"inference_b{batch}_ms"] = ms
    return out


def child(args: argparse.Namespace) -> None:
    from hydraplus.runtime import keep_allocator_memory

    applied = keep_allocator_memory()
    torch.set_num_threads(args.threads)
    result = measure(args.warmup, args.repeats, args.infer_repeats)
    result["allocator_kept"] = applied
    result["cpu_system_s"] = os.times().system
    print(json.dumps(result))


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Numerical paths (distillation step and inference)", "",
             f"Command: `{result['command']}`", "",
             "Distillation step, SVHN-LeNet setting (N = M = 20, batch 256, cached teacher, full Hydra+ "
             "loss, Adam, clipping): images/s and speed-up over today's path (float32 NCHW, default "
             "allocator, the layers as they were: `fp32_nchw_as_filed`; `fp32_nchw` is today's code in "
             "float32 NCHW).", "",
             "| path | default allocator | allocator keeps memory |", "|---|---:|---:|"]
    base = result["default"]["distillation_images_per_s"][TODAY]
    for name in [*PATHS, "naive"]:
        rates = [r["distillation_images_per_s"][name] for r in (result["default"], result["keep"])]
        cells = [f"{rate:.0f} ({rate / base:.2f}x)" for rate in rates]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for key, what in (("augmented_distillation_images_per_s", "Distillation with the teacher run on every "
                       "batch (as augmentation makes it)"),
                      ("ensemble_training_images_per_s", "Ensemble training step (N = 20 members, "
                       "cross-entropy per member, Adam, clipping)")):
        base = result["default"][key][TODAY]
        lines += ["", f"{what}: images/s and speed-up over `{TODAY}` with the default allocator.", "",
                  "| path | default allocator | allocator keeps memory |", "|---|---:|---:|"]
        for name in PATHS:
            cells = [f"{r[key][name]:.0f} ({r[key][name] / base:.2f}x)"
                     for r in (result["default"], result["keep"])]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Inference latency in ms (student / ensemble; speed-up as a share of the "
              f"{result['keep']['flop_ratio']:.2f}x FLOP ratio), allocator keeps memory:", "",
              "| path | batch 1 | batch 256 |", "|---|---:|---:|"]
    r = result["keep"]
    for name in PATHS:
        cells = []
        for batch in (1, BATCH):
            ms = r[f"inference_b{batch}_ms"]
            s, e = ms[f"{name}/student"], ms[f"{name}/ensemble"]
            cells.append(f"{s:.2f} / {e:.2f} ({100 * e / s / r['flop_ratio']:.0f}%)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios: " + ", ".join(f"`{k}` {v:.2f}" for k, v in result["ratios"].items()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--infer-repeats", type=int, default=50)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    result: dict[str, Any] = {"command": " ".join(["python", *sys.argv])}
    for allocator in ("default", "keep"):
        env = {**os.environ, "HYDRAPLUS_ALLOCATOR": "default" if allocator == "default" else "keep"}
        out = subprocess.run([sys.executable, __file__, "--child", "--threads", str(args.threads),
                              "--warmup", str(args.warmup), "--repeats", str(args.repeats),
                              "--infer-repeats", str(args.infer_repeats)],
                             env=env, capture_output=True, text=True, check=True).stdout
        result[allocator] = json.loads(out.strip().splitlines()[-1])
        print(allocator, json.dumps(result[allocator]["distillation_images_per_s"]), flush=True)
    today = result["default"]["distillation_images_per_s"][TODAY]
    current = result["default"]["distillation_images_per_s"]["fp32_nchw"]
    keep = result["keep"]
    ms1 = keep["inference_b1_ms"]
    result["ratios"] = {
        **{f"{name}_speedup": keep["distillation_images_per_s"][name] / today for name in PATHS},
        **{f"{name}_speedup_default_allocator": result["default"]["distillation_images_per_s"][name] / today
           for name in PATHS},
        **{f"{name}_speedup_vs_current_fp32_nchw": keep["distillation_images_per_s"][name] / current
           for name in PATHS},
        **{f"{name}_{key.split('_images')[0]}_speedup": keep[key][name] / result["default"][key][TODAY]
           for key in ("augmented_distillation_images_per_s", "ensemble_training_images_per_s")
           for name in PATHS},
        "best_vs_naive": max(keep["distillation_images_per_s"][n] for n in PATHS)
        / result["default"]["distillation_images_per_s"]["naive"],
        "b1_fraction_of_flop_ratio_best": max(ms1[f"{n}/ensemble"] / ms1[f"{n}/student"] for n in PATHS)
        / keep["flop_ratio"],
        "b1_fraction_of_flop_ratio_fastest_vs_fastest": min(ms1[f"{n}/ensemble"] for n in PATHS)
        / min(ms1[f"{n}/student"] for n in PATHS) / keep["flop_ratio"],
    }
    result["targets"] = TARGETS
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "paths.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "paths.md").write_text(markdown(result))
    speed = args.out / "speed.json"
    merged = json.loads(speed.read_text()) if speed.exists() else {}
    merged["paths"] = {"command": result["command"], **result["ratios"]}
    speed.write_text(json.dumps(merged, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
