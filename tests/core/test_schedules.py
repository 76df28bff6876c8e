"""The diversity weight schedule: constant, or 0 until a, linear to the value at b, constant after."""

from __future__ import annotations

import pytest

from hydraplus.core.schedules import LambdaSchedule


def test_constant_schedule() -> None:
    sched = LambdaSchedule(4.0)
    assert [sched(e) for e in (0, 1, 100, 199)] == [4.0] * 4


def test_linear_ramp() -> None:
    sched = LambdaSchedule(0.6, start=50, end=150)
    assert sched(0) == 0.0
    assert sched(49) == 0.0
    assert sched(50) == 0.0
    assert sched(75) == pytest.approx(0.15)
    assert sched(100) == pytest.approx(0.3)
    assert sched(149) == pytest.approx(0.6 * 99 / 100)
    assert sched(150) == pytest.approx(0.6)
    assert sched(199) == pytest.approx(0.6)


def test_ramp_is_monotone() -> None:
    sched = LambdaSchedule(2.0, start=3, end=10)
    values = [sched(e) for e in range(15)]
    assert values == sorted(values)
    assert values[0] == 0.0 and values[-1] == 2.0


def test_zero_length_ramp_is_a_step() -> None:
    sched = LambdaSchedule(1.0, start=5, end=5)
    assert sched(4) == 0.0 and sched(5) == 1.0


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"value": -1.0}, "lambda"),
    ({"value": 1.0, "start": 5}, "start and end"),
    ({"value": 1.0, "end": 5}, "start and end"),
    ({"value": 1.0, "start": 10, "end": 5}, "start <= end"),
    ({"value": 1.0, "start": -1, "end": 5}, "start <= end"),
])
def test_schedule_validation(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        LambdaSchedule(**kwargs)
