"""Shared test settings: one CPU thread (the machine is shared) and a fixed seed per test.

Small configs and tiny architectures live in `_dummies` (importable from every test).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same global torch seed."""
    torch.manual_seed(0)


def pytest_configure(config: pytest.Config) -> None:
    """Silence a third-party deprecation notice Lightning emits with recent torch."""
    config.addinivalue_line("filterwarnings", "ignore:.*isinstance.treespec, LeafSpec.*")
