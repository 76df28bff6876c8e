"""The diversity weight lambda: constant, or 0 until epoch a, linear to its value at b.

With ``auto`` the value is only where lambda starts: the engine then adjusts it every epoch
(see `hydraplus.engine.auto_lambda`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LambdaSchedule:
    """lambda(epoch): ``value`` if no ramp; else 0 before ``start``, linear up to ``end``."""

    value: float
    start: int | None = None
    end: int | None = None
    auto: bool = False

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError(f"lambda must be >= 0, got {self.value}")
        if (self.start is None) != (self.end is None):
            raise ValueError("a lambda ramp needs both start and end epochs")
        if self.auto and self.start is not None:
            raise ValueError("an automatic lambda has no ramp: give its starting value only")
        if self.start is not None and not 0 <= self.start <= self.end:
            raise ValueError(f"lambda ramp needs 0 <= start <= end, got {self.start}, {self.end}")

    def __call__(self, epoch: int) -> float:
        if self.start is None or self.end is None:
            return self.value
        if epoch < self.start:
            return 0.0
        if epoch >= self.end:
            return self.value
        return self.value * (epoch - self.start) / (self.end - self.start)
