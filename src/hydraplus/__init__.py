"""hydraplus: distil a deep ensemble into one multi-headed network (Hydra+).

The pure-PyTorch core (containers, losses, uncertainty, metrics) is importable without
Lightning; methods, config, engine, data layer, pipeline, evaluation, API and CLI sit above it.
`hydraplus.distil` distils any trained ensemble in one call; `hydraplus.load_distilled` reads its
output folder back.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "distil", "load_distilled"]


def __getattr__(name: str) -> Any:
    """``hydraplus.distil`` and ``load_distilled`` without importing the engine for ``import hydraplus``
    alone."""
    if name == "distil":
        from hydraplus.pipeline.distil import distil

        return distil
    if name == "load_distilled":
        from hydraplus.pipeline.distil import load_distilled

        return load_distilled
    raise AttributeError(f"module 'hydraplus' has no attribute {name!r}")
