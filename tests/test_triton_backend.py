"""attn_impl="triton": model ops routed to pe_av_kernels, parity with eager, and eager fallbacks.

On CPU the kernels run under triton's interpreter (conftest sets TRITON_INTERPRET=1).
"""

import warnings

import pytest
import torch

import pe_av_kernels

from pe_av import BackendFallbackWarning, PeAudioEncoder, dispatch
from pe_av.config import PeAudioEncoderConfig
from pe_av.models.pe_transformer import PeAttention, SwiGLUMLP
from pe_av.ops import RMSNorm, rope_cos_sin

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ATOL = 1e-4
DAC = dict(encoder_hidden_size=4, downsampling_ratios=[2, 3], codebook_dim=8)  # hop 6
CONFIGS = {  # tiny encoders, as in test_parity_audio_encoder.py
    "gqa6-2-d12-mlp37": dict(
        hidden_size=40, intermediate_size=37, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, head_dim=12, attention_bias=True,
    ),
    "mqa3-1-d16": dict(hidden_size=24, intermediate_size=50, num_hidden_layers=2, num_attention_heads=3,
                       num_key_value_heads=1, head_dim=16),
}


@pytest.fixture(autouse=True)
def _fresh_warnings():
    dispatch.reset_warnings()
    yield
    dispatch.reset_warnings()


@torch.no_grad()
def tiny_encoder(name: str) -> PeAudioEncoder:
    torch.manual_seed(0)
    model = PeAudioEncoder(PeAudioEncoderConfig(**CONFIGS[name], dac_config=DAC)).to(DEVICE).eval()
    for param in model.parameters():  # move norm weights and biases off their constant init
        if param.dim() == 1:
            param.add_(0.1 * torch.randn_like(param))
    return model


def padded_audio(hop: int = 6, lengths=(9, 4), total: int = 9):
    x = torch.randn(len(lengths), 1, hop * total, device=DEVICE)
    mask = torch.zeros(len(lengths), hop * total, dtype=torch.long, device=DEVICE)
    for i, n in enumerate(lengths):
        mask[i, : hop * n] = 1
    return x, mask


def test_backend_resolution():
    assert dispatch.triton_backend_implemented()
    assert dispatch.resolve_backend("triton") == "triton"
    assert dispatch.default_backend("cuda") == "triton"
    assert dispatch.default_backend("cpu") == "sdpa"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_audio_encoder_triton_matches_eager(name):
    model = tiny_encoder(name)
    x, mask = padded_audio()
    with torch.no_grad():
        expected = model.set_attn_impl("eager")(x, padding_mask=mask)
        with warnings.catch_warnings():
            warnings.simplefilter("error", BackendFallbackWarning)  # every op must run its kernel
            got = model.set_attn_impl("triton")(x, padding_mask=mask)
    assert model.attn_impl == "triton"
    assert (got.last_hidden_state - expected.last_hidden_state).abs().max().item() <= ATOL
    assert (got.pooler_output - expected.pooler_output).abs().max().item() <= ATOL
    assert torch.equal(got.output_mask, expected.output_mask)


def test_audio_encoder_gradients_match_eager():
    model = tiny_encoder("gqa6-2-d12-mlp37")
    x, mask = padded_audio()

    def grads(attn_impl):
        model.zero_grad(set_to_none=True)
        out = model.set_attn_impl(attn_impl)(x, padding_mask=mask)
        (out.last_hidden_state.square().mean() + out.pooler_output.sum()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    expected, got = grads("eager"), grads("triton")
    assert expected.keys() == got.keys() and any("q_norm" in n for n in got)
    for name in expected:
        scale = max(1.0, expected[name].abs().max().item())
        assert (got[name] - expected[name]).abs().max().item() <= ATOL * scale, name


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
