"""Attention kernels: the PE transformer's QK-norm + RoPE attention, and plain (masked) attention.

Both run the flash kernels of :mod:`._flash` (forward and a real backward, O(T) extra memory, grouped
key/value heads, head_dim up to 256); :func:`rope_attention` first runs the pre-pass of
:mod:`._qk_prepass` on q and k (RMS-normalise, optionally, and rotate each row once).

- :func:`rope_attention` computes what ``pe_av.ops.attention.rope_attention_eager`` computes: q and k
  RMS-normalised over ``head_dim`` (fp32 statistics, rounded to the input dtype, times the norm weight;
  skipped when the weights are ``None``, as in the ViT), rotated (interleaved or half-split pairs; the
  first ``unrotated_prefix`` tokens, e.g. a class token, are not rotated), then
  ``softmax(q kᵀ · scale) v`` with query head ``h`` reading key/value head ``h // (H // Hkv)``. A key
  padding mask becomes per-sample key lengths (the last kept key + 1, computed on the device: no host
  sync) that let the kernel skip fully padded key blocks, plus the mask itself for holes before that.
- :func:`attention` is ``pe_av.ops.attention.attention_eager`` over ``(B, H, T, D)`` tensors with a
  boolean mask broadcastable to ``(B, H, Tq, Tk)`` (ModernBERT's sliding window and padding, or none:
  the ViT's attention pool), read through its strides (broadcast dims cost nothing).

A query whose keys are all masked gets the uniform average of all ``Tk`` value rows, as the eager form
(which adds the dtype's most negative value) does, never NaN; its gradients equal the eager form's too.

Strides and dtypes: q, k, v, the tables and masks may have any strides (the last dim is copied to unit
stride when it is not). q, k and v share one dtype. Norm weights and rotary tables are cast to q's dtype
first (``pe_av.ops.attention`` does that cast under autograd, so gradients reach fp32 weights). Gradients
flow to q, k, v, the norm weights and, when they require one, the rotary tables (a rare case, computed
with PyTorch ops in the pre-pass backward).

Under the interpreter, bf16 dots run in fp32 and bf16 casts round to nearest even (see :mod:`._rounding`).
"""

from __future__ import annotations

import math

import torch

from . import _flash, _flash_cases, _qk_prepass
from ._common import check_launchable, check_same, launch_problem

MAX_HEAD_DIM = 256


def supports_head_dim(head_dim: int) -> bool:
    """Whether the kernels handle ``head_dim`` (even, at most :data:`MAX_HEAD_DIM`)."""
    return 2 <= head_dim <= MAX_HEAD_DIM and head_dim % 2 == 0


def _unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _check_number(name: str, value, who: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TypeError(f"{who}: {name} must be a number, got {type(value).__name__}")
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{who}: {name} must be finite, got {value}")


def _check_qkv(who: str, q, k, v, seq_axis: int, head_axis: int) -> None:
    for name, tensor in dict(q=q, k=k, v=v).items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{who}: {name} must be a tensor, got {type(tensor).__name__}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        layout = "(batch, seq, heads, head_dim)" if seq_axis == 1 else "(batch, heads, seq, head_dim)"
        raise ValueError(f"{who}: q, k and v must be {layout}, got {q.dim()}, {k.dim()}, {v.dim()} dims")
    seq_ok = seq_axis != 1 or k.shape[1] == q.shape[1]  # rope_attention: self-attention, one length
    if k.shape != v.shape or k.shape[0] != q.shape[0] or k.shape[3] != q.shape[3] or not seq_ok:
        layout = "(B, T, Hkv, D)" if seq_axis == 1 else "(B, Hkv, Tk, D)"
        raise ValueError(
            f"{who}: k {tuple(k.shape)} and v {tuple(v.shape)} must be {layout} matching q {tuple(q.shape)}"
        )
    if k.shape[head_axis] == 0 or q.shape[head_axis] % k.shape[head_axis] != 0:
        raise ValueError(f"{who}: {q.shape[head_axis]} query heads are not a multiple of {k.shape[head_axis]} kv heads")
    if not supports_head_dim(q.shape[-1]):
        raise ValueError(f"{who}: head_dim {q.shape[-1]} unsupported (even, at most {MAX_HEAD_DIM})")
    check_same(who, "dtype", q=q, k=k, v=v)
    if q.is_cuda and q.dtype == torch.float32 and q.shape[-1] > _flash.FP32_MAX_HEAD_DIM:
        raise ValueError(f"{who}: float32 head_dim {q.shape[-1]} unsupported on CUDA (at most {_flash.FP32_MAX_HEAD_DIM})")


def _key_lengths_and_mask(key_padding_mask, key_lengths, batch: int, heads: int, seq: int, device):
    """The flash kernel's (kv_len, mask) for a key padding mask or explicit key lengths."""
    if key_lengths is not None:
        return key_lengths.to(device=device, dtype=torch.int32).contiguous(), None
    if key_padding_mask is None:
        return None, None
    keep = key_padding_mask if key_padding_mask.dtype == torch.bool else key_padding_mask != 0
    # last kept key + 1 (0 when none is kept): keys past it are skipped block-wise, holes before it masked
    positions = torch.arange(1, seq + 1, device=device, dtype=torch.int32)
    kv_len = torch.where(keep, positions, 0).amax(dim=1).to(torch.int32) if seq else torch.zeros(batch, dtype=torch.int32, device=device)
    mask = keep.view(torch.uint8)[:, None, None, :].expand(batch, heads, seq, seq)
    return kv_len, mask


def _check_rope(q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, key_lengths, unrotated_prefix):
    who = "rope_attention"
    _check_qkv(who, q, k, v, 1, 2)
    batch, seq, _, head_dim = q.shape
    if (q_norm_weight is None) != (k_norm_weight is None):
        raise ValueError(f"{who}: q_norm_weight and k_norm_weight must both be tensors or both be None")
    tensors = dict(q=q, k=k, v=v, cos=cos, sin=sin)
    for name, weight in (("q_norm_weight", q_norm_weight), ("k_norm_weight", k_norm_weight)):
        if weight is not None:
            if not isinstance(weight, torch.Tensor):
                raise TypeError(f"{who}: {name} must be a tensor or None, got {type(weight).__name__}")
            if weight.shape != (head_dim,):
                raise ValueError(f"{who}: {name} must have shape ({head_dim},), got {tuple(weight.shape)}")
            tensors[name] = weight
    if isinstance(unrotated_prefix, bool) or not isinstance(unrotated_prefix, int) or not 0 <= unrotated_prefix <= seq:
        raise ValueError(f"{who}: unrotated_prefix must be an int in [0, {seq}], got {unrotated_prefix!r}")
    for name in ("cos", "sin"):
        table = tensors[name]
        if not isinstance(table, torch.Tensor):
            raise TypeError(f"{who}: {name} must be a tensor, got {type(table).__name__}")
        if table.dim() != 2 or table.shape[0] < seq - unrotated_prefix or table.shape[1] != head_dim // 2:
            raise ValueError(f"{who}: {name} must be (>= {seq - unrotated_prefix}, {head_dim // 2}), got {tuple(table.shape)}")
    if key_padding_mask is not None and key_lengths is not None:
        raise ValueError(f"{who}: pass key_padding_mask or key_lengths, not both")
    for name, keys, shape in (("key_padding_mask", key_padding_mask, (batch, seq)), ("key_lengths", key_lengths, (batch,))):
        if keys is None:
            continue
        if not isinstance(keys, torch.Tensor):
            raise TypeError(f"{who}: {name} must be a {shape} tensor or None, got {type(keys).__name__}")
        if keys.shape != shape:
            raise ValueError(f"{who}: {name} must be {shape}, got {tuple(keys.shape)}")
        if keys.is_floating_point() or keys.is_complex():
            raise TypeError(f"{who}: {name} must be bool or integer")
        tensors[name] = keys
    check_same(who, "device", **tensors)
    check_launchable(*(t for n, t in tensors.items() if n not in ("key_padding_mask", "key_lengths")))


def rope_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_norm_weight: torch.Tensor | None,
    k_norm_weight: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    *,
    eps: float = 1e-6,
    scale: float | None = None,
    half_split: bool = False,
    unrotated_prefix: int = 0,
    key_lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """QK-RMSNorm + RoPE + bidirectional attention (Triton: a pre-pass, then flash forward/backward).

    Args:
        q: ``(B, T, H, D)`` query projections (any strides). float32/float16/bfloat16 on CUDA, or CPU under
            ``TRITON_INTERPRET=1``.
        k, v: ``(B, T, Hkv, D)`` with ``H % Hkv == 0``; query head ``h`` uses kv head ``h // (H // Hkv)``.
        q_norm_weight, k_norm_weight: ``(D,)`` RMSNorm weights applied per head before the rotation (cast
            to q's dtype), or both ``None``: no norm (the ViT).
        cos, sin: ``(>= T - unrotated_prefix, D // 2)`` rotary tables; token ``t`` uses row
            ``t - unrotated_prefix``; cast to q's dtype.
        key_padding_mask: ``(B, T)`` bool/int, True/nonzero = attend to this key; ``None`` = all keys. A
            query whose keys are all masked gets the mean of all ``T`` value rows (as the eager form).
        eps: RMSNorm epsilon. scale: score scale, default ``D ** -0.5``.
        half_split: rotate pairs ``(x_i, x_{i + D/2})`` instead of interleaved ``(x_{2i}, x_{2i+1})``.
        unrotated_prefix: leading tokens left unrotated (a class token).
        key_lengths: ``(B,)`` integers instead of ``key_padding_mask``: sample ``b`` attends to keys
            ``< key_lengths[b]`` (0: to none, i.e. uniformly to all).
    Returns:
        ``(B, T, H, D)`` contiguous, in ``q``'s dtype; differentiable in q, k, v and the norm weights.
    """
    _check_rope(q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask, key_lengths, unrotated_prefix)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"rope_attention: eps must be a number, got {type(eps).__name__}")
    _check_number("scale", scale, "rope_attention")
    if not 0 <= eps < math.inf:
        raise ValueError(f"rope_attention: eps must be finite and >= 0, got {eps}")
    batch, seq, heads, head_dim = q.shape
    scale = head_dim**-0.5 if scale is None else float(scale)
    q, k, v = (_unit_last_stride(t) for t in (q, k, v))
    cos, sin = (_unit_last_stride(t.to(q.dtype)) for t in (cos, sin))
    weights = [None if w is None else w.to(q.dtype).contiguous() for w in (q_norm_weight, k_norm_weight)]
    prepass = torch.ops.pe_av_kernels.qk_prepass
    q = prepass(q, weights[0], cos, sin, float(eps), bool(half_split), unrotated_prefix)[0]
    k = prepass(k, weights[1], cos, sin, float(eps), bool(half_split), unrotated_prefix)[0]
    kv_len, mask = _key_lengths_and_mask(key_padding_mask, key_lengths, batch, heads, seq, q.device)
    return torch.ops.pe_av_kernels.flash_attention(q, k, v, kv_len, mask, scale)[0]


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """``softmax(q kᵀ · scale [masked]) v`` (Triton flash forward/backward), as ``attention_eager``.

    Args:
        q: ``(B, H, Tq, D)``; k, v: ``(B, Hkv, Tk, D)`` with ``H % Hkv == 0``; any strides.
        mask: bool, broadcastable to ``(B, H, Tq, Tk)``, True = may attend; None = all.
        scale: default ``D ** -0.5``. dropout: must be 0 (the kernel has none; :func:`attention_problem`).
    Returns:
        ``(B, H, Tq, D)`` in q's dtype (a transposed view of a contiguous ``(B, Tq, H, D)`` tensor).
    """
    who = "attention"
    _check_qkv(who, q, k, v, 2, 1)
    batch, heads, seq_q, _ = q.shape
    seq_k = k.shape[2]
    _check_number("scale", scale, who)
    if dropout:
        raise ValueError(f"{who}: the kernel has no dropout, got dropout={dropout}")
    tensors = dict(q=q, k=k, v=v)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"{who}: mask must be a bool tensor or None, got {getattr(mask, 'dtype', type(mask).__name__)}")
        try:
            mask = torch.broadcast_to(mask, (batch, heads, seq_q, seq_k)).view(torch.uint8)
        except RuntimeError as error:
            raise ValueError(f"{who}: mask {tuple(mask.shape)} does not broadcast to {(batch, heads, seq_q, seq_k)}") from error
        tensors["mask"] = mask
    check_same(who, "device", **tensors)
    check_launchable(q, k, v)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    q, k, v = (_unit_last_stride(t).transpose(1, 2) for t in (q, k, v))
    out = torch.ops.pe_av_kernels.flash_attention(q, k, v, None, mask, scale)[0]
    return out.transpose(1, 2)


def _common_problem(q, dropout, *tensors) -> str | None:
    if dropout:
        return f"dropout is not supported by the kernel (attention dropout {dropout} in training)"
    if not supports_head_dim(q.shape[-1]):
        return f"head_dim {q.shape[-1]} is not supported by the kernel (even, at most {MAX_HEAD_DIM})"
    if q.is_cuda and q.dtype == torch.float32 and q.shape[-1] > _flash.FP32_MAX_HEAD_DIM:
        return f"float32 at head_dim {q.shape[-1]} is not supported on CUDA (at most {_flash.FP32_MAX_HEAD_DIM}: spills)"
    return launch_problem(q, *tensors)


def rope_attention_problem(q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask=None, **options) -> str | None:
    """Why :func:`rope_attention` cannot run on these arguments here, or ``None``. ``options`` may hold
    the op's ``dropout`` (the kernel has none: above 0 it is a problem and the op runs its eager form)."""
    weights = [w for w in (q_norm_weight, k_norm_weight) if w is not None]
    return _common_problem(q, options.get("dropout", 0.0), k, v, *weights, cos, sin)


def attention_problem(q, k, v, mask=None, scale=None, dropout=0.0) -> str | None:
    """Why :func:`attention` cannot run on these arguments here, or ``None``."""
    return _common_problem(q, dropout, k, v)


problem = rope_attention_problem


def compile_cases():
    """Every kernel behind this file at every configuration its launchers pick on CUDA (pre-pass and flash)."""
    return _qk_prepass.compile_cases() + _flash_cases.compile_cases()


__all__ = [
    "MAX_HEAD_DIM", "attention", "attention_problem", "compile_cases", "problem", "rope_attention",
    "rope_attention_problem", "supports_head_dim",
]
