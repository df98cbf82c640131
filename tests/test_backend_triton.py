"""attn_impl="triton" on whole models: ops routed to pe_av_kernels match eager (values and gradients),
and where kernels cannot run each op falls back to eager PyTorch, warns once per reason, and the model
gives the eager numbers.

On CPU the kernels run under triton's interpreter (conftest sets TRITON_INTERPRET=1). Every reason triton
can be unavailable is exercised on a whole small PeAudioEncoder and PeAudioVideoModel (all three
modalities, so the audio, video, fusion and text paths all run):

- triton / pe_av_kernels cannot be imported;
- CPU tensors without triton's interpreter;
- a dtype the kernels do not support (float64);
- a head_dim the attention kernel does not support (only attention falls back; norms and SwiGLU
  still run their kernels, so that case is compared with a tolerance).

The reference is the model with the kernel-backed ops (RMSNorm, PeAttention, SwiGLU, Snake, LayerNorm,
the ViT's and ModernBERT's MLPs, and the ModernBERT / ViT / attention-pool attention) set to eager and
everything else as under sdpa: the non-eager forms of other ops (fused Linear, streamed DAC) run the same
under "triton" and "sdpa".
Each op's own fallback is tested alone in tests/test_ops.py.
"""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
from tiny_configs import AUDIO, FRAME, FUSION, HOP, TEXT, VOCAB

import pe_av_kernels
from pe_av import (
    BackendFallbackWarning,
    PeAudioEncoder,
    PeAudioEncoderConfig,
    PeAudioVideoModel,
    dispatch,
)
from pe_av.config import PeAudioVideoConfig
from pe_av.models.pe_transformer import PeAttention, SwiGLUMLP
from pe_av.models.text import ModernBertAttention, ModernBertMLP
from pe_av.models.vision import AttentionPool, VisionAttention, VisionMlp
from pe_av.ops import LayerNorm, RMSNorm, Snake1d

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PE_OPS = ("RMSNorm", "PeAttention", "SwiGLUMLP")
#: the modules whose ops have kernels (warnings name them): the PE transformer's, the DAC's Snake, the
#: ViT's and ModernBERT's LayerNorm and MLPs (bias + GELU, GeGLU), and their attention (and the pool's)
KERNEL_MODULES = (RMSNorm, PeAttention, SwiGLUMLP, Snake1d, LayerNorm, VisionMlp, ModernBertMLP,
                  ModernBertAttention, VisionAttention, AttentionPool)


@pytest.fixture(autouse=True)
def _fresh_warnings():
    dispatch.reset_warnings()
    yield
    dispatch.reset_warnings()


# --------------------------------------------------------------------------------------------------
# kernels on: parity with eager


ATOL = 1e-4
ROUTING_DAC = dict(encoder_hidden_size=4, downsampling_ratios=[2, 3], codebook_dim=8)  # hop 6
CONFIGS = {  # tiny encoders, as in test_parity_audio_encoder.py
    "gqa6-2-d12-mlp37": dict(
        hidden_size=40, intermediate_size=37, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, head_dim=12, attention_bias=True,
    ),
    "mqa3-1-d16": dict(hidden_size=24, intermediate_size=50, num_hidden_layers=2, num_attention_heads=3,
                       num_key_value_heads=1, head_dim=16),
}


@torch.no_grad()
def tiny_encoder(name: str) -> PeAudioEncoder:
    torch.manual_seed(0)
    model = PeAudioEncoder(PeAudioEncoderConfig(**CONFIGS[name], dac_config=ROUTING_DAC)).to(DEVICE).eval()
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


def test_audio_video_model_triton_matches_eager():
    """Every tower with its kernels (ViT LayerNorm + residual, bias + GELU, 2-D RoPE pre-pass with the class
    token unrotated, attention and attention pool; ModernBERT LayerNorm, GeGLU, window and padding through
    the flash kernel's mask path; DAC Snake; PE transformers), forward and gradients, against the eager
    reference, with no fallback warning from any kernel-backed module."""
    model = audio_video_model()
    inputs = all_inputs()
    with torch.no_grad():
        for param in model.parameters():  # move norm weights and biases off their constant init
            if param.dim() == 1:
                param.add_(0.1 * torch.randn_like(param))

    def forward_backward(reference: bool):
        model.zero_grad(set_to_none=True)
        (eager_reference(model) if reference else model.set_attn_impl("triton"))
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            out = outputs(model(**inputs))
        loss = sum(v.float().square().mean() for v in out.values() if v.is_floating_point())
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out, grads, fallback_messages(record)

    expected, expected_grads, _ = forward_backward(reference=True)
    got, got_grads, messages = forward_backward(reference=False)
    assert not [m for m in messages if m.split(":")[0] in kernel_ops(model)], messages  # every kernel ran
    for name in expected:
        assert (got[name] - expected[name]).abs().max().item() <= ATOL, name
    assert expected_grads.keys() == got_grads.keys()
    assert any("mlp.fc1.bias" in n for n in got_grads) and any("mlp_norm" in n for n in got_grads)
    # q/k/v projections through the flash backward, the ViT's pre-pass backward, the pool, ModernBERT
    assert any("attn.qkv" in n for n in got_grads) and any("attn_pool.kv" in n for n in got_grads)
    assert any("Wqkv" in n for n in got_grads)
    for name in expected_grads:
        scale = max(1.0, expected_grads[name].abs().max().item())
        assert (got_grads[name] - expected_grads[name]).abs().max().item() <= ATOL * scale, name


# --------------------------------------------------------------------------------------------------
# kernels unavailable: fallbacks on whole models


def audio_encoder(device=DEVICE, dtype=torch.float32, **overrides):
    torch.manual_seed(0)
    model = PeAudioEncoder(PeAudioEncoderConfig(**{**AUDIO, **overrides})).to(device, dtype).eval()
    with torch.no_grad():
        for param in model.parameters():  # move norm weights and biases off their constant init
            if param.dim() == 1:
                param.add_(0.1 * torch.randn_like(param))
    return model


def audio_video_model(device=DEVICE, dtype=torch.float32, fusion_head_dim=None):
    torch.manual_seed(0)
    fusion = dict(FUSION) if fusion_head_dim is None else {**FUSION, "head_dim": fusion_head_dim}
    model = PeAudioVideoModel(PeAudioVideoConfig(text_config=TEXT, audio_video_config=fusion))
    return model.to(device, dtype).eval()


def audio_inputs(device=DEVICE, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(2, 1, 5 * HOP, generator=g).to(device, dtype)
    mask = torch.ones(2, 5 * HOP, dtype=torch.long, device=device)
    mask[1, 3 * HOP :] = 0
    return dict(input_values=audio, padding_mask=mask)


def all_inputs(device=DEVICE, dtype=torch.float32):
    g = torch.Generator().manual_seed(2)
    video_mask = torch.tensor([[1, 1, 1], [1, 1, 0]], device=device)
    text_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2], device=device)
    return dict(
        **audio_inputs(device, dtype),
        pixel_values_videos=torch.randn(2, 3, 3, FRAME, FRAME, generator=g).to(device, dtype),
        padding_mask_videos=video_mask,
        input_ids=torch.randint(1, VOCAB, (2, 6), generator=g).to(device),
        attention_mask=text_mask,
    )


def eager_reference(model):
    """The kernel-backed ops eager, everything else as under "sdpa" (see the module docstring)."""
    model.set_attn_impl("sdpa")
    for module in model.modules():
        if isinstance(module, KERNEL_MODULES):
            module.set_backend("eager")
    return model


def outputs(out):
    """Every tensor of an output, by name (nested outputs flattened)."""
    found = {}
    for name in out.keys():
        value = getattr(out, name)
        if isinstance(value, torch.Tensor):
            found[name] = value
        elif hasattr(value, "keys"):
            found.update({f"{name}.{k}": v for k, v in outputs(value).items()})
    return found


def run(model, inputs):
    with torch.no_grad():
        return outputs(model(**inputs))


def fallback_messages(record):
    return [str(w.message) for w in record if issubclass(w.category, BackendFallbackWarning)]


def kernel_ops(model) -> tuple[str, ...]:
    """Names (as warnings give them) of the model's modules whose ops have kernels."""
    return tuple(sorted({type(m).__name__ for m in model.modules() if isinstance(m, KERNEL_MODULES)}))


def check_fallback(model, inputs, reason: str, fallen=None, atol=0.0):
    """Triton run vs the eager reference; one warning per op that fell back (naming ``reason``), one per op
    without a kernel, and none on the second run."""
    fallen = kernel_ops(model) if fallen is None else fallen
    expected = run(eager_reference(model), inputs)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = run(model.set_attn_impl("triton"), inputs)
    messages = fallback_messages(record)
    for op in fallen:
        matching = [m for m in messages if m.startswith(f"{op}:") and reason in m]
        assert len(matching) == 1, (op, messages)
    others = [m for m in messages if not any(m.startswith(f"{op}:") for op in fallen)]
    assert not others, others
    assert got.keys() == expected.keys()
    for name in expected:
        if atol == 0.0:
            assert torch.equal(got[name], expected[name]), name
        else:
            assert (got[name] - expected[name]).abs().max().item() <= atol, name
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)
        run(model, inputs)  # warned once: silent now


MODELS = {
    "PeAudioEncoder": (audio_encoder, audio_inputs),
    "PeAudioVideoModel": (audio_video_model, all_inputs),
}


@pytest.fixture
def no_triton(monkeypatch):
    """Make ``import triton`` / ``import pe_av_kernels`` fail, as on a machine without triton."""
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "pe_av_kernels", None)
    dispatch._import_kernels.cache_clear()
    yield
    dispatch._import_kernels.cache_clear()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_triton_not_importable(name, no_triton):
    assert not dispatch.triton_available()
    make_model, make_inputs = MODELS[name]
    check_fallback(make_model(), make_inputs(), "cannot be imported")
    assert dispatch.default_backend("cuda") == "sdpa"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cpu_tensors_without_interpreter(name, monkeypatch):
    monkeypatch.setattr(pe_av_kernels._common, "INTERPRET", False)
    make_model, make_inputs = MODELS[name]
    check_fallback(make_model("cpu"), make_inputs("cpu"), "TRITON_INTERPRET=1")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unsupported_dtype(name):
    make_model, make_inputs = MODELS[name]
    model, inputs = make_model(dtype=torch.float64), make_inputs(dtype=torch.float64)
    check_fallback(model, inputs, "dtype torch.float64 is not supported")


def test_unsupported_head_dim_audio_encoder():
    model = audio_encoder(head_dim=258)
    check_fallback(model, audio_inputs(), "head_dim 258 is not supported", ("PeAttention",), atol=1e-4)


def test_unsupported_head_dim_audio_video_model():
    """Only the fusion encoder's head_dim is unsupported: its attention falls back, the audio and video
    encoders' attention still runs the kernel."""
    model = audio_video_model(fusion_head_dim=258)
    check_fallback(model, all_inputs(), "head_dim 258 is not supported", ("PeAttention",), atol=1e-4)
