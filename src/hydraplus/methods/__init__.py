"""Student methods by name: Hydra+ and Hydra, and the Drop, Gauss and EnDD baselines.

Each method is one object (one file) that knows its default settings, how to build its
student from a core and a head factory, its loss terms and their factors, and what to export.
Adding a method is one new module in this package whose class carries ``@register``, plus its
tests: the package imports every module in it, and listings follow each method's ``listed``.
"""

import importlib
import pkgutil

from hydraplus.methods.base import StudentMethod, get_method, method_names, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["StudentMethod", "get_method", "method_names", "register"]
