"""One typed experiment config, parsed and checked once.

An experiment config is one JSON file: ``name``, ``task``, ``data``, ``arch``, ``ensemble``
(the teacher), ``student`` (settings every student shares, with the diversity weight lambda per
number of heads M) and ``students`` (one entry per student: a method and any overrides); an
optional ``trainer`` section says on how many devices and nodes they all train.

`schema` holds the typed sections, `parse` turns JSON into them (`parse_config`), `load` reads a
preset or a file and rescales it (`load_config`), and `presets/` holds the built-in configs, one
JSON file each. The student's own types live in `hydraplus.spec`; this package re-exports them.
"""

from hydraplus.config.load import load_config, read_config, scale_epochs, with_members, with_trainer
from hydraplus.config.parse import AUTO, parse_config, resolve_student
from hydraplus.config.presets import available_configs, builtin_text
from hydraplus.config.schema import (
    ConfigWarning,
    DataSettings,
    EnsembleSettings,
    ExperimentConfig,
    TrainerSettings,
)
from hydraplus.spec import ArchSettings, ConfigError, StudentDefaults, StudentSpec

__all__ = [
    "AUTO",
    "ArchSettings",
    "ConfigError",
    "ConfigWarning",
    "DataSettings",
    "EnsembleSettings",
    "ExperimentConfig",
    "StudentDefaults",
    "StudentSpec",
    "TrainerSettings",
    "available_configs",
    "builtin_text",
    "load_config",
    "parse_config",
    "read_config",
    "resolve_student",
    "scale_epochs",
    "with_members",
    "with_trainer",
]
