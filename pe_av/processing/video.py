"""``PeVideoVideoProcessor``: frames (or video files) → ``pixel_values_videos`` + ``padding_mask_videos``.

Same configuration keys and numbers as transformers' ``PeVideoVideoProcessor`` (torchvision backend),
in this order: frame sampling (every frame, or ``num_frames`` evenly spaced: frame
``int(i · (total − 1) / (num_frames − 1))``, as the ``-16-frame`` checkpoints), bilinear resize to
``size`` (antialiased; uint8 frames stay uint8, see :func:`resize_frames`), optional center crop,
then rescale and normalize fused into one float32 ``(x − mean/rescale) / (std/rescale)``, and zero
padding of shorter videos along frames.

Differences from the reference: ``padding_mask_videos`` (bool, 1 = real frame) is always returned
(the reference leaves it out when all videos have the same length; all-ones is equivalent);
``num_frames = 1`` takes the first frame (the reference divides by zero); file paths are decoded
with PyAV (:func:`pe_av.media.load_video`), each frame resized as soon as it is decoded (by the same
:func:`resize_frames`, so the pixels equal resizing after decoding, and memory holds the output
frames rather than every full-size one). Only bilinear resampling is supported. The frame sampling
rule, shared with file decoding, is :func:`pe_av.media.sample_frame_indices`.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..media import sample_frame_indices

#: PIL's code for bilinear resampling, the value stored in saved configs
BILINEAR = 2
_KNOWN = (
    "do_resize", "size", "resample", "do_rescale", "rescale_factor", "do_normalize", "image_mean",
    "image_std", "do_center_crop", "crop_size", "do_convert_rgb", "do_sample_frames", "num_frames", "fps",
)


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


class PeVideoVideoProcessor:
    """Video preprocessing of PE-AV (transformers' ``PeVideoVideoProcessor`` under the same name).

    Args:
        size: ``{"height": h, "width": w}`` or ``{"shortest_edge": s}`` (keeps the aspect ratio);
            default 336×336 (PE-AV).
        do_sample_frames / num_frames: take ``num_frames`` evenly spaced frames (16-frame checkpoints).
        other arguments: as the reference's config keys; ``extra`` keeps unknown keys for saving.
    """

    config_type = "PeVideoVideoProcessor"

    def __init__(
        self,
        do_resize: bool = True,
        size: dict[str, int] | None = None,
        resample: int = BILINEAR,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: float | list[float] = (0.5, 0.5, 0.5),
        image_std: float | list[float] = (0.5, 0.5, 0.5),
        do_center_crop: bool = False,
        crop_size: dict[str, int] | None = None,
        do_convert_rgb: bool = True,
        do_sample_frames: bool = False,
        num_frames: int | None = None,
        fps: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if resample not in (BILINEAR, "bilinear"):
            raise ValueError(f"only bilinear resampling (resample=2) is supported, got resample={resample!r}")
        if size is None:
            size = {"height": 336, "width": 336}
        if do_resize:
            _output_size(size, 1, 1)  # validates the size dict
        if do_center_crop and not (isinstance(crop_size, dict) and {"height", "width"} <= crop_size.keys()):
            raise ValueError(f"do_center_crop needs crop_size={{'height': h, 'width': w}}, got {crop_size!r}")
        if fps is not None:
            raise ValueError("sampling frames by fps is not supported; use do_sample_frames with num_frames")
        if do_sample_frames and num_frames is not None:
            sample_frame_indices(1, num_frames)  # validates num_frames
        if do_normalize and any(s == 0 for s in np.atleast_1d(image_std)):
            raise ValueError(f"image_std must not contain zeros, got {image_std!r}")
        if do_rescale and not rescale_factor:
            raise ValueError(f"rescale_factor must be non-zero, got {rescale_factor!r}")
        self.do_resize = bool(do_resize)
        self.size = dict(size) if isinstance(size, dict) else size
        self.resample = BILINEAR
        self.do_rescale = bool(do_rescale)
        self.rescale_factor = float(rescale_factor)
        self.do_normalize = bool(do_normalize)
        self.image_mean = list(np.atleast_1d(image_mean).tolist())
        self.image_std = list(np.atleast_1d(image_std).tolist())
        self.do_center_crop = bool(do_center_crop)
        self.crop_size = dict(crop_size) if crop_size is not None else None
        self.do_convert_rgb = bool(do_convert_rgb)
        self.do_sample_frames = bool(do_sample_frames)
        self.num_frames = num_frames
        self.extra = dict(extra or {})

    # ------------------------------------------------------------------ config

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> PeVideoVideoProcessor:
        """Build from a saved config dict (``video_preprocessor_config.json`` or processor_config's entry).

        Keys the reference leaves unset (``null`` or absent) take PE-AV's values: resize to 336×336,
        rescale by 1/255, normalize with mean = std = 0.5.
        """
        kwargs = {key: config[key] for key in _KNOWN if config.get(key) is not None}
        extra = {key: value for key, value in config.items() if key not in _KNOWN}
        return cls(**kwargs, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The config dict transformers writes for this video processor."""
        values = {key: getattr(self, key) for key in _KNOWN if key != "fps"}
        return {**self.extra, **values, "video_processor_type": self.config_type}

    # ------------------------------------------------------------------ call

    def __call__(self, videos: object, num_frames: int | None = None) -> dict[str, torch.Tensor]:
        """Preprocess one video or a batch.

        Args:
            videos: a video — ``(frames, H, W, C)`` or ``(frames, C, H, W)`` uint8 array/tensor (C = 1
                or 3; float values are taken on the same 0-255 scale, as the reference does), or a file
                path — a ``(batch, frames, ...)`` array, or a non-empty list/tuple of videos.
            num_frames: sample this many evenly spaced frames (default: the config's ``num_frames``
                when ``do_sample_frames``, else every frame).

        Returns:
            ``pixel_values_videos`` ``(batch, frames, 3, H, W)`` float32 and ``padding_mask_videos``
            ``(batch, frames)`` bool, as torch tensors.
        """
        if num_frames is None and self.do_sample_frames:
            num_frames = self.num_frames
        if num_frames is not None:
            sample_frame_indices(1, num_frames)
        processed = [self._one(video, i, num_frames) for i, video in enumerate(as_video_list(videos))]
        shapes = {tuple(video.shape[1:]) for video in processed}
        if len(shapes) > 1:
            raise ValueError(
                f"videos have different frame sizes after processing {sorted(shapes)}; set do_resize with a "
                "fixed {'height', 'width'} size to batch them"
            )
        lengths = torch.tensor([len(video) for video in processed])
        pixels = torch.nn.utils.rnn.pad_sequence(processed, batch_first=True, padding_value=0.0)
        mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
        return {"pixel_values_videos": pixels, "padding_mask_videos": mask}

    def _one(self, video: object, index: int, num_frames: int | None) -> torch.Tensor:
        name = f"videos[{index}]"
        if isinstance(video, (str, os.PathLike)):
            from ..media import load_video

            # frames are resized as they are decoded (memory: the output, not every full-size frame);
            # resize_frames then meets frames at the target size, which it returns unchanged
            size = (lambda height, width: _output_size(self.size, height, width)) if self.do_resize else None
            frames = torch.from_numpy(load_video(video, num_frames=num_frames, size=size))
            frames = frames.permute(0, 3, 1, 2).contiguous()
        else:
            frames = _channels_first(video, name)
            if num_frames is not None:
                frames = frames[sample_frame_indices(len(frames), num_frames)]
        if frames.shape[1] == 1 and self.do_convert_rgb:
            frames = frames.repeat(1, 3, 1, 1)
        if self.do_resize:
            frames = resize_frames(frames, *_output_size(self.size, *frames.shape[-2:]))
        if self.do_center_crop:
            frames = center_crop(frames, self.crop_size["height"], self.crop_size["width"])
        return self._rescale_and_normalize(frames)

    def _rescale_and_normalize(self, frames: torch.Tensor) -> torch.Tensor:
        if self.do_normalize:
            mean = torch.tensor(self.image_mean, dtype=torch.float32)
            std = torch.tensor(self.image_std, dtype=torch.float32)
            if self.do_rescale:  # fold the rescale into mean/std, in float32 as the reference
                mean, std = mean * (1.0 / self.rescale_factor), std * (1.0 / self.rescale_factor)
            if mean.numel() not in (1, frames.shape[1]) or std.numel() not in (1, frames.shape[1]):
                raise ValueError(
                    f"image_mean/image_std have {mean.numel()}/{std.numel()} values for {frames.shape[1]} channels"
                )
            return (frames.to(torch.float32) - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)
        if self.do_rescale:
            return (frames * self.rescale_factor).to(torch.float32)
        return frames.to(torch.float32)


def center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the center ``height × width`` (zero-padding first where the frame is smaller)."""
    h, w = frames.shape[-2:]
    if height > h or width > w:
        pad_h, pad_w = max(height - h, 0), max(width - w, 0)
        frames = F.pad(frames, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        h, w = frames.shape[-2:]
    top, left = int((h - height) / 2.0), int((w - width) / 2.0)
    return frames[..., top : top + height, left : left + width]


def _output_size(size: object, height: int, width: int) -> tuple[int, int]:
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


def _channels_first(video: object, name: str) -> torch.Tensor:
    """``(frames, C, H, W)`` tensor from a channels-first or channels-last array (C = 1 or 3)."""
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
    if video.shape[1] in (1, 3):  # ambiguous shapes read as channels-first, as the reference does
        frames = video.contiguous()
    elif video.shape[-1] in (1, 3):
        frames = video.permute(0, 3, 1, 2).contiguous()
    else:
        raise ValueError(
            f"{name} has shape {tuple(video.shape)}: no dimension of 1 or 3 channels at position 1 or 3 "
            "(RGBA is not supported; drop the alpha channel)"
        )
    if frames.is_floating_point() and not torch.isfinite(frames).all():
        raise ValueError(f"{name} contains NaN or infinite pixel values")
    return frames
