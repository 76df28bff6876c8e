"""Build the two evaluation files used in docs/results/cpu-cifar10 (data: not committed).

unseen.npz:  2,000 CIFAR-10 images of cifar10_train.npz that none of the seed 1-3 runs of the
             cpu-cifar10 preset trained, validated or tested on (the preset's seeded splits,
             recomputed with the same numpy generator as hydraplus.data.images).
fashion.npz: 2,000 Fashion-MNIST test images, resized to 32x32 and replicated to 3 channels
             (out-of-distribution data for the CIFAR-10 models).

Usage: python scripts/make_eval_files.py CIFAR_NPZ FASHION_MNIST_DIR OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hydraplus.config import read_config
from hydraplus.data.images import read_fashion_mnist


def main(cifar: str, fashion: str, out: str) -> None:
    data = read_config("cpu-cifar10")["data"]
    with np.load(cifar) as f:
        x, y = f["x_train"], f["y_train"]
    seen = np.zeros(len(x), dtype=bool)
    for seed in (1, 2, 3):
        order = np.random.default_rng(seed).permutation(len(x))
        n_test = round(data["test_fraction"] * len(order))
        seen[order[n_test:][: data["limit"]]] = True  # train + validation
        seen[order[:n_test]] = True  # the test split (a subset of it is the test set)
    unseen = np.flatnonzero(~seen)
    pick = np.sort(np.random.default_rng(0).choice(unseen, 2000, replace=False))
    Path(out).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(Path(out) / "unseen.npz", x_test=x[pick], y_test=y[pick])
    raw = read_fashion_mnist(fashion, train=False, size=32, channels=3)
    keep = np.random.default_rng(0).choice(len(raw.x), 2000, replace=False)
    images = raw.x[keep].permute(0, 2, 3, 1).numpy()
    np.savez_compressed(Path(out) / "fashion.npz", x_test=images, y_test=raw.y[keep].numpy())
    print(f"unseen.npz: {len(pick)} of {len(unseen)} never-seen images; fashion.npz: {len(keep)}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
