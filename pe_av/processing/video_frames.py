"""Frames for :class:`~pe_av.processing.video.PeVideoVideoProcessor`: input forms, resizing, cropping.

Resizing matches torchvision's antialiased bilinear ``resize`` bit for bit (see :func:`resize_frames`).
"""

from __future__ import annotations

import os
import platform

import numpy as np
import torch
import torch.nn.functional as F


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize of ``(N, C, H, W)`` frames, as torchvision's ``resize`` computes it.

    On CPUs with AVX2/AVX-512 or on ARM, uint8 frames go through torch's native uint8 kernel and stay
    uint8; elsewhere (CUDA, other CPUs) and for other integer dtypes they are resized in float32,
    rounded and cast back. Float frames are resized as they are. Matching this dispatch is what
    makes our pixels equal the reference's bit for bit.
    """
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    dtype = frames.dtype
    native = dtype in (torch.float32, torch.float64) or (
        dtype == torch.uint8 and frames.device.type == "cpu" and _native_uint8_resize()
    )
    work = frames if native else frames.to(torch.float32)
    out = F.interpolate(work, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    if not native:
        if not dtype.is_floating_point:
            out = out.round_()
        out = out.to(dtype)
    return out


def _native_uint8_resize() -> bool:
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")


def center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the center ``height × width`` (zero-padding first where the frame is smaller)."""
    h, w = frames.shape[-2:]
    if height > h or width > w:
        pad_h, pad_w = max(height - h, 0), max(width - w, 0)
        frames = F.pad(frames, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        h, w = frames.shape[-2:]
    top, left = int((h - height) / 2.0), int((w - width) / 2.0)
    return frames[..., top : top + height, left : left + width]


def output_size(size: object, height: int, width: int) -> tuple[int, int]:
    if isinstance(size, dict) and {"height", "width"} <= size.keys() and size.get("height") and size.get("width"):
        out = (size["height"], size["width"])
    elif isinstance(size, dict) and size.get("shortest_edge") and not size.get("longest_edge"):
        short = size["shortest_edge"]
        if height <= width:
            out = (short, int(short * width / height))
        else:
            out = (int(short * height / width), short)
    else:
        raise ValueError(f"size must be {{'height': h, 'width': w}} or {{'shortest_edge': s}}, got {size!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in out):
        raise ValueError(f"size must hold positive ints, got {size!r}")
    return out


def as_video_list(videos: object) -> list[object]:
    """Split the input into videos: a path, a 4-D video, a 5-D batch, or a non-empty list/tuple of videos."""
    if isinstance(videos, (str, os.PathLike)):
        return [videos]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 5:
            return list(videos)
        if videos.ndim == 4:
            return [videos]
        raise ValueError(
            f"videos must be one (frames, H, W, C) video, a (batch, frames, ...) array or a list of videos, "
            f"got an array of shape {tuple(videos.shape)}"
        )
    if not isinstance(videos, (list, tuple)):
        raise TypeError(f"videos must be an array/tensor, a file path or a list of those, got {type(videos).__name__}")
    if not videos:
        raise ValueError("videos is an empty list; give at least one video")
    return list(videos)


def channels_first(video: object, name: str, layout: str | None = None) -> torch.Tensor:
    """``(frames, C, H, W)`` tensor from a channels-first or channels-last array (C = 1 or 3).

    ``layout`` (transformers' ``input_data_format``): ``"channels_first"`` / ``"channels_last"``, or ``None``
    to infer it (ambiguous shapes are read as channels-first, as the reference does).
    """
    layout = getattr(layout, "value", layout)  # transformers' ChannelDimension enum
    if layout not in (None, "channels_first", "channels_last"):
        raise ValueError(f"input_data_format must be 'channels_first', 'channels_last' or None, got {layout!r}")
    if isinstance(video, np.ndarray):
        numeric = np.issubdtype(video.dtype, np.integer) or np.issubdtype(video.dtype, np.floating)
        if video.dtype == np.bool_ or not numeric:
            raise TypeError(f"{name} must hold uint8 (or 0-255 float) pixels, got dtype {video.dtype}")
        video = torch.from_numpy(np.ascontiguousarray(video))
    elif not isinstance(video, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array, torch tensor or file path, got {type(video).__name__}")
    if video.dtype == torch.bool or video.is_complex():
        raise TypeError(f"{name} must hold uint8 (or 0-255 float) pixels, got dtype {video.dtype}")
    if video.dim() != 4:
        raise ValueError(f"{name} must be (frames, H, W, C) or (frames, C, H, W), got shape {tuple(video.shape)}")
    if video.shape[0] == 0:
        raise ValueError(f"{name} has no frames")
    video = video.detach().cpu()
    if video.shape[1] in (1, 3) and layout != "channels_last":
        frames = video.contiguous()
    elif video.shape[-1] in (1, 3) and layout != "channels_first":
        frames = video.permute(0, 3, 1, 2).contiguous()
    else:
        raise ValueError(
            f"{name} has shape {tuple(video.shape)}: no dimension of 1 or 3 channels at position 1 or 3 "
            "(RGBA is not supported; drop the alpha channel)"
        )
    if frames.is_floating_point() and not torch.isfinite(frames).all():
        raise ValueError(f"{name} contains NaN or infinite pixel values")
    return frames
