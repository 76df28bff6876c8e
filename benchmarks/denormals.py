"""What subnormal weights cost a trained member, with and without flushing them to zero.

Weight decay shrinks the weights of features a ReLU never lets through until they are subnormal
floats, which an x86 CPU multiplies in microcode. This builds the preset's member (laid out as it
is trained), gives a share of its first fully connected layer's weights subnormal values
(``--share``; the default 3.1% is what a trained ``cpu-fashion-mnist`` member's 1568-64 layer
held: 3,110 of 100,352), and times inference on ``--images`` inputs and training steps (AdamW) in
two fresh processes: one that flushes subnormals to zero from its start
(`hydraplus.runtime.flushing_denormals`, as the CLI does), one with ``HYDRAPLUS_DENORMALS=keep``.
Prints milliseconds (medians) and the kept/flushed ratios, and records how many subnormal weights
each process sees (none where they read as zero); ``--out`` writes
``denormals-PRESET.json``.

    OMP_NUM_THREADS=2 python benchmarks/denormals.py cpu-fashion-mnist --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("flush", "keep")
SMALLEST_NORMAL_BITS = 0x00800000  # float32 bit patterns below this (exponent 0) are subnormal


def child(args: argparse.Namespace) -> dict[str, float | int]:
    """Time the member in this process (flushing unless HYDRAPLUS_DENORMALS=keep)."""
    import numpy as np
    import torch
    from preset_step import IMAGE_SHAPES
    from torch import nn

    from hydraplus.config.load import load_config
    from hydraplus.core.predict import predict
    from hydraplus.pipeline.builders import build_ensemble, build_members
    from hydraplus.runtime import flushing_denormals

    with flushing_denormals():  # before torch's first parallel operation, as in the CLI
        torch.manual_seed(args.seed)
        config = load_config(args.preset)
        member = build_members(config, build_ensemble(config))[0]
        layer = next(m for m in member.modules() if isinstance(m, nn.Linear))
        rng = np.random.default_rng(args.seed)
        flat = layer.weight.data.view(-1)
        chosen = torch.from_numpy(rng.choice(flat.numel(), round(args.share * flat.numel()), replace=False))
        bits = rng.integers(1, SMALLEST_NORMAL_BITS, len(chosen)) | (rng.integers(0, 2, len(chosen)) << 31)
        flat[chosen] = torch.from_numpy(bits.astype(np.uint32).view(np.float32))  # bits, no arithmetic
        smallest_normal = torch.finfo(torch.float32).tiny
        seen = int(((flat != 0) & (flat.abs() < smallest_normal)).sum())  # 0 where they read as zero
        shape = IMAGE_SHAPES.get(config.data.name, (3, 32, 32))
        images = torch.randn(args.images, *shape)
        x, y = torch.randn(args.batch, *shape), torch.randint(0, 10, (args.batch,))
        optimiser = torch.optim.AdamW(member.parameters(), config.ensemble.lr,
                                      weight_decay=config.ensemble.weight_decay)

        def infer() -> None:
            predict(member, images)

        def step() -> None:
            loss = nn.functional.cross_entropy(member(x).squeeze(1), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        result = {"subnormals_seen": seen}
        for name, work in (("inference_ms", infer), ("train_step_ms", step)):
            times = []
            for repeat in range(args.warmup + args.repeats):
                start = time.perf_counter()
                work()
                if repeat >= args.warmup:
                    times.append(time.perf_counter() - start)
            result[name] = 1000 * statistics.median(times)
        return result


def main(argv: list[str] | None = None) -> dict[str, dict[str, float | int]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="cpu-fashion-mnist")
    parser.add_argument("--share", type=float, default=0.031, help="share of subnormal weights")
    parser.add_argument("--images", type=int, default=2048, help="inputs per inference")
    parser.add_argument("--batch", type=int, default=256, help="training batch")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="folder for denormals-PRESET.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 <= args.share <= 1:
        parser.error(f"--share must be in [0, 1], got {args.share}")
    if args.child:
        print(json.dumps(child(args)))
        return {}
    passed = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--child"]
    results = {}
    for mode in MODES:
        env = {**os.environ, "HYDRAPLUS_DENORMALS": "keep" if mode == "keep" else ""}
        out = subprocess.run([sys.executable, __file__, *passed, "--child"], capture_output=True, text=True,
                             check=True, env=env).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    ratios = {key: results["keep"][key] / results["flush"][key]
              for key in results["flush"] if key.endswith("_ms")}
    for key, ratio in ratios.items():
        print(f"{key:>14}: kept {results['keep'][key]:8.1f}  flushed {results['flush'][key]:8.1f}  "
              f"({ratio:.2f}x)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {"preset": args.preset, "share": args.share, "images": args.images, "batch": args.batch,
                  "repeats": args.repeats, "threads": os.environ.get("OMP_NUM_THREADS"), **results,
                  "kept_over_flushed": ratios}
        (args.out / f"denormals-{args.preset}.json").write_text(json.dumps(record, indent=2) + "\n")
    return {**results, "kept_over_flushed": ratios}


if __name__ == "__main__":
    main()
