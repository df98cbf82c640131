"""pe_av_kernels.rms_norm vs the eager RMSNorm of pe_av (forward, backward, fused residual add).

On CPU the kernels run under triton's interpreter (conftest sets TRITON_INTERPRET=1): fp32, tiny
shapes. On CUDA, fp16/bf16 at model shapes.
"""

import pytest
import torch

from pe_av.ops import rms_norm_eager, rms_norm_fused
from pe_av_kernels import rms_norm

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP32_ATOL = 1e-5
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16/bf16 kernel runs need a CUDA device")


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    return (a.float() - b.float()).abs().max().item()


def weight(n: int, dtype=torch.float32) -> torch.Tensor:
    return (1 + 0.3 * torch.randn(n)).to(DEVICE, dtype)


def eager_with_residual(x, w, eps, residual):
    total = x + residual
    return rms_norm_eager(total, w, eps), total


@pytest.mark.parametrize(
    "shape, max_block",
    [((1, 37), 8192), ((2, 17, 64), 8192), ((3, 5, 37), 16)],  # the last runs rows in 3 chunks
    ids=["T1-w37", "T17-w64", "chunked-w37"],
)
def test_forward_backward_fp32(shape, max_block):
    x = torch.randn(shape, device=DEVICE, requires_grad=True)
    w = weight(shape[-1]).requires_grad_()
    got = rms_norm(x, w, 1e-6, max_block=max_block)
    expected = rms_norm_eager(x, w, 1e-6)
    assert max_diff(got, expected) <= FP32_ATOL
    grad = torch.randn_like(got)
    got_grads = torch.autograd.grad(got, (x, w), grad)
    expected_grads = torch.autograd.grad(expected, (x, w), grad)
    for g, e in zip(got_grads, expected_grads):
        assert max_diff(g, e) <= FP32_ATOL


@pytest.mark.parametrize("max_block", [8192, 16])
def test_fused_residual_fp32(max_block):
    x = torch.randn(2, 9, 37, device=DEVICE, requires_grad=True)
    r = torch.randn(2, 9, 37, device=DEVICE, requires_grad=True)
    w = weight(37).requires_grad_()
    out, total = rms_norm(x, w, 1e-5, residual=r, max_block=max_block)
    e_out, e_total = eager_with_residual(x, w, 1e-5, r)
    assert max_diff(out, e_out) <= FP32_ATOL and max_diff(total, e_total) <= FP32_ATOL
    g_out, g_total = torch.randn_like(out), torch.randn_like(total)
    got = torch.autograd.grad((out * g_out).sum() + (total * g_total).sum(), (x, r, w))
    expected = torch.autograd.grad((e_out * g_out).sum() + (e_total * g_total).sum(), (x, r, w))
    for g, e in zip(got, expected):
        assert max_diff(g, e) <= FP32_ATOL
    # only the normalized output used: the sum's gradient is absent, not zero-filled
    out, _ = rms_norm(x, w, 1e-5, residual=r, max_block=max_block)
    got = torch.autograd.grad(out.sum(), (x, r))
    expected = torch.autograd.grad(eager_with_residual(x, w, 1e-5, r)[0].sum(), (x, r))
    for g, e in zip(got, expected):
        assert max_diff(g, e) <= FP32_ATOL
    # only the sum used: x and residual receive its gradient unchanged, the weight none
    _, total = rms_norm(x, w, 1e-5, residual=r, max_block=max_block)
    got = torch.autograd.grad((total * g_total).sum(), (x, r, w), allow_unused=True)
    assert max_diff(got[0], g_total) == 0 and max_diff(got[1], g_total) == 0
    assert got[2] is None or not got[2].any()


def test_non_contiguous_inputs():
    wide = torch.randn(4, 6, 50, device=DEVICE)
    sliced = wide[:, ::2, :37]  # strided rows, read through a view
    transposed = torch.randn(37, 5, device=DEVICE).t()  # no row view exists: copied
    w = weight(37)
    for x in (sliced, transposed):
        assert not x.is_contiguous()
        assert max_diff(rms_norm(x, w, 1e-6), rms_norm_eager(x, w, 1e-6)) <= FP32_ATOL
    dy = torch.randn(37, 4, device=DEVICE).t()  # non-contiguous incoming gradient
    x = torch.randn(4, 37, device=DEVICE, requires_grad=True)
    got = torch.autograd.grad(rms_norm(x, w, 1e-6), x, dy)[0]
    expected = torch.autograd.grad(rms_norm_eager(x, w, 1e-6), x, dy)[0]
    assert max_diff(got, expected) <= FP32_ATOL


def test_eager_residual_form_adds_then_normalizes():
    """The kernel's contract with a residual, on the eager form it is tested against (and the fused form)."""
    x, r, w = torch.randn(3, 37), torch.randn(3, 37), 1 + torch.randn(37)
    out, total = rms_norm_eager(x, w, 1e-6, r)
    assert torch.equal(total, x + r) and torch.equal(out, rms_norm_eager(x + r, w, 1e-6))
    fused_out, fused_total = rms_norm_fused(x, w, 1e-6, r)
    assert torch.equal(fused_total, total) and (fused_out - out).abs().max().item() <= 1e-6


def test_bad_inputs():
    x = torch.randn(2, 8, device=DEVICE)
    with pytest.raises(ValueError, match="weight must have shape"):
        rms_norm(x, weight(7))
    with pytest.raises(ValueError, match="residual shape"):
        rms_norm(x, weight(8), residual=torch.randn(2, 9, device=DEVICE))
    with pytest.raises(ValueError, match="dtype torch.float64"):
        rms_norm(x.double(), weight(8).double())
    with pytest.raises(ValueError, match="dtype"):
        rms_norm(x, weight(8), residual=x.half())
    with pytest.raises(TypeError):
        rms_norm(x.tolist(), weight(8))


@needs_cuda
@pytest.mark.parametrize("dtype, tol", [(torch.float16, 1e-2), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("width", [1024, 1792, 37])
def test_half_precision_cuda(dtype, tol, width):
    x = torch.randn(4, 751, width, device="cuda", dtype=dtype, requires_grad=True)
    r = torch.randn_like(x, requires_grad=True)
    w = weight(width, dtype).requires_grad_()
    out, total = rms_norm(x, w, 1e-5, residual=r)
    e_out, e_total = eager_with_residual(x, w, 1e-5, r)
    torch.testing.assert_close(out, e_out, atol=tol, rtol=tol)
    torch.testing.assert_close(total, e_total, atol=tol, rtol=tol)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, r, w), grad)
    expected = torch.autograd.grad(e_out, (x, r, w), grad)
    for g, e in zip(got[:2], expected[:2]):
        torch.testing.assert_close(g, e, atol=tol, rtol=tol)
    # the weight gradient sums 3004 rows: compare it relative to its scale
    scale = expected[2].float().abs().max()
    torch.testing.assert_close(got[2].float() / scale, expected[2].float() / scale, atol=tol, rtol=tol)
