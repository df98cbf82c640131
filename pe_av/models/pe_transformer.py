"""The PE transformer stack shared by the audio, video and fusion encoders.

Layout (attribute names equal the checkpoint's key names):
``patch_embedder`` (class token + masked-GroupNorm ResNet block) → ``layers`` (pre-norm attention and
SwiGLU MLP) → ``norm`` → ``output``. Token 0 of the result is the pooled output.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PeTransformerConfig
from ..dispatch import BackendModule
from ..ops import Linear, RMSNorm, rope_attention, rope_cos_sin, swiglu
from ..ops.attention import with_probabilities
from .base import PePreTrainedModel
from .checkpointing import CheckpointedLayer
from .inputs import tracing
from .outputs import Recorder, ties_last_hidden_state


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics ignore padded positions; padded outputs are zeroed.

    ``padding_mask``: ``(B, T)`` (True/1 = valid). Without a mask it is plain ``nn.GroupNorm``.
    """

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if padding_mask is None:
            return super().forward(x)
        batch, channels, seq = x.shape
        mask = padding_mask.to(x.dtype)[:, None, :]  # (B, 1, T)
        grouped = x.view(batch, self.num_groups, channels // self.num_groups, seq)
        gmask = mask[:, :, None, :]  # broadcast over groups and channels
        count = gmask.sum(dim=(2, 3), keepdim=True) * (channels // self.num_groups)
        mean = (grouped * gmask).sum(dim=(2, 3), keepdim=True) / count
        centered = grouped - mean
        var = (centered.square() * gmask).sum(dim=(2, 3), keepdim=True) / count
        normed = (centered * torch.rsqrt(var + self.eps)).view(batch, channels, seq)
        if self.affine:
            normed = normed * self.weight[None, :, None] + self.bias[None, :, None]
        return normed * mask


class ConvBlock1d(nn.Module):
    """Masked GroupNorm(1 group) → SiLU → Conv1d(k=3, 'same')."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.groupnorm = MaskedGroupNorm(num_groups=1, num_channels=hidden_size)
        self.project = nn.Conv1d(hidden_size, hidden_size, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        return self.project(F.silu(self.groupnorm(x, padding_mask)))


class ResnetBlock1d(nn.Module):
    """Two :class:`ConvBlock1d` with a residual connection, over ``(B, T, C)`` sequences."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.block1 = ConvBlock1d(hidden_size)
        self.block2 = ConvBlock1d(hidden_size)

    def forward(self, hidden_states: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        x = hidden_states.transpose(1, 2)
        out = self.block2(self.block1(x, padding_mask), padding_mask)
        return (x + out).transpose(1, 2)


class PatchEmbedder(nn.Module):
    """Prepends the learned class token and runs the ResNet block.

    The class token inherits the validity of each sample's first position (as the reference does),
    so the returned mask is ``(B, T + 1)``.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.resnet_block = ResnetBlock1d(hidden_size)
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, hidden_size))

    def forward(
        self, inputs_embeds: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        cls = self.class_embedding.expand(inputs_embeds.shape[0], -1, -1)
        hidden_states = torch.cat([cls, inputs_embeds], dim=1)
        if padding_mask is not None:
            padding_mask = torch.cat([padding_mask[:, :1], padding_mask], dim=1)
        return self.resnet_block(hidden_states, padding_mask), padding_mask


class PeAttention(BackendModule):
    """Bidirectional multi-head attention: q/k/v projections, per-head RMSNorm on q and k, interleaved
    RoPE, grouped key/value heads, key padding mask, dropout on the attention probabilities in training
    (``attention_dropout``, as transformers), output projection (everything between the projections is
    the :data:`pe_av.ops.rope_attention` op)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        bias: bool,
        eps: float,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.attention_dropout = dropout
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.q_proj = Linear(hidden_size, num_heads * head_dim, bias=bias)
        self.k_proj = Linear(hidden_size, num_kv_heads * head_dim, bias=bias)
        self.v_proj = Linear(hidden_size, num_kv_heads * head_dim, bias=bias)
        self.o_proj = Linear(num_heads * head_dim, hidden_size, bias=bias)
        # the norms hold the checkpoint's weights; the op applies them (one eps: both come from the config)
        self.q_norm = RMSNorm(head_dim, eps=eps)
        self.k_norm = RMSNorm(head_dim, eps=eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``hidden_states`` (B, T, C), rotary tables (T, head_dim / 2), mask (B, T) True = keep."""
        batch, seq, _ = hidden_states.shape
        out = self.run(rope_attention, *self._inputs(hidden_states, cos, sin, key_padding_mask), **self._options())
        return self.o_proj(out.reshape(batch, seq, self.num_heads * self.head_dim))

    def forward_with_probs(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and the attention probabilities ``(B, num_heads, T, T)``, computed eagerly
        (see :func:`pe_av.ops.attention.with_probabilities`)."""
        batch, seq, _ = hidden_states.shape
        out, probs = with_probabilities(
            rope_attention, self.backend, *self._inputs(hidden_states, cos, sin, key_padding_mask),
            caller=type(self).__name__, **self._options(),
        )
        return self.o_proj(out.reshape(batch, seq, self.num_heads * self.head_dim)), probs

    def _inputs(self, hidden_states, cos, sin, key_padding_mask) -> tuple:
        batch, seq, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(batch, seq, self.num_heads, self.head_dim)
        k = self.k_proj(hidden_states).view(batch, seq, self.num_kv_heads, self.head_dim)
        v = self.v_proj(hidden_states).view(batch, seq, self.num_kv_heads, self.head_dim)
        return q, k, v, self.q_norm.weight, self.k_norm.weight, cos, sin, key_padding_mask

    def _options(self) -> dict:
        return {"eps": self.q_norm.eps, "scale": self.scale, "dropout": self.attention_dropout if self.training else 0.0}


#: CPU inference runs the MLP over at most this many tokens at a time: its three intermediate-width
#: activations (gate, up, their product: 3 × 2048 floats per token at PE-S) were the largest tensors of
#: a long clip's audio encoder (~37 MB at 60 s, 1501 tokens). Each token's row is computed alone either
#: way, so only GEMM blocking can differ; 512-row GEMMs still run at oneDNN's full rate.
CPU_MLP_TOKENS = 512


class SwiGLUMLP(BackendModule):
    """``down(silu(gate(x)) * up(x))`` without biases (CPU inference: by blocks of
    :data:`CPU_MLP_TOKENS` tokens)."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // max(x.shape[-1], 1)
        if rows <= CPU_MLP_TOKENS or x.device.type != "cpu" or torch.is_grad_enabled() or tracing():
            return self._mlp(x)
        flat = x.reshape(rows, x.shape[-1])
        out = flat.new_empty(rows, self.down_proj.out_features)
        for start in range(0, rows, CPU_MLP_TOKENS):
            out[start : start + CPU_MLP_TOKENS] = self._mlp(flat[start : start + CPU_MLP_TOKENS])
        return out.view(*x.shape[:-1], self.down_proj.out_features)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.run(swiglu, self.gate_proj(x), self.up_proj(x)))


class PeTransformerLayer(CheckpointedLayer):
    """Pre-norm block: RMSNorm → attention → residual; RMSNorm → SwiGLU MLP → residual.

    Each residual add is left to the norm that follows it (:class:`RMSNorm` adds and normalizes in one
    pass, one fused kernel under ``triton``), so :meth:`forward` returns the MLP's output and the
    running residual separately; the layer's output is their sum. Under gradient checkpointing only the
    layer's inputs are kept for the backward pass (see :mod:`pe_av.models.checkpointing`).
    """

    def __init__(self, config: PeTransformerConfig) -> None:
        super().__init__()
        self.self_attn = PeAttention(
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            num_kv_heads=config.num_key_value_heads,
            head_dim=config.head_dim,
            bias=config.attention_bias,
            eps=config.rms_norm_eps,
            dropout=config.attention_dropout,
        )
        self.mlp = SwiGLUMLP(config.hidden_size, config.intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def layer_forward(
        self,
        hidden_states: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        residual: torch.Tensor | None = None,
        *,
        attentions: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(mlp_out, residual)``, whose sum is the layer's output. The layer's input is
        ``hidden_states``, or ``hidden_states + residual`` when the previous layer's pair is passed on.
        With an ``attentions`` list, the attention probabilities are appended to it."""
        if residual is None:
            normed, residual = self.input_layernorm(hidden_states), hidden_states
        else:
            normed, residual = self.input_layernorm(hidden_states, residual)
        if attentions is None:
            attn_out = self.self_attn(normed, cos, sin, key_padding_mask)
        else:
            attn_out, probs = self.self_attn.forward_with_probs(normed, cos, sin, key_padding_mask)
            attentions.append(probs)
        normed, residual = self.post_attention_layernorm(attn_out, residual)
        return self.mlp(normed), residual


class PeTransformerEncoder(PePreTrainedModel):
    """Patch embedder, transformer layers, final norm and output projection.

    Subclasses (the audio, video and fusion encoders) add an ``embedder`` that turns their raw input
    into ``inputs_embeds`` and call :meth:`encode`.
    """

    def __init__(self, config: PeTransformerConfig) -> None:
        super().__init__(config)
        self.patch_embedder = PatchEmbedder(config.hidden_size)
        self.layers = nn.ModuleList(PeTransformerLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.output = Linear(config.hidden_size, config.hidden_size, bias=False)
        self._head_dim = config.head_dim
        self._rope_theta = config.rope_theta

    def recorder(self, output_hidden_states: object, output_attentions: object) -> Recorder:
        """A :class:`Recorder` for this stack's ``num_hidden_layers + 1`` hidden states."""
        return Recorder(
            output_hidden_states, output_attentions, len(self.layers) + 1, ties_last_hidden_state(self.config)
        )

    def encode(
        self,
        inputs_embeds: torch.Tensor,
        padding_mask: torch.Tensor | None,
        recorder: Recorder | None = None,
    ) -> torch.Tensor:
        """Run the stack on ``inputs_embeds`` ``(B, T, C)`` with ``padding_mask`` ``(B, T)`` bool or None.

        Returns the ``(B, T + 1, C)`` output (class token first). A ``recorder`` receives the hidden
        state entering the first layer, every layer's output and each layer's attention probabilities
        (``(B, heads, T + 1, T + 1)``); its last hidden state is the final ``last_hidden_state``.
        """
        if padding_mask is not None and not tracing() and bool(padding_mask.all()):
            padding_mask = None  # nothing to mask: plain GroupNorm and unmasked (faster) attention
        hidden_states, mask = self.patch_embedder(inputs_embeds, padding_mask)
        cos, sin = rope_cos_sin(
            hidden_states.shape[1], self._head_dim, self._rope_theta, hidden_states.device, hidden_states.dtype
        )
        recorder = recorder if recorder is not None else Recorder(False, False, 1)
        recorder.add_state(hidden_states if recorder.wants_state() else None)
        residual = None
        for layer in self.layers:
            hidden_states, residual = layer(hidden_states, cos, sin, mask, residual, attentions=recorder.attentions)
            recorder.add_state(hidden_states + residual if recorder.wants_state() else None)
        if residual is None:  # no layers
            hidden_states = self.norm(hidden_states)
        else:
            hidden_states, _ = self.norm(hidden_states, residual)
        return self.output(hidden_states)
