"""Configs of the encoders: the DAC codec, the PE transformer and its audio, video and fusion
encoders, and the ViT (as transformers' ``timm_wrapper`` describes it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import _SUPPORTED_ROPE_TYPES, ConfigBase, _as_config, _require_positive_int

# --------------------------------------------------------------------------------------------------
# Audio codec


@dataclass
class DacConfig(ConfigBase):
    """The DAC audio codec encoder (only the encoder half is used by PE-AV).

    Defaults are PE-AV's (width 64, strides 2·8·10·12 = hop 1920, codebook dim 128), which transformers
    applies whenever ``dac_config`` comes as a dict inside a PE audio config.
    """

    model_type: ClassVar[str] = "dac"
    derived_keys: ClassVar[tuple[str, ...]] = ("hidden_size", "hop_length", "upsampling_ratios")

    encoder_hidden_size: int = 64
    downsampling_ratios: list[int] = field(default_factory=lambda: [2, 8, 10, 12])
    codebook_dim: int = 128

    def __post_init__(self) -> None:
        _require_positive_int("dac_config", encoder_hidden_size=self.encoder_hidden_size, codebook_dim=self.codebook_dim)
        ratios = list(self.downsampling_ratios) if isinstance(self.downsampling_ratios, (list, tuple)) else None
        if not ratios or any(isinstance(r, bool) or not isinstance(r, int) or r <= 0 for r in ratios):
            raise ValueError(
                f"dac_config.downsampling_ratios must be a non-empty list of positive integers, got {self.downsampling_ratios!r}"
            )
        self.downsampling_ratios = ratios

    @property
    def hidden_size(self) -> int:
        """Channels at the end of the DAC encoder: the width doubles at each downsampling block."""
        return self.encoder_hidden_size * 2 ** len(self.downsampling_ratios)

    @property
    def hop_length(self) -> int:
        """Audio samples per output token."""
        return math.prod(self.downsampling_ratios)

    def _derived_values(self) -> dict[str, Any]:
        return {
            "hidden_size": self.hidden_size,
            "hop_length": self.hop_length,
            "upsampling_ratios": self.downsampling_ratios[::-1],
        }


# --------------------------------------------------------------------------------------------------
# The PE transformer shared by the audio, video and fusion encoders


@dataclass
class PeTransformerConfig(ConfigBase):
    """Dimensions of one PE transformer stack (fields and defaults as in transformers)."""

    hidden_size: int = 1792
    intermediate_size: int = 4800
    num_hidden_layers: int = 6
    num_attention_heads: int = 14
    num_key_value_heads: int | None = None
    head_dim: int = 128
    hidden_act: str = "silu"
    max_position_embeddings: int = 10000
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    rope_parameters: dict[str, Any] | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0

    @classmethod
    def _upgrade_legacy_keys(cls, kwargs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("rope_parameters") is None and "rope_theta" in extra:
            kwargs["rope_parameters"] = {"rope_type": "default", "rope_theta": extra.pop("rope_theta")}
        return kwargs

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        _require_positive_int(
            name,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
        )
        if isinstance(self.num_hidden_layers, bool) or not isinstance(self.num_hidden_layers, int) or self.num_hidden_layers < 0:
            raise ValueError(f"{name}.num_hidden_layers must be a non-negative integer, got {self.num_hidden_layers!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"{name}: num_attention_heads ({self.num_attention_heads}) must be divisible by "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(f"{name}.head_dim must be even for rotary embeddings, got {self.head_dim}")
        if self.hidden_act not in ("silu", "swish"):
            raise ValueError(f"{name}.hidden_act must be 'silu' (SwiGLU MLP), got {self.hidden_act!r}")
        if not (isinstance(self.rms_norm_eps, (int, float)) and self.rms_norm_eps > 0):
            raise ValueError(f"{name}.rms_norm_eps must be a positive number, got {self.rms_norm_eps!r}")
        rope = dict(self.rope_parameters or {})
        rope.setdefault("rope_type", "default")
        rope.setdefault("rope_theta", 20000)
        if rope["rope_type"] not in _SUPPORTED_ROPE_TYPES:
            raise ValueError(f"{name}.rope_parameters.rope_type {rope['rope_type']!r} is not supported; expected 'default'")
        if not (isinstance(rope["rope_theta"], (int, float)) and rope["rope_theta"] > 0):
            raise ValueError(f"{name}.rope_parameters.rope_theta must be a positive number, got {rope['rope_theta']!r}")
        self.rope_parameters = rope

    @property
    def rope_theta(self) -> float:
        return float(self.rope_parameters["rope_theta"])

    @property
    def num_key_value_groups(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads


@dataclass
class PeAudioEncoderConfig(PeTransformerConfig):
    """``PeAudioEncoder``: DAC codec encoder + PE transformer."""

    model_type: ClassVar[str] = "pe_audio_encoder"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {"dac_config": DacConfig}

    dac_config: DacConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dac_config is None:
            self.dac_config = DacConfig()
        elif isinstance(self.dac_config, Mapping):
            self.dac_config = DacConfig.from_dict(self.dac_config)


# --------------------------------------------------------------------------------------------------
# Vision


@dataclass
class TimmVisionConfig(ConfigBase):
    """The ViT frame encoder, described as transformers' ``timm_wrapper`` config describes it.

    ``architecture`` names a timm model (``vit_pe_core_*``); ``model_args`` overrides its defaults.
    """

    model_type: ClassVar[str] = "timm_wrapper"

    architecture: str = "vit_pe_core_large_patch14_336"
    model_args: dict[str, Any] | None = None
    num_classes: int = 1024
    global_pool: str = "map"
    do_pooling: bool = True
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, str) or not self.architecture:
            raise ValueError(f"vision_config.architecture must be a timm model name, got {self.architecture!r}")
        if self.model_args is not None and not isinstance(self.model_args, Mapping):
            raise ValueError(f"vision_config.model_args must be a dict or null, got {type(self.model_args).__name__}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"vision_config.num_classes must be a non-negative integer, got {self.num_classes!r}")


@dataclass
class PeVideoEncoderConfig(PeTransformerConfig):
    """``PeVideoEncoder``: per-frame ViT + PE transformer over frames."""

    model_type: ClassVar[str] = "pe_video_encoder"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {"vision_config": TimmVisionConfig}

    vision_config: TimmVisionConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vision_config is None:
            self.vision_config = TimmVisionConfig()
        elif isinstance(self.vision_config, Mapping):
            self.vision_config = TimmVisionConfig.from_dict(self.vision_config)


@dataclass
class PeAudioVideoEncoderConfig(PeTransformerConfig):
    """``PeAudioVideoEncoder``: fusion PE transformer over the audio and video encoders' outputs."""

    model_type: ClassVar[str] = "pe_audio_video_encoder"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {
        "audio_config": PeAudioEncoderConfig,
        "video_config": PeVideoEncoderConfig,
    }

    audio_config: PeAudioEncoderConfig | None = None
    video_config: PeVideoEncoderConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.audio_config = _as_config(self.audio_config, PeAudioEncoderConfig)
        self.video_config = _as_config(self.video_config, PeVideoEncoderConfig)
