"""ConfigBase: the dataclass base of every config (``from_dict``/``to_dict``, unknown keys kept in
``extra``, ``save_pretrained``/``from_pretrained``), and ``config_from_dict``/``load_config``, which pick the
class by ``model_type`` through :mod:`pe_av.registry`.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ..json_io import read_json_object

_SUPPORTED_ROPE_TYPES = ("default",)

#: Hard upper bounds on the numbers that size a model, checked when a config is built. They sit far above
#: any real PE-AV, ModernBERT or ViT checkpoint and far below what overflows torch's size arithmetic or
#: takes minutes to build; a config over them is a ``ValueError`` naming the field.
MAX_WIDTH = 1 << 18  # any hidden / intermediate width, heads × head_dim, channels (262,144)
MAX_LAYERS = 1 << 10  # layers (blocks) in one stack (1,024)
MAX_VOCAB = 1 << 24  # token vocabulary, classifier outputs (16,777,216)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_positive_int(config_name: str, *, at_most: int | None = None, **values: Any) -> None:
    """Each value an ``int`` >= 1 (and <= ``at_most`` when given); errors name ``config_name.field``."""
    for name, value in values.items():
        if not _is_int(value) or value <= 0:
            raise ValueError(f"{config_name}.{name} must be a positive integer, got {value!r}")
        if at_most is not None and value > at_most:
            raise ValueError(f"{config_name}.{name} must be at most {at_most:,} (pe_av's bound), got {value:,}")


def _require_layer_count(config_name: str, name: str, value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{config_name}.{name} must be a non-negative integer, got {value!r}")
    if value > MAX_LAYERS:
        raise ValueError(f"{config_name}.{name} must be at most {MAX_LAYERS:,} (pe_av's bound), got {value:,}")


def _require_number(config_name: str, name: str, value: Any, kind: str) -> None:
    """``value`` a finite real number of ``kind``: ``"> 0"``, ``">= 0"`` or ``"in [0, 1)"`` (a probability).

    NaN, infinities (JSON ``NaN``/``Infinity``) and booleans are refused: an eps of NaN or a dropout of
    1 would not fail loudly, they would give NaN or all-zero outputs.
    """
    try:  # an int too large for a float (10**400) is not a usable number either
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    except OverflowError:
        ok = False
    if ok:
        ok = {"> 0": value > 0, ">= 0": value >= 0, "in [0, 1)": 0 <= value < 1, "finite": True}[kind]
    if not ok:
        what = "a finite number" if kind == "finite" else f"a finite number {kind}"
        raise ValueError(f"{config_name}.{name} must be {what}, got {value!r}")


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
