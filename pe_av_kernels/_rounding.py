"""Rounding and dot products that mean the same under triton's CPU interpreter as on a GPU.

The interpreter (``TRITON_INTERPRET=1``) has two bf16 defects (triton-lang/triton#11584):

- ``tl.dot`` on bf16 operands multiplies their raw 16-bit patterns, giving garbage;
- fp32 → bf16 casts truncate instead of rounding to nearest even (fp16 casts are fine).

Kernels therefore call :func:`dot` and :func:`round_to` with ``FIX_BF16`` set to
``INTERPRET and dtype is bf16``: the dot then upcasts both operands to fp32 (exact: every bf16 value is
an fp32 value) and accumulates in fp32, which is what a GPU's bf16 MMA computes, and the cast first
rounds the fp32 bit pattern to nearest even in integer arithmetic, so the truncating cast is exact. On a
GPU (``FIX_BF16`` false) both are the plain ``tl.dot`` / ``.to``: the real bf16 path, tested on CUDA.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def round_to(x, DTYPE: tl.constexpr, FIX_BF16: tl.constexpr):
    """``x`` (fp32) rounded to nearest even in ``DTYPE``, returned in ``DTYPE``."""
    if FIX_BF16:
        bits = x.to(tl.int32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536  # round the low 16 bits away (ties to even)
        return bits.to(tl.float32, bitcast=True).to(DTYPE)
    else:
        return x.to(DTYPE)


@triton.jit
def rounded(x, DTYPE: tl.constexpr, FIX_BF16: tl.constexpr):
    """``x`` (fp32) rounded to ``DTYPE`` and back to fp32: where the eager form rounds an intermediate."""
    return round_to(x, DTYPE, FIX_BF16).to(tl.float32)


@triton.jit
def dot(a, b, acc, PRECISION: tl.constexpr, FIX_BF16: tl.constexpr):
    """``acc + a @ b`` with fp32 accumulation (``acc`` fp32)."""
    if FIX_BF16:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc, input_precision=PRECISION)
