"""Does redrawing the toy regression's training points every epoch explain the authors' RMSE?

The authors' loaders draw new noisy points on every pass, so over 200 epochs each member sees
200 x 240 points instead of the same 240. This trains the toy-regression ensemble (paper
settings, N = 20, 200 epochs, hydraplus' engine) both ways on the same seeds and prints the
test RMSE of each: fixed data (hydraplus' default) and fresh points every epoch, each member
its own draw.

    OMP_NUM_THREADS=2 python scripts/regression_redraw.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from hydraplus.config import load_config
from hydraplus.core.metrics import RegressionMetrics
from hydraplus.core.predict import predict
from hydraplus.data.toy import REGRESSION_RANGE, make_regression, regression_function
from hydraplus.engine.data import TensorBatches
from hydraplus.engine.modules import EnsembleModule
from hydraplus.engine.trainer import fit
from hydraplus.pipeline.builders import build_ensemble
from hydraplus.pipeline.train import derived_seed


class FreshPoints(Sampler[Tensor]):
    """Epoch e, member n: its own block of ``per_epoch`` rows of the pre-drawn data, shuffled."""

    def __init__(self, per_epoch: int, members: int, batch_size: int, seed: int):
        self.per_epoch, self.members, self.batch_size, self.seed = per_epoch, members, batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        base = (self.epoch * self.members + torch.arange(self.members)) * self.per_epoch
        order = torch.stack([torch.randperm(self.per_epoch, generator=g) for _ in range(self.members)], 1)
        yield from torch.split(order + base, self.batch_size)

    def __len__(self) -> int:
        return -(-self.per_epoch // self.batch_size)


def fresh_loader(epochs: int, members: int, per_epoch: int, batch_size: int, seed: int) -> DataLoader:
    """Every (epoch, member) block drawn as the toy problem draws its 240 training points."""
    rng = np.random.default_rng(10_000 + seed)
    n = epochs * members * per_epoch
    x = rng.uniform(-REGRESSION_RANGE, REGRESSION_RANGE, size=n)
    y = regression_function(x) + rng.normal(size=n)
    tensors = (torch.tensor(x, dtype=torch.float32).reshape(-1, 1), torch.tensor(y, dtype=torch.float32))
    return DataLoader(TensorBatches(*tensors), sampler=FreshPoints(per_epoch, members, batch_size, seed),
                      batch_size=None)


def test_rmse(seed: int, fresh: bool, folder: Path) -> float:
    config = load_config("toy-regression")
    problem = make_regression(seed)
    s = config.ensemble
    L.seed_everything(derived_seed(seed, "ensemble"), verbose=False)
    ensemble = build_ensemble(config)
    if fresh:
        loader = fresh_loader(s.epochs, s.members, len(problem.x_train), s.batch_size, seed)
    else:
        from hydraplus.engine.data import seeded_loader

        loader = seeded_loader((problem.x_train, problem.y_train), s.batch_size, seed, streams=s.members)
    module = EnsembleModule(ensemble, "regression", s.lr, s.weight_decay, s.epochs)
    fit(module, loader, folder=folder, label="regression", epochs=s.epochs, progress=False,
        checkpoint_every=s.epochs)
    metrics = RegressionMetrics()
    metrics.update(predict(ensemble, problem.x_test), problem.y_test)
    return metrics.compute()["rmse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            results[seed] = {kind: test_rmse(seed, kind == "fresh", Path(tmp) / f"{kind}-{seed}")
                             for kind in ("fixed", "fresh")}
            print(json.dumps({seed: results[seed]}), flush=True)
    for kind in ("fixed", "fresh"):
        values = np.array([r[kind] for r in results.values()])
        print(f"{kind}: test RMSE {values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}")


if __name__ == "__main__":
    main()
