"""Student methods by name: Hydra+ and Hydra, and the Drop, Gauss and EnDD baselines.

Each method is one object (one file) that knows its default settings, how to build its
student from a core and a head factory, its loss terms and their factors, and what to export.
Adding a method is one new module that calls `register`, plus its tests.
"""

from hydraplus.methods.base import StudentMethod, get_method, method_names, register

# Registered in the paper's order, which every listing follows.
# isort: off
from hydraplus.methods import hydra  # noqa: F401
from hydraplus.methods import drop, gauss, endd  # noqa: F401
# isort: on

__all__ = ["StudentMethod", "get_method", "method_names", "register"]
