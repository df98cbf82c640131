"""Configs of the whole models: ``PeAudioConfig``, ``PeVideoConfig`` and ``PeAudioVideoConfig`` (text tower +
encoders, nested as transformers nests them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import ConfigBase, _as_config
from .encoders import PeAudioEncoderConfig, PeAudioVideoEncoderConfig, PeVideoEncoderConfig
from .text import ModernBertConfig

# --------------------------------------------------------------------------------------------------
# Whole models


@dataclass
class PeAudioConfig(ConfigBase):
    """``PeAudioModel`` / ``PeAudioFrameLevelModel``: text tower + audio encoder."""

    model_type: ClassVar[str] = "pe_audio"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {
        "text_config": ModernBertConfig,
        "audio_config": PeAudioEncoderConfig,
    }

    text_config: ModernBertConfig | None = None
    audio_config: PeAudioEncoderConfig | None = None

    def __post_init__(self) -> None:
        self.text_config = _as_config(self.text_config, ModernBertConfig)
        self.audio_config = _as_config(self.audio_config, PeAudioEncoderConfig)


@dataclass
class PeVideoConfig(ConfigBase):
    """``PeVideoModel``: text tower + video encoder."""

    model_type: ClassVar[str] = "pe_video"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {
        "text_config": ModernBertConfig,
        "video_config": PeVideoEncoderConfig,
    }

    text_config: ModernBertConfig | None = None
    video_config: PeVideoEncoderConfig | None = None

    def __post_init__(self) -> None:
        self.text_config = _as_config(self.text_config, ModernBertConfig)
        self.video_config = _as_config(self.video_config, PeVideoEncoderConfig)


@dataclass
class PeAudioVideoConfig(ConfigBase):
    """``PeAudioVideoModel``: text tower + fusion encoder (which holds the audio and video encoders)."""

    model_type: ClassVar[str] = "pe_audio_video"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {
        "text_config": ModernBertConfig,
        "audio_video_config": PeAudioVideoEncoderConfig,
    }

    text_config: ModernBertConfig | None = None
    audio_video_config: PeAudioVideoEncoderConfig | None = None
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        self.text_config = _as_config(self.text_config, ModernBertConfig)
        self.audio_video_config = _as_config(self.audio_video_config, PeAudioVideoEncoderConfig)

    @property
    def audio_config(self) -> PeAudioConfig:
        """The ``PeAudioConfig`` of this model's audio sub-model (shares the sub-config objects)."""
        return PeAudioConfig(text_config=self.text_config, audio_config=self.audio_video_config.audio_config)

    @property
    def video_config(self) -> PeVideoConfig:
        """The ``PeVideoConfig`` of this model's video sub-model (shares the sub-config objects)."""
        return PeVideoConfig(text_config=self.text_config, video_config=self.audio_video_config.video_config)
