"""What every data set hands to the runner: named train/validation/test splits."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class Problem:
    """Train/validation/test tensors of one task (``classification`` or ``regression``)."""

    name: str
    task: str
    num_outputs: int
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor

    @property
    def in_features(self) -> int:
        """Input features (toy problems) or channels (images): ``x_train.shape[1]``."""
        return self.x_train.shape[1]
