"""What the diversity term costs in a preset's Hydra+ distillation step, in one run.

Times one training step (forward, the method's losses, backward, Adam) of the preset's Hydra+-M
student on random inputs and cached-teacher outputs, three ways taking turns repeat by repeat:
``lambda=0`` (no diversity term), the library's L4 (``gram``: read off the heads' Gram matrix)
and ``cosine`` (the same L4 written with one ``cosine_similarity`` per layer, the form the
library used before). Prints milliseconds per step (medians) and each path's ratio to
``lambda=0``; ``--out`` also writes them to ``diversity_step-PRESET.json``.

    OMP_NUM_THREADS=1 python benchmarks/diversity_step.py cpu-fashion-mnist --out docs/benchmarks
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from preset_step import preset_step, step_arguments
from torch import Tensor

import hydraplus.methods.hydra as hydra_method

PATHS = ("lambda=0", "gram", "cosine")


def cosine_diversity(head_rows: Sequence[Tensor]) -> Tensor:
    """L4 by per-row cosines against the mean row (autograd through ``cosine_similarity``)."""
    total = head_rows[0].new_zeros(())
    for rows in head_rows:
        mean = rows.mean(0, keepdim=True).expand_as(rows)
        total = total + ((1.0 + F.cosine_similarity(mean, rows, dim=-1, eps=1e-8)) / 2.0).sum()
    return total


def step_timer(preset: str, batch: int, seed: int) -> Callable[[str], float]:
    """A function that runs one step of the preset's fixed-lambda Hydra+ student along ``path``
    and returns its seconds."""
    setup = preset_step(preset, batch, seed)
    spec, student, method = setup.spec, setup.student, setup.method
    x, y, teacher = setup.x, setup.y, setup.teacher
    optimiser = torch.optim.Adam(student.parameters(), spec.lr)
    lam, library_loss = spec.lam.value, hydra_method.diversity_loss

    def step(path: str) -> float:
        weight = 0.0 if path == "lambda=0" else lam
        hydra_method.diversity_loss = cosine_diversity if path == "cosine" else library_loss
        try:
            start = time.perf_counter()
            terms = method.loss_terms(student, x, y, teacher, "classification", spec, weight)
            loss = method.total(terms, spec, weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            return time.perf_counter() - start
        finally:
            hydra_method.diversity_loss = library_loss

    return step


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = step_arguments(__doc__.splitlines()[0], "cpu-fashion-mnist", 30, "diversity_step-PRESET.json")
    args = parser.parse_args(argv)
    step = step_timer(args.preset, args.batch, args.seed)
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    for repeat in range(args.warmup + args.repeats):
        for path in PATHS:
            seconds = step(path)
            if repeat >= args.warmup:
                times[path].append(seconds)
    ms = {path: 1000 * statistics.median(values) for path, values in times.items()}
    for path in PATHS:
        print(f"{path:>9}: {ms[path]:7.1f} ms/step  ({ms[path] / ms['lambda=0']:.2f}x lambda=0)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {"preset": args.preset, "batch": args.batch, "repeats": args.repeats,
                  "threads": torch.get_num_threads(), "ms_per_step": ms}
        (args.out / f"diversity_step-{args.preset}.json").write_text(json.dumps(record, indent=2) + "\n")
    return ms


if __name__ == "__main__":
    main()
