"""Attention: one eager and one sdpa form, used by the PE transformer, ModernBERT and the ViT.

- :data:`attention`: ``softmax(q kᵀ · scale + mask) v`` over ``(B, H, T, D)`` tensors, with grouped
  key/value heads (GQA), a boolean mask broadcastable to ``(B, H, Tq, Tk)`` (True = may attend) and
  dropout. No Triton kernel covers it yet (ModernBERT's window, the ViT): under ``triton`` it runs
  sdpa and says so once.
- :data:`rope_attention`: the PE transformer's whole path between its projections: per-head RMSNorm on
  q and k, rotary embedding, then :data:`attention` with a key padding mask and ``dropout`` on the
  probabilities (pass ``config.attention_dropout`` in training, 0 otherwise, as transformers does). Its
  ``triton`` form is :func:`pe_av_kernels.rope_attention`, which fuses all of it but dropout: with
  ``dropout > 0`` the kernel reports a problem and the op runs its eager form (one warning).

Masked keys get the dtype's most negative value (not -inf) in the eager form, so a query with no
visible key averages every value uniformly instead of producing NaN, as the references do.

Attention probabilities (``output_attentions=True``): :func:`with_probabilities` runs an op's eager
form that also returns them, ``(out, probs)`` with probs ``(B, H, Tq, Tk)`` (key/value heads repeated
to ``H``), as transformers' eager attention does. No fused form builds that matrix, so on the ``sdpa``
and ``triton`` backends such a call runs eagerly and says so once (:func:`pe_av.dispatch.warn_once`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..dispatch import NO_KERNEL_YET, Kernel, Op, warn_once
from .rms_norm import rms_norm_eager, rms_norm_fused
from .rope import apply_rope

__all__ = [
    "attention",
    "attention_eager",
    "attention_eager_probs",
    "attention_sdpa",
    "rope_attention",
    "rope_attention_eager",
    "rope_attention_eager_probs",
    "with_probabilities",
]


def attention_eager(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    dropout: float = 0.0,
) -> torch.Tensor:
    """``q`` ``(B, H, Tq, D)``, ``k``/``v`` ``(B, Hkv, Tk, D)`` with ``H % Hkv == 0`` → ``(B, H, Tq, D)``.

    ``mask``: bool, broadcastable to ``(B, H, Tq, Tk)``, True = attend. ``dropout`` applies to the
    attention probabilities (pass 0 outside training).
    """
    return attention_eager_probs(q, k, v, mask, scale, dropout)[0]


def attention_eager_probs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`attention_eager` that also returns the probabilities ``(B, H, Tq, Tk)`` (after dropout,
    in ``q``'s dtype), as transformers' eager attention returns its weights."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
        scores = scores + bias.masked_fill_(~mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    if dropout > 0.0:
        probs = F.dropout(probs, p=dropout, training=True)
    return torch.matmul(probs, v), probs


def attention_sdpa(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Same contract as :func:`attention_eager` through ``F.scaled_dot_product_attention``."""
    enable_gqa = q.shape[1] != k.shape[1]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale, enable_gqa=enable_gqa)


attention = Op("attention", {"eager": attention_eager, "sdpa": attention_sdpa, "triton": NO_KERNEL_YET})


# --------------------------------------------------------------------------------------------------
# QK-RMSNorm + RoPE + attention (the PE transformer)


def _rope_inputs(
    norm, q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, eps, scale, half_split, dropout
):
    """Normed, rotated ``(B, H, T, D)`` q and k, ``v`` as ``(B, Hkv, T, D)``, the boolean key mask, the scale
    and the dropout probability: :func:`attention_eager`'s arguments."""
    seq = q.shape[1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    cos, sin = cos[:seq], sin[:seq]
    q = apply_rope(norm(q, q_norm_weight, eps).transpose(1, 2), cos, sin, half_split)
    k = apply_rope(norm(k, k_norm_weight, eps).transpose(1, 2), cos, sin, half_split)
    mask = None if key_padding_mask is None else key_padding_mask.bool()[:, None, None, :]
    return q, k, v.transpose(1, 2), mask, scale, float(dropout)


def _rope_attention_with(norm, attend):
    def form(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        q_norm_weight: torch.Tensor,
        k_norm_weight: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        *,
        eps: float = 1e-6,
        scale: float | None = None,
        half_split: bool = False,
        dropout: float = 0.0,
    ) -> torch.Tensor:
        inputs = _rope_inputs(
            norm, q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, eps, scale, half_split, dropout
        )
        return attend(*inputs).transpose(1, 2)

    form.__doc__ = (
        "``q`` ``(B, T, H, D)``, ``k``/``v`` ``(B, T, Hkv, D)`` projections → ``(B, T, H, D)`` (possibly a view):\n"
        "RMSNorm each head of q and k, rotate them (``cos``/``sin`` ``(>= T, D/2)``; interleaved pairs unless\n"
        "``half_split``), attend with ``key_padding_mask`` ``(B, T)`` (True/1 = key is real), drop attention\n"
        "probabilities with probability ``dropout`` (0 outside training)."
    )
    return form


def rope_attention_eager_probs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_norm_weight: torch.Tensor,
    k_norm_weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    *,
    eps: float = 1e-6,
    scale: float | None = None,
    half_split: bool = False,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:data:`rope_attention`'s eager form that also returns the probabilities ``(B, H, T, T)`` (after dropout)."""
    inputs = _rope_inputs(
        rms_norm_eager, q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, eps, scale, half_split, dropout
    )
    out, probs = attention_eager_probs(*inputs)
    return out.transpose(1, 2), probs


rope_attention_eager = _rope_attention_with(rms_norm_eager, attention_eager)
rope_attention_fused = _rope_attention_with(rms_norm_fused, attention_sdpa)


class _KernelForwardEagerBackward(torch.autograd.Function):
    """Forward: the Triton kernel. Backward: recompute :func:`rope_attention_eager` under autograd and
    differentiate it (exact, but O(T²) memory per head while the backward runs)."""

    @staticmethod
    def forward(ctx, kernel, options, q, k, v, q_norm_weight, k_norm_weight, cos, sin, mask):
        ctx.save_for_backward(q, k, v, q_norm_weight, k_norm_weight, cos, sin, mask)
        ctx.options = options
        return kernel(q, k, v, q_norm_weight, k_norm_weight, cos, sin, mask, **options)

    @staticmethod
    def backward(ctx, dout):
        *inputs, mask = ctx.saved_tensors
        needs = ctx.needs_input_grad[2 : 2 + len(inputs)]
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(need) for t, need in zip(inputs, needs)]
            out = rope_attention_eager(*leaves, mask, **ctx.options)
            wanted = [leaf for leaf, need in zip(leaves, needs) if need]
            grads = iter(torch.autograd.grad(out, wanted, dout) if wanted else ())
        return (None, None, *(next(grads) if need else None for need in needs), None)


def _run_rope_attention_kernel(
    kernel, q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask=None, dropout=0.0, **options
):
    # reached with dropout == 0 only: pe_av_kernels.attention.problem sends dropout > 0 to the eager form
    # the kernel casts norm weights and rotary tables to q's dtype; cast them here, under autograd, so that
    # the eager recompute of the backward sees what the forward used (gradients flow back through the cast)
    q_norm_weight, k_norm_weight, cos, sin = (
        t.to(q.dtype) if t.is_floating_point() else t for t in (q_norm_weight, k_norm_weight, cos, sin)
    )
    tensors = (q, k, v, q_norm_weight, k_norm_weight, cos, sin)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _KernelForwardEagerBackward.apply(kernel, options, *tensors, key_padding_mask)
    return kernel(*tensors, key_padding_mask, **options)


rope_attention = Op(
    "PeAttention",
    {
        "eager": rope_attention_eager,
        "sdpa": rope_attention_fused,
        "triton": Kernel("rope_attention", call=_run_rope_attention_kernel),
    },
)


#: op → its eager form that also returns the attention probabilities
_PROBABILITY_FORMS = {attention: attention_eager_probs, rope_attention: rope_attention_eager_probs}


def with_probabilities(op: Op, backend: str, *args, caller: str | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, probs)`` of ``op`` (:data:`attention` or :data:`rope_attention`) from its eager form.

    Fused forms never build the probability matrix, so on a backend other than ``eager`` this warns
    once (naming ``caller``, default the op) that the call runs in eager PyTorch; not while
    ``torch.compile`` / ``torch.export`` trace (a warning is a side effect they cannot capture).
    """
    if backend != "eager" and not torch.compiler.is_compiling():
        warn_once(
            f"{caller or op.name}: output_attentions=True runs attention in eager PyTorch instead of "
            f"attn_impl={backend!r}: its fused kernels never form the attention probabilities "
            "(transformers computes them in eager too)"
        )
    return _PROBABILITY_FORMS[op](*args, **kwargs)
