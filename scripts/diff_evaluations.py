"""Print how far two evaluation.json files of the same run apart are, number by number.

Used to check what a change of the metrics moves: evaluate one run folder with the old and the
new code (`hydraplus evaluate RUN --out DIR` from each checkout), then

    python scripts/diff_evaluations.py OLD/evaluation.json NEW/evaluation.json

Timings (keys holding ``latency`` or ``seconds``) are left out; keys only one file has are
counted, not compared. A file written before the one row layout is read in it
(`hydraplus.metrics.upgrade`), so old and new files compare metric by metric.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hydraplus.metrics import upgrade


def numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """Every number below ``value`` (nested dicts and lists), keyed by its dotted path."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    out: dict[str, float] = {}
    for key, item in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict | list):
            out.update(numbers(item, path))
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out[path] = float(item)
    return out


def compared(old: dict[str, float], new: dict[str, float]) -> list[tuple[float, str, float, float]]:
    """(absolute change, key, old, new) for the keys both have, timings left out; largest first."""
    keys = [k for k in old if k in new and "latency" not in k and "seconds" not in k]
    return sorted(((abs(old[k] - new[k]), k, old[k], new[k]) for k in keys), reverse=True)


def models(path: Path) -> dict[str, Any]:
    """The model rows of the evaluation file ``path``, in the current layout."""
    evaluation = json.loads(path.read_text())
    return (upgrade(evaluation) if "kind" in evaluation else evaluation)["models"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--top", type=int, default=3, help="largest changes shown per model")
    args = parser.parse_args()
    old, new = (models(p) for p in (args.old, args.new))
    for model in old:
        if model not in new:
            print(f"{model}: only in {args.old}")
            continue
        a, b = numbers(old[model]), numbers(new[model])
        rows = compared(a, b)
        only = len(set(b) - set(a))
        largest = "; ".join(f"{k} {x:.6g} -> {y:.6g}" for _, k, x, y in rows[: args.top])
        print(f"{model}: {len(rows)} numbers compared, {only} new; largest changes: {largest}")


if __name__ == "__main__":
    main()
