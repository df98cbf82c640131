"""The one table of the model types pe_av knows: for each ``model_type``, its config, model and processor.

Everything that goes from a ``config.json`` to classes looks the type up here: the config loader
(:func:`pe_av.config.load_config` / :func:`pe_av.config.config_from_dict`), the ``pe-av`` command
line, and the Auto classes. Each lookup is one call::

    config_class_for("pe_audio")        # -> PeAudioConfig
    model_class_for(config)             # -> PeAudioModel (a config or a model_type name)
    processor_class_for("pe_audio")     # -> PeAudioProcessor (None for the encoders and towers)

Layering: this module sits above :mod:`pe_av.config`, :mod:`pe_av.models` and :mod:`pe_av.processing`
and imports all three. The models import the config module, so ``config.py`` reaches the registry only
inside its loader functions, never at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .config import (
    ConfigBase,
    ModernBertConfig,
    PeAudioConfig,
    PeAudioEncoderConfig,
    PeAudioVideoConfig,
    PeAudioVideoEncoderConfig,
    PeVideoConfig,
    PeVideoEncoderConfig,
    TimmVisionConfig,
)
from .models import (
    ModernBertModel,
    PeAudioEncoder,
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioVideoEncoder,
    PeAudioVideoModel,
    PePreTrainedModel,
    PeVideoEncoder,
    PeVideoModel,
    PeVisionModel,
)
from .processing import PeAudioProcessor, PeAudioVideoProcessor, PeVideoProcessor

__all__ = [
    "MODEL_TYPES",
    "ModelType",
    "config_class_for",
    "config_classes",
    "model_class_for",
    "model_type_entry",
    "processor_class_for",
    "supported_model_types",
]


@dataclass(frozen=True)
class ModelType:
    """What pe_av has for one ``model_type``.

    ``model_classes`` lists every model class built from this config; the first is the one a
    ``model_type`` maps to (as transformers' ``AutoModel`` does), the others are variants picked by
    class name (``PeAudioFrameLevelModel`` for ``pe_audio``). ``processor_class`` is None for types
    without a processor of their own (encoders and single towers).
    """

    name: str
    config_class: type[ConfigBase]
    model_classes: tuple[type[PePreTrainedModel], ...]
    processor_class: type | None = None

    def __post_init__(self) -> None:
        if self.config_class.model_type != self.name:
            raise TypeError(f"{self.config_class.__name__} has model_type {self.config_class.model_type!r}, "
                            f"registered as {self.name!r}")
        for model_cls in self.model_classes:
            if model_cls.config_class is not self.config_class:
                raise TypeError(f"{model_cls.__name__} is built from {model_cls.config_class.__name__}, "
                                f"not {self.config_class.__name__}")

    @property
    def model_class(self) -> type[PePreTrainedModel]:
        """The model class this ``model_type`` maps to by default."""
        return self.model_classes[0]


_ENTRIES = (
    ModelType("pe_audio_video", PeAudioVideoConfig, (PeAudioVideoModel,), PeAudioVideoProcessor),
    ModelType("pe_audio_video_encoder", PeAudioVideoEncoderConfig, (PeAudioVideoEncoder,)),
    ModelType("pe_audio", PeAudioConfig, (PeAudioModel, PeAudioFrameLevelModel), PeAudioProcessor),
    ModelType("pe_audio_encoder", PeAudioEncoderConfig, (PeAudioEncoder,)),
    ModelType("pe_video", PeVideoConfig, (PeVideoModel,), PeVideoProcessor),
    ModelType("pe_video_encoder", PeVideoEncoderConfig, (PeVideoEncoder,)),
    ModelType("modernbert", ModernBertConfig, (ModernBertModel,)),
    ModelType("timm_wrapper", TimmVisionConfig, (PeVisionModel,)),
)

#: ``model_type`` → :class:`ModelType`, read-only
MODEL_TYPES: Mapping[str, ModelType] = MappingProxyType({entry.name: entry for entry in _ENTRIES})


def supported_model_types(*, with_processor: bool = False) -> list[str]:
    """The registered ``model_type`` names, sorted (only those with a processor if ``with_processor``)."""
    return sorted(name for name, entry in MODEL_TYPES.items() if entry.processor_class or not with_processor)


def model_type_entry(model_type: str) -> ModelType:
    """The :class:`ModelType` of ``model_type``; an unknown one is a ``ValueError`` listing the supported."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; pe_av supports {supported_model_types()}")
    return MODEL_TYPES[model_type]


def config_class_for(model_type: str) -> type[ConfigBase]:
    """The config class of ``model_type`` (e.g. ``"pe_audio"`` → ``PeAudioConfig``)."""
    return model_type_entry(model_type).config_class


def model_class_for(config: ConfigBase | str, architecture: str | None = None) -> type[PePreTrainedModel]:
    """The model class for ``config`` (a config object or a ``model_type`` name).

    Without ``architecture`` this is the type's default class, whatever the config's ``architectures``
    key says (as transformers' ``AutoModel``). ``architecture`` names a variant built from the same
    config, e.g. ``model_class_for(config, "PeAudioFrameLevelModel")``.
    """
    entry = model_type_entry(config.model_type if isinstance(config, ConfigBase) else config)
    if architecture is None:
        return entry.model_class
    for model_cls in entry.model_classes:
        if model_cls.__name__ == architecture:
            return model_cls
    raise ValueError(
        f"model_type {entry.name!r} has no model class {architecture!r}; "
        f"pe_av has {[cls.__name__ for cls in entry.model_classes]}"
    )


def processor_class_for(model_type: str) -> type | None:
    """The processor class of ``model_type``, or None when the type has none (encoders, towers)."""
    return model_type_entry(model_type).processor_class


def config_classes() -> dict[str, type[ConfigBase]]:
    """``model_type`` → config class, for every registered type (a new dict)."""
    return {name: entry.config_class for name, entry in MODEL_TYPES.items()}
