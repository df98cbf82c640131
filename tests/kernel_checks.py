"""Shared checks of the kernel tests: a kernel and its eager form, forward and gradients, on the same inputs.

Tolerances (DESIGN.md "Numerics"): fp32 ``FP32_ATOL``; fp16 atol = rtol = 1e-2; bf16 atol = rtol = 2e-2.
Gradients that are sums over many rows (a norm's weight, a bias, Snake's alpha) are compared relative to
their largest entry: the eager half-precision form rounds every summand, the kernels sum in fp32.

bf16 under triton's interpreter: its fp32 → bf16 casts truncate instead of rounding to nearest, so a
kernel's bf16 output may sit one bf16 step (2^-8 relative) below PyTorch's; the bf16 tolerance (2e-2)
covers that with room, and the CUDA runs check the real rounding at the same tolerance.
"""

from __future__ import annotations

import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP32_ATOL = 1e-5
HALF_TOL = {torch.float16: 1e-2, torch.bfloat16: 2e-2}
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0


def assert_near(got: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, reduced: bool = False, what: str = ""):
    """``got`` within the tolerance of ``dtype`` of ``expected``; ``reduced`` scales it by the largest entry."""
    assert got.shape == expected.shape and got.dtype == expected.dtype, (what, got.shape, expected.shape)
    if dtype == torch.float32:
        scale = max(1.0, expected.abs().max().item()) if reduced else 1.0
        torch.testing.assert_close(got, expected, atol=FP32_ATOL * scale, rtol=0.0, msg=lambda m: f"{what}: {m}")
        return
    tol = HALF_TOL[dtype]
    atol = tol * max(1.0, expected.abs().max().item()) if reduced else tol
    torch.testing.assert_close(got, expected, atol=atol, rtol=tol, msg=lambda m: f"{what}: {m}")


def _upcast(inputs: dict) -> dict:
    return {
        n: (t.detach().float().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t)
        for n, t in inputs.items()
    }


def compare(kernel, eager, inputs: dict, dtype: torch.dtype, reduced=(), seed: int = 0, upcast: bool = False) -> dict:
    """Run ``kernel(**inputs)`` and ``eager(**inputs)``, compare outputs and the gradients of every input
    that requires one (for a random output gradient); returns the max abs diffs by name.

    ``upcast``: the reference is the eager form in fp32 on the same values, rounded to ``dtype`` at the
    end (for kernels that compute in fp32 what the eager form rounds after every op, e.g. Snake, whose
    half-precision eager form is off by far more than the tolerance where ``alpha·x`` is large)."""
    got = kernel(**inputs)
    reference = _upcast(inputs) if upcast and dtype != torch.float32 else inputs
    expected = eager(**reference)
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    diffs = {}
    if reference is not inputs:
        expected = tuple(e.to(dtype) for e in expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert_near(g, e, dtype, what=f"output {i}")
        diffs[f"out{i}"] = max_diff(g, e)
    leaves = {n: t for n, t in inputs.items() if isinstance(t, torch.Tensor) and t.requires_grad}
    if not leaves:
        return diffs
    generator = torch.Generator().manual_seed(seed)
    grads_out = [torch.randn(e.shape, generator=generator).to(e.device, e.dtype) for e in expected]
    got_grads = torch.autograd.grad(got, list(leaves.values()), grads_out)
    if reference is inputs:
        exp_grads = torch.autograd.grad(expected, list(leaves.values()), grads_out)
    else:
        ref_leaves = [reference[n] for n in leaves]
        outs = eager(**reference)
        outs = outs if isinstance(outs, tuple) else (outs,)
        exp_grads = [g.to(dtype) for g in torch.autograd.grad(outs, ref_leaves, [g.float() for g in grads_out])]
    for name, g, e in zip(leaves, got_grads, exp_grads):
        assert_near(g, e, dtype, reduced=name in reduced, what=f"grad of {name}")
        diffs[f"d{name}"] = max_diff(g, e)
    return diffs


def strided(t: torch.Tensor, how: str) -> torch.Tensor:
    """The values of ``t`` in another memory layout (a leaf again if ``t`` needs a gradient)."""
    base = t.detach()
    if how == "every_other":  # stride 2 in every dim
        wide = torch.zeros([2 * n for n in base.shape], dtype=base.dtype, device=base.device)
        view = wide[tuple(slice(None, None, 2) for _ in base.shape)]
        view.copy_(base)
    elif how == "column_major":  # the last dim is not unit-stride
        view = base.transpose(0, -1).contiguous().transpose(0, -1)
    elif how == "slice":  # unit last stride, rows further apart, an offset into the storage
        wide = torch.zeros(*base.shape[:-1], base.shape[-1] + 5, dtype=base.dtype, device=base.device)
        view = wide[..., 3 : 3 + base.shape[-1]]
        view.copy_(base)
    else:
        raise ValueError(how)
    if t.requires_grad:
        view = view.detach().requires_grad_()
    return view


STRIDED = ("every_other", "column_major", "slice")
