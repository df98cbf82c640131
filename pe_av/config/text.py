"""ModernBERT, the text tower's config (transformers' ``ModernBertConfig`` fields and defaults).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import (
    _SUPPORTED_ROPE_TYPES,
    MAX_VOCAB,
    MAX_WIDTH,
    ConfigBase,
    _require_layer_count,
    _require_number,
    _require_positive_int,
)

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
        _require_positive_int("text_config", at_most=MAX_VOCAB, vocab_size=self.vocab_size)
        _require_positive_int(
            "text_config",
            at_most=MAX_WIDTH,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_attention_heads=self.num_attention_heads,
        )
        _require_positive_int("text_config", num_hidden_layers=self.num_hidden_layers, local_attention=self.local_attention)
        _require_layer_count("text_config", "num_hidden_layers", self.num_hidden_layers)
        _require_number("text_config", "norm_eps", self.norm_eps, "> 0")
        _require_number("text_config", "initializer_range", self.initializer_range, ">= 0")
        if self.initializer_cutoff_factor is not None:  # None: the model's default cutoff
            _require_number("text_config", "initializer_cutoff_factor", self.initializer_cutoff_factor, ">= 0")
        for name in ("attention_dropout", "embedding_dropout", "mlp_dropout"):
            _require_number("text_config", name, getattr(self, name), "in [0, 1)")
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
            _require_number("text_config", f"rope_parameters[{kind!r}].rope_theta", params["rope_theta"], "> 0")
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
