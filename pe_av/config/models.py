"""Configs of the whole models: ``PeAudioConfig``, ``PeVideoConfig`` and ``PeAudioVideoConfig`` (text tower +
encoders, nested as transformers nests them).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import ConfigBase, config_class
from .encoders import PeAudioEncoderConfig, PeAudioVideoEncoderConfig, PeVideoEncoderConfig
from .text import PE_TEXT_DEFAULTS, ModernBertConfig

_TEXT_DEFAULTS: dict[str, dict[str, Any]] = {"text_config": PE_TEXT_DEFAULTS}

# --------------------------------------------------------------------------------------------------
# Whole models


@config_class
class PeAudioConfig(ConfigBase):
    """``PeAudioModel`` / ``PeAudioFrameLevelModel``: text tower + audio encoder."""

    model_type: ClassVar[str] = "pe_audio"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {
        "text_config": ModernBertConfig,
        "audio_config": PeAudioEncoderConfig,
    }

    sub_config_defaults: ClassVar[dict[str, dict[str, Any]]] = _TEXT_DEFAULTS

    text_config: ModernBertConfig | None = None
    audio_config: PeAudioEncoderConfig | None = None


@config_class
class PeVideoConfig(ConfigBase):
    """``PeVideoModel``: text tower + video encoder."""

    model_type: ClassVar[str] = "pe_video"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {
        "text_config": ModernBertConfig,
        "video_config": PeVideoEncoderConfig,
    }

    sub_config_defaults: ClassVar[dict[str, dict[str, Any]]] = _TEXT_DEFAULTS

    text_config: ModernBertConfig | None = None
    video_config: PeVideoEncoderConfig | None = None


@config_class
class PeAudioVideoConfig(ConfigBase):
    """``PeAudioVideoModel``: text tower + fusion encoder (which holds the audio and video encoders)."""

    model_type: ClassVar[str] = "pe_audio_video"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {
        "text_config": ModernBertConfig,
        "audio_video_config": PeAudioVideoEncoderConfig,
    }

    sub_config_defaults: ClassVar[dict[str, dict[str, Any]]] = _TEXT_DEFAULTS

    text_config: ModernBertConfig | None = None
    audio_video_config: PeAudioVideoEncoderConfig | None = None
    tie_word_embeddings: bool = True

    @property
    def audio_config(self) -> PeAudioConfig:
        """The ``PeAudioConfig`` of this model's audio sub-model (shares the sub-config objects)."""
        return PeAudioConfig(text_config=self.text_config, audio_config=self.audio_video_config.audio_config)

    @property
    def video_config(self) -> PeVideoConfig:
        """The ``PeVideoConfig`` of this model's video sub-model (shares the sub-config objects)."""
        return PeVideoConfig(text_config=self.text_config, video_config=self.audio_video_config.video_config)
