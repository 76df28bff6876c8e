"""The six distortions of image evaluation on 28 x 28 grayscale images (Fashion-MNIST's shape)."""

from __future__ import annotations

import pytest
import torch

from hydraplus.data.shift import (
    CORRUPTIONS,
    DISTORTIONS,
    SHIFTS,
    corrupt_images,
    distort_images,
    shift_images,
)


def _grey(n: int = 3) -> torch.Tensor:
    """uint8 ``[n, 1, 28, 28]`` with distinct non-zero values."""
    return (torch.arange(n * 28 * 28).reshape(n, 1, 28, 28) % 250 + 1).to(torch.uint8)


def test_six_kinds_at_five_levels() -> None:
    assert list(DISTORTIONS) == [*SHIFTS, *CORRUPTIONS]
    assert len(DISTORTIONS) == 6 and all(len(levels) == 5 for levels in DISTORTIONS.values())


@pytest.mark.parametrize("kind", sorted(DISTORTIONS))
def test_every_level_keeps_one_channel_uint8(kind: str) -> None:
    x = _grey()
    for level in range(1, 6):
        out = distort_images(x, kind, level, seed=1)
        assert out.shape == (3, 1, 28, 28) and out.dtype == torch.uint8
        assert not torch.equal(out, x), (kind, level)


@pytest.mark.parametrize(("level", "pixels"), [(1, 3), (2, 6), (3, 8), (4, 11), (5, 14)])
def test_translations_round_to_whole_pixels_of_28(level: int, pixels: int) -> None:
    x = _grey(1)
    right, down = shift_images(x, "horizontal", level), shift_images(x, "vertical", level)
    assert torch.equal(right[..., pixels:], x[..., : 28 - pixels]) and not right[..., :pixels].any()
    assert torch.equal(down[..., pixels:, :], x[..., : 28 - pixels, :]) and not down[..., :pixels, :].any()


def test_distort_dispatches_and_seeds_the_noise() -> None:
    x = _grey()
    assert torch.equal(distort_images(x, "rotation", 2), shift_images(x, "rotation", 2))
    assert torch.equal(distort_images(x, "gaussian_blur", 3), corrupt_images(x, "gaussian_blur", 3))
    noisy = distort_images(x, "gaussian_noise", 4, seed=5)
    assert torch.equal(noisy, corrupt_images(x, "gaussian_noise", 4, seed=5))
    assert not torch.equal(noisy, distort_images(x, "gaussian_noise", 4, seed=6))
    with pytest.raises(ValueError, match="unknown shift or corruption 'fog'"):
        distort_images(x, "fog", 1)
