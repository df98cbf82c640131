"""Ingredients of ``pe-av demo``: a tiny random PE-AV model with its processor, and synthetic media.

Everything is built in code from fixed seeds — no network, no checkpoint — so the demo exercises the
real pipeline (save → load, file decoding, processing, every backend) in seconds on a CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel

from .config import PeAudioVideoConfig
from .media import write_audio, write_video
from .models import PeAudioVideoModel
from .processing import PeAudioFeatureExtractor, PeAudioVideoProcessor, PeTokenizer, PeVideoVideoProcessor

SAMPLE_RATE = 48_000
IMAGE_SIZE = 28
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "a an the of and with in on high low pitched pure tone beep static noise hiss red blue green square "
    "stripes moving video sound dog barking rain music quiet loud"
).split()
TEXTS = ["a pure tone", "a high pitched beep", "static noise", "a red square moving", "blue stripes with hiss"]

_DAC = {"encoder_hidden_size": 2, "downsampling_ratios": [2, 8, 10, 12], "codebook_dim": 8}  # hop 1920
_VISION = {
    "architecture": "vit_pe_core_large_patch14_336",
    "model_args": {"img_size": IMAGE_SIZE, "patch_size": 14, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "num_labels": 16,
}
_BLOCK = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
          "num_key_value_heads": 1, "head_dim": 16}


def demo_config() -> PeAudioVideoConfig:
    """A PeAudioVideoConfig with every part shrunk (hop 1920 at 48 kHz as the real models, 28 px frames)."""
    text = {"vocab_size": len(SPECIAL_TOKENS) + len(WORDS), "pad_token_id": 0, "hidden_size": 32,
            "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2, "local_attention": 4}
    audio, video = {**_BLOCK, "dac_config": _DAC}, {**_BLOCK, "vision_config": _VISION}
    fusion = {**_BLOCK, "audio_config": audio, "video_config": video}
    return PeAudioVideoConfig(text_config=text, audio_video_config=fusion)


def demo_model(seed: int = 0, spread: float = 10.0) -> PeAudioVideoModel:
    """The tiny model with the reference's random init under ``seed``, every weight matrix scaled by
    ``spread`` and logit scales set to 1. (At the reference's init, std 0.02, all inputs map to nearly
    the same embedding; the spread makes the similarity tables show distinct rows.)"""
    torch.manual_seed(seed)
    model = PeAudioVideoModel(demo_config()).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.mul_(spread)
            elif name.endswith("logit_scale"):
                param.fill_(1.0)
    return model


def demo_tokenizer() -> PeTokenizer:
    """A lowercase word-level tokenizer over :data:`WORDS` with ModernBERT's ``[CLS] … [SEP]`` framing."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + WORDS)}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    backend.add_special_tokens(SPECIAL_TOKENS)
    return PeTokenizer(backend, pad_token="[PAD]", model_max_length=512,
                       extra={"cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "mask_token": "[MASK]"})


def demo_processor() -> PeAudioVideoProcessor:
    """Processor matching :func:`demo_config`: 48 kHz audio, 28×28 frames, the demo tokenizer."""
    return PeAudioVideoProcessor(
        feature_extractor=PeAudioFeatureExtractor(),
        video_processor=PeVideoVideoProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=demo_tokenizer(),
    )


def _tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def _moving_square(frames: int, size: int = 32, color: int = 0) -> np.ndarray:
    video = np.full((frames, size, size, 3), 16, dtype=np.uint8)
    for i in range(frames):
        left = (i * 2) % (size - 8)
        video[i, 12:20, left : left + 8, color] = 230
    return video


def _stripes(frames: int, size: int = 32) -> np.ndarray:
    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        columns = (np.arange(size) + i) % 8 < 4
        video[i, :, columns, 2] = 220
    return video


def write_demo_media(directory: str | Path, seed: int = 0) -> dict[str, list[Path]]:
    """Write 3 audio clips (wav at 48 kHz, flac at 44.1 kHz, mp3; ≤ 0.5 s) and 2 videos with sound (mp4,
    webm; 0.5 s, 12 frames of 32×32)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.3, 0.3, SAMPLE_RATE // 2).astype(np.float32)
    audio = [
        write_audio(directory / "tone_440hz.wav", _tone(440, 0.5, SAMPLE_RATE), SAMPLE_RATE),
        write_audio(directory / "beep_1760hz.flac", _tone(1760, 0.4, 44_100), 44_100),
        write_audio(directory / "static.mp3", noise, SAMPLE_RATE),
    ]
    videos = [
        write_video(directory / "red_square.mp4", _moving_square(12), fps=24, audio=_tone(440, 0.5, SAMPLE_RATE)),
        write_video(directory / "blue_stripes.webm", _stripes(12), fps=24, audio=noise),
    ]
    return {"audio": audio, "videos": videos}
