"""Data: the paper's toy problems and image data sets, each registered in `hydraplus.data.sources`.

Importing the package imports every module in it, so each data set registers itself where its
reader is defined (a new one is one new module, or one reader and one registration in `images`).
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
