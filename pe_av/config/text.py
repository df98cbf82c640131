"""ModernBERT, the text tower's config (transformers' ``ModernBertConfig`` fields and defaults).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from .base import (
    _SUPPORTED_ROPE_TYPES,
    MAX_VOCAB,
    MAX_WIDTH,
    ConfigBase,
    _require_layer_count,
    _require_number,
    _require_positive_int,
    config_class,
)

#: what transformers fills in for a ``text_config`` given as a dict or None inside a PE model's config:
#: PE-AV's text tower (1024 wide, 22 layers, 16 heads)
PE_TEXT_DEFAULTS: dict[str, Any] = {"hidden_size": 1024, "intermediate_size": 2624, "num_hidden_layers": 22,
                                    "num_attention_heads": 16}

# --------------------------------------------------------------------------------------------------
# Text


@config_class
class ModernBertConfig(ConfigBase):
    """The ModernBERT text tower: transformers' ``ModernBertConfig`` fields and defaults (768 wide, 22 layers,
    12 heads; a PE model's ``text_config`` gets :data:`PE_TEXT_DEFAULTS` on top, as in transformers).

    pe_av's own settings, written to config.json only when set away from their defaults:

    - ``text_embedding_layer`` chooses which hidden state gives the text embedding (token 0): ``None``
      (default, as transformers) takes the last layer's output after the final norm; an integer ``n``
      takes layer ``n``'s output without the final norm, as Meta's original code does;
    - ``tie_last_hidden_states`` (default ``True``, transformers' default for ModernBERT): whether
      ``hidden_states[-1]`` is the output after the final norm. transformers reads it from the config
      when present and has no field for it, so, as there, it is kept with the unknown keys (written back
      exactly when config.json or the caller gave it).
    """

    model_type: ClassVar[str] = "modernbert"
    omitted_defaults: ClassVar[dict[str, Any]] = {"text_embedding_layer": None}

    vocab_size: int = 50368
    hidden_size: int = 768
    intermediate_size: int = 1152
    num_hidden_layers: int = 22
    num_attention_heads: int = 12
    hidden_activation: str = "gelu"
    max_position_embeddings: int = 8192
    initializer_range: float = 0.02
    initializer_cutoff_factor: float = 2.0
    norm_eps: float = 1e-5
    norm_bias: bool = False
    pad_token_id: int | None = 50283
    eos_token_id: int | list[int] | None = 50282
    bos_token_id: int | None = 50281
    cls_token_id: int | None = 50281
    sep_token_id: int | None = 50282
    attention_bias: bool = False
    attention_dropout: float = 0.0
    layer_types: list[str] | None = None
    rope_parameters: dict[str, Any] | None = None
    local_attention: int = 128
    embedding_dropout: float = 0.0
    mlp_bias: bool = False
    mlp_dropout: float = 0.0
    decoder_bias: bool = True
    classifier_pooling: str = "cls"
    classifier_dropout: float = 0.0
    classifier_bias: bool = False
    classifier_activation: str = "gelu"
    deterministic_flash_attn: bool = False
    sparse_prediction: bool = False
    sparse_pred_ignore_index: int = -100
    tie_word_embeddings: bool = True
    text_embedding_layer: int | None = None

    @classmethod
    def _upgrade_legacy_keys(cls, kwargs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        """``global_rope_theta``/``local_rope_theta`` go into ``rope_parameters`` (a value there wins), as in
        transformers; ``global_attn_every_n_layers`` sets the default ``layer_types`` and is kept."""
        extra.pop("reference_compile", None)  # transformers never writes it
        rope = copy.deepcopy(kwargs.get("rope_parameters")) or {}
        for key, kind in (("global_rope_theta", "full_attention"), ("local_rope_theta", "sliding_attention")):
            if key in extra:
                theta = extra.pop(key)
                if isinstance(rope, dict):
                    rope[kind] = {"rope_type": "default", **(rope.get(kind) or {})}
                    rope[kind].setdefault("rope_theta", theta)
        if rope:
            kwargs["rope_parameters"] = rope
        return kwargs

    @property
    def tie_last_hidden_states(self) -> bool:
        return self.extra.get("tie_last_hidden_states", True)

    @tie_last_hidden_states.setter
    def tie_last_hidden_states(self, value: bool) -> None:
        self.extra["tie_last_hidden_states"] = value

    @property
    def sliding_window(self) -> int:
        """Half the local attention window (transformers' alias of ``local_attention // 2``)."""
        return self.local_attention // 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.tie_last_hidden_states, bool):
            raise ValueError(f"text_config.tie_last_hidden_states must be true or false, got {self.tie_last_hidden_states!r}")
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
            every = self.extra.get("global_attn_every_n_layers", 3)
            _require_positive_int("text_config", global_attn_every_n_layers=every)
            self.layer_types = _modernbert_layer_types(self.num_hidden_layers, every)
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

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def _modernbert_layer_types(num_layers: int, global_every: int) -> list[str]:
    return ["sliding_attention" if i % global_every else "full_attention" for i in range(num_layers)]
