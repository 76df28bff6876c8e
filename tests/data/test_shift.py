"""Dataset shift: exact pixel translations, rotations, brightness, zero fill and input checks;
Gaussian noise and blur corruptions."""

from __future__ import annotations

import itertools

import pytest
import torch

from hydraplus.data.shift import CORRUPTIONS, SHIFTS, apply_shift, corrupt_images, shift_images


def _image(h: int = 32, w: int = 32, n: int = 2) -> torch.Tensor:
    """uint8 ``[n, 3, h, w]`` with distinct, non-zero values."""
    values = torch.arange(n * 3 * h * w).reshape(n, 3, h, w)
    return (values % 250 + 1).to(torch.uint8)


def _translated(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move right by dx and down by dy, zero fill."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., dy:, dx:] = x[..., : h - dy, : w - dx]
    return out


def test_shift_table_matches_spec() -> None:
    assert SHIFTS == {
        "horizontal": (0.1, 0.2, 0.3, 0.4, 0.5),
        "vertical": (0.1, 0.2, 0.3, 0.4, 0.5),
        "rotation": (15.0, 30.0, 45.0, 60.0, 75.0),
        "brightness": (1.1, 1.2, 1.3, 1.4, 1.5),
    }


@pytest.mark.parametrize(("level", "pixels"), [(1, 3), (2, 6), (3, 10), (4, 13), (5, 16)])
def test_translations_move_whole_pixels(level: int, pixels: int) -> None:
    x = _image()
    assert torch.equal(shift_images(x, "horizontal", level), _translated(x, pixels, 0))
    assert torch.equal(shift_images(x, "vertical", level), _translated(x, 0, pixels))
    xf = x.float() / 255
    out = shift_images(xf, "horizontal", level)
    assert out.dtype == torch.float32 and torch.equal(out, _translated(xf, pixels, 0))


def test_translation_uses_width_and_height_separately() -> None:
    x = _image(h=20, w=40, n=1)
    assert torch.equal(shift_images(x, "horizontal", 1), _translated(x, 4, 0))
    assert torch.equal(shift_images(x, "vertical", 1), _translated(x, 0, 2))


def test_single_pixel_moves_right_and_down() -> None:
    x = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    x[0, 0, 5, 7] = 200
    assert shift_images(x, "horizontal", 1).nonzero().tolist() == [[0, 0, 5, 10]]
    assert shift_images(x, "vertical", 3).nonzero().tolist() == [[0, 0, 15, 7]]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_rotation_is_counter_clockwise_about_the_centre(dtype: torch.dtype) -> None:
    x = _image(n=1)
    x = x if dtype == torch.uint8 else x.float() / 255
    assert torch.equal(apply_shift(x, "rotation", 90.0), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(apply_shift(x, "rotation", 180.0), torch.flip(x, (-2, -1)))
    assert apply_shift(x, "rotation", 90.0).dtype == dtype


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_rotation_levels_fill_corners_with_zero(level: int) -> None:
    x = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)
    out = shift_images(x, "rotation", level)
    corners = out[..., [0, 0, -1, -1], [0, -1, 0, -1]]
    assert bool((corners == 0).all()) and bool((out[..., 12:20, 12:20] == 255).all())


def test_brightness_on_hand_made_images() -> None:
    x = torch.tensor([0, 100, 201, 250], dtype=torch.uint8).view(1, 1, 2, 2)
    assert shift_images(x, "brightness", 1).flatten().tolist() == [0, 110, 221, 255]
    assert shift_images(x, "brightness", 5).flatten().tolist() == [0, 150, 255, 255]
    xf = torch.tensor([0.0, 0.5, 0.7, 0.9]).view(1, 1, 2, 2)
    expected = torch.tensor([0.0, 0.6, 0.84, 1.0])
    torch.testing.assert_close(shift_images(xf, "brightness", 2).flatten(), expected)


def test_shifts_are_deterministic_and_leave_the_input_alone() -> None:
    x = _image()
    before = x.clone()
    for kind in SHIFTS:
        assert torch.equal(shift_images(x, kind, 3), shift_images(x, kind, 3))
    assert torch.equal(x, before)


@pytest.mark.parametrize(
    ("images", "kind", "level", "match"),
    [
        (_image(), "blur", 1, "unknown shift 'blur'"),
        (_image(), "rotation", 0, r"level must be an integer in 1\.\.5"),
        (_image(), "rotation", 6, r"level must be an integer in 1\.\.5"),
        (_image(), "rotation", 2.0, r"level must be an integer in 1\.\.5"),
        (_image().int(), "rotation", 1, "uint8 or floating point"),
        (_image().float() / 255 - 0.5, "brightness", 1, r"in \[0, 1\]"),
        (_image()[:, :2], "horizontal", 1, "1 or 3 channels"),
        (torch.zeros(32, 32), "horizontal", 1, "1 or 3 channels"),
    ],
)
def test_shift_errors(images: torch.Tensor, kind: str, level: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        shift_images(images, kind, level)


def test_corruption_table_matches_cifar_10_c() -> None:
    assert CORRUPTIONS == {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    }


def _photo(shape: tuple[int, ...] = (2, 3, 32, 32)) -> torch.Tensor:
    """Random float image in [0.2, 0.8], so that noise is rarely clipped."""
    return torch.rand(shape) * 0.6 + 0.2


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_corruptions_keep_shape_dtype_and_range(kind: str, dtype: torch.dtype) -> None:
    x = _photo((2, 5, 32, 32))  # any number of channels
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    for level in range(1, 6):
        out = corrupt_images(x, kind, level)
        assert out.shape == x.shape and out.dtype == dtype
        assert out.min() >= 0 and out.max() <= (255 if dtype == torch.uint8 else 1)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corruptions_get_stronger_with_the_level(kind: str) -> None:
    for x in (_photo(), (_photo((3, 1, 28, 28)) * 255).round().to(torch.uint8)):
        change = [(corrupt_images(x, kind, level).double() - x.double()).abs().mean().item()
                  for level in range(1, 6)]
        assert all(a < b for a, b in itertools.pairwise(change)), change


def test_noise_is_deterministic_for_a_seed() -> None:
    x = _photo()
    before = x.clone()
    out = corrupt_images(x, "gaussian_noise", 3, seed=7)
    assert torch.equal(out, corrupt_images(x, "gaussian_noise", 3, seed=7))
    assert not torch.equal(out, corrupt_images(x, "gaussian_noise", 3, seed=8))
    assert torch.equal(x, before)
    # Independent of the global RNG.
    torch.manual_seed(123)
    assert torch.equal(out, corrupt_images(x, "gaussian_noise", 3, seed=7))


def test_noise_has_the_level_std() -> None:
    x = torch.full((4, 3, 64, 64), 0.5)
    for level, std in enumerate(CORRUPTIONS["gaussian_noise"], start=1):
        assert (corrupt_images(x, "gaussian_noise", level) - x).std().item() == pytest.approx(std, rel=0.02)
    # uint8: the same noise on the 0..255 scale, rounded.
    xu = torch.full((1, 1, 28, 28), 128, dtype=torch.uint8)
    expected = (corrupt_images(xu.float() / 255, "gaussian_noise", 2) * 255).round().to(torch.uint8)
    assert (corrupt_images(xu, "gaussian_noise", 2).int() - expected.int()).abs().max() <= 1


def test_blur_matches_a_reference_gaussian_filter() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64)  # grayscale 28 x 28
    for level, sigma in enumerate(CORRUPTIONS["gaussian_blur"], start=1):
        # torch's reflect padding (d c b | a b c d) is scipy's "mirror"; truncate = 4 sigma in both.
        expected = ndimage.gaussian_filter(x[0, 0].numpy(), sigma, mode="mirror", truncate=4.0)
        got = corrupt_images(x, "gaussian_blur", level)[0, 0]
        torch.testing.assert_close(got, torch.from_numpy(expected))


def test_blur_keeps_a_constant_image_and_is_deterministic() -> None:
    x = torch.full((2, 1, 28, 28), 77, dtype=torch.uint8)
    assert torch.equal(corrupt_images(x, "gaussian_blur", 5), x)
    y = _photo()
    assert torch.equal(corrupt_images(y, "gaussian_blur", 4), corrupt_images(y, "gaussian_blur", 4))


@pytest.mark.parametrize(
    ("images", "kind", "level", "match"),
    [
        (_image(), "rotation", 1, "unknown corruption 'rotation'"),
        (_image(), "gaussian_blur", 0, r"corruption level must be an integer in 1\.\.5"),
        (_image(), "gaussian_noise", 6, r"corruption level must be an integer in 1\.\.5"),
        (torch.zeros(28, 28), "gaussian_noise", 1, r"\[\.\.\., C, H, W\]"),
        (_image().int(), "gaussian_noise", 1, "uint8 or floating point"),
        (_image().float(), "gaussian_blur", 1, r"in \[0, 1\]"),
    ],
)
def test_corruption_errors(images: torch.Tensor, kind: str, level: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        corrupt_images(images, kind, level)
