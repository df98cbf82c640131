"""Hot ops of the PE transformer, each owning its eager form and its backend dispatch.

Modules here hold a ``backend`` attribute (one of :data:`pe_av.dispatch.BACKENDS`) that
:meth:`PePreTrainedModel.set_attn_impl` sets on every op of a model; model code never branches on
the backend itself. With ``"triton"`` an op calls its ``pe_av_kernels`` kernel when it can run on the
given tensors; otherwise it runs its eager form and warns once, saying why.
"""

from __future__ import annotations

from types import ModuleType

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import dispatch
from ..dispatch import BACKENDS, warn_once


class BackendOp(nn.Module):
    """Base of every op that has several implementations."""

    backend: str = "sdpa"

    def set_backend(self, backend: str) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend


def _triton_kernels_for(op: str, *tensors: torch.Tensor, problem: str | None = None) -> ModuleType | None:
    """``pe_av_kernels`` when ``op`` can run its kernel on ``tensors``; else warn once why and return None.

    ``problem`` is an op-specific reason found by the caller (e.g. an unsupported head_dim).
    """
    reason = dispatch.triton_fallback_reason(op, *tensors)
    if reason is None and problem is not None:
        reason = f"{op}: attn_impl='triton' falls back to eager PyTorch because {problem}"
    if reason is not None:
        warn_once(reason)
        return None
    return dispatch.triton_kernels()


# --------------------------------------------------------------------------------------------------
# Linear


def _onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


_ONEDNN_LINEAR = _onednn_linear_available()


def linear_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` that runs fp32 CPU inference on oneDNN's matmul instead of the BLAS ``addmm``.

    On CPUs where the BLAS is not tuned (MKL on AMD EPYC) oneDNN is about twice as fast at PE-AV's
    shapes; results differ only by summation order. oneDNN's op has no autograd formula, so it is used
    only when no gradient is needed, and not under ``torch.compile`` (inductor picks its own GEMMs).
    """
    if (
        _ONEDNN_LINEAR
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.numel() > 0
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.compiler.is_compiling()
    ):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


class Linear(BackendOp, nn.Linear):
    """``nn.Linear`` (same parameters and keys) whose ``sdpa``/``triton`` forms use :func:`linear_fused`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "eager":
            return F.linear(x, self.weight, self.bias)
        return linear_fused(x, self.weight, self.bias)


# --------------------------------------------------------------------------------------------------
# RMSNorm


def rms_norm_eager(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm with fp32 statistics; the result is cast back to ``x``'s dtype before the weight."""
    input_dtype = x.dtype
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(input_dtype)


def rms_norm_fused(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Same numerics as :func:`rms_norm_eager` through PyTorch's fused ``F.rms_norm``."""
    normed = F.rms_norm(x.float(), (x.shape[-1],), eps=eps)
    return weight * normed.to(x.dtype)


class RMSNorm(BackendOp):
    """Root-mean-square norm over the last dimension (T5 style, no mean subtraction, no bias)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Normalize ``x``; with ``residual``, normalize ``s = x + residual`` and return ``(norm(s), s)``."""
        backend = self.backend
        if backend == "triton":
            inputs = (x, self.weight) if residual is None else (x, self.weight, residual)
            kernels = _triton_kernels_for("RMSNorm", *inputs)
            if kernels is not None:
                return kernels.rms_norm(x, self.weight, self.eps, residual)
            backend = "eager"
        if residual is not None:
            x = x + residual
        norm = rms_norm_eager if backend == "eager" else rms_norm_fused
        out = norm(x, self.weight, self.eps)
        return out if residual is None else (out, x)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.eps}"


# --------------------------------------------------------------------------------------------------
# Rotary position embedding (interleaved pairs)


def rope_cos_sin(
    seq_len: int, head_dim: int, theta: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos``/``sin`` tables of shape ``(seq_len, head_dim // 2)`` for positions ``0..seq_len-1``.

    Computed in fp32 and cast to ``dtype`` last, as the reference does.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.arange(seq_len, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rope_interleaved_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-width tables ``(seq, head_dim)`` for :func:`rotate_interleaved` from ``(seq, head_dim // 2)`` ones:
    each pair's cosine twice, and its sine with the sign that pair member takes (``-sin``, ``+sin``)."""
    return cos.repeat_interleave(2, dim=-1), torch.stack((-sin, sin), dim=-1).flatten(-2)


def rotate_interleaved(x: torch.Tensor, cos_full: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """:func:`apply_rope_interleaved` with precomputed full-width tables (see :func:`rope_interleaved_tables`).

    ``x * cos + swap_pairs(x) * sin_signed`` gives ``x[2i]·cos − x[2i+1]·sin`` and
    ``x[2i+1]·cos + x[2i]·sin``: bit for bit the pairwise formula (negation is exact, addition
    commutes), in four full-width passes and two allocations instead of strided half-width ops and a stack.
    """
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return (x * cos_full).add_(swapped.mul_(sin_signed))


def apply_rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs ``(x[2i], x[2i+1])`` of the last dim by the angle of frequency ``i``.

    ``x``: ``(..., seq, head_dim)``; ``cos``/``sin``: ``(seq, head_dim // 2)``.
    """
    return rotate_interleaved(x, *rope_interleaved_tables(cos, sin))


# --------------------------------------------------------------------------------------------------
# Attention with QK-RMSNorm, interleaved RoPE, GQA and key padding


def attention_eager(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """Reference attention. ``q``: (B, H, T, D); ``k``/``v``: (B, Hkv, T, D); mask: (B, T) bool, True = keep.

    Masked keys get the dtype's most negative value (not -inf) so a row with no valid key yields a
    uniform average instead of NaN, as the reference does.
    """
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if key_padding_mask is not None:
        bias = torch.zeros(key_padding_mask.shape, dtype=scores.dtype, device=scores.device)
        bias.masked_fill_(~key_padding_mask, torch.finfo(scores.dtype).min)
        scores = scores + bias[:, None, None, :]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v)


def attention_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """Same contract as :func:`attention_eager` through ``F.scaled_dot_product_attention``."""
    mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    enable_gqa = q.shape[1] != k.shape[1]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=enable_gqa)


class PeAttention(BackendOp):
    """Bidirectional multi-head attention: q/k/v projections, per-head RMSNorm on q and k, interleaved
    RoPE, grouped key/value heads, key padding mask, output projection."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        bias: bool,
        eps: float,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.q_proj = Linear(hidden_size, num_heads * head_dim, bias=bias)
        self.k_proj = Linear(hidden_size, num_kv_heads * head_dim, bias=bias)
        self.v_proj = Linear(hidden_size, num_kv_heads * head_dim, bias=bias)
        self.o_proj = Linear(num_heads * head_dim, hidden_size, bias=bias)
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
        q = self.q_proj(hidden_states).view(batch, seq, self.num_heads, self.head_dim)
        k = self.k_proj(hidden_states).view(batch, seq, self.num_kv_heads, self.head_dim)
        v = self.v_proj(hidden_states).view(batch, seq, self.num_kv_heads, self.head_dim)
        out = self.attend(q, k, v, cos, sin, key_padding_mask)
        return self.o_proj(out.reshape(batch, seq, self.num_heads * self.head_dim))

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Everything between the projections: QK-RMSNorm, RoPE, attention. ``q`` (B, T, H, D), ``k``/``v``
        (B, T, Hkv, D) → (B, T, H, D) (possibly a non-contiguous view)."""
        backend = self.backend
        if backend == "triton":
            kernels = self._triton_kernels(q, cos, sin)
            if kernels is not None:
                return kernels.rope_attention(
                    q, k, v, self.q_norm.weight, self.k_norm.weight, cos, sin, key_padding_mask,
                    eps=self.q_norm.eps, scale=self.scale,
                )
            backend = "eager"
        norm = rms_norm_eager if backend == "eager" else rms_norm_fused
        tables = rope_interleaved_tables(cos, sin)
        q = rotate_interleaved(norm(q, self.q_norm.weight, self.q_norm.eps).transpose(1, 2), *tables)
        k = rotate_interleaved(norm(k, self.k_norm.weight, self.k_norm.eps).transpose(1, 2), *tables)
        v = v.transpose(1, 2)
        attention = attention_eager if backend == "eager" else attention_sdpa
        return attention(q, k, v, key_padding_mask, self.scale).transpose(1, 2)

    def _triton_kernels(self, q: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> ModuleType | None:
        problem = None
        if dispatch.triton_available() and not dispatch.triton_kernels().supports_head_dim(self.head_dim):
            max_dim = dispatch.triton_kernels().MAX_HEAD_DIM
            problem = f"head_dim {self.head_dim} is not supported by the kernel (even, at most {max_dim})"
        elif self.q_norm.eps != self.k_norm.eps:
            problem = "q_norm and k_norm have different eps (the kernel takes one)"
        weights = (self.q_norm.weight, self.k_norm.weight)
        return _triton_kernels_for("PeAttention", q, *weights, cos, sin, problem=problem)


# --------------------------------------------------------------------------------------------------
# SwiGLU MLP


def swiglu_eager(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up``."""
    return F.silu(gate) * up


class SwiGLUMLP(BackendOp):
    """``down(silu(gate(x)) * up(x))`` without biases."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_proj(x), self.up_proj(x)
        kernels = _triton_kernels_for("SwiGLU", gate, up) if self.backend == "triton" else None
        activation = kernels.swiglu(gate, up) if kernels is not None else swiglu_eager(gate, up)
        return self.down_proj(activation)
