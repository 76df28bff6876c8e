"""Members, student cores and heads by architecture (docs/method.md#architectures-and-hyperparameters).

Importing the package imports every module in it, so each architecture registers itself where its
factories are defined (`hydraplus.models.registry.register_architecture`): a new one is one new module.
"""

import importlib
import pkgutil

from hydraplus.models.fastconv import fastconv_core, fastconv_head, fastconv_member
from hydraplus.models.lenet import lenet_core, lenet_head, lenet_member
from hydraplus.models.mlp import mlp, mlp_core, mlp_head, mlp_member
from hydraplus.models.resnet import BasicBlock, resnet_core, resnet_head, resnet_member

__all__ = [
    "BasicBlock",
    "fastconv_core",
    "fastconv_head",
    "fastconv_member",
    "lenet_core",
    "lenet_head",
    "lenet_member",
    "mlp",
    "mlp_core",
    "mlp_head",
    "mlp_member",
    "resnet_core",
    "resnet_head",
    "resnet_member",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
