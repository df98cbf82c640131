"""``AutoConfig``, ``AutoModel``, ``AutoProcessor`` and the part-level Auto classes, as transformers has them.

Each picks the class from the checkpoint's ``model_type`` through :mod:`pe_av.registry` (the one table of
model types), so a script that starts ``from transformers import AutoModel, AutoProcessor`` runs with the
import swapped::

    from pe_av import AutoModel, AutoProcessor
    model = AutoModel.from_pretrained("path/to/pe-av-large")         # PeAudioVideoModel
    processor = AutoProcessor.from_pretrained("path/to/pe-av-large")  # PeAudioVideoProcessor

Deliberate difference: a ``timm_wrapper`` checkpoint (the PE-Core ViT alone) maps to transformers'
headless ``TimmWrapperModel`` under ``AutoModel``; pe_av has only the classifier
(``TimmWrapperForImageClassification``'s keys and logits), :class:`pe_av.PeVisionModel`, which
``AutoModelForImageClassification`` returns, and ``AutoModel`` says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import ConfigBase, load_config
from .json_io import read_json_object
from .loading import resolve_model_dir
from .models import PePreTrainedModel, PeVisionModel
from .processing import (
    PeAudioFeatureExtractor,
    PeAudioProcessor,
    PeAudioVideoProcessor,
    PeTokenizer,
    PeVideoProcessor,
    PeVideoVideoProcessor,
)
from .processing.files import resolve_processor_dir, split_loading_kwargs
from .registry import config_class_for, model_class_for, model_type_entry, processor_class_for, supported_model_types

__all__ = [
    "AutoConfig",
    "AutoFeatureExtractor",
    "AutoModel",
    "AutoModelForImageClassification",
    "AutoProcessor",
    "AutoTokenizer",
    "AutoVideoProcessor",
]

_PROCESSORS_BY_NAME = {cls.__name__: cls for cls in (PeAudioVideoProcessor, PeAudioProcessor, PeVideoProcessor)}
_HUB_KEYWORDS = ("subfolder", "revision", "cache_dir", "local_files_only", "token", "force_download")


def _hub_keywords(kwargs: dict[str, Any], pop: bool) -> dict[str, Any]:
    """The hub keywords of ``kwargs`` (removed from it when ``pop``), for :func:`resolve_model_dir`."""
    found = {key: kwargs[key] for key in _HUB_KEYWORDS if key in kwargs}
    if pop:
        for key in found:
            del kwargs[key]
    return {key: value for key, value in found.items() if value is not None}


def _no_instances(cls: type) -> None:
    raise TypeError(f"{cls.__name__} is not meant to be instantiated; use {cls.__name__}.from_pretrained(...)")


class AutoConfig:
    """The config class named by a checkpoint's ``model_type``."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> ConfigBase:
        """Read ``config.json`` of ``path`` (a directory or a hub id) into its config class.

        Keyword arguments that name config attributes override them, as in transformers; the hub keywords
        (``revision``, ``subfolder``, ``local_files_only`` …) say where to find it.
        """
        config = load_config(resolve_model_dir(path, **_hub_keywords(kwargs, pop=True)))
        for key in ("trust_remote_code", "return_unused_kwargs", "_from_auto"):
            kwargs.pop(key, None)
        for key, value in kwargs.items():
            if hasattr(config, key):
                setattr(config, key, value)
            else:
                config.extra[key] = value
        return config

    @classmethod
    def for_model(cls, model_type: str, **kwargs: Any) -> ConfigBase:
        """A new config of ``model_type`` built from ``kwargs`` (e.g. ``AutoConfig.for_model("pe_audio")``)."""
        return config_class_for(model_type)(**kwargs)


class AutoModel:
    """The model class of a checkpoint's ``model_type`` (transformers' ``AutoModel`` mapping)."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def _model_class(cls, config: ConfigBase) -> type[PePreTrainedModel]:
        if config.model_type == "timm_wrapper":
            raise ValueError(
                "AutoModel maps a timm_wrapper checkpoint to transformers' headless TimmWrapperModel, which pe_av "
                "does not have; load it with AutoModelForImageClassification or pe_av.PeVisionModel (the classifier)"
            )
        return model_class_for(config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, config: ConfigBase | None = None, **kwargs: Any):
        """Load the checkpoint at ``path`` with its model class; keyword arguments go to its ``from_pretrained``."""
        config = load_config(resolve_model_dir(path, **_hub_keywords(kwargs, pop=False))) if config is None else config
        return cls._model_class(config).from_pretrained(path, config=config, **kwargs)

    @classmethod
    def from_config(cls, config: ConfigBase, **kwargs: Any) -> PePreTrainedModel:
        """A randomly initialised model of ``config``'s type."""
        if not isinstance(config, ConfigBase):
            raise TypeError(f"config must be a pe_av config (e.g. from AutoConfig), got {type(config).__name__}")
        model = cls._model_class(config)(config, **kwargs)
        return model


class AutoModelForImageClassification(AutoModel):
    """``timm_wrapper`` checkpoints → :class:`pe_av.PeVisionModel` (the PE-Core ViT with its head)."""

    @classmethod
    def _model_class(cls, config: ConfigBase) -> type[PePreTrainedModel]:
        if config.model_type != "timm_wrapper":
            raise ValueError(
                f"AutoModelForImageClassification loads timm_wrapper checkpoints (the PE-Core ViT); this one is "
                f"{config.model_type!r}: use AutoModel"
            )
        return PeVisionModel


class AutoProcessor:
    """The processor of a checkpoint: ``processor_config.json``'s ``processor_class``, else its ``model_type``."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def processor_class(cls, directory: str | os.PathLike) -> type[PeAudioVideoProcessor]:
        """Which processor class :meth:`from_pretrained` would build for ``directory``."""
        directory = Path(directory)
        processor_file = directory / "processor_config.json"
        if processor_file.is_file():
            name = read_json_object(processor_file, "processor settings").get("processor_class")
            if name in _PROCESSORS_BY_NAME:
                return _PROCESSORS_BY_NAME[name]
        if (directory / "config.json").is_file():
            model_type = read_json_object(directory / "config.json", "the model's configuration").get("model_type")
            processor = processor_class_for(model_type)
            if processor is None:
                model_type_entry(model_type)  # an unknown type is an error naming the supported ones
                raise ValueError(
                    f"model_type {model_type!r} has no processor; processors exist for "
                    f"{supported_model_types(with_processor=True)}"
                )
            return processor
        raise FileNotFoundError(
            f"{os.fspath(directory)!r} has neither a processor_config.json naming a pe_av processor nor a "
            "config.json with a model_type"
        )

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> PeAudioVideoProcessor:
        """Load the processor saved at ``path`` (a directory or a hub id). Keywords: transformers' loading
        keywords (``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``trust_remote_code``, ...) and
        settings of the parts, see :mod:`pe_av.processing.files`."""
        hub, overrides = split_loading_kwargs(kwargs)
        directory = resolve_processor_dir(path, hub)
        return cls.processor_class(directory).from_pretrained(directory, **overrides)


class AutoTokenizer:
    """The text tower's tokenizer (:class:`pe_av.PeTokenizer`, on ``tokenizers``) saved at a path."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> PeTokenizer:
        """:meth:`PeTokenizer.from_pretrained` (transformers' loading keywords, ``use_fast`` ignored)."""
        return PeTokenizer.from_pretrained(path, **kwargs)


class AutoFeatureExtractor:
    """The audio feature extractor (:class:`pe_av.PeAudioFeatureExtractor`) of a saved processor."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> PeAudioFeatureExtractor:
        """:meth:`PeAudioFeatureExtractor.from_pretrained`: the saved feature extractor config of ``path``."""
        return PeAudioFeatureExtractor.from_pretrained(path, **kwargs)


class AutoVideoProcessor:
    """The video processor (:class:`pe_av.PeVideoVideoProcessor`) of a saved processor."""

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> PeVideoVideoProcessor:
        """:meth:`PeVideoVideoProcessor.from_pretrained`: the saved video processor config of ``path``."""
        return PeVideoVideoProcessor.from_pretrained(path, **kwargs)
