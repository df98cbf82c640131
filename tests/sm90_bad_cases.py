"""Deliberately bad compile cases: the sm_90 check must fail on them (tests/test_sm90_compile.py).

Not a test module (no ``test_`` prefix): the compile check loads it by path in a subprocess.
"""

import triton
import triton.language as tl

from pe_av_kernels._common import CompileCase


@triton.jit
def _hoarding_kernel(X, Y, BLOCK: tl.constexpr):
    """Keeps a whole BLOCK of fp32 values live in one warp's registers across a reduction: it spills."""
    offs = tl.arange(0, BLOCK)
    x = tl.load(X + offs)
    total = tl.sum(x * x, axis=0)
    tl.store(Y + offs, x * total + tl.exp(x))


@triton.jit
def _big_dot_kernel(A, B, C, M: tl.constexpr, N: tl.constexpr, K: tl.constexpr):
    """One fp16 tile product of 256x256 by 256x256: operands staged in far more than 227 KB of shared memory."""
    rm = tl.arange(0, M)
    rn = tl.arange(0, N)
    rk = tl.arange(0, K)
    a = tl.load(A + rm[:, None] * K + rk[None, :])
    b = tl.load(B + rk[:, None] * N + rn[None, :])
    tl.store(C + rm[:, None] * N + rn[None, :], tl.dot(a, b))


def compile_cases():
    return [
        CompileCase("spills", _hoarding_kernel, dict(X="*fp32", Y="*fp32"), dict(BLOCK=8192), num_warps=1,
                    divisible=("X", "Y")),
        CompileCase("oversized", _big_dot_kernel, dict(A="*fp16", B="*fp16", C="*fp32"), dict(M=256, N=256, K=256),
                    num_warps=8, num_stages=1, divisible=("A", "B", "C")),
    ]
