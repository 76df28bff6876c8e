"""Train a few members of an image preset with changed architecture settings; score them on validation.

Used to choose the cpu-cifar10 members: each variant is a list of ``key=value`` overrides of the
LeNet member (``pooled``, ``hidden``); the core and the heads' input width follow ``pooled`` so the
students stay consistent. Members are scored on the run's validation split, never the test split.

    python scripts/member_variants.py cpu-cifar10 --data ../shared/data/cifar10_train.npz \\
        pooled=4,hidden=64 pooled=8,hidden=64 pooled=8,hidden=128
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from hydraplus.config import parse_config, read_config
from hydraplus.core.predict import predict
from hydraplus.pipeline.config_run import load_problem
from hydraplus.pipeline.train import train_ensemble
from hydraplus.runtime import keep_allocator_memory


def variant(config: dict[str, Any], overrides: str, members: int) -> dict[str, Any]:
    """The config of one ``key=value,key=value`` member variant with ``members`` members."""
    config = copy.deepcopy(config)
    arch = config["arch"]
    for part in overrides.split(","):
        key, value = part.split("=")
        if key not in ("pooled", "hidden"):
            raise ValueError(f"unknown member setting {key!r} in {overrides!r}: use pooled or hidden")
        arch["member"][key] = int(value)
    pooled = arch["member"].get("pooled", 4)
    arch["core"]["pooled"] = pooled
    arch["head"]["in_features"] = arch["core"]["widths"][-1] * pooled * pooled
    config["ensemble"]["members"] = members
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a built-in image config name or a JSON file")
    parser.add_argument("variants", nargs="+", help="key=value[,key=value...]")
    parser.add_argument("--data", required=True, help="the image data (folder or .npz)")
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    keep_allocator_memory()
    base = read_config(args.config)
    problem = None
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for overrides in args.variants:
            config = parse_config(variant(base, overrides, args.members))
            problem = problem or load_problem(config, args.seed, args.data)
            ensemble, seconds, _ = train_ensemble(config, problem, Path(tmp) / overrides, args.seed,
                                                  progress=False)
            probs = predict(ensemble, problem.x_val, precision=config.precision).float().softmax(-1)
            members_wrong = (probs.argmax(-1) != problem.y_val[:, None]).float().mean(0)
            ensemble_wrong = (probs.mean(1).argmax(-1) != problem.y_val).float().mean()
            results[overrides] = {
                "member_val_error_%": [round(100 * e, 2) for e in members_wrong.tolist()],
                "ensemble_val_error_%": round(100 * ensemble_wrong.item(), 2),
                "train_s": round(seconds, 1),
            }
            print(json.dumps({overrides: results[overrides]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
