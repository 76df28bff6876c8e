"""Every model's outputs on one input set, each computed once: an evaluation runs up to a dozen models
on each of its 30-odd test sets (clean, shifted, corrupted, OOD, validation).

The inputs are checked for NaN and infinities once, not once per model, and a spread-scaled student
(`hydraplus.core.spread.SpreadScaled`) takes its outputs from its student's, when that student ran
on the same inputs first: the same floats as its own forward pass in float32 (under bf16 autocast
its heads are moved from the student's outputs in float32 instead of being rounded to bfloat16).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hydraplus.core.checks import check_finite
from hydraplus.core.predict import predict
from hydraplus.core.spread import SpreadScaled


class Predictions:
    """``predictions(model)``: `predict` of ``model`` on ``x`` in ``precision``, remembered per model.

    ``keep_rng``: a sampling model's draws leave the random state as it was (the validation split's
    outputs, so that the test measures draw the same samples with or without them).
    """

    def __init__(self, x: Tensor, precision: str = "32", *, keep_rng: bool = False,
                 name: str = "inputs to predict"):
        check_finite(x, name)
        self.x, self.precision, self.keep_rng = x, precision, keep_rng
        self._outputs: dict[int, Tensor] = {}

    def __call__(self, model: nn.Module) -> Tensor:
        if isinstance(model, SpreadScaled) and id(model.student) in self._outputs:
            out = model.moved(self._outputs[id(model.student)])
        elif self.keep_rng:
            with torch.random.fork_rng(devices=[]):
                out = predict(model, self.x, precision=self.precision, check=False)
        else:
            out = predict(model, self.x, precision=self.precision, check=False)
        self._outputs[id(model)] = out
        return out
