"""What the engine's pass-saving settings buy in a preset's Hydra+ distillation step, in one run.

Times one training step (forward, the method's losses, backward, gradient clipping, Adam) of the
preset's fixed-lambda Hydra+-M student on random inputs and cached-teacher outputs, under
deterministic algorithms as the trainer runs it, two ways taking turns repeat by repeat:

* ``before``: the L2 term through autograd's ``pow`` (three passes over every weight in the
  backward), new tensors filled with NaN (deterministic mode's default) and single-tensor Adam;
* ``after``: the library's `l2_penalty` (one pass), no filling, multi-tensor Adam (the engine now).

Both give the same floats (tested). ``--allocator keep`` sets glibc's allocator as the CLI does,
``default`` leaves it. Prints milliseconds per step (medians) and the ratio; ``--out`` also writes
``step_passes-PRESET.json``.

    OMP_NUM_THREADS=2 python benchmarks/step_passes.py cpu-cifar10 --out docs/benchmarks
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import partial

import torch
import torch.utils.deterministic
from paths import median_times
from preset_step import preset_step, step_arguments
from torch import Tensor

import hydraplus.methods.base as method_base
from hydraplus.core.losses import l2_penalty
from hydraplus.runtime import flushing_denormals, keep_allocator_memory

PATHS = ("before", "after")


def pow_l2_penalty(params: Iterable[Tensor]) -> Tensor:
    """0.5 ||theta||^2 as the library wrote it before: autograd through ``pow``."""
    total: Tensor | None = None
    for p in params:
        term = p.pow(2).sum()
        total = term if total is None else total + term
    return 0.5 * total if total is not None else torch.zeros(())


def step_timer(preset: str, batch: int, seed: int) -> Callable[[str], None]:
    """A function that runs one step of the preset's fixed-lambda Hydra+ student along ``path`` (each
    path with its own Adam, on the same student)."""
    setup = preset_step(preset, batch, seed)
    spec, student, method = setup.spec, setup.student, setup.method
    x, y, teacher = setup.x, setup.y, setup.teacher
    optimisers = {"before": torch.optim.Adam(student.parameters(), spec.lr, foreach=False),
                  "after": torch.optim.Adam(student.parameters(), spec.lr, foreach=True)}
    lam = spec.lam.value

    def step(path: str) -> None:
        method_base.l2_penalty = pow_l2_penalty if path == "before" else l2_penalty
        torch.utils.deterministic.fill_uninitialized_memory = path == "before"
        try:
            terms = method.loss_terms(student, x, y, teacher, "classification", spec, lam)
            loss = method.total(terms, spec, lam)
            optimisers[path].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
            optimisers[path].step()
        finally:
            method_base.l2_penalty = l2_penalty
            torch.utils.deterministic.fill_uninitialized_memory = False

    return step


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = step_arguments(__doc__.splitlines()[0], "cpu-cifar10", 40, "step_passes-PRESET.json")
    parser.add_argument("--allocator", choices=("keep", "default"), default="keep")
    args = parser.parse_args(argv)
    kept = keep_allocator_memory() if args.allocator == "keep" else False
    torch.use_deterministic_algorithms(True)
    step = step_timer(args.preset, args.batch, args.seed)
    with flushing_denormals():
        seconds = median_times({path: partial(step, path) for path in PATHS}, args.warmup, args.repeats)
    ms = {path: 1000 * value for path, value in seconds.items()}
    speedup = ms["before"] / ms["after"]
    print(f"{args.preset}: before {ms['before']:.1f} ms/step, after {ms['after']:.1f} ms/step "
          f"({speedup:.2f}x; allocator {'kept' if kept else 'default'}, {torch.get_num_threads()} threads)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {"preset": args.preset, "batch": args.batch, "repeats": args.repeats,
                  "threads": torch.get_num_threads(), "allocator_kept": kept, "ms_per_step": ms,
                  "speedup": round(speedup, 3)}
        (args.out / f"step_passes-{args.preset}.json").write_text(json.dumps(record, indent=2) + "\n")
    return {**ms, "speedup": speedup}


if __name__ == "__main__":
    main()
