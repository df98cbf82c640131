"""End-to-end model paths, transformers (``hf``) vs each pe-av backend on the same weights.

Each path is one group: the audio encoder (DAC + PE transformer), the video encoder (ViT per frame +
PE transformer), the ModernBERT text tower, the audio-video fusion encoder (both encoders + fusion
transformer) and the full ``PeAudioVideoModel`` forward with all three modalities. Each is warmed up
(``PE_AV_BENCH_WARMUP`` calls: the first compiles Triton kernels, or the graph under ``compile``) and
timed over whole synchronized calls. Without transformers >= 5.17 or timm the ``hf`` cases skip and
our model is built from the same config with random weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from harness import compile_path_skip_reason, compiled
from timing import Work, run_model

PathCall = Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any]

#: name → (sub-module of PeAudioVideoModel, how to call it); both libraries use the same attribute paths
PATHS: dict[str, tuple[str, PathCall]] = {
    "audio_encoder": (
        "audio_model.audio_encoder",
        lambda m, x: m(input_values=x["input_values"], padding_mask=x["padding_mask"]),
    ),
    "video_encoder": (
        "video_model.video_encoder",
        lambda m, x: m(pixel_values_videos=x["pixel_values_videos"], padding_mask_videos=x["padding_mask_videos"]),
    ),
    "text_tower": (
        "text_model",
        lambda m, x: m(input_ids=x["input_ids"], attention_mask=x["attention_mask"]),
    ),
    "fusion_encoder": (
        "audio_video_encoder",
        lambda m, x: m(
            input_values=x["input_values"], pixel_values_videos=x["pixel_values_videos"],
            padding_mask=x["padding_mask"], padding_mask_videos=x["padding_mask_videos"],
        ),
    ),
    "full_model": (
        "",
        lambda m, x: m(
            input_ids=x["input_ids"], attention_mask=x["attention_mask"], input_values=x["input_values"],
            padding_mask=x["padding_mask"], pixel_values_videos=x["pixel_values_videos"],
            padding_mask_videos=x["padding_mask_videos"],
        ),
    ),
}

_compiled: dict[str, torch.nn.Module] = {}


def _submodule(model: torch.nn.Module, path: str) -> torch.nn.Module:
    return model.get_submodule(path) if path else model


def _work(path: str, preset) -> tuple[dict[str, Any], Work]:
    b = preset.batch
    audio = dict(clips=b, audio_tokens=preset.audio_tokens, samples=preset.audio_tokens * preset.hop)
    video = dict(clips=b, frames=preset.frames, image=preset.image_size, vit_depth=preset.vit_depth)
    text = dict(captions=b, tokens=preset.text_len, layers=preset.text_layers)
    pe = dict(size=preset.size, hidden=preset.pe.hidden, layers=preset.pe_layers)
    if path == "audio_encoder":
        return dict(audio, pe=pe), Work(tokens=b * preset.audio_tokens, clips=b)
    if path == "video_encoder":
        return dict(video, pe=pe), Work(tokens=b * preset.frames, clips=b)
    if path == "text_tower":
        return text, Work(tokens=b * preset.text_len, clips=b)
    shapes = dict(audio=audio, video=video, pe=pe)
    if path == "full_model":
        shapes["text"] = text
    return shapes, Work(tokens=b * preset.audio_tokens, clips=b)


@pytest.mark.parametrize("path", list(PATHS))
def test_model(benchmark, backend, path, model_pair, model_inputs, preset):
    attribute, call = PATHS[path]
    if backend == "hf":
        if model_pair.hf is None:
            pytest.skip(model_pair.hf_reason)
        module = _submodule(model_pair.hf, attribute)
    else:
        if backend == "compile" and compile_path_skip_reason(path):
            pytest.skip(compile_path_skip_reason(path))
        model_pair.ours.set_attn_impl("sdpa" if backend == "compile" else backend)
        module = _submodule(model_pair.ours, attribute)
        if backend == "compile":
            if path not in _compiled:
                _compiled[path] = compiled(module)
            module = _compiled[path]
    shapes, work = _work(path, preset)
    run_model(
        benchmark, lambda: call(module, model_inputs), group=f"model:{path}", backend=backend, shapes=shapes,
        work=work, rounds=preset.model_rounds,
    )


# --------------------------------------------------------------------------------------------------
# Training step of a PE transformer stack


def _pe_stack_step(encoder: torch.nn.Module, hf: bool, hidden: torch.Tensor, mask: torch.Tensor) -> Callable[[], Any]:
    """Forward of ``encoder``'s layers and final norm on ``hidden`` (B, T, C) with key ``mask`` (B, T), then
    the gradients of every parameter of the stack and of ``hidden`` (against a fixed random upstream
    gradient); each library called the way its own encoder calls its layers."""
    params = [p for module in (encoder.layers, encoder.norm) for p in module.parameters()] + [hidden]
    if hf:
        from transformers.masking_utils import create_bidirectional_mask

        def forward() -> torch.Tensor:
            attention_mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=mask)
            positions = torch.arange(hidden.shape[1], device=hidden.device)[None]
            rotary = encoder.rotary_emb(hidden, positions)
            h = hidden
            for layer in encoder.layers:
                h = layer(h, attention_mask=attention_mask, position_embeddings=rotary)
            return encoder.norm(h)
    else:
        from pe_av.ops import rope_cos_sin

        def forward() -> torch.Tensor:
            cos, sin = rope_cos_sin(hidden.shape[1], encoder._head_dim, encoder._rope_theta, hidden.device, hidden.dtype)
            h, residual = hidden, None
            for layer in encoder.layers:
                h, residual = layer(h, cos, sin, mask, residual)
            return encoder.norm(h, residual)[0]

    upstream = torch.randn_like(hidden)

    def step():
        return torch.autograd.grad(forward(), params, upstream)

    return step


def test_pe_training_step(benchmark, backend, model_pair, preset):
    """Forward + backward of the fusion encoder's PE transformer stack (PE layers + final norm) on
    ``batch`` sequences of the longest op-bench length (the last one padded to 80%): the training step's
    share that our kernels change (attention, norms, SwiGLU backward); the embedders stay out."""
    if backend == "compile":
        pytest.skip("compile: the training step is timed eagerly (a compiled backward would not fit part B's budget)")
    if backend == "hf" and model_pair.hf is None:
        pytest.skip(model_pair.hf_reason)
    seq = preset.attention_seqs[-1]
    pe = preset.pe
    if backend == "hf":
        encoder = model_pair.hf.audio_video_encoder
    else:
        model_pair.ours.set_attn_impl(backend)
        encoder = model_pair.ours.audio_video_encoder
    device, dtype = next(encoder.parameters()).device, next(encoder.parameters()).dtype
    torch.manual_seed(0)
    hidden = torch.randn(preset.batch, seq, pe.hidden, device=device, dtype=dtype).requires_grad_(True)
    mask = torch.ones(preset.batch, seq, dtype=torch.bool, device=device)
    mask[-1, int(seq * 0.8):] = False
    run_model(
        benchmark, _pe_stack_step(encoder, backend == "hf", hidden, mask), group=f"model:pe_training_step T={seq}",
        backend=backend, shapes=dict(batch=preset.batch, T=seq, hidden=pe.hidden, layers=preset.pe_layers),
        work=Work(tokens=preset.batch * seq, clips=preset.batch), rounds=preset.model_rounds, grad=True,
    )
