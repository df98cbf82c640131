"""Op-level tests of pe_av/ops: each op's forms agree, and under attn_impl="triton" an op whose kernel
cannot run warns once per reason and computes exactly what its eager form computes.

On CPU the kernels run under triton's interpreter (conftest sets TRITON_INTERPRET=1).
"""

import warnings

import pytest
import torch

import pe_av_kernels
from pe_av import BackendFallbackWarning, dispatch
from pe_av.models.pe_transformer import PeAttention, SwiGLUMLP
from pe_av.ops import RMSNorm, rope_cos_sin

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def _fresh_warnings():
    dispatch.reset_warnings()
    yield
    dispatch.reset_warnings()


def test_rms_norm_module_fused_residual():
    norm = RMSNorm(37, eps=1e-5).to(DEVICE)
    with torch.no_grad():
        norm.weight.add_(0.1 * torch.randn(37, device=DEVICE))
    x, r = torch.randn(2, 5, 37, device=DEVICE), torch.randn(2, 5, 37, device=DEVICE)
    outputs = {}
    for backend in ("eager", "sdpa", "triton"):
        norm.set_backend(backend)
        outputs[backend] = norm(x, residual=r)
    for backend in ("sdpa", "triton"):
        for got, expected in zip(outputs[backend], outputs["eager"]):
            assert (got - expected).abs().max().item() <= 1e-5


# --------------------------------------------------------------------------------------------------
# fallbacks: warn once per reason, then compute exactly what eager computes


def small_ops(dtype=torch.float32, head_dim=12, device=DEVICE):
    torch.manual_seed(0)
    attention = PeAttention(hidden_size=24, num_heads=4, num_kv_heads=2, head_dim=head_dim, bias=True, eps=1e-5)
    ops = [RMSNorm(24, eps=1e-5), attention, SwiGLUMLP(24, 37)]
    ops = [op.to(device, dtype) for op in ops]
    x = torch.randn(2, 5, 24, device=device, dtype=dtype)
    cos, sin = rope_cos_sin(5, head_dim, 20000.0, x.device, dtype)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2], device=device)
    calls = [lambda: ops[0](x), lambda: ops[1](x, cos, sin, mask), lambda: ops[2](x)]
    return ops, calls


def run_all(ops, calls, backend):
    for op in ops:
        op.set_backend(backend)
    with torch.no_grad():
        return [call() for call in calls]


def assert_falls_back(ops, calls, match: str, expected_warnings: int = 3):
    """Triton run equals the eager run bit for bit; one warning per op, none on a second run."""
    expected = run_all(ops, calls, "eager")
    with pytest.warns(BackendFallbackWarning, match=match) as record:
        got = run_all(ops, calls, "triton")
    assert len([w for w in record if issubclass(w.category, BackendFallbackWarning)]) == expected_warnings
    for g, e in zip(got, expected):
        assert torch.equal(g, e)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)
        run_all(ops, calls, "triton")


def test_float64_falls_back():
    assert_falls_back(*small_ops(dtype=torch.float64), match="dtype torch.float64 is not supported")


def test_unsupported_head_dim_falls_back():
    ops, calls = small_ops(head_dim=260)
    assert_falls_back(ops[1:2], calls[1:2], match="head_dim 260 is not supported", expected_warnings=1)


def test_triton_missing_falls_back(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    assert_falls_back(*small_ops(), match="cannot be imported")
    assert not dispatch.triton_backend_implemented()
    assert dispatch.default_backend("cuda") == "sdpa"
    # asking for triton still works: every op falls back (and said so above)
    assert dispatch.resolve_backend("triton") == "triton"


def test_cpu_without_interpreter_falls_back(monkeypatch):
    monkeypatch.setattr(pe_av_kernels._common, "INTERPRET", False)
    assert_falls_back(*small_ops(device="cpu"), match="TRITON_INTERPRET=1")


# --------------------------------------------------------------------------------------------------
# every op's forms agree (eager is the reference)


def test_rope_interleaved_matches_the_pairwise_formula():
    from pe_av.ops import apply_rope_interleaved

    x = torch.randn(2, 3, 7, 12, dtype=torch.float64)
    cos, sin = rope_cos_sin(7, 12, 20000.0, x.device, x.dtype)
    first, second = x[..., 0::2], x[..., 1::2]
    expected = torch.stack((first * cos - second * sin, first * sin + second * cos), dim=-1).flatten(-2)
    assert torch.allclose(apply_rope_interleaved(x, cos, sin), expected, atol=1e-12)


def test_rope_half_split_rounding_forms_agree():
    from pe_av.ops import apply_rope_half_split

    x = torch.randn(2, 3, 7, 12)
    cos, sin = rope_cos_sin(7, 12, 10000.0, x.device, x.dtype)
    first, second = x.chunk(2, dim=-1)
    expected = torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)
    for fp32 in (True, False):
        assert (apply_rope_half_split(x, cos, sin, fp32=fp32) - expected).abs().max().item() <= 1e-6


def test_rope_2d_tables_rotate_by_grid_coordinates():
    from pe_av.ops import rope_2d_cos_sin

    cos, sin = rope_2d_cos_sin(
        (2, 3), 8, temperature=100.0, offset=1.0, indexing="xy", ref_feat_shape=None,
        device=torch.device("cpu"), dtype=torch.float32,
    )
    assert cos.shape == sin.shape == (6, 4)
    angles = torch.atan2(sin, cos)
    # patch (row 1, col 2) is index 5; 'xy': the first two pairs use the column (2 + offset), bands 1, 0.1
    assert torch.allclose(angles[5, :2], torch.tensor([3.0, 0.3]), atol=1e-6)
    assert torch.allclose(angles[5, 2:], torch.tensor([2.0, 0.2]), atol=1e-6)


@pytest.mark.parametrize("kv_heads, mask_shape", [(4, None), (2, "keys"), (1, "pairs")])
def test_attention_forms_agree(kv_heads, mask_shape):
    from pe_av.ops import attention

    q = torch.randn(2, 4, 6, 8)
    k, v = torch.randn(2, kv_heads, 6, 8), torch.randn(2, kv_heads, 6, 8)
    mask = None
    if mask_shape == "keys":
        mask = (torch.arange(6)[None, :] < torch.tensor([6, 2])[:, None])[:, None, None, :]
    elif mask_shape == "pairs":
        positions = torch.arange(6)
        mask = ((positions[:, None] - positions[None, :]).abs() <= 1)[None, None]
    eager = attention("eager", q, k, v, mask, 8**-0.5)
    assert (attention("sdpa", q, k, v, mask, 8**-0.5) - eager).abs().max().item() <= 1e-5
    if mask_shape == "keys":  # sample 1 sees keys 0..1 only: its output mixes those values alone
        probs = torch.softmax(q[1:] @ k[1:, :, :2].repeat_interleave(4 // kv_heads, 1).transpose(-1, -2) * 8**-0.5, -1)
        expected = probs @ v[1:, :, :2].repeat_interleave(4 // kv_heads, 1)
        assert (eager[1:] - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("half_split", [False, True])
def test_rope_attention_forms_agree(half_split):
    from pe_av.ops import rope_attention

    q, k, v = torch.randn(2, 5, 4, 8), torch.randn(2, 5, 2, 8), torch.randn(2, 5, 2, 8)
    weights = (1 + 0.2 * torch.randn(8), 1 + 0.2 * torch.randn(8))
    cos, sin = rope_cos_sin(5, 8, 20000.0, q.device, q.dtype)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    forms = {
        backend: rope_attention(backend, q, k, v, *weights, cos, sin, mask, eps=1e-5, half_split=half_split)
        for backend in ("eager", "sdpa", "triton")
    }
    assert forms["eager"].shape == (2, 5, 4, 8)
    for backend in ("sdpa", "triton"):
        assert (forms[backend] - forms["eager"]).abs().max().item() <= 1e-4, backend


def test_layer_norm_module_equals_torch_layer_norm():
    from pe_av.ops import LayerNorm

    x = torch.randn(3, 5, 16)
    for bias in (True, False):
        ours, theirs = LayerNorm(16, eps=1e-6, bias=bias), torch.nn.LayerNorm(16, eps=1e-6, bias=bias)
        with torch.no_grad():
            ours.weight.normal_()
            theirs.weight.copy_(ours.weight)
        assert set(ours.state_dict()) == set(theirs.state_dict())
        for backend in dispatch.BACKENDS:
            ours.set_backend(backend)
            if backend == "triton":  # the kernel (tests/test_kernels_layer_norm.py): fp32 rounding only
                torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=0)
            else:
                assert torch.equal(ours(x), theirs(x)), (backend, bias)


def test_gated_activations_cover_modernbert_names():
    from pe_av.ops import ACTIVATIONS, gated_activation

    value, gate = torch.randn(4, 6), torch.randn(4, 6)
    assert {"gelu", "gelu_pytorch_tanh", "silu", "relu"} <= set(ACTIVATIONS)
    assert torch.equal(gated_activation("eager", value, gate, "relu"), value.clamp(min=0) * gate)
    assert torch.allclose(gated_activation("sdpa", value, gate, "silu"), value * torch.sigmoid(value) * gate)
    gelu_tanh = 0.5 * value * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (value + 0.044715 * value**3)))
    assert torch.allclose(gated_activation("triton", value, gate, "gelu_pytorch_tanh"), gelu_tanh * gate, atol=1e-6)


def test_snake_module_matches_its_formula():
    from pe_av.ops import Snake1d

    snake = Snake1d(3)
    with torch.no_grad():
        snake.alpha.copy_(torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1))
    x = torch.randn(2, 3, 7)
    alpha = snake.alpha
    expected = x + torch.sin(alpha * x) ** 2 / (alpha + 1e-9)
    for backend in dispatch.BACKENDS:
        snake.set_backend(backend)
        assert torch.allclose(snake(x), expected, atol=1e-6), backend


def test_kernels_say_why_they_cannot_run():
    x64 = torch.randn(2, 8, dtype=torch.float64, device=DEVICE)
    assert "float64" in pe_av_kernels.problem("rms_norm", x64, torch.ones(8, dtype=torch.float64, device=DEVICE))
    assert "float64" in pe_av_kernels.problem("swiglu", x64, x64)
    q = torch.randn(1, 2, 2, 258, device=DEVICE)
    table = torch.ones(2, 129, device=DEVICE)
    weight = torch.ones(258, device=DEVICE)
    assert "head_dim 258" in pe_av_kernels.problem("rope_attention", q, q, q, weight, weight, table, table)
    assert pe_av_kernels.problem("swiglu", x64.float(), x64.float()) is None
    with pytest.raises(ValueError, match="unknown kernel 'gemm'"):
        pe_av_kernels.problem("gemm", x64)


def test_unknown_backend_is_a_clear_error():
    from pe_av.ops import swiglu

    with pytest.raises(ValueError, match="backend must be one of"):
        swiglu("cuda", torch.ones(2), torch.ones(2))
