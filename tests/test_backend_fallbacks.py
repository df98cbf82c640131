"""attn_impl="triton" on whole models where kernels cannot run: each op falls back to eager PyTorch,
warns once per reason, and the model gives the eager numbers.

tests/test_triton_backend.py checks each op's fallback alone; here every reason triton can be
unavailable is exercised on a whole small PeAudioEncoder and PeAudioVideoModel (all three modalities,
so the audio, video, fusion and text paths all run):

- triton / pe_av_kernels cannot be imported;
- CPU tensors without triton's interpreter;
- a dtype the kernels do not support (float64);
- a head_dim the attention kernel does not support (only attention falls back; norms and SwiGLU
  still run their kernels, so that case is compared with a tolerance).

The reference is the model with the three kernel-backed ops (RMSNorm, PeAttention, SwiGLU) set to eager
and everything else as under sdpa: ops without a kernel (ModernBERT / ViT attention, which say so once)
and the non-eager forms of other ops (fused Linear, streamed DAC) run the same under "triton" and "sdpa".
"""

from __future__ import annotations

import sys
import warnings

import pytest
import torch

import pe_av_kernels

from pe_av import BackendFallbackWarning, PeAudioEncoder, PeAudioEncoderConfig, PeAudioVideoModel, dispatch
from pe_av.config import PeAudioVideoConfig
from pe_av.models.pe_transformer import PeAttention, SwiGLUMLP
from pe_av.ops import RMSNorm
from pe_av.models.text import ModernBertAttention
from tiny_configs import AUDIO, FRAME, FUSION, HOP, TEXT, VOCAB

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PE_OPS = ("RMSNorm", "PeAttention", "SwiGLUMLP")
NO_KERNEL_OPS = ("ModernBertAttention", "VisionAttention", "AttentionPool")


@pytest.fixture(autouse=True)
def _fresh_warnings():
    dispatch.reset_warnings()
    yield
    dispatch.reset_warnings()


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
        if isinstance(module, (RMSNorm, PeAttention, SwiGLUMLP)):
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


def check_fallback(model, inputs, reason: str, fallen=PE_OPS, atol=0.0):
    """Triton run vs the eager reference; one warning per op that fell back (naming ``reason``), one per op
    without a kernel, and none on the second run."""
    expected = run(eager_reference(model), inputs)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = run(model.set_attn_impl("triton"), inputs)
    messages = fallback_messages(record)
    for op in fallen:
        matching = [m for m in messages if m.startswith(f"{op}:") and reason in m]
        assert len(matching) == 1, (op, messages)
    has_text = any(isinstance(m, ModernBertAttention) for m in model.modules())
    others = [m for m in messages if not any(m.startswith(f"{op}:") for op in fallen)]
    assert len(others) == (len(NO_KERNEL_OPS) if has_text else 0), others
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
