"""Precision checks: unknown names refused, emulated bfloat16 on a CPU said once."""

from __future__ import annotations

import warnings

import pytest
import torch

from hydraplus.core import precision
from hydraplus.core.precision import PrecisionWarning, check_precision, native_bf16


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch):
    """Set what the CPU says it supports: ``cpu(avx512_bf16, amx)``; the once-only warning reset."""
    precision._warn_emulated_bf16.cache_clear()

    def set_flags(avx512: bool, amx: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)

    yield set_flags
    precision._warn_emulated_bf16.cache_clear()


def test_emulated_bf16_warns_once_and_names_the_faster_precision(cpu) -> None:
    cpu(False, False)
    assert not native_bf16()
    with pytest.warns(PrecisionWarning, match=r"no native bfloat16 .*pass --precision 32"):
        assert check_precision("bf16-mixed", "cpu") == "bf16-mixed"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_precision("bf16-mixed", "cpu")  # said once per process
        check_precision("32", "cpu")


@pytest.mark.parametrize(("avx512", "amx", "device"), [(True, False, "cpu"), (False, True, "cpu"),
                                                        (False, False, "cuda")])
def test_native_bf16_or_cuda_is_silent(cpu, avx512: bool, amx: bool, device: str) -> None:
    cpu(avx512, amx)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_precision("bf16-mixed", device) == "bf16-mixed"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match=r"precision must be one of .*got 'bf17'"):
        check_precision("bf17")
