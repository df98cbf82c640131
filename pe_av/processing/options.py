"""Call options shared by the processors: defaults, padding/truncation strategies, and the routing of a
processor's keyword arguments to its parts (transformers' ``ProcessorMixin._merge_kwargs``).

Routing, as transformers does it: a top-level keyword goes to every part that takes it (``padding`` and
``max_length`` to the tokenizer and the feature extractor, ``return_tensors`` to all, ``sampling_rate`` to
audio, ``num_frames`` / ``size`` / ... to video); ``text_kwargs`` / ``audio_kwargs`` / ``videos_kwargs``
dicts go to one part only; ``common_kwargs`` to all; a key given both at top level and in the dict of a part
that takes it is a ``ValueError``; a top-level keyword no part takes is ignored with a warning.

Deliberate difference: a top-level ``truncation`` goes to the tokenizer only. transformers hands it to the
feature extractor too, which then refuses it next to padding or cuts the audio at the text's
``max_length``; ``audio_kwargs={"truncation": True, "max_length": n}`` truncates audio here as there.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("pe_av.processing")


class _Unset:
    """The default of an option the caller did not give (``None`` can be a given value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not given>"


#: marks an option as not given: our defaults apply (tensors, padding, truncation at 512)
UNSET: Any = _Unset()

PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = ("only_first", "only_second", "longest_first", "do_not_truncate")

#: keywords the tokenizer takes from a processor's top level (transformers' ``TextKwargs``)
TEXT_KEYS = frozenset({
    "text_pair", "text_target", "text_pair_target", "add_special_tokens", "padding", "truncation", "max_length",
    "stride", "is_split_into_words", "pad_to_multiple_of", "padding_side", "return_token_type_ids",
    "return_attention_mask", "return_overflowing_tokens", "return_special_tokens_mask", "return_offsets_mapping",
    "return_length", "verbose", "return_tensors",
})
#: ... the feature extractor (``truncation`` only through ``audio_kwargs``: see the module's docstring)
AUDIO_KEYS = frozenset({"sampling_rate", "padding", "max_length", "return_tensors"})
#: ... the video processor (transformers' ``VideosKwargs``)
VIDEO_KEYS = frozenset({
    "do_convert_rgb", "do_resize", "size", "default_to_square", "resample", "do_rescale", "rescale_factor",
    "do_normalize", "image_mean", "image_std", "do_center_crop", "do_pad", "crop_size", "data_format",
    "input_data_format", "device", "do_sample_frames", "video_metadata", "fps", "num_frames", "return_metadata",
    "return_tensors", "max_frames",
})
MODALITY_DICTS = {"text_kwargs": "text", "audio_kwargs": "audio", "videos_kwargs": "videos", "images_kwargs": "images"}


def padding_strategy(padding: object) -> str:
    """``"longest"``, ``"max_length"`` or ``"do_not_pad"`` for transformers' ``padding`` values."""
    value = getattr(padding, "value", padding)  # transformers' PaddingStrategy enum
    if value is True or (isinstance(value, str) and value == "longest"):
        return "longest"
    if value is False or (isinstance(value, str) and value == "do_not_pad"):
        return "do_not_pad"
    if isinstance(value, str) and value == "max_length":
        return "max_length"
    raise ValueError(
        f"padding must be one of True, False, 'longest', 'max_length' or 'do_not_pad'; got {padding!r} "
        f"(not a valid PaddingStrategy, please select one of {list(PADDING_STRATEGIES)})"
    )


def truncation_strategy(truncation: object) -> str | None:
    """``"longest_first"`` / ``"only_first"`` / ``"only_second"``, or ``None`` for no truncation."""
    value = getattr(truncation, "value", truncation)  # transformers' TruncationStrategy enum
    if value is None or value is False or (isinstance(value, str) and value == "do_not_truncate"):
        return None
    if value is True:
        return "longest_first"
    if isinstance(value, str) and value in TRUNCATION_STRATEGIES:
        return value
    raise ValueError(
        f"truncation must be True, False, None or one of {list(TRUNCATION_STRATEGIES)}; got {truncation!r} "
        "(not a valid TruncationStrategy)"
    )


def check_positive_int(name: str, value: object, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def route_kwargs(kwargs: dict[str, Any], takes: dict[str, frozenset[str]]) -> dict[str, dict[str, Any]]:
    """Split a processor call's keywords into per-part keywords (``{"text": ..., "audio": ..., "videos": ...}``).

    ``takes`` maps each part the processor has to the top-level keywords it accepts.
    """
    out: dict[str, dict[str, Any]] = {modality: {} for modality in ("text", "audio", "videos")}
    common = kwargs.get("common_kwargs") or {}
    if not isinstance(common, dict):
        raise TypeError(f"common_kwargs must be a dict, got {type(common).__name__}")
    for options in out.values():
        options.update(common)
    flat = {key: value for key, value in kwargs.items() if key not in MODALITY_DICTS and key != "common_kwargs"}
    for name, modality in MODALITY_DICTS.items():
        nested = kwargs.get(name)
        if nested is None:
            continue
        if not isinstance(nested, dict):
            raise TypeError(f"{name} must be a dict of keyword arguments, got {type(nested).__name__}")
        if modality == "images":
            if nested:
                raise ValueError("PE-AV processors take no images, so images_kwargs has nothing to configure")
            continue
        for key, value in nested.items():
            if key in flat and key in takes.get(modality, ()):
                raise ValueError(
                    f"Keyword argument {key} was passed two times:\nin a dictionary for {name} and as a **kwarg."
                )
            out[modality][key] = value
    for key, value in flat.items():
        targets = [modality for modality, keys in takes.items() if key in keys]
        if not targets:
            logger.warning("Keyword argument `%s` is not a valid argument for this processor and will be ignored.", key)
        for modality in targets:
            out[modality][key] = value
    return out
