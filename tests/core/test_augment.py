"""Random crop + flip: equal to torchvision's per-image transforms, seeded, validated."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from hydraplus.core.augment import Augmentation, AugmentParams


def test_batched_crop_and_flip_equal_torchvision_per_image() -> None:
    images = torch.rand(16, 3, 8, 10)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    aug = Augmentation(crop_padding=3, flip=True)
    params = aug.sample(16, torch.Generator().manual_seed(0))
    assert params.flip.any() and not params.flip.all()
    assert params.top.max() <= 6 and params.left.max() <= 6
    out = aug.apply(images, params, fill)
    for i in range(16):
        padded = torch.stack([TF.pad(images[i, c : c + 1], [3], fill=float(fill[c]))[0]
                              for c in range(3)])
        expected = TF.crop(padded, int(params.top[i]), int(params.left[i]), 8, 10)
        if params.flip[i]:
            expected = TF.horizontal_flip(expected)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=0)


def test_a_known_offset_moves_the_image_and_fills_the_border() -> None:
    image = torch.arange(16.0).view(1, 1, 4, 4)
    aug = Augmentation(crop_padding=2, flip=False)
    params = AugmentParams(torch.tensor([0]), torch.tensor([1]), torch.tensor([False]))
    out = aug.apply(image, params, fill=-9.0)[0, 0]
    # top 0, left 1 of the padded image: content moves down 2 and right 1
    assert (out[:2] == -9).all() and (out[:, :1] == -9).all()
    torch.testing.assert_close(out[2:, 1:], image[0, 0, :2, :3])


def test_no_padding_and_no_flip_is_the_identity() -> None:
    images = torch.rand(5, 3, 6, 6)
    out = Augmentation(crop_padding=0, flip=False)(images, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, images, rtol=0, atol=0)


def test_same_generator_seed_same_images_and_flip_off_never_flips() -> None:
    images = torch.rand(32, 3, 6, 6)
    aug = Augmentation()
    a = aug(images, torch.Generator().manual_seed(3))
    b = aug(images, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not Augmentation(flip=False).sample(64, torch.Generator().manual_seed(3)).flip.any()


@pytest.mark.parametrize(("value", "message"), [
    ({"crop_padding": -1}, "crop_padding must be an integer >= 0, got -1"),
    ({"crop_padding": 2.5}, "crop_padding must be an integer >= 0, got 2.5"),
    ({"flip": "yes"}, "flip must be true or false, got 'yes'"),
    ({"rotate": 10}, "unknown keys ['rotate']"),
    ("crop", "must be true, false or"),
])
def test_bad_settings_are_named(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Augmentation.from_setting(value)


def test_settings_true_false_and_dict() -> None:
    assert Augmentation.from_setting(False) is None and Augmentation.from_setting(None) is None
    assert Augmentation.from_setting(True) == Augmentation(4, True)
    assert Augmentation.from_setting({"crop_padding": 2}) == Augmentation(2, True)


def test_non_image_batches_are_refused() -> None:
    with pytest.raises(ValueError, match=r"needs image batches \[B, C, H, W\], got shape \(4, 2\)"):
        Augmentation()(torch.rand(4, 2), torch.Generator())
