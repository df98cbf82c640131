"""Configuration dataclasses for PE-AV, readable from and writable to transformers' ``config.json``.

Every config mirrors the transformers class of the same role (same field names, same defaults) so a
checkpoint's ``config.json`` loads as it is. Keys we do not model are kept in ``extra`` and written
back unchanged, so a load/save round trip never loses information.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .json_io import read_json_object

__all__ = [
    "ConfigBase",
    "DacConfig",
    "PeTransformerConfig",
    "PeAudioEncoderConfig",
    "TimmVisionConfig",
    "PeVideoEncoderConfig",
    "PeAudioVideoEncoderConfig",
    "ModernBertConfig",
    "PeAudioConfig",
    "PeVideoConfig",
    "PeAudioVideoConfig",
    "CONFIG_CLASSES",
    "config_from_dict",
    "load_config",
]

_SUPPORTED_ROPE_TYPES = ("default",)


def _require_positive_int(config_name: str, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{config_name}.{name} must be a positive integer, got {value!r}")


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


# --------------------------------------------------------------------------------------------------
# Text


@dataclass
class ModernBertConfig(ConfigBase):
    """The ModernBERT text tower. Defaults are the ones PE-AV applies (1024 wide, 22 layers, 16 heads).

    ``text_embedding_layer`` chooses which hidden state gives the text embedding (token 0):
    ``None`` (default, as transformers) takes the last layer's output after the final norm; an
    integer ``n`` takes layer ``n``'s output without the final norm, as Meta's original code does.
    """

    model_type: ClassVar[str] = "modernbert"

    vocab_size: int = 50368
    hidden_size: int = 1024
    intermediate_size: int = 2624
    num_hidden_layers: int = 22
    num_attention_heads: int = 16
    hidden_activation: str = "gelu"
    max_position_embeddings: int = 8192
    initializer_range: float = 0.02
    initializer_cutoff_factor: float = 2.0
    norm_eps: float = 1e-5
    norm_bias: bool = False
    pad_token_id: int | None = 50283
    attention_bias: bool = False
    attention_dropout: float = 0.0
    layer_types: list[str] | None = None
    rope_parameters: dict[str, Any] | None = None
    local_attention: int = 128
    embedding_dropout: float = 0.0
    mlp_bias: bool = False
    mlp_dropout: float = 0.0
    text_embedding_layer: int | None = None

    @classmethod
    def _upgrade_legacy_keys(cls, kwargs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("layer_types") is None and "global_attn_every_n_layers" in extra:
            every = extra.pop("global_attn_every_n_layers")
            layers = kwargs.get("num_hidden_layers", cls.num_hidden_layers)
            kwargs["layer_types"] = _modernbert_layer_types(layers, every)
        if kwargs.get("rope_parameters") is None and ("global_rope_theta" in extra or "local_rope_theta" in extra):
            kwargs["rope_parameters"] = {
                "full_attention": {"rope_type": "default", "rope_theta": extra.pop("global_rope_theta", 160000.0)},
                "sliding_attention": {"rope_type": "default", "rope_theta": extra.pop("local_rope_theta", 10000.0)},
            }
        return kwargs

    def __post_init__(self) -> None:
        _require_positive_int(
            "text_config",
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            local_attention=self.local_attention,
        )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"text_config.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("text_config: the head dimension hidden_size / num_attention_heads must be even for RoPE")
        if self.layer_types is None:
            self.layer_types = _modernbert_layer_types(self.num_hidden_layers, 3)
        self.layer_types = list(self.layer_types)
        if len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"text_config.layer_types has {len(self.layer_types)} entries but num_hidden_layers is {self.num_hidden_layers}"
            )
        bad = sorted({t for t in self.layer_types if t not in ("full_attention", "sliding_attention")})
        if bad:
            raise ValueError(f"text_config.layer_types may hold 'full_attention' or 'sliding_attention', got {bad}")
        rope = copy.deepcopy(self.rope_parameters) if self.rope_parameters else {}
        for kind, theta in (("full_attention", 160000.0), ("sliding_attention", 10000.0)):
            params = dict(rope.get(kind) or {})
            params.setdefault("rope_type", "default")
            params.setdefault("rope_theta", theta)
            if params["rope_type"] not in _SUPPORTED_ROPE_TYPES:
                raise ValueError(f"text_config.rope_parameters[{kind!r}].rope_type {params['rope_type']!r} is not supported")
            rope[kind] = params
        self.rope_parameters = rope
        if self.text_embedding_layer is not None:
            if isinstance(self.text_embedding_layer, bool) or not isinstance(self.text_embedding_layer, int) or not (
                1 <= self.text_embedding_layer <= self.num_hidden_layers
            ):
                raise ValueError(
                    f"text_config.text_embedding_layer must be null or an integer in [1, {self.num_hidden_layers}], "
                    f"got {self.text_embedding_layer!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if out.get("text_embedding_layer") is None:
            out.pop("text_embedding_layer")  # keep transformers-identical files by default
        return out

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def _modernbert_layer_types(num_layers: int, global_every: int) -> list[str]:
    return ["sliding_attention" if i % global_every else "full_attention" for i in range(num_layers)]


# --------------------------------------------------------------------------------------------------
# Whole models


def _as_config(value: Any, cls: type[ConfigBase]) -> ConfigBase:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls.from_dict(value)
    raise TypeError(f"expected a {cls.__name__} or a dict, got {type(value).__name__}")


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


# --------------------------------------------------------------------------------------------------
# Loading: model_type → class comes from the registry (pe_av.registry), imported inside the functions
# because the registry imports the models, which import this module.


def config_from_dict(data: Mapping[str, Any]) -> ConfigBase:
    """Build the config class named by ``data["model_type"]`` (see :mod:`pe_av.registry`)."""
    from .registry import config_class_for

    if not isinstance(data, Mapping):
        raise TypeError(f"a config must be a JSON object, got {type(data).__name__}")
    return config_class_for(data.get("model_type")).from_dict(data)


def load_config(directory: str | os.PathLike) -> ConfigBase:
    """Read ``config.json`` in ``directory`` into the matching config class."""
    path = os.path.join(os.fspath(directory), "config.json")
    return config_from_dict(read_json_object(path, holds="the model's configuration"))


def __getattr__(name: str) -> Any:
    # CONFIG_CLASSES (model_type -> config class) is a view of the registry, built when first asked for
    if name == "CONFIG_CLASSES":
        from .registry import config_classes

        return config_classes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
