"""Property-based tests (hypothesis): random small configs and padded batches.

- Backends agree: eager, sdpa and triton (the interpreter on CPU) give the same PeAudioEncoder and
  PeAudioVideoModel outputs, and the same attention op output across shapes (fp32, <= 1e-4).
- Padding never changes a sample's embedding: a clip (audio, video, or audio+video) encoded alone
  equals the same clip inside a padded batch whose padding holds arbitrary finite values.

Examples are derandomized (the same ones on every run, no example database) and few, so the file runs
in well under a minute on a 2-core CPU.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pe_av import (
    PeAudioEncoder,
    PeAudioEncoderConfig,
    PeAudioVideoConfig,
    PeAudioVideoModel,
    PeVideoEncoder,
    PeVideoEncoderConfig,
)
from pe_av.models.dac import DacEncoder
from pe_av.models.pe_transformer import PeAttention
from pe_av.ops import rope_cos_sin
from tiny_configs import AUDIO, FRAME, TEXT, VIDEO, VIT

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # backend comparisons run the real kernels on CUDA
ATOL = 1e-4  # DESIGN.md: fp32 attention kernel vs eager
INVARIANCE_ATOL = 1e-5


def examples(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def _one_thread_full_fp32():
    """One CPU thread (tiny shapes), and no TF32 on CUDA: the comparisons are of fp32 numerics."""
    threads = torch.get_num_threads()
    matmul_tf32, cudnn_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul_tf32, cudnn_tf32


# the ops without a kernel (ModernBERT / ViT attention) say once that they run sdpa under "triton"
pytestmark = pytest.mark.filterwarnings("ignore::pe_av.dispatch.BackendFallbackWarning")


# --------------------------------------------------------------------------------------------------
# strategies


@st.composite
def transformer_dims(draw, max_layers: int = 2) -> dict:
    """Heads, kv heads (GQA/MQA/MHA), head_dim independent of the width, odd widths."""
    kv_heads = draw(st.integers(1, 3))
    return dict(
        num_key_value_heads=kv_heads,
        num_attention_heads=kv_heads * draw(st.integers(1, 3)),
        head_dim=draw(st.sampled_from([2, 4, 6, 8, 12, 16])),
        hidden_size=draw(st.integers(3, 40)),
        intermediate_size=draw(st.integers(1, 48)),
        num_hidden_layers=draw(st.integers(1, max_layers)),
        attention_bias=draw(st.booleans()),
    )


@st.composite
def dac_configs(draw) -> dict:
    return dict(
        encoder_hidden_size=draw(st.integers(1, 3)),
        downsampling_ratios=draw(st.lists(st.integers(2, 4), min_size=1, max_size=3)),
        codebook_dim=draw(st.integers(1, 6)),
    )


@st.composite
def audio_encoders(draw) -> PeAudioEncoder:
    config = PeAudioEncoderConfig(**draw(transformer_dims()), dac_config=draw(dac_configs()))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    model = PeAudioEncoder(config).eval()
    return sharpen(model)


@torch.no_grad()
def sharpen(model):
    """Weights that make mistakes show: norm weights and biases off their constant init, peaked attention
    and unit-gain DAC convolutions (at the reference's init attention is nearly uniform and each DAC conv
    shrinks its input ~20x, hiding a wrong rotation or padding that leaks into a clip)."""
    for name, param in model.named_parameters():
        if param.dim() == 1:
            param.add_(0.2 * torch.randn_like(param))
        elif name.endswith(("q_proj.weight", "k_proj.weight")):
            param.mul_(6.0)
    for dac in (m for m in model.modules() if isinstance(m, DacEncoder)):
        for conv in (m for m in dac.modules() if isinstance(m, torch.nn.Conv1d)):
            conv.weight.mul_(1.0 / (0.02 * conv.weight[0].numel() ** 0.5))  # init std 0.02 -> unit gain
    return model


@st.composite
def lengths(draw, max_len: int, max_batch: int = 3) -> list[int]:
    return draw(st.lists(st.integers(1, max_len), min_size=1, max_size=max_batch))


def padded_batch(items: list[torch.Tensor], total: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``items`` (each ``(n, ...)``) right-padded to ``total`` along dim 0 with large random values."""
    gen = torch.Generator().manual_seed(seed)
    batch = torch.randn(len(items), total, *items[0].shape[1:], generator=gen) * 30  # loud, so any leak shows
    mask = torch.zeros(len(items), total, dtype=torch.long)
    for i, item in enumerate(items):
        batch[i, : item.shape[0]] = item
        mask[i, : item.shape[0]] = 1
    return batch, mask


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def run_backends(model, inputs: dict, backends=("eager", "sdpa", "triton")):
    model = model.to(DEVICE)
    inputs = {k: v.to(DEVICE) for k, v in inputs.items()}
    outs = {}
    with torch.no_grad():
        for backend in backends:
            outs[backend] = model.set_attn_impl(backend)(**inputs)
    return outs


# --------------------------------------------------------------------------------------------------
# backends agree


@examples(10)
@given(model=audio_encoders(), data=st.data())
def test_audio_encoder_backends_agree(model, data):
    hop = model.config.dac_config.hop_length
    samples = data.draw(lengths(max_len=4 * hop), label="samples per clip")
    clips = [torch.randn(n, generator=torch.Generator().manual_seed(n)) for n in samples]
    audio, mask = padded_batch(clips, max(samples), seed=len(samples))
    outs = run_backends(model, dict(input_values=audio[:, None], padding_mask=mask))
    for backend in ("sdpa", "triton"):
        assert max_diff(outs[backend].last_hidden_state, outs["eager"].last_hidden_state) <= ATOL, backend
        assert max_diff(outs[backend].pooler_output, outs["eager"].pooler_output) <= ATOL, backend
        assert torch.equal(outs[backend].output_mask, outs["eager"].output_mask)


@st.composite
def attention_cases(draw):
    kv_heads = draw(st.integers(1, 3))
    heads = kv_heads * draw(st.integers(1, 3))
    head_dim = draw(st.integers(1, 20)) * 2  # 2 ... 40: several kernel tile widths
    hidden = draw(st.integers(1, 48))
    batch, seq = draw(st.integers(1, 3)), draw(st.integers(1, 24))
    valid = draw(st.lists(st.lists(st.booleans(), min_size=seq, max_size=seq), min_size=batch, max_size=batch))
    mask = torch.tensor(valid, dtype=torch.bool)
    mask[:, draw(st.integers(0, seq - 1))] = True  # every sample keeps at least one key
    use_mask = draw(st.booleans())
    torch.manual_seed(draw(st.integers(0, 2**16)))
    op = PeAttention(hidden, heads, kv_heads, head_dim, bias=draw(st.booleans()), eps=1e-5)
    with torch.no_grad():
        op.q_norm.weight.add_(0.3 * torch.randn(head_dim))
        op.k_norm.weight.add_(0.3 * torch.randn(head_dim))
        op.q_proj.weight.mul_(5)  # peaked attention, so a wrong mask, rotation or head mapping shows
    x = torch.randn(batch, seq, hidden)
    cos, sin = rope_cos_sin(seq, head_dim, draw(st.sampled_from([100.0, 20000.0])), x.device, x.dtype)
    return op, (x, cos, sin, mask if use_mask else None)


@examples(25)
@given(case=attention_cases())
def test_attention_op_backends_agree(case):
    op, args = case
    op = op.to(DEVICE)
    args = [None if a is None else a.to(DEVICE) for a in args]
    outs = {}
    with torch.no_grad():
        for backend in ("eager", "sdpa", "triton"):
            op.set_backend(backend)
            outs[backend] = op(*args)
    assert max_diff(outs["sdpa"], outs["eager"]) <= ATOL
    assert max_diff(outs["triton"], outs["eager"]) <= ATOL


@st.composite
def audio_video_models(draw) -> PeAudioVideoModel:
    fusion = dict(**draw(transformer_dims(max_layers=1)), audio_config=AUDIO, video_config=VIDEO)
    torch.manual_seed(draw(st.integers(0, 2**16)))
    return sharpen(PeAudioVideoModel(PeAudioVideoConfig(text_config=TEXT, audio_video_config=fusion)).eval())


def audio_video_batch(audio_tokens: list[int], frames: list[int], hop: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    clips = [torch.randn(n * hop, generator=gen) for n in audio_tokens]
    audio, audio_mask = padded_batch(clips, max(audio_tokens) * hop, seed)
    video, video_mask = padded_batch(
        [torch.randn(n, 3, FRAME, FRAME, generator=gen) for n in frames], max(frames), seed + 1
    )
    return dict(
        input_values=audio[:, None], padding_mask=audio_mask, pixel_values_videos=video, padding_mask_videos=video_mask
    )


@examples(4)
@given(model=audio_video_models(), data=st.data())
def test_audio_video_model_backends_agree(model, data):
    batch = data.draw(st.integers(1, 2), label="batch")
    audio_tokens = data.draw(st.lists(st.integers(1, 5), min_size=batch, max_size=batch), label="audio tokens")
    frames = data.draw(st.lists(st.integers(1, 3), min_size=batch, max_size=batch), label="frames")
    hop = model.config.audio_video_config.audio_config.dac_config.hop_length
    inputs = audio_video_batch(audio_tokens, frames, hop, seed=5)
    inputs["input_ids"] = torch.randint(1, TEXT["vocab_size"], (batch, 4))
    outs = run_backends(model, inputs)
    for backend in ("sdpa", "triton"):
        for name in ("audio_embeds", "video_embeds", "audio_video_embeds", "text_audio_video_embeds",
                     "audio_plus_text_embeds", "logits_audio_video_text"):
            assert max_diff(getattr(outs[backend], name), getattr(outs["eager"], name)) <= ATOL, (backend, name)


# --------------------------------------------------------------------------------------------------
# padding never changes a sample's embedding


def assert_same_clip(alone, batched, index: int, tokens: int):
    assert max_diff(alone.pooler_output[0], batched.pooler_output[index]) <= INVARIANCE_ATOL
    assert max_diff(alone.last_hidden_state[0], batched.last_hidden_state[index, :tokens]) <= INVARIANCE_ATOL


@examples(60)
@given(model=audio_encoders(), data=st.data())
def test_audio_clip_alone_equals_clip_in_padded_batch(model, data):
    model.set_attn_impl(data.draw(st.sampled_from(["eager", "sdpa"]), label="backend"))
    hop = model.config.dac_config.hop_length
    samples = data.draw(lengths(max_len=4 * hop), label="samples per clip")
    index = data.draw(st.integers(0, len(samples) - 1), label="clip")
    extra = data.draw(st.integers(0, 2 * hop), label="extra padding")
    clips = [torch.randn(n, generator=torch.Generator().manual_seed(7 * n + i)) for i, n in enumerate(samples)]
    audio, mask = padded_batch(clips, max(samples) + extra, seed=extra)
    with torch.no_grad():
        alone = model(clips[index][None, None])
        batched = model(audio[:, None], padding_mask=mask)
    assert_same_clip(alone, batched, index, alone.last_hidden_state.shape[1])


@st.composite
def video_encoders(draw) -> PeVideoEncoder:
    config = PeVideoEncoderConfig(**draw(transformer_dims()), vision_config=VIT)
    torch.manual_seed(draw(st.integers(0, 2**16)))
    return sharpen(PeVideoEncoder(config).eval())


@examples(40)
@given(model=video_encoders(), data=st.data())
def test_video_clip_alone_equals_clip_in_padded_batch(model, data):
    model.set_attn_impl(data.draw(st.sampled_from(["eager", "sdpa"]), label="backend"))
    frames = data.draw(lengths(max_len=4), label="frames per video")
    index = data.draw(st.integers(0, len(frames) - 1), label="video")
    extra = data.draw(st.integers(0, 2), label="extra padding")
    gen = torch.Generator().manual_seed(sum(frames))
    videos = [torch.randn(n, 3, FRAME, FRAME, generator=gen) for n in frames]
    pixels, mask = padded_batch(videos, max(frames) + extra, seed=extra)
    with torch.no_grad():
        alone = model(videos[index][None])
        batched = model(pixels, padding_mask_videos=mask)
    assert_same_clip(alone, batched, index, frames[index])


@examples(20)
@given(model=audio_video_models(), data=st.data())
def test_audio_video_clip_alone_equals_clip_in_padded_batch(model, data):
    """The fusion path: per-clip alignment of the valid frames to the valid audio tokens."""
    model.set_attn_impl(data.draw(st.sampled_from(["eager", "sdpa"]), label="backend"))
    batch = data.draw(st.integers(2, 3), label="batch")
    audio_tokens = data.draw(st.lists(st.integers(1, 5), min_size=batch, max_size=batch), label="audio tokens")
    frames = data.draw(st.lists(st.integers(1, 3), min_size=batch, max_size=batch), label="frames")
    index = data.draw(st.integers(0, batch - 1), label="clip")
    hop = model.config.audio_video_config.audio_config.dac_config.hop_length
    inputs = audio_video_batch(audio_tokens, frames, hop, seed=batch)
    single = dict(
        input_values=inputs["input_values"][index : index + 1, :, : audio_tokens[index] * hop],
        pixel_values_videos=inputs["pixel_values_videos"][index : index + 1, : frames[index]],
    )
    with torch.no_grad():
        alone = model.get_audio_video_embeds(**single, return_audio_embeds=True, return_video_embeds=True)
        batched = model.get_audio_video_embeds(**inputs, return_audio_embeds=True, return_video_embeds=True)
    for name in ("audio_embeds", "video_embeds", "audio_video_embeds"):
        assert max_diff(getattr(alone, name)[0], getattr(batched, name)[index]) <= INVARIANCE_ATOL, name
