"""ConfigBase: the dataclass base of every config, and ``config_from_dict``/``load_config``, which pick the
class by ``model_type`` through :mod:`pe_av.registry`.

Every config is built as transformers builds its own: keyword arguments only; the attributes of
``PreTrainedConfig`` (``return_dict``, ``output_hidden_states``, ``output_attentions``, ``dtype``,
``architectures``, ``id2label``/``label2id``/``num_labels`` …) with its defaults; keys without a field (a
model's ``projection_dim``, a future option) kept in ``extra``, readable as attributes and written back;
``torch_dtype`` read as ``dtype``; generation settings (``use_cache`` …) dropped; a sub-config given as a
dict or ``None`` filled with the defaults transformers applies there (:attr:`ConfigBase.sub_config_defaults`),
one given as a transformers config object converted through its ``to_dict()``. The rest of transformers'
config API is in :mod:`.compat`.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from ..json_io import read_json_object
from .compat import FROM_DICT_FIELDS, GENERATION_KEYS, TransformersConfigMixin, decode_special_floats, logger

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


LABEL_FIELDS = ("id2label", "label2id")


def as_torch_dtype(value: Any) -> Any:
    """A config's ``dtype``: ``None``, or a ``torch.dtype`` (a name such as ``"bfloat16"`` is converted)."""
    if value is None or isinstance(value, torch.dtype):
        return value
    if isinstance(value, str) and isinstance(getattr(torch, value.removeprefix("torch."), None), torch.dtype):
        return getattr(torch, value.removeprefix("torch."))
    raise ValueError(f"dtype must name a torch dtype (e.g. 'float32', 'bfloat16') or be null, got {value!r}")


def config_class(cls: type) -> type:
    """Make ``cls`` a config class: a keyword-only dataclass whose constructor, as transformers', also takes
    keys it has no field for (kept in ``extra``) and the legacy spellings of :meth:`ConfigBase._upgrade_legacy_keys`."""
    cls = dataclass(eq=False, repr=False, kw_only=True)(cls)
    generated = cls.__init__
    names = frozenset(f.name for f in fields(cls)) - {"extra"} - (set(LABEL_FIELDS) if cls.labels_in_extra else set())

    @functools.wraps(generated)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            raise TypeError(f"{cls.__name__} accepts only keyword arguments, but found {len(args)} positional args")
        model_type = kwargs.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(f"{cls.__name__} expects model_type {cls.model_type!r}, got {model_type!r}")
        extra = dict(kwargs.pop("extra", None) or {})
        known: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in names:
                known[key] = value
            elif key not in cls.derived_keys:
                extra[key] = value
        generated(self, **cls._upgrade_legacy_keys(known, extra), extra=extra)

    cls.__init__ = __init__
    return cls


@dataclass(eq=False, repr=False, kw_only=True)
class ConfigBase(TransformersConfigMixin):
    """Shared machinery: the common attributes, nested sub-configs, unknown keys kept in ``extra``."""

    model_type: ClassVar[str] = ""
    #: field name -> config class, for fields holding a nested config
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {}
    #: field name -> the values transformers fills in when that sub-config comes as a dict or None
    sub_config_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: keys transformers writes that we recompute from other fields (read and ignored, written back)
    derived_keys: ClassVar[tuple[str, ...]] = ()
    #: pe_av's own fields, left out of ``to_dict`` (and config.json) while they hold these values
    omitted_defaults: ClassVar[dict[str, Any]] = {}
    #: labels live in ``extra`` (the ViT's config, whose head size has rules of its own)
    labels_in_extra: ClassVar[bool] = False

    # transformers' PreTrainedConfig attributes, with its defaults
    architectures: list[str] | None = None
    output_hidden_states: bool = False
    output_attentions: bool = False
    return_dict: bool = True
    dtype: Any = None
    chunk_size_feed_forward: int = 0
    is_encoder_decoder: bool = False
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    problem_type: str | None = None
    transformers_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        extra = self.extra
        object.__setattr__(self, "_name_or_path", str(extra.pop("name_or_path", "")))
        if "_name_or_path" in extra:
            self._name_or_path = str(extra.pop("_name_or_path"))
        self._attn_implementation = extra.pop("attn_implementation", None)
        self._experts_implementation = extra.pop("experts_implementation", None)
        for key in GENERATION_KEYS.intersection(extra) | {"_commit_hash"}:
            extra.pop(key, None)
        torch_dtype = extra.pop("torch_dtype", None)
        self.dtype = self.dtype if self.dtype is not None else torch_dtype
        if not self.labels_in_extra:
            self._init_labels(extra.pop("num_labels", None))
        for key, cls in self.sub_config_classes.items():
            setattr(self, key, self._sub_config(key, cls))
        for key in ("output_hidden_states", "output_attentions", "return_dict", "is_encoder_decoder"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{type(self).__name__}.{key} must be true or false, got {getattr(self, key)!r}")

    def _init_labels(self, num_labels: Any) -> None:
        if self.id2label is None:
            self.num_labels = 2 if num_labels is None else num_labels
            return
        if not isinstance(self.id2label, Mapping):
            raise ValueError(f"{type(self).__name__}.id2label must map class indices to names, got {self.id2label!r}")
        try:
            self.id2label = {int(key): value for key, value in self.id2label.items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{type(self).__name__}.id2label keys must be integers, got {list(self.id2label)}") from exc
        if num_labels is not None and num_labels != len(self.id2label):
            logger.warning(f"You passed `num_labels={num_labels}` which is incompatible to the `id2label` map of "
                           f"length `{len(self.id2label)}`.")
            self.num_labels = num_labels  # and then wins, as in transformers (LABEL_i names)

    @property
    def num_labels(self) -> int | None:
        """``len(id2label)``; setting it rebuilds ``id2label``/``label2id`` as ``LABEL_i`` (as transformers)."""
        return len(self.id2label) if self.id2label is not None else None

    @num_labels.setter
    def num_labels(self, num_labels: int) -> None:
        _require_count(f"{type(self).__name__}.num_labels", num_labels)
        if self.id2label is None or len(self.id2label) != num_labels:
            self.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
            self.label2id = {name: i for i, name in self.id2label.items()}

    def _sub_config(self, key: str, cls: type[ConfigBase]) -> ConfigBase:
        value = getattr(self, key)
        if isinstance(value, cls):
            return value
        if isinstance(value, ConfigBase):
            raise TypeError(f"{type(self).__name__}.{key} must be a {cls.__name__} or a dict, got {type(value).__name__}")
        if value is not None and not isinstance(value, Mapping) and callable(getattr(value, "to_dict", None)):
            return cls(**decode_special_floats(value.to_dict()))  # a transformers config object, taken as it is
        if value is not None and not isinstance(value, Mapping):
            return cls.from_dict(value)  # the error names the class and the type
        return cls(**{**self.sub_config_defaults.get(key, {}), **(value or {})})  # built, as transformers builds it

    @classmethod
    def _upgrade_legacy_keys(cls, kwargs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        """Hook for configs whose older checkpoints spell fields differently."""
        return kwargs

    # ------------------------------------------------------------------ attributes kept in extra

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("extra")
        if extra is not None and not name.startswith("__") and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        if name == "dtype":
            value = as_torch_dtype(value)
        if name.startswith("_") or name in cls.__dataclass_fields__ or hasattr(cls, name) or "extra" not in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            self.extra[name] = value

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("extra", {}):
            del self.extra[name]
        else:
            object.__delattr__(self, name)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ dicts

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **kwargs: Any) -> ConfigBase:
        """Build a config from a transformers-style dict (unknown keys go to ``extra``); keywords as
        transformers' ``from_dict``: ``num_labels``, ``dtype`` … go in before the config is built, other
        attributes are set after, and ``return_unused_kwargs=True`` returns ``(config, the rest)``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}.from_dict expects a mapping, got {type(data).__name__}")
        return_unused = kwargs.pop("return_unused_kwargs", False)
        kwargs.pop("_from_auto", None), kwargs.pop("_from_pipeline", None)
        data = decode_special_floats(dict(data))
        for key in FROM_DICT_FIELDS:
            if key in kwargs:
                value = kwargs.pop(key)
                if key not in ("dtype", "torch_dtype") or (value is not None and value != "auto"):
                    data[key] = value
        config = cls(**data)
        unused = config._apply_kwargs(kwargs)
        return (config, unused) if return_unused else config

    def to_dict(self) -> dict[str, Any]:
        """transformers' ``to_dict``: every attribute, nested configs as dicts, ``extra`` keys included."""
        out: dict[str, Any] = copy.deepcopy(self.extra)
        for f in fields(self):
            if f.name == "extra" or (self.labels_in_extra and f.name in LABEL_FIELDS):
                continue
            value = getattr(self, f.name)
            if isinstance(value, ConfigBase):
                value = value.to_dict()
                value.pop("transformers_version", None)
            out[f.name] = value if isinstance(value, dict) and f.name in self.sub_config_classes else copy.deepcopy(value)
        out["_name_or_path"] = self._name_or_path
        if self.transformers_version is None:
            out.pop("transformers_version")
        if isinstance(self.dtype, torch.dtype):
            out["dtype"] = str(self.dtype).removeprefix("torch.")
        for key, default in self.omitted_defaults.items():
            if key in out and out[key] is default:
                out.pop(key)
        out.update(self._derived_values())
        out["model_type"] = self.model_type
        return out

    def _derived_values(self) -> dict[str, Any]:
        return {}


def _require_count(name: str, value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if value > MAX_VOCAB:
        raise ValueError(f"{name} must be at most {MAX_VOCAB:,} (pe_av's bound), got {value:,}")


# --------------------------------------------------------------------------------------------------
# Loading: model_type → class comes from the registry (pe_av.registry), imported inside the functions
# because the registry imports the models, which import this module.


def config_from_dict(data: Mapping[str, Any]) -> ConfigBase:
    """Build the config class named by ``data["model_type"]`` (see :mod:`pe_av.registry`); a timm
    ``config.json`` (``pretrained_cfg``, no ``model_type``) is a ``timm_wrapper`` one, as in transformers."""
    from ..registry import config_class_for

    if not isinstance(data, Mapping):
        raise TypeError(f"a config must be a JSON object, got {type(data).__name__}")
    if "model_type" not in data and "pretrained_cfg" in data:
        data = {**data, "model_type": "timm_wrapper"}
    return config_class_for(data.get("model_type")).from_dict(data)


def load_config(directory: str | os.PathLike) -> ConfigBase:
    """Read ``config.json`` in ``directory`` into the matching config class."""
    path = os.path.join(os.fspath(directory), "config.json")
    return config_from_dict(read_json_object(path, holds="the model's configuration"))
