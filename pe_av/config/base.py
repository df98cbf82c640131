"""ConfigBase: the dataclass base of every config (``from_dict``/``to_dict``, unknown keys kept in
``extra``, ``save_pretrained``/``from_pretrained``), and ``config_from_dict``/``load_config``, which pick the
class by ``model_type`` through :mod:`pe_av.registry`.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ..json_io import read_json_object

_SUPPORTED_ROPE_TYPES = ("default",)


def _require_positive_int(config_name: str, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{config_name}.{name} must be a positive integer, got {value!r}")


@dataclass
class ConfigBase:
    """Shared machinery: dict/JSON conversion, nested sub-configs, unknown keys kept in ``extra``."""

    model_type: ClassVar[str] = ""
    # field name -> config class, for fields holding a nested config
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {}
    # keys transformers writes that we recompute from other fields (read and ignored, written back)
    derived_keys: ClassVar[tuple[str, ...]] = ()

    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfigBase:
        """Build a config from a transformers-style dict; unknown keys go to ``extra``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}.from_dict expects a mapping, got {type(data).__name__}")
        data = dict(data)
        model_type = data.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(
                f"{cls.__name__} expects model_type {cls.model_type!r}, got {model_type!r}"
            )
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in cls.sub_config_classes:
                sub_cls = cls.sub_config_classes[key]
                kwargs[key] = value if value is None or isinstance(value, ConfigBase) else sub_cls.from_dict(value)
            elif key in known:
                kwargs[key] = value
            elif key not in cls.derived_keys:
                extra[key] = value
        return cls(**cls._upgrade_legacy_keys(kwargs, extra), extra=extra)

    @classmethod
    def _upgrade_legacy_keys(cls, kwargs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        """Hook for configs whose older checkpoints spell fields differently."""
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """The transformers-style dict (nested configs as dicts), ``extra`` keys included."""
        out: dict[str, Any] = copy.deepcopy(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, ConfigBase) else copy.deepcopy(value)
        out.update(self._derived_values())
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def _derived_values(self) -> dict[str, Any]:
        return {}

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` into ``directory`` (created if needed)."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as fh:
            fh.write(self.to_json_string())

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> ConfigBase:
        """Read ``config.json`` from a directory, checking that it holds this config type."""
        config = load_config(directory)
        if not isinstance(config, cls):
            raise ValueError(
                f"{os.fspath(directory)}/config.json holds model_type {config.model_type!r}, "
                f"not {cls.model_type!r} expected by {cls.__name__}"
            )
        return config


def _as_config(value: Any, cls: type[ConfigBase]) -> ConfigBase:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls.from_dict(value)
    raise TypeError(f"expected a {cls.__name__} or a dict, got {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# Loading: model_type → class comes from the registry (pe_av.registry), imported inside the functions
# because the registry imports the models, which import this module.


def config_from_dict(data: Mapping[str, Any]) -> ConfigBase:
    """Build the config class named by ``data["model_type"]`` (see :mod:`pe_av.registry`)."""
    from ..registry import config_class_for

    if not isinstance(data, Mapping):
        raise TypeError(f"a config must be a JSON object, got {type(data).__name__}")
    return config_class_for(data.get("model_type")).from_dict(data)


def load_config(directory: str | os.PathLike) -> ConfigBase:
    """Read ``config.json`` in ``directory`` into the matching config class."""
    path = os.path.join(os.fspath(directory), "config.json")
    return config_from_dict(read_json_object(path, holds="the model's configuration"))
