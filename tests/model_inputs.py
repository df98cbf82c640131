"""Tiny PE-AV models and valid inputs of every kind, shared by the model input tests."""

from __future__ import annotations

import torch
from tiny_configs import FRAME, FUSION, HOP, TEXT, VOCAB

from pe_av import PeAudioFrameLevelModel, PeAudioVideoConfig, PeAudioVideoModel

BATCH, SAMPLES, FRAMES, TOKENS = 2, 4 * HOP, 3, 5


def tiny_models() -> dict:
    """``{"av": PeAudioVideoModel, "frame": PeAudioFrameLevelModel}`` with fixed random weights, in eval mode."""
    torch.manual_seed(0)
    av = PeAudioVideoModel(PeAudioVideoConfig(text_config=TEXT, audio_video_config=FUSION)).eval()
    frame = PeAudioFrameLevelModel(av.config.audio_config).eval()
    return {"av": av, "frame": frame}


def right_padded(lengths, total, dtype=torch.long):
    mask = torch.zeros(len(lengths), total, dtype=dtype)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return mask


def valid(kind: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    if kind == "audio":
        audio = torch.randn(BATCH, 1, SAMPLES, generator=gen)
        audio[1, :, 2 * HOP :] = 0
        return audio
    if kind == "audio_mask":
        return right_padded([SAMPLES, 2 * HOP], SAMPLES)
    if kind == "video":
        return torch.randn(BATCH, FRAMES, 3, FRAME, FRAME, generator=gen)
    if kind == "video_mask":
        return right_padded([FRAMES, 2], FRAMES)
    if kind == "ids":
        return torch.randint(1, VOCAB, (BATCH, TOKENS), generator=gen)
    if kind == "text_mask":
        return right_padded([TOKENS, 3], TOKENS)
    if kind == "image":
        return torch.randn(BATCH, 3, FRAME, FRAME, generator=gen)
    raise AssertionError(kind)


#: argument name → kind of valid input, per modality
AUDIO_ARGS = {"input_values": "audio", "padding_mask": "audio_mask"}
VIDEO_ARGS = {"pixel_values_videos": "video", "padding_mask_videos": "video_mask"}
TEXT_ARGS = {"input_ids": "ids", "attention_mask": "text_mask"}


def valid_args(kinds: dict[str, str]) -> dict[str, torch.Tensor]:
    """Valid tensors for ``{argument: kind}``."""
    return {arg: valid(kind) for arg, kind in kinds.items()}
