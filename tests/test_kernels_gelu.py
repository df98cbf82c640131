"""pe_av_kernels.bias_gelu and pe_av_kernels.geglu vs their eager forms under autograd (pe_av.ops.gelu)."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from kernel_checks import DEVICE, DTYPES, STRIDED, compare, strided

from pe_av import BackendFallbackWarning
from pe_av.ops import gated_activation, linear_gelu
from pe_av.ops.gelu import gated_activation_eager, linear_gelu_eager
from pe_av_kernels import bias_gelu, geglu, problem

pytestmark = pytest.mark.kernels
GELUS = ("gelu", "gelu_pytorch_tanh")


def randn(*shape, dtype=torch.float32, scale=2.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g)).to(DEVICE, dtype).requires_grad_()


def bias_gelu_eager(x, bias):
    return F.gelu(x + bias)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 37), (3, 1100), (1, 129)])
def test_bias_gelu_matches_eager(shape, dtype):
    given = dict(x=randn(*shape, dtype=dtype), bias=randn(shape[-1], dtype=dtype, scale=0.5, seed=2))
    compare(bias_gelu, bias_gelu_eager, given, dtype, reduced=("bias",))


@pytest.mark.parametrize("how", STRIDED)
def test_bias_gelu_any_strides(how):
    given = dict(x=strided(randn(3, 4, 37), how), bias=strided(randn(37, seed=2), "every_other"))
    compare(bias_gelu, bias_gelu_eager, given, torch.float32, reduced=("bias",))


def test_linear_gelu_op_triton_form_matches_eager():
    x, w, b = randn(2, 5, 16), randn(40, 16, scale=0.3, seed=2), randn(40, scale=0.3, seed=3)
    compare(lambda **a: linear_gelu("triton", **a), linear_gelu_eager, dict(x=x, weight=w, bias=b),
            torch.float32, reduced=("weight", "bias"))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", GELUS)
@pytest.mark.parametrize("shape", [(2, 3, 37), (2, 1030)])
def test_geglu_matches_eager(shape, activation, dtype):
    fused = randn(*shape[:-1], 2 * shape[-1], dtype=dtype)
    value, gate = fused.chunk(2, dim=-1)  # the halves of Wi's output: strided views, read without copies
    got = geglu(value, gate, activation)
    expected = gated_activation_eager(value, gate, activation)
    compare(lambda **a: got, lambda **a: expected, dict(fused=fused), dtype)


@pytest.mark.parametrize("how", STRIDED)
def test_geglu_any_strides(how):
    given = dict(value=strided(randn(3, 4, 37), how), gate=strided(randn(3, 4, 37, seed=2), how), activation="gelu")
    compare(geglu, gated_activation_eager, given, torch.float32)


def test_gated_activation_op_routes_gelus_to_the_kernel_and_others_to_eager():
    value, gate = randn(3, 10), randn(3, 10, seed=2)
    for activation in (*GELUS, "silu", "relu"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BackendFallbackWarning)  # silu, relu: said once, tested in test_ops
            got = gated_activation("triton", value, gate, activation)
        torch.testing.assert_close(got, gated_activation_eager(value, gate, activation), atol=1e-5, rtol=0)
    assert problem("geglu", value, gate, "gelu") is None
    assert "no GeGLU kernel" in problem("geglu", value, gate, "silu")


def test_bad_inputs_and_problems():
    x = torch.randn(2, 8, device=DEVICE)
    with pytest.raises(ValueError, match="bias must have shape"):
        bias_gelu(x, torch.zeros(9, device=DEVICE))
    with pytest.raises(ValueError, match="dtype"):
        bias_gelu(x, torch.zeros(8, device=DEVICE, dtype=torch.float16))
    with pytest.raises(ValueError, match="gate shape"):
        geglu(x, torch.randn(2, 9, device=DEVICE))
    with pytest.raises(ValueError, match="activation"):
        geglu(x, x, "silu")
    with pytest.raises(TypeError, match="tensors"):
        geglu(x, None)
    assert geglu(x[:0], x[:0]).shape == (0, 8)
    assert "no bias" in problem("bias_gelu", x, torch.ones(8, 8), None)
    assert "differ in dtype" in problem("bias_gelu", x, x.half())
    assert "float64" in problem("geglu", x.double(), x.double())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="full-size runs need a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_full_size_cuda(dtype):
    given = dict(x=randn(16, 577, 4096, dtype=dtype), bias=randn(4096, dtype=dtype, seed=2))
    compare(bias_gelu, bias_gelu_eager, given, dtype, reduced=("bias",))
    value, gate = randn(64, 512, 2624, dtype=dtype), randn(64, 512, 2624, dtype=dtype, seed=2)
    compare(geglu, gated_activation_eager, dict(value=value, gate=gate, activation="gelu"), dtype)
