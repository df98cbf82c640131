"""Attention: one eager and one sdpa form, used by the PE transformer, ModernBERT and the ViT.

- :data:`attention`: ``softmax(q kᵀ · scale + mask) v`` over ``(B, H, T, D)`` tensors, with grouped
  key/value heads (GQA), a boolean mask broadcastable to ``(B, H, Tq, Tk)`` (True = may attend) and
  dropout. Its ``triton`` form is :func:`pe_av_kernels.attention` (flash forward/backward, the mask read
  through its strides: ModernBERT's window and padding, the ViT's attention pool); with ``dropout > 0``
  the op runs its eager form (one warning).
- :data:`rope_attention`: the PE transformer's whole path between its projections: per-head RMSNorm on
  q and k (optional: the ViT passes ``None`` weights), rotary embedding (the first ``unrotated_prefix``
  tokens, a class token, stay unrotated), then :data:`attention` with a key padding mask and ``dropout``
  on the probabilities (pass ``config.attention_dropout`` in training, 0 otherwise, as transformers
  does). Its ``triton`` form is :func:`pe_av_kernels.rope_attention` (a norm + rotation pre-pass, then
  the flash kernels, forward and backward); with ``dropout > 0`` the op runs its eager form (one warning).

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

from ..dispatch import Kernel, Op, warn_once
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


attention = Op("attention", {"eager": attention_eager, "sdpa": attention_sdpa, "triton": Kernel("attention")})


# --------------------------------------------------------------------------------------------------
# QK-RMSNorm + RoPE + attention (the PE transformer)


def _rotate(x, cos, sin, half_split, unrotated_prefix):
    """Rotate ``x`` ``(B, H, T, D)`` from token ``unrotated_prefix`` on (table row 0 at that token)."""
    seq = x.shape[2] - unrotated_prefix
    if unrotated_prefix == 0:
        return apply_rope(x, cos[:seq], sin[:seq], half_split)
    rotated = apply_rope(x[:, :, unrotated_prefix:], cos[:seq], sin[:seq], half_split)
    return torch.cat((x[:, :, :unrotated_prefix], rotated), dim=2)


def _rope_inputs(
    norm, q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, eps, scale, half_split, dropout,
    unrotated_prefix=0,
):
    """Normed (unless the weights are None), rotated ``(B, H, T, D)`` q and k, ``v`` as ``(B, Hkv, T, D)``,
    the boolean key mask, the scale and the dropout probability: :func:`attention_eager`'s arguments."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if q_norm_weight is not None:
        q, k = norm(q, q_norm_weight, eps), norm(k, k_norm_weight, eps)
    q = _rotate(q.transpose(1, 2), cos, sin, half_split, unrotated_prefix)
    k = _rotate(k.transpose(1, 2), cos, sin, half_split, unrotated_prefix)
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
        unrotated_prefix: int = 0,
    ) -> torch.Tensor:
        inputs = _rope_inputs(
            norm, q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, eps, scale, half_split, dropout,
            unrotated_prefix,
        )
        return attend(*inputs).transpose(1, 2)

    form.__doc__ = (
        "``q`` ``(B, T, H, D)``, ``k``/``v`` ``(B, T, Hkv, D)`` projections → ``(B, T, H, D)`` (possibly a view):\n"
        "RMSNorm each head of q and k (unless the weights are None), rotate them (``cos``/``sin``\n"
        "``(>= T - unrotated_prefix, D/2)``; interleaved pairs unless ``half_split``; the first\n"
        "``unrotated_prefix`` tokens unrotated), attend with ``key_padding_mask`` ``(B, T)`` (True/1 = key is real), drop attention\n"
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
    unrotated_prefix: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:data:`rope_attention`'s eager form that also returns the probabilities ``(B, H, T, T)`` (after dropout)."""
    inputs = _rope_inputs(
        rms_norm_eager, q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, eps, scale, half_split, dropout,
        unrotated_prefix,
    )
    out, probs = attention_eager_probs(*inputs)
    return out.transpose(1, 2), probs


rope_attention_eager = _rope_attention_with(rms_norm_eager, attention_eager)
rope_attention_fused = _rope_attention_with(rms_norm_fused, attention_sdpa)


def _run_rope_attention_kernel(
    kernel, q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask=None, dropout=0.0, **options
):
    # reached with dropout == 0 only: pe_av_kernels.attention.rope_attention_problem sends dropout > 0 to
    # the eager form. The kernel computes on tensors of q's dtype: cast the norm weights here, under
    # autograd, so their gradients flow back through the cast to the (fp32) parameters.
    q_norm_weight, k_norm_weight, cos, sin = (
        t.to(q.dtype) if t is not None and t.is_floating_point() else t for t in (q_norm_weight, k_norm_weight, cos, sin)
    )
    return kernel(q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, **options)


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
