"""hydraplus: distil a deep ensemble into one multi-headed network (Hydra+).

The pure-PyTorch core (containers, losses, uncertainty, metrics) is importable without
Lightning; the engine, data layer, presets and CLI sit above it.
"""

__version__ = "0.1.0"
