"""Architectures by registration: each registers beside its factories, once."""

from __future__ import annotations

import pytest

from hydraplus.models.mlp import mlp_member
from hydraplus.models.registry import ARCHITECTURES, register_architecture


def test_every_architecture_module_registers_itself() -> None:
    assert set(ARCHITECTURES) == {"mlp", "lenet", "resnet", "fastconv"}
    assert all(set(parts) == {"member", "core", "head"} for parts in ARCHITECTURES.values())


def test_a_name_registers_once() -> None:
    with pytest.raises(ValueError, match="an architecture named 'mlp' is already registered"):
        register_architecture("mlp", member=mlp_member, core=mlp_member, head=mlp_member)
