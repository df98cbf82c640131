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

Calls take transformers' keywords: ``return_tensors`` (``"pt"`` when left out — the reference: ``None`` —,
``"np"``, or ``None``: a list of per-video tensors and no mask, as the reference), per-call values of the
config's settings (``size``, ``do_normalize``, ``do_sample_frames``, ...), ``device``; an unknown keyword
is a ``TypeError`` as there. Deliberate difference: ``num_frames`` given without ``do_sample_frames``
samples frames (the reference ignores it unless ``do_sample_frames=True`` is given too, or set in the
config); ``do_sample_frames=False`` turns sampling off in both. ``fps`` samples one frame every ``1/fps``
seconds (frame ``floor(k · video_fps / fps)``; transformers spreads ``int(T · fps / video_fps)`` frames
evenly instead) and ``max_frames`` (ours) caps the count; the rules live in :mod:`pe_av.media_frames`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..media_frames import FrameSampling, sample_frame_indices
from .batch import BatchFeature, check_tensor_type
from .files import (
    FEATURE_EXTRACTOR_CONFIG,
    PROCESSOR_CONFIG,
    VIDEO_PROCESSOR_CONFIG,
    apply_overrides,
    part_configs,
    resolve_processor_dir,
    split_loading_kwargs,
    warn_unused,
)
from .options import VIDEO_KEYS
from .video_frames import (
    as_video_list,
    center_crop,
    channels_first,
    output_size,
    resize_frames,
)

__all__ = ["PeVideoVideoProcessor", "as_video_list", "resize_frames", "sample_frame_indices"]

#: PIL's code for bilinear resampling, the value stored in saved configs
BILINEAR = 2
_KNOWN = (
    "do_resize", "size", "resample", "do_rescale", "rescale_factor", "do_normalize", "image_mean",
    "image_std", "do_center_crop", "crop_size", "do_convert_rgb", "do_sample_frames", "num_frames", "fps",
)


class PeVideoVideoProcessor:
    """Video preprocessing of PE-AV (transformers' ``PeVideoVideoProcessor`` under the same name).

    Args:
        size: ``{"height": h, "width": w}`` or ``{"shortest_edge": s}`` (keeps the aspect ratio);
            default 336×336 (PE-AV).
        do_sample_frames / num_frames: take ``num_frames`` evenly spaced frames (16-frame checkpoints).
        other arguments: as the reference's config keys; ``extra`` keeps unknown keys for saving.
    """

    config_type = "PeVideoVideoProcessor"
    model_input_names: ClassVar[list[str]] = ["pixel_values_videos"]

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
            output_size(size, 1, 1)  # validates the size dict
        if do_center_crop and not (isinstance(crop_size, dict) and {"height", "width"} <= crop_size.keys()):
            raise ValueError(f"do_center_crop needs crop_size={{'height': h, 'width': w}}, got {crop_size!r}")
        if do_sample_frames:
            FrameSampling(num_frames=num_frames, fps=fps)  # validates them
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
        self.fps = fps
        self.extra = dict(extra or {})

    # ------------------------------------------------------------------ config

    @classmethod
    def from_dict(cls, config: dict[str, Any], **overrides: Any) -> PeVideoVideoProcessor:
        """Build from a saved config dict (``video_preprocessor_config.json`` or processor_config's entry).

        Keys the reference leaves unset (``null`` or absent) take PE-AV's values: resize to 336×336,
        rescale by 1/255, normalize with mean = std = 0.5. ``overrides`` replace saved values.
        """
        config = {**config, **overrides}
        kwargs = {key: config[key] for key in _KNOWN if config.get(key) is not None}
        extra = {key: value for key, value in config.items() if key not in _KNOWN}
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> PeVideoVideoProcessor:
        """Load the video processor config that transformers saves in ``path`` (a directory or a hub id):
        ``processor_config.json``'s ``video_processor``, or ``video_preprocessor_config.json``. Keywords: see
        :mod:`pe_av.processing.files` (settings such as ``num_frames=`` override the saved ones)."""
        hub, overrides = split_loading_kwargs(kwargs)
        directory = resolve_processor_dir(path, hub)
        config = part_configs(directory)["video_processor"]
        if config is None:
            raise FileNotFoundError(f"no video processor config in {directory}: looked for {PROCESSOR_CONFIG}, "
                                    f"{VIDEO_PROCESSOR_CONFIG} and {FEATURE_EXTRACTOR_CONFIG}")
        config = apply_overrides(config, overrides, _KNOWN)
        warn_unused(overrides, set(config), cls.__name__)
        return cls.from_dict(config)

    def save_pretrained(self, directory: str | os.PathLike, **kwargs: Any) -> list[str]:
        """Write ``video_preprocessor_config.json`` (what transformers' part-level ``save_pretrained`` writes)."""
        path = Path(directory) / VIDEO_PROCESSOR_CONFIG
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return [str(path)]

    def to_dict(self) -> dict[str, Any]:
        """The config dict transformers writes for this video processor."""
        values = {key: getattr(self, key) for key in _KNOWN if key != "fps" or self.fps is not None}
        return {**self.extra, **values, "video_processor_type": self.config_type}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({json.dumps(self.to_dict(), sort_keys=True)})"

    # ------------------------------------------------------------------ call

    def __call__(self, videos: object, **kwargs: Any) -> BatchFeature:
        """Preprocess one video or a batch.

        Args:
            videos: a video — ``(frames, H, W, C)`` or ``(frames, C, H, W)`` uint8 array/tensor (C = 1
                or 3; float values are taken on the same 0-255 scale, as the reference does), or a file
                path — a ``(batch, frames, ...)`` array, or a non-empty list/tuple of videos.
            num_frames: sample this many evenly spaced frames. Default: the config's ``num_frames`` when
                ``do_sample_frames``, else every frame; given without ``do_sample_frames``, frames are
                sampled too (transformers ignores it then); ``do_sample_frames=False`` turns sampling off.
            fps: instead of ``num_frames``, one frame every ``1/fps`` seconds (taken from the config as
                ``num_frames`` is). Files give their frame rate; frame arrays need
                ``video_metadata={"fps": rate}`` (or a list of those, one per video).
            max_frames: at most this many frames per video, evenly spaced over it when there would be
                more (rules: :mod:`pe_av.media_frames`; not a transformers keyword).
            return_tensors: ``"pt"`` (the default), ``"np"``, or ``None``: a list of per-video
                ``(frames, 3, H, W)`` tensors and no mask, as transformers returns them.
            device: where the outputs go.
            other keywords: per-call values of the config's settings (``size``, ``do_normalize``,
                ``image_mean``, ...), as transformers takes them; an unknown keyword is a ``TypeError``.

        Returns:
            :class:`BatchFeature` with ``pixel_values_videos`` ``(batch, frames, 3, H, W)`` float32 and
            ``padding_mask_videos`` ``(batch, frames)`` bool.
        """
        unknown = sorted(set(kwargs) - VIDEO_KEYS)
        if unknown:
            raise TypeError(f"{type(self).__name__}.__call__() got unexpected keyword arguments {unknown}")
        rt = check_tensor_type(kwargs.pop("return_tensors", "pt"))
        device = kwargs.pop("device", None)
        _check_unsupported(kwargs)
        sampling = self._sampling(kwargs)
        metadata = kwargs.pop("video_metadata", None)
        layout = kwargs.pop("input_data_format", None)
        overrides = {key: value for key, value in kwargs.items() if value is not None}
        worker = self.from_dict(self.to_dict(), **overrides) if overrides else self
        videos = as_video_list(videos)
        rates = _video_rates(metadata, len(videos))
        processed = [worker._one(video, i, sampling, layout, rates[i]) for i, video in enumerate(videos)]
        if rt is None:
            return BatchFeature({"pixel_values_videos": [video.to(device) if device else video for video in processed]})
        shapes = {tuple(video.shape[1:]) for video in processed}
        if len(shapes) > 1:
            raise ValueError(
                f"videos have different frame sizes after processing {sorted(shapes)}; set do_resize with a "
                "fixed {'height', 'width'} size to batch them"
            )
        lengths = torch.tensor([len(video) for video in processed])
        pixels = torch.nn.utils.rnn.pad_sequence(processed, batch_first=True, padding_value=0.0)
        mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
        out = BatchFeature({"pixel_values_videos": pixels, "padding_mask_videos": mask})
        if device is not None:
            out.to(device)
        return out.convert_to_tensors(rt) if rt == "np" else out

    def _sampling(self, kwargs: dict[str, Any]) -> FrameSampling:
        """The call's frame sampling: its ``num_frames`` / ``fps`` (else the config's, when sampling is on)
        and ``max_frames``; ``do_sample_frames=False`` turns all of it off."""
        do_sample = kwargs.pop("do_sample_frames", None)
        given = {"num_frames": kwargs.pop("num_frames", None), "fps": kwargs.pop("fps", None)}
        max_frames = kwargs.pop("max_frames", None)
        if do_sample is False:
            return FrameSampling()
        if all(value is None for value in given.values()) and (do_sample or self.do_sample_frames):
            given = {"num_frames": self.num_frames, "fps": self.fps}
        return FrameSampling(**given, max_frames=max_frames)

    def _one(self, video: object, index: int, sampling: FrameSampling, layout: str | None = None,
             video_fps: float | None = None) -> torch.Tensor:
        name = f"videos[{index}]"
        if isinstance(video, (str, os.PathLike)):
            from ..media import load_video

            # frames are resized as they are decoded (memory: the output, not every full-size frame);
            # resize_frames then meets frames at the target size, which it returns unchanged
            size = (lambda height, width: output_size(self.size, height, width)) if self.do_resize else None
            picked = {"num_frames": sampling.num_frames, "fps": sampling.fps, "max_frames": sampling.max_frames}
            frames = torch.from_numpy(load_video(video, size=size, **picked))
            frames = frames.permute(0, 3, 1, 2).contiguous()
        else:
            frames = channels_first(video, name, layout)
            indices = sampling.indices(len(frames), video_fps) if sampling.samples else None
            if indices is not None:
                frames = frames[indices]
        if frames.shape[1] == 1 and self.do_convert_rgb:
            frames = frames.repeat(1, 3, 1, 1)
        if self.do_resize:
            frames = resize_frames(frames, *output_size(self.size, *frames.shape[-2:]))
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




#: call keywords accepted only at the value transformers uses by default (the features they name are not here)
_DEFAULT_ONLY = {"return_metadata": (None, False), "do_pad": (None, False),
                 "default_to_square": (None, True), "data_format": (None, "channels_first")}


def _check_unsupported(kwargs: dict[str, Any]) -> None:
    for key, allowed in _DEFAULT_ONLY.items():
        value = kwargs.pop(key, None)
        value = getattr(value, "value", value)  # transformers' ChannelDimension enum
        if not any(value is a or (isinstance(a, str) and value == a) for a in allowed):
            raise ValueError(f"{key}={value!r} is not supported by pe_av's video processor (only {allowed})")


def _video_rates(metadata: object, count: int) -> list[float | None]:
    """Per video, the frame rate ``video_metadata`` gives (a dict or object with ``fps``, or a list of
    those, one per video), else None."""
    if metadata is None:
        return [None] * count
    items = list(metadata) if isinstance(metadata, (list, tuple)) else [metadata] * count
    if len(items) != count:
        raise ValueError(f"video_metadata has {len(items)} entries for {count} videos; give one per video")
    rates = [item.get("fps") if isinstance(item, dict) else getattr(item, "fps", None) for item in items]
    for i, rate in enumerate(rates):
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
            raise ValueError(f"video_metadata[{i}]['fps'] must be a positive number, got {rate!r}")
    return rates
