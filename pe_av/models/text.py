"""ModernBERT, the text tower of PE-AV (``model_type`` ``"modernbert"``).

Layout (attribute names equal transformers' ``ModernBertModel`` state-dict keys):
``embeddings`` (token embedding → LayerNorm) → ``layers`` (pre-norm attention with half-split RoPE,
full or sliding-window per ``config.layer_types``; pre-norm GeGLU MLP) → ``final_norm``.
Layer 0 has no attention norm: the embedding norm already normalises its input.

Text embedding (``pooler_output``, :meth:`ModernBertModel.text_embedding`): token 0 of the last hidden
state after ``final_norm``, as transformers computes it. With ``config.text_embedding_layer = n`` it
is token 0 of layer ``n``'s output *without* the final norm, as Meta's original code does (it reads
layer 22 of a 28-layer tower); then only the first ``n`` layers are needed, and
:meth:`ModernBertModel.text_embedding` runs only those. Layer ``n``'s output is transformers'
``hidden_states[n]`` for ``n`` below the layer count; for ``n`` equal to it, it is the last layer's
raw output, whereas transformers' ``hidden_states[-1]`` is the normed ``last_hidden_state``.

``config.tie_last_hidden_states`` (transformers 5, default true) decides what ``hidden_states[-1]``
is: the normed ``last_hidden_state`` (true), or the last layer's raw output (false). The PE-AV models
read their text embedding as ``hidden_states[-1][:, 0]``, so with ``false`` the embedding is the last
layer's raw output: a tower truncated to Meta's layer 22 with ``tie_last_hidden_states: false``
reproduces the original model's text embeddings, in transformers and here alike.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModernBertConfig
from ..dispatch import BackendModule
from ..ops import ACTIVATIONS, LayerNorm, Linear, apply_rope_half_split, attention, gated_activation, rope_cos_sin
from ..ops.attention import with_probabilities
from .base import PePreTrainedModel
from .checkpointing import CheckpointedLayer
from .inputs import check_each_has_valid, check_padding_mask, check_starts_valid, describe_type, tracing
from .outputs import BaseModelOutput, Recorder, call_option, finish, ties_last_hidden_state

__all__ = ["ModernBertModel", "check_input_ids"]

def check_input_ids(input_ids: object, vocab_size: int, device: torch.device) -> torch.Tensor:
    """Validate ``(batch, seq_len)`` integer token ids in ``[0, vocab_size)`` on ``device``."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor of shape (batch, seq_len), got {describe_type(input_ids)}")
    if input_ids.dtype == torch.bool or input_ids.is_floating_point() or input_ids.is_complex():
        raise TypeError(f"input_ids must hold integer token ids (torch.long), got dtype {input_ids.dtype}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}")
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids is empty: shape {tuple(input_ids.shape)}")
    if input_ids.device != device:
        raise ValueError(f"input_ids is on {input_ids.device} but the model is on {device}")
    if tracing():
        return input_ids.long()
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"input_ids must lie in [0, {vocab_size}) (the vocabulary), got values in [{low}, {high}]")
    return input_ids.long()


# --------------------------------------------------------------------------------------------------
# Attention masks


def attention_allowed(
    key_padding_mask: torch.Tensor | None, seq_len: int, half_window: int | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean ``(B or 1, 1, T, T)`` mask of the (query, key) pairs that may attend, or None for "all".

    ``half_window``: keys at distance ``<= half_window`` from the query are visible (None: no window).
    Padded keys are hidden; padded queries still attend (their outputs are ignored downstream).
    """
    windowed = half_window is not None and seq_len > half_window
    if key_padding_mask is None and not windowed:
        return None
    allowed = torch.ones(1, 1, seq_len, seq_len, dtype=torch.bool, device=device)
    if windowed:
        positions = torch.arange(seq_len, device=device)
        allowed = allowed & ((positions[:, None] - positions[None, :]).abs() <= half_window)
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :]
    return allowed


# --------------------------------------------------------------------------------------------------
# Modules


class ModernBertEmbeddings(nn.Module):
    """Token embedding → LayerNorm (bias per ``norm_bias``) → dropout."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        pad = config.pad_token_id
        padding_idx = pad if pad is not None and 0 <= pad < config.vocab_size else None
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=padding_idx)
        self.norm = LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.drop = nn.Dropout(config.embedding_dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.drop(self.norm(self.tok_embeddings(input_ids)))


class ModernBertAttention(BackendModule):
    """Fused QKV projection, half-split RoPE, bidirectional (optionally windowed) attention, output
    projection. The window itself comes in through the ``allowed`` mask built by the model."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.scale = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.Wqkv = Linear(config.hidden_size, 3 * config.hidden_size, bias=config.attention_bias)
        self.Wo = Linear(config.hidden_size, config.hidden_size, bias=config.attention_bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        allowed: torch.Tensor | None,
        attentions: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """With an ``attentions`` list, the probabilities ``(B, H, T, T)`` are computed eagerly and appended."""
        batch, seq, _ = hidden_states.shape
        qkv = self.Wqkv(hidden_states).view(batch, seq, 3, self.num_heads, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(dim=2))
        q, k = apply_rope_half_split(q, cos, sin), apply_rope_half_split(k, cos, sin)
        dropout = self.dropout if self.training else 0.0
        if attentions is None:
            out = self.run(attention, q, k, v, allowed, self.scale, dropout)
        else:
            out, probs = with_probabilities(
                attention, self.backend, q, k, v, allowed, self.scale, dropout, caller=type(self).__name__
            )
            attentions.append(probs)
        out = self.Wo(out.transpose(1, 2).reshape(batch, seq, -1))
        return F.dropout(out, p=self.dropout, training=self.training) if self.dropout > 0.0 else out


class ModernBertMLP(BackendModule):
    """GeGLU: ``Wi`` → split into (input, gate) halves → ``act(input) * gate`` → ``Wo``."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        if config.hidden_activation not in ACTIVATIONS:
            raise ValueError(
                f"text_config.hidden_activation {config.hidden_activation!r} is not supported; "
                f"expected one of {sorted(ACTIVATIONS)}"
            )
        self.activation = config.hidden_activation
        self.Wi = Linear(config.hidden_size, 2 * config.intermediate_size, bias=config.mlp_bias)
        self.drop = nn.Dropout(config.mlp_dropout)
        self.Wo = Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        value, gate = self.Wi(hidden_states).chunk(2, dim=-1)
        return self.Wo(self.drop(self.run(gated_activation, value, gate, self.activation)))


class ModernBertEncoderLayer(CheckpointedLayer):
    """``x + attn(attn_norm(x))`` then ``x + mlp(mlp_norm(x))``; layer 0 has no ``attn_norm``. Checkpointable
    (see :mod:`pe_av.models.checkpointing`)."""

    def __init__(self, config: ModernBertConfig, layer_idx: int) -> None:
        super().__init__()
        self.attention_type = config.layer_types[layer_idx]
        if layer_idx == 0:
            self.attn_norm: nn.Module = nn.Identity()
        else:
            self.attn_norm = LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.attn = ModernBertAttention(config)
        self.mlp_norm = LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.mlp = ModernBertMLP(config)

    def layer_forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        allowed: torch.Tensor | None,
        *,
        attentions: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        attn = self.attn(self.attn_norm(hidden_states), cos, sin, allowed, attentions)
        normed, hidden_states = self.mlp_norm(attn, hidden_states)  # the residual add, fused into the norm
        return hidden_states + self.mlp(normed)


class ModernBertModel(PePreTrainedModel):
    """The ModernBERT encoder used as PE-AV's text tower (transformers' ``ModernBertModel``).

    ``config.local_attention`` is the *total* window of sliding layers: a token sees keys within
    ``local_attention // 2`` positions on each side. Full and sliding layers use their own RoPE theta
    (``config.rope_parameters["full_attention" | "sliding_attention"]``).
    """

    config_class = ModernBertConfig
    main_input_name = "input_ids"

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__(config)
        self.embeddings = ModernBertEmbeddings(config)
        self.layers = nn.ModuleList(ModernBertEncoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.final_norm = LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self._maybe_init_weights()

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding ``embeddings.tok_embeddings`` (shared by every sub-model using this tower)."""
        return self.embeddings.tok_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the token embedding (in every sub-model sharing this tower)."""
        self.embeddings.tok_embeddings = value

    @torch.no_grad()
    def init_weights(self) -> None:
        """Truncated-normal init as the reference: ``initializer_range`` for embeddings and input
        projections, scaled down by ``sqrt(2 · layers)`` for output projections; norms to 1/0."""
        config = self.config
        cutoff = config.initializer_cutoff_factor or 3.0
        std_in = config.initializer_range
        std_out = config.initializer_range / (2.0 * config.num_hidden_layers) ** 0.5

        def trunc(weight: torch.Tensor, std: float) -> None:
            nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-cutoff * std, b=cutoff * std)

        trunc(self.embeddings.tok_embeddings.weight, std_in)
        for module in self.modules():
            if isinstance(module, (ModernBertAttention, ModernBertMLP)):
                first = module.Wqkv if isinstance(module, ModernBertAttention) else module.Wi
                trunc(first.weight, std_in)
                trunc(module.Wo.weight, std_out)
                for linear in (first, module.Wo):
                    if linear.bias is not None:
                        nn.init.zeros_(linear.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _prepare(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]]:
        """Embeddings plus, per layer type, the RoPE tables and the attention mask."""
        input_ids = check_input_ids(input_ids, self.config.vocab_size, self.device)
        batch, seq = input_ids.shape
        key_padding = check_padding_mask(attention_mask, "attention_mask", batch, seq, self.device)
        check_each_has_valid(key_padding, "attention_mask", "text", "token")
        why = "the text embedding is read at token 0, so pad on the right (tokenizer padding_side='right')"
        check_starts_valid(key_padding, "attention_mask", "text", why)
        if key_padding is not None and not tracing() and bool(key_padding.all()):
            key_padding = None
        hidden_states = self.embeddings(input_ids)
        per_type = {}
        for kind in set(self.config.layer_types):
            theta = float(self.config.rope_parameters[kind]["rope_theta"])
            cos, sin = rope_cos_sin(seq, self.config.head_dim, theta, hidden_states.device, hidden_states.dtype)
            half_window = self.config.local_attention // 2 if kind == "sliding_attention" else None
            per_type[kind] = (cos, sin, attention_allowed(key_padding, seq, half_window, hidden_states.device))
        return hidden_states, per_type

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        output_hidden_states: bool | int | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        """Encode a batch of token ids.

        Args:
            input_ids: ``(B, T)`` integer token ids (right-padded; positions are ``0..T-1``).
            attention_mask: ``(B, T)`` with 1/True for real tokens and 0/False for padding. Token 0 of
                every text must be real (it gives the text embedding): an all-padding or left-padded row
                is a ``ValueError``.
            output_hidden_states: also return the embedding output and every layer's output (True), or
                those of the given indices (e.g. ``-1``, which the PE-AV models ask for); as in
                transformers the last entry is the final (normed) ``last_hidden_state``. None:
                ``config.output_hidden_states``.
            output_attentions: also return each layer's attention probabilities ``(B, heads, T, T)``
                (computed eagerly); None: ``config.output_attentions``.
            return_dict: False returns ``output.to_tuple()``; None: ``config.return_dict``.

        Returns:
            :class:`BaseModelOutput` with ``last_hidden_state`` ``(B, T, hidden)`` (after the final norm)
            and, if asked, ``hidden_states`` and ``attentions``; its attribute ``pooler_output`` (not a
            key, as transformers has none) is the ``(B, hidden)`` text embedding chosen by
            ``config.text_embedding_layer`` (see the module docstring).
        """
        recorder = Recorder(
            call_option(output_hidden_states, self.config, "output_hidden_states"),
            call_option(output_attentions, self.config, "output_attentions"),
            len(self.layers) + 1,
            ties_last_hidden_state(self.config),
        )
        hidden_states, per_type = self._prepare(input_ids, attention_mask)
        embedding_layer = self._embedding_layer()
        recorder.add_state(hidden_states if recorder.wants_state() else None)
        pooled = None
        for index, layer in enumerate(self.layers, start=1):
            hidden_states = layer(hidden_states, *per_type[layer.attention_type], attentions=recorder.attentions)
            recorder.add_state(hidden_states if recorder.wants_state() else None)
            if index == embedding_layer:
                pooled = hidden_states[:, 0]
        hidden_states = self.final_norm(hidden_states)
        output = BaseModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=hidden_states[:, 0] if pooled is None else pooled,
        )
        recorder.attach(output, hidden_states)
        return finish(output, call_option(return_dict, self.config, "return_dict"))

    def _embedding_layer(self) -> int | None:
        """The layer whose raw output (no final norm) gives the embedding, or None for the normed output.

        ``text_embedding_layer`` names one; otherwise ``tie_last_hidden_states: false`` means the last layer's
        raw output, because the PE-AV models read ``hidden_states[-1][:, 0]``, which is that output then.
        """
        if self.config.text_embedding_layer is not None:
            return self.config.text_embedding_layer
        return None if ties_last_hidden_state(self.config) else len(self.layers)

    def text_embedding(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The ``(B, hidden)`` pooled text vector (same as ``forward(...).pooler_output``).

        With ``config.text_embedding_layer = n`` only the first ``n`` layers run.
        """
        embedding_layer = self._embedding_layer()
        if embedding_layer is None:
            plain = dict(output_hidden_states=False, output_attentions=False, return_dict=True)
            return self.forward(input_ids, attention_mask, **plain).pooler_output
        hidden_states, per_type = self._prepare(input_ids, attention_mask)
        for layer in self.layers[:embedding_layer]:
            hidden_states = layer(hidden_states, *per_type[layer.attention_type])
        return hidden_states[:, 0]
