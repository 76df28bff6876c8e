"""Building a config's models: channels-last layout and the optional compile setting."""

from __future__ import annotations

import pytest
import torch

from _dummies import image_config, toy_config
from hydraplus.config import ConfigError, parse_config
from hydraplus.pipeline.builders import build_ensemble, build_student


def test_convolutional_models_are_channels_last_unless_turned_off() -> None:
    config = parse_config(image_config())
    conv = build_student(config, config.students[0]).core[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = parse_config({**image_config(), "channels_last": False})
    assert build_student(plain, plain.students[0]).core[0].weight.is_contiguous()


def test_compile_keeps_the_weights_names_and_the_outputs() -> None:
    raw = toy_config(members=2)
    torch.manual_seed(0)
    eager = build_ensemble(parse_config(raw))
    torch.manual_seed(0)
    compiled = build_ensemble(parse_config({**raw, "compile": True}))
    assert list(compiled.state_dict()) == list(eager.state_dict())
    x = torch.randn(16, 2)
    torch.testing.assert_close(compiled(x), eager(x), atol=1e-5, rtol=1e-5)


def test_compile_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="compile must be true or false, got 'yes'"):
        parse_config({**toy_config(), "compile": "yes"})
