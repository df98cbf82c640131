"""pe_av_kernels.layer_norm vs ``F.layer_norm`` under autograd (pe_av.ops.layer_norm's eager form)."""

import pytest
import torch
from kernel_checks import DEVICE, DTYPES, STRIDED, compare, strided

from pe_av.ops.layer_norm import layer_norm as layer_norm_eager
from pe_av_kernels import layer_norm, problem
from pe_av_kernels.layer_norm import MAX_COLS

pytestmark = pytest.mark.kernels
REDUCED = ("weight", "bias")


def inputs(shape, dtype, residual=False, affine=(True, True), eps=1e-5):
    g = torch.Generator().manual_seed(1)
    n = shape[-1]

    def make(*size, scale=1.0, offset=0.0):
        return (offset + scale * torch.randn(*size, generator=g)).to(DEVICE, dtype).requires_grad_()

    return dict(
        x=make(*shape, scale=2.0, offset=0.5),
        weight=make(n, scale=0.3, offset=1.0) if affine[0] else None,
        bias=make(n, scale=0.3) if affine[1] else None,
        eps=eps,
        residual=make(*shape) if residual else None,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 37), (1, 1025), (5, 129)])
def test_matches_eager(shape, residual, dtype):
    compare(layer_norm, layer_norm_eager, inputs(shape, dtype, residual), dtype, REDUCED)


@pytest.mark.parametrize("affine", [(True, False), (False, False), (False, True)])
def test_without_weight_or_bias(affine):
    compare(layer_norm, layer_norm_eager, inputs((3, 4, 19), torch.float32, True, affine), torch.float32, REDUCED)


@pytest.mark.parametrize("how", STRIDED)
@pytest.mark.parametrize("which", ["x", "residual", "weight"])
def test_any_strides(which, how):
    given = inputs((3, 4, 37), torch.float32, residual=True)
    given[which] = strided(given[which], how if given[which].dim() > 1 else "every_other")
    assert not given[which].is_contiguous()
    compare(layer_norm, layer_norm_eager, given, torch.float32, REDUCED)


def test_only_the_sum_is_used():
    """The backward when the normalized output gets no gradient (only the residual stream is used)."""
    given = inputs((4, 37), torch.float32, residual=True)
    _, total = layer_norm(**given)
    (dx,) = torch.autograd.grad(total.sum(), given["x"])
    assert torch.equal(dx, torch.ones_like(dx))


def test_bad_inputs_and_problems():
    x = torch.randn(2, 8, device=DEVICE)
    w = torch.ones(8, device=DEVICE)
    with pytest.raises(ValueError, match="weight must have shape"):
        layer_norm(x, torch.ones(9, device=DEVICE), None)
    with pytest.raises(ValueError, match="residual shape"):
        layer_norm(x, w, None, 1e-5, torch.randn(2, 9, device=DEVICE))
    with pytest.raises(ValueError, match="dtype"):
        layer_norm(x, w.half(), None)
    with pytest.raises(ValueError, match="eps"):
        layer_norm(x, w, None, -1.0)
    with pytest.raises(TypeError, match="bias"):
        layer_norm(x, w, "bias")
    assert problem("layer_norm", x, w, None, 1e-5) is None
    assert "differ in dtype" in problem("layer_norm", x, w.half(), None, 1e-5)
    wide = torch.randn(1, MAX_COLS + 1, device=DEVICE)
    assert "wider" in problem("layer_norm", wide, None, None, 1e-5)
    assert "float64" in problem("layer_norm", x.double(), None, None, 1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="full-size runs need a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("width", [1024, 1792, 4096])
def test_full_size_cuda(dtype, width):
    compare(layer_norm, layer_norm_eager, inputs((64, 1025, width), dtype, True), dtype, REDUCED)
