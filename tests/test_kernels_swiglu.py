"""pe_av_kernels.swiglu vs the eager ``silu(gate) * up`` of pe_av (forward and backward)."""

import pytest
import torch

from pe_av.ops import swiglu_eager
from pe_av_kernels import swiglu

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP32_ATOL = 1e-5
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16/bf16 kernel runs need a CUDA device")


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    return (a.float() - b.float()).abs().max().item()


def check_forward_backward(gate, up, atol, rtol=0.0):
    got = swiglu(gate, up)
    expected = swiglu_eager(gate, up)
    torch.testing.assert_close(got, expected, atol=atol, rtol=rtol)
    grad = torch.randn_like(got)
    for g, e in zip(torch.autograd.grad(got, (gate, up), grad), torch.autograd.grad(expected, (gate, up), grad)):
        torch.testing.assert_close(g, e, atol=atol, rtol=rtol)


@pytest.mark.parametrize("shape", [(1, 1, 37), (2, 17, 37), (2, 4800), (3, 5, 64)])
def test_fp32(shape):
    gate = (2 * torch.randn(shape, device=DEVICE)).requires_grad_()
    up = torch.randn(shape, device=DEVICE, requires_grad=True)
    check_forward_backward(gate, up, FP32_ATOL)


def test_halves_of_a_fused_projection():
    fused = torch.randn(2, 17, 74, device=DEVICE, requires_grad=True)
    gate, up = fused[..., :37], fused[..., 37:]  # strided views: read without copies
    assert not gate.is_contiguous()
    check_forward_backward(gate, up, FP32_ATOL)
    transposed = torch.randn(37, 6, device=DEVICE).t()
    assert max_diff(swiglu(transposed, transposed), swiglu_eager(transposed, transposed)) <= FP32_ATOL


def test_empty_and_bad_inputs():
    empty = torch.randn(0, 37, device=DEVICE)
    assert swiglu(empty, empty).shape == (0, 37)
    x = torch.randn(2, 8, device=DEVICE)
    with pytest.raises(ValueError, match="shape"):
        swiglu(x, torch.randn(2, 9, device=DEVICE))
    with pytest.raises(ValueError, match="dtype"):
        swiglu(x, x.half())
    with pytest.raises(ValueError, match="float64"):
        swiglu(x.double(), x.double())


@needs_cuda
@pytest.mark.parametrize("dtype, tol", [(torch.float16, 1e-2), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("width", [4800, 2752, 37])
def test_half_precision_cuda(dtype, tol, width):
    gate = torch.randn(4, 751, width, device="cuda", dtype=dtype, requires_grad=True)
    up = torch.randn_like(gate, requires_grad=True)
    check_forward_backward(gate, up, tol, tol)
