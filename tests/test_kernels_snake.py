"""pe_av_kernels.snake vs the eager Snake of pe_av.ops.snake under autograd, in both memory layouts.

Half precision is compared with the eager form computed in fp32 and rounded at the end (``upcast``): the
kernel works in fp32, while the eager half-precision form rounds ``alpha·x`` first, which moves
``sin(alpha·x)`` by up to 0.06 at ``|alpha·x| ~ 10`` in bf16, far beyond any tolerance."""

import pytest
import torch
from kernel_checks import DEVICE, DTYPES, compare, strided

from pe_av.ops import Snake1d
from pe_av.ops.snake import snake as snake_eager
from pe_av_kernels import problem, snake
from pe_av_kernels.snake import layout_of

pytestmark = pytest.mark.kernels


def make(batch, channels, steps, dtype=torch.float32, channels_last=False, seed=1):
    """``x`` ``(B, C, T)`` (or channels-last ``(B, C, 1, T)``) and ``alpha`` away from 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    x = (2.0 * torch.randn(batch, channels, 1, steps, generator=g)).to(DEVICE, dtype)
    alpha = (0.3 + 2.0 * torch.rand(1, channels, 1, 1, generator=g)).to(DEVICE, dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x, alpha = x.squeeze(2), alpha.squeeze(3)
    return dict(x=x.requires_grad_(), alpha=alpha.requires_grad_())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("size", [(2, 5, 1031), (1, 70, 37), (3, 64, 130)])
def test_matches_eager(size, channels_last, dtype):
    given = make(*size, dtype=dtype, channels_last=channels_last)
    assert layout_of(given["x"].squeeze(2) if channels_last else given["x"]) == (
        "channels_last" if channels_last else "channels_first"
    )
    compare(snake, snake_eager, given, dtype, reduced=("alpha",), upcast=True)
    y = snake(**given)
    # the output keeps the input's layout
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("how", ["every_other", "column_major", "slice"])
def test_any_strides(how):
    given = make(2, 6, 41)
    given["x"] = strided(given["x"], how)
    assert not given["x"].is_contiguous()
    compare(snake, snake_eager, given, torch.float32, reduced=("alpha",))


def test_alpha_shapes_and_the_module():
    given = make(2, 6, 41)
    flat = dict(x=given["x"], alpha=given["alpha"].detach().reshape(6).requires_grad_())
    compare(snake, lambda x, alpha: snake_eager(x, alpha.view(1, 6, 1)), flat, torch.float32, reduced=("alpha",))
    module = Snake1d(6).to(DEVICE)
    with torch.no_grad():
        module.alpha.copy_(given["alpha"])
    x = given["x"].detach()
    module.set_backend("triton")
    got = module(x)
    module.set_backend("eager")
    torch.testing.assert_close(got, module(x), atol=1e-5, rtol=0)


def test_bad_inputs_and_problems():
    x = torch.randn(2, 4, 9, device=DEVICE)
    with pytest.raises(ValueError, match="one value per channel"):
        snake(x, torch.ones(1, 5, 1, device=DEVICE))
    with pytest.raises(ValueError, match="one value per channel"):
        snake(x, torch.ones(2, 4, 1, device=DEVICE))
    with pytest.raises(ValueError, match=r"\(B, C, T\)"):
        snake(x[0], torch.ones(4, device=DEVICE))
    with pytest.raises(ValueError, match="dtype"):
        snake(x, torch.ones(4, device=DEVICE, dtype=torch.float16))
    assert problem("snake", x, torch.ones(1, 4, 1, device=DEVICE)) is None
    assert "one value per channel" in problem("snake", x, torch.ones(3, device=DEVICE))
    assert "float64" in problem("snake", x.double(), torch.ones(4, device=DEVICE, dtype=torch.float64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="full-size runs need a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True])
def test_full_size_cuda(dtype, channels_last):
    compare(snake, snake_eager, make(4, 64, 48000, dtype, channels_last), dtype, reduced=("alpha",), upcast=True)
