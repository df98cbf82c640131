"""Configs of the encoders: the DAC codec, the PE transformer and its audio, video and fusion
encoders, and the ViT (as transformers' ``timm_wrapper`` describes it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import field
from typing import Any, ClassVar

from .base import (
    _SUPPORTED_ROPE_TYPES,
    MAX_LAYERS,
    MAX_VOCAB,
    MAX_WIDTH,
    ConfigBase,
    _is_int,
    config_class,
    _require_layer_count,
    _require_number,
    _require_positive_int,
)

#: bounds of the DAC's strides and of the ViT's image side and MLP ratios (see MAX_WIDTH in .base)
MAX_DAC_STRIDE = 1 << 10
MAX_IMAGE_SIZE = 1 << 14
MAX_MLP_RATIO = 64.0

# --------------------------------------------------------------------------------------------------
# Audio codec


#: what transformers fills in for a ``dac_config`` given as a dict or None inside a PE audio encoder's config:
#: PE-AV's codec (width 64, strides 2·8·10·12 = hop 1920, codebook dim 128)
PE_DAC_DEFAULTS: dict[str, Any] = {"downsampling_ratios": [2, 8, 10, 12], "encoder_hidden_size": 64, "codebook_dim": 128}


@config_class
class DacConfig(ConfigBase):
    """The DAC audio codec (only the encoder half is used by PE-AV); fields and defaults as transformers'
    ``DacConfig`` (a PE audio encoder's ``dac_config`` gets :data:`PE_DAC_DEFAULTS` on top)."""

    model_type: ClassVar[str] = "dac"
    derived_keys: ClassVar[tuple[str, ...]] = ("hidden_size", "hop_length", "upsampling_ratios")

    encoder_hidden_size: int = 64
    downsampling_ratios: list[int] = field(default_factory=lambda: [2, 4, 8, 8])
    decoder_hidden_size: int = 1536
    n_codebooks: int = 9
    codebook_size: int = 1024
    codebook_dim: int = 8
    quantizer_dropout: float = 0.0
    commitment_loss_weight: float = 0.25
    codebook_loss_weight: float = 1.0
    sampling_rate: int = 16000

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_positive_int(
            "dac_config", at_most=MAX_WIDTH, encoder_hidden_size=self.encoder_hidden_size, codebook_dim=self.codebook_dim
        )
        ratios = list(self.downsampling_ratios) if isinstance(self.downsampling_ratios, (list, tuple)) else None
        if not ratios or any(not _is_int(r) or r <= 0 for r in ratios):
            raise ValueError(
                f"dac_config.downsampling_ratios must be a non-empty list of positive integers, got {self.downsampling_ratios!r}"
            )
        if max(ratios) > MAX_DAC_STRIDE:
            raise ValueError(f"dac_config.downsampling_ratios must be at most {MAX_DAC_STRIDE:,} each, got {ratios}")
        if self.encoder_hidden_size * 2 ** len(ratios) > MAX_WIDTH:
            raise ValueError(
                f"dac_config: encoder_hidden_size ({self.encoder_hidden_size}) doubled at each of the {len(ratios)} "
                f"downsampling_ratios is wider than {MAX_WIDTH:,} channels (pe_av's bound)"
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


@config_class
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
        """``rope_scaling`` and a flat ``rope_theta`` (older files, keywords) go into ``rope_parameters``."""
        rope = extra.pop("rope_scaling", None) or kwargs.get("rope_parameters")
        theta = extra.pop("rope_theta", None)
        if theta is not None or rope is not None:
            rope = dict(rope or {})
            if theta is not None:
                rope.setdefault("rope_theta", theta)
            kwargs["rope_parameters"] = rope
        return kwargs

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        _require_positive_int(
            name,
            at_most=MAX_WIDTH,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
        )
        _require_layer_count(name, "num_hidden_layers", self.num_hidden_layers)
        if self.num_attention_heads * self.head_dim > MAX_WIDTH:
            raise ValueError(
                f"{name}: num_attention_heads × head_dim ({self.num_attention_heads} × {self.head_dim}) must be at "
                f"most {MAX_WIDTH:,} (pe_av's bound)"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"{name}: num_attention_heads ({self.num_attention_heads}) must be divisible by "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(f"{name}.head_dim must be even for rotary embeddings, got {self.head_dim}")
        if self.hidden_act not in ("silu", "swish"):
            raise ValueError(f"{name}.hidden_act must be 'silu' (SwiGLU MLP), got {self.hidden_act!r}")
        _require_number(name, "rms_norm_eps", self.rms_norm_eps, "> 0")
        _require_number(name, "initializer_range", self.initializer_range, ">= 0")
        _require_number(name, "attention_dropout", self.attention_dropout, "in [0, 1)")
        rope = dict(self.rope_parameters or {})
        rope.setdefault("rope_type", "default")
        rope.setdefault("rope_theta", 20000)
        if rope["rope_type"] not in _SUPPORTED_ROPE_TYPES:
            raise ValueError(f"{name}.rope_parameters.rope_type {rope['rope_type']!r} is not supported; expected 'default'")
        _require_number(name, "rope_parameters.rope_theta", rope["rope_theta"], "> 0")
        self.rope_parameters = rope

    @property
    def rope_theta(self) -> float:
        return float(self.rope_parameters["rope_theta"])

    @property
    def num_key_value_groups(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads


@config_class
class PeAudioEncoderConfig(PeTransformerConfig):
    """``PeAudioEncoder``: DAC codec encoder + PE transformer."""

    model_type: ClassVar[str] = "pe_audio_encoder"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {"dac_config": DacConfig}
    sub_config_defaults: ClassVar[dict[str, dict[str, Any]]] = {"dac_config": PE_DAC_DEFAULTS}

    dac_config: DacConfig | None = None


# --------------------------------------------------------------------------------------------------
# Vision


def _label_property(key: str) -> property:
    def get(self: TimmVisionConfig) -> Any:
        return self.extra.get(key)

    def set_(self: TimmVisionConfig, value: Any) -> None:
        if value is None:
            self.__dict__.get("extra", {}).pop(key, None)
        else:
            self.extra[key] = value

    return property(get, set_, doc=f"``{key}`` (kept in ``extra``: the ViT's head size has rules of its own)")


#: what transformers fills in for a ``vision_config`` given as a dict or None inside a PE video encoder's config
PE_VISION_DEFAULTS: dict[str, Any] = {"architecture": "vit_pe_core_large_patch14_336", "do_pooling": True,
                                      "num_classes": 1024, "global_pool": "map", "initializer_range": 0.02}


@config_class
class TimmVisionConfig(ConfigBase):
    """The ViT frame encoder, described as transformers' ``timm_wrapper`` config describes it (its defaults
    but ``architecture``, PE-Core large rather than timm's ``resnet50``, which pe_av does not implement; a PE
    video encoder's ``vision_config`` gets :data:`PE_VISION_DEFAULTS` on top).

    ``architecture`` names a timm model (``vit_pe_core_*``); ``model_args`` overrides its defaults. The
    labels (``num_labels``, ``id2label``, ``label_names``) stay in ``extra``: the classifier's size follows
    :func:`pe_av.models.vision_spec.vision_num_classes`, which :attr:`num_labels` reports.
    """

    model_type: ClassVar[str] = "timm_wrapper"
    labels_in_extra: ClassVar[bool] = True

    architecture: str = "vit_pe_core_large_patch14_336"  # transformers: "resnet50", which pe_av has not
    model_args: dict[str, Any] | None = None
    num_classes: int = 2
    do_pooling: bool = True
    initializer_range: float = 0.02

    id2label = _label_property("id2label")
    label2id = _label_property("label2id")

    @property
    def num_labels(self) -> int:
        """Classifier outputs: ``num_labels``, else the length of ``id2label`` or ``label_names``, else ``num_classes``."""
        if "num_labels" in self.extra:
            return self.extra["num_labels"]
        for key in ("id2label", "label_names"):
            if isinstance(self.extra.get(key), (Mapping, list)):
                return len(self.extra[key])
        return self.num_classes

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        """Set the head size; label names of another length are dropped (transformers renames them ``LABEL_i``)."""
        for key in ("id2label", "label2id", "label_names"):
            if isinstance(self.extra.get(key), (Mapping, list)) and len(self.extra[key]) != value:
                del self.extra[key]
        self.extra["num_labels"] = value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **kwargs: Any) -> Any:
        """As transformers' ``TimmWrapperConfig.from_dict`` (a top-level ViT config), which reads ``num_classes``
        as the head size: it is written back as :attr:`num_labels`."""
        result = super().from_dict(data, **kwargs)
        (result[0] if isinstance(result, tuple) else result)._num_classes_given = False
        return result

    @classmethod
    def _upgrade_legacy_keys(cls, kwargs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        extra["_num_classes_given"] = "num_classes" in kwargs
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """As transformers: ``num_classes`` is the head size (:attr:`num_labels`) unless it was given."""
        out = super().to_dict()
        if not self._num_classes_given:
            out["num_classes"] = self.num_labels
        return out

    def __post_init__(self) -> None:
        self._num_classes_given = self.extra.pop("_num_classes_given", True)
        super().__post_init__()
        if not isinstance(self.architecture, str) or not self.architecture:
            raise ValueError(f"vision_config.architecture must be a timm model name, got {self.architecture!r}")
        if self.model_args is not None and not isinstance(self.model_args, Mapping):
            raise ValueError(f"vision_config.model_args must be a dict or null, got {type(self.model_args).__name__}")
        if not _is_int(self.num_classes) or self.num_classes < 0:
            raise ValueError(f"vision_config.num_classes must be a non-negative integer, got {self.num_classes!r}")
        if self.num_classes > MAX_VOCAB:
            raise ValueError(f"vision_config.num_classes must be at most {MAX_VOCAB:,} (pe_av's bound), got {self.num_classes:,}")
        labels = self.extra.get("num_labels")
        if _is_int(labels) and labels > MAX_VOCAB:
            raise ValueError(f"vision_config.num_labels must be at most {MAX_VOCAB:,} (pe_av's bound), got {labels:,}")
        _require_number("vision_config", "initializer_range", self.initializer_range, ">= 0")
        _check_vit_args(self.model_args or {})


# model_args that size the ViT, and its floats that must be finite, with their bounds. Only the bounds are
# checked here; the argument set and the remaining rules are the ViT's own (pe_av.models.vision_spec).
_VIT_SIZES = {"embed_dim": MAX_WIDTH, "num_heads": MAX_WIDTH, "attn_pool_num_heads": MAX_WIDTH, "in_chans": MAX_WIDTH,
              "depth": MAX_LAYERS, "img_size": MAX_IMAGE_SIZE, "patch_size": MAX_IMAGE_SIZE, "ref_feat_shape": MAX_IMAGE_SIZE}
_VIT_FLOATS = {"mlp_ratio": "> 0", "attn_pool_mlp_ratio": "> 0", "rope_temperature": "> 0",
               "rope_grid_offset": "finite", "init_values": "finite"}


def _check_vit_args(args: Mapping[str, Any]) -> None:
    for key, limit in _VIT_SIZES.items():
        values = args.get(key)
        values = values if isinstance(values, (list, tuple)) else [values]
        if any(_is_int(v) and v > limit for v in values):
            raise ValueError(f"vision_config.model_args.{key} must be at most {limit:,} (pe_av's bound), got {args[key]!r}")
    for key, kind in _VIT_FLOATS.items():
        if args.get(key) is not None:
            _require_number("vision_config.model_args", key, args[key], kind)
    for key in ("mlp_ratio", "attn_pool_mlp_ratio"):
        if args.get(key) is not None and args[key] > MAX_MLP_RATIO:
            raise ValueError(f"vision_config.model_args.{key} must be at most {MAX_MLP_RATIO} (pe_av's bound), got {args[key]!r}")


@config_class
class PeVideoEncoderConfig(PeTransformerConfig):
    """``PeVideoEncoder``: per-frame ViT + PE transformer over frames.

    How many frames the ViT sees per call is not part of the config (it does not change the numbers):
    ``PeVideoEncoder.vision_chunk_size``, by default 4 on CPU and 32 on CUDA
    (``pe_av.models.video.default_vision_chunk_size``; measured in ``bench/cpu_choices.py``).
    """

    model_type: ClassVar[str] = "pe_video_encoder"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {"vision_config": TimmVisionConfig}
    sub_config_defaults: ClassVar[dict[str, dict[str, Any]]] = {"vision_config": PE_VISION_DEFAULTS}

    vision_config: TimmVisionConfig | None = None


@config_class
class PeAudioVideoEncoderConfig(PeTransformerConfig):
    """``PeAudioVideoEncoder``: fusion PE transformer over the audio and video encoders' outputs."""

    model_type: ClassVar[str] = "pe_audio_video_encoder"
    sub_config_classes: ClassVar[dict[str, type[ConfigBase]]] = {
        "audio_config": PeAudioEncoderConfig,
        "video_config": PeVideoEncoderConfig,
    }

    audio_config: PeAudioEncoderConfig | None = None
    video_config: PeVideoEncoderConfig | None = None
