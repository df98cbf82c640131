"""transformers' ``PreTrainedConfig`` methods on pe_av's configs: JSON written as transformers writes it
(``to_diff_dict``, ``to_json_string``/``to_json_file`` with ``use_diff``, ``save_pretrained``), read as it
reads it (``from_pretrained`` with the hub keywords, ``from_json_file``), and the small helpers scripts use
(``update``, ``update_from_string``, ``get_text_config``, ``name_or_path``, ``num_labels``, ``torch_dtype``).

``save_pretrained`` writes the *diff* transformers writes: keys of :class:`PreTrainedConfig` itself
(``return_dict``, ``id2label`` …) only where they differ from its defaults; every model-specific key; for a
sub-config, its model-specific keys and its common keys that differ from that sub-config class's own
defaults; and a sub-config nested two levels down in full. ``to_json_string(use_diff=False)`` writes
:meth:`to_dict`. Non-finite floats are written ``{"__float__": "NaN"}`` and read back, as transformers does.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("pe_av")

CONFIG_NAME = "config.json"

#: generation settings transformers drops from a model config's keywords (it keeps them in a
#: ``GenerationConfig``); a config built with ``use_cache=False`` holds no ``use_cache``, as there
GENERATION_KEYS = frozenset((
    "assistant_confidence_threshold", "assistant_lookbehind", "bad_words_ids", "begin_suppress_tokens",
    "diversity_penalty", "do_sample", "early_stopping", "encoder_no_repeat_ngram_size",
    "encoder_repetition_penalty", "epsilon_cutoff", "eta_cutoff", "exponential_decay_length_penalty",
    "forced_bos_token_id", "forced_eos_token_id", "length_penalty", "max_length", "min_length",
    "no_repeat_ngram_size", "num_assistant_tokens", "num_assistant_tokens_schedule", "num_beam_groups",
    "num_beams", "num_return_sequences", "output_scores", "remove_invalid_values", "repetition_penalty",
    "return_dict_in_generate", "suppress_tokens", "target_lookbehind", "temperature", "top_k", "top_p",
    "typical_p", "use_cache",
))

#: keywords of ``from_dict`` that go into the config before it is built (as transformers' ``from_dict``)
FROM_DICT_FIELDS = ("num_labels", "attn_implementation", "experts_implementation", "output_attentions",
                    "torch_dtype", "dtype", "name_or_path")

_FLOAT_TAG = "__float__"
_SPECIAL_FLOATS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def encode_special_floats(value: Any) -> Any:
    """NaN and ±Infinity as ``{"__float__": "NaN"}`` objects, which every JSON reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_TAG: "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, dict):
        return {k: encode_special_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_special_floats(v) for v in value]
    return value


def decode_special_floats(value: Any) -> Any:
    """The inverse of :func:`encode_special_floats`."""
    if isinstance(value, dict):
        if set(value) == {_FLOAT_TAG} and value[_FLOAT_TAG] in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value[_FLOAT_TAG]]
        return {k: decode_special_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_special_floats(v) for v in value]
    return value


def base_defaults() -> dict[str, Any]:
    """``PreTrainedConfig().to_dict()``: the common keys and their defaults (version aside)."""
    return {
        "transformers_version": None, "architectures": None, "output_hidden_states": False, "return_dict": True,
        "dtype": None, "chunk_size_feed_forward": 0, "is_encoder_decoder": False,
        "id2label": {0: "LABEL_0", 1: "LABEL_1"}, "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "problem_type": None,
        "_name_or_path": "", "model_type": "", "output_attentions": False,
    }


def _sub_diff(values: dict[str, Any], base: dict[str, Any], config: Any) -> dict[str, Any]:
    """transformers' ``recursive_diff_dict``: model-specific keys, and common keys that differ from the
    defaults of ``config``'s own class."""
    missing = object()
    defaults = type(config)().to_dict()
    return {k: v for k, v in values.items() if k not in base or v != defaults.get(k, missing)}


class TransformersConfigMixin:
    """The ``PreTrainedConfig`` API on :class:`pe_av.config.ConfigBase` (which supplies ``to_dict``,
    ``from_dict`` and the fields)."""

    # ------------------------------------------------------------------ attributes

    @property
    def name_or_path(self) -> str:
        return self._name_or_path

    @name_or_path.setter
    def name_or_path(self, value: Any) -> None:
        self._name_or_path = str(value)

    @property
    def torch_dtype(self) -> Any:
        warn_once("torch_dtype", "`torch_dtype` is deprecated! Use `dtype` instead!")
        return self.dtype

    @torch_dtype.setter
    def torch_dtype(self, value: Any) -> None:
        warn_once("torch_dtype", "`torch_dtype` is deprecated! Use `dtype` instead!")
        self.dtype = value

    @property
    def use_return_dict(self) -> bool:
        warn_once("use_return_dict", "`use_return_dict` is deprecated! Use `return_dict` instead!")
        return self.return_dict

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> Any:
        """The text tower's config (``text_config``), as transformers finds it: with ``encoder=True`` it looks
        for a ``text_encoder`` only, and returns the config itself when none is found."""
        if decoder == encoder:
            names = ("text_encoder", "decoder", "generator", "text_config")
        else:
            names = ("decoder", "generator", "text_config") if decoder else ("text_encoder",)
        found = [name for name in names if getattr(self, name, None) is not None]
        if len(found) > 1:
            raise ValueError(
                f"Multiple valid text configs were found in the model config: {found}. In this case, using "
                "`get_text_config()` would be ambiguous. Please specify the desired text config directly."
            )
        return getattr(self, found[0]) if found else self

    def update(self, config_dict: Mapping[str, Any]) -> None:
        """Set each key of ``config_dict`` as an attribute (unknown keys are kept and written back)."""
        for key, value in config_dict.items():
            setattr(self, key, value)

    def update_from_string(self, update_str: str) -> None:
        """``"a=1,b=true"``: update existing ``int``/``float``/``bool``/``str`` attributes from text."""
        for item in update_str.split(","):
            key, _, text = item.partition("=")
            if not hasattr(self, key):
                raise ValueError(f"key {key} isn't in the original config dict")
            old = getattr(self, key)
            if isinstance(old, bool):
                if text.lower() not in ("true", "1", "y", "yes", "false", "0", "n", "no"):
                    raise ValueError(f"can't derive true or false from {text} (key {key})")
                value: Any = text.lower() in ("true", "1", "y", "yes")
            elif isinstance(old, (int, float, str)):
                value = type(old)(text)
            else:
                raise TypeError(f"You can only update int, float, bool or string values in the config, got {text} for key {key}")
            setattr(self, key, value)

    # ------------------------------------------------------------------ writing

    def to_diff_dict(self) -> dict[str, Any]:
        """What transformers' ``save_pretrained`` writes (see the module docstring)."""
        base = base_defaults()
        out: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            sub = getattr(self, key, None) if key in self.sub_config_classes else None
            if isinstance(sub, TransformersConfigMixin) and isinstance(value, dict):
                out[key] = {**_sub_diff(value, base, sub), "model_type": value["model_type"]}
            elif key not in base or key == "transformers_version" or value != base[key]:
                out[key] = value
        out.pop("_name_or_path", None)
        return out

    def to_json_string(self, use_diff: bool = True) -> str:
        data = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(encode_special_floats(data), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike, use_diff: bool = True) -> None:
        with open(json_file_path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json_string(use_diff=use_diff))

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> None:
        """Write ``config.json`` (the diff, as transformers writes it) into ``save_directory``."""
        if os.path.isfile(save_directory):
            raise AssertionError(f"Provided path ({save_directory}) should be a directory, not a file")
        if push_to_hub:
            raise NotImplementedError("pe_av does not push to the hub; save locally and upload with huggingface_hub")
        os.makedirs(save_directory, exist_ok=True)
        self.to_json_file(os.path.join(save_directory, CONFIG_NAME), use_diff=True)

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike) -> Any:
        from ..json_io import read_json_object

        return cls(**decode_special_floats(read_json_object(json_file, holds="the model's configuration")))

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        revision: str = "main",
        **kwargs: Any,
    ) -> Any:
        """Read the ``config.json`` of a directory, a hub id or a JSON file (keywords as transformers: hub
        options, ``subfolder``, ``return_unused_kwargs``, and attributes to override).

        A checkpoint of another type whose top level holds a sub-config of this one yields that sub-config
        (``PeAudioEncoderConfig.from_pretrained(<pe_audio checkpoint>)`` gives its ``audio_config``); any
        other type is a ``ValueError`` (transformers warns and builds a config from the wrong keys).
        """
        from ..hub import resolve_model_dir
        from ..json_io import read_json_object

        for name in ("proxies", "trust_remote_code", "_from_auto", "_from_pipeline", "_commit_hash", "gguf_file"):
            kwargs.pop(name, None)
        subfolder = kwargs.pop("subfolder", "") or ""
        path = os.fspath(pretrained_model_name_or_path) if isinstance(pretrained_model_name_or_path, os.PathLike) else pretrained_model_name_or_path
        if isinstance(path, str) and os.path.isfile(os.path.join(subfolder, path)):
            file = os.path.join(subfolder, path)
        else:
            directory = resolve_model_dir(
                pretrained_model_name_or_path, subfolder=subfolder, revision=revision, cache_dir=cache_dir,
                local_files_only=local_files_only, token=token, force_download=force_download,
            )
            file = os.path.join(directory, CONFIG_NAME)
            if not os.path.isfile(file):
                raise FileNotFoundError(f"no config.json in {directory}")
        data = read_json_object(file, holds="the model's configuration")
        if data.get("model_type") != cls.model_type:
            data = cls._sub_config_of(data, file)
        return cls.from_dict(data, **kwargs)

    @classmethod
    def _sub_config_of(cls, data: dict[str, Any], file: str) -> dict[str, Any]:
        for value in data.values():
            if isinstance(value, dict) and value.get("model_type") == cls.model_type:
                return value
        if data.get("model_type") is None and "pretrained_cfg" in data and cls.model_type == "timm_wrapper":
            return data  # timm's own config.json names no model_type (transformers reads it as timm_wrapper)
        from ..registry import config_class_for

        config_class_for(data.get("model_type"))  # an unknown type is an error naming the supported ones
        raise ValueError(
            f"{file} holds model_type {data['model_type']!r}, not {cls.model_type!r} expected by {cls.__name__}"
        )

    def _apply_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """transformers' ``from_dict`` keywords on a built config: each one naming an attribute is set (a dict
        for a sub-config updates it; ``dtype="auto"`` changes nothing); the others are returned."""
        unused = {}
        for key, value in kwargs.items():
            if key in ("dtype", "torch_dtype"):
                if value is not None and value != "auto":
                    self.dtype = value
            elif key in ("attn_implementation", "experts_implementation"):
                setattr(self, "_" + key, value)
            elif key in FROM_DICT_FIELDS or hasattr(self, key):
                current = getattr(self, key, None)
                if isinstance(current, TransformersConfigMixin) and isinstance(value, Mapping):
                    value = type(current).from_dict({**current.to_dict(), **value})
                setattr(self, key, value)
            else:
                unused[key] = value
        return unused

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"
