"""Decoding the frames of a video track (for :func:`pe_av.media.load_video`): every frame, or the
frames a :class:`~pe_av.media_frames.FrameSampling` picks.

Picked frames are found in two ways:

- **by seeking** (the fast path): one demux pass (no decoding) lists the packets' timestamps and
  keyframes; frame ``i`` is the one with the ``i``-th smallest timestamp. For each picked frame the
  decoder jumps to the last keyframe at or before it whenever that keyframe lies past what was
  already decoded, and decodes from there to the frame. Only the frames between a keyframe and a
  picked frame are decoded, so sampling 2 frames a second of an hour of video decodes a small part
  of it. It is used when every packet has a distinct timestamp and every picked timestamp comes out
  of the decoder; otherwise
- **in order**: the whole track is decoded and the picked frames are kept (by count; when the
  decoded count differs from the packet count, the pick is redone with the decoded count).

Each kept frame is converted (and resized) as it comes; the others are never converted. This module
is imported by :mod:`pe_av.media` on first use (no import cycle).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable

import numpy as np

from . import media
from .media import MediaError
from .media_frames import FrameSampling

#: bytes of frames the decoder's threads may hold at once (see :func:`_prepare_stream`)
DECODE_BUDGET = 256 << 20


class _CannotSeek(Exception):
    """Timestamps cannot place the picked frames: decode in order instead."""


def frame_converter(size: object) -> Callable:
    """``av.VideoFrame`` → ``(h, w, 3)`` uint8, resized to ``size`` (``(h, w)`` or a function of the
    decoded ``(height, width)``) when given."""

    def convert(frame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        if size is None:
            return rgb
        height, width = media._check_size(size(*rgb.shape[:2])) if callable(size) else size
        if rgb.shape[:2] == (height, width):
            return rgb
        # not at import time: pe_av.processing imports pe_av.media
        import torch

        from .processing.video import resize_frames

        # a channels-last view, not the processor's contiguous copy: torch's resize gives the same
        # pixels for both layouts (the uint8 kernel repacks its input anyway), one frame less memory
        chw = torch.from_numpy(rgb).permute(2, 0, 1)[None]
        return resize_frames(chw, height, width)[0].permute(1, 2, 0).numpy()

    return convert


def decode_video(path: str, sampling: FrameSampling, convert: Callable, stats: dict | None = None) -> list[np.ndarray]:
    """The frames of the first video track of ``path`` that ``sampling`` keeps, converted. ``stats``, when
    given, receives ``method`` ("seek" or "in order") and ``decoded`` (how many frames were decoded)."""
    stats = {} if stats is None else stats
    stats.update(method="in order")
    with media._open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path} has no video track")
        if not sampling.samples:
            frames, stats["decoded"] = _decode_frames(container, path, None, convert)
            return frames
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    if not packets:
        return []
    indices = sampling.indices(len(packets), rate)
    if indices is None:
        with media._open(path) as container:
            frames, stats["decoded"] = _decode_frames(container, path, None, convert)
            return frames
    try:
        return _decode_by_seeking(path, packets, indices, convert, stats)
    except _CannotSeek:
        pass
    frames, decoded = _decode_selected(path, len(packets), sampling, convert, rate)
    if decoded != len(packets) and decoded > 0:
        frames, again = _decode_selected(path, decoded, sampling, convert, rate)
        if again != decoded:
            raise MediaError(f"{path}: decoding the video track gives {decoded}, then {again} frames")
    stats["decoded"] = decoded
    return frames


def _decode_by_seeking(path: str, packets: list, indices: list[int], convert: Callable, stats: dict) -> list[np.ndarray]:
    stamps = [pts for pts, _ in packets]
    if any(pts is None for pts in stamps) or len(set(stamps)) != len(stamps):
        raise _CannotSeek
    stamps.sort()
    keys = sorted(pts for pts, key in packets if key)
    targets = sorted({stamps[i] for i in indices})
    if not keys or keys[0] > targets[0]:
        raise _CannotSeek
    wanted, got, decoded = set(targets), {}, 0
    with media._open(path) as container:
        stream = _prepare_stream(container, path)
        frames, position = None, None
        for target in targets:
            if target in got:
                continue
            key = keys[bisect.bisect_right(keys, target) - 1]
            if frames is None or position is None or key > position:
                try:
                    container.seek(key, stream=stream, backward=True, any_frame=False)
                except (media._av().FFmpegError, OSError) as exc:  # a container that cannot seek
                    raise _CannotSeek from exc
                frames = container.decode(stream)
            for frame in frames:
                if frame.pts is None:
                    raise _CannotSeek
                position, decoded = frame.pts, decoded + 1
                if position in wanted and position not in got:
                    got[position] = convert(frame)
                if position >= target:
                    break
    if len(got) != len(targets):
        raise _CannotSeek
    stats.update(method="seek", decoded=decoded)
    return [got[stamps[i]] for i in indices]


def _decode_selected(path: str, total: int, sampling: FrameSampling | int, convert: Callable | None = None,
                     rate: float | None = None):
    """The frames ``sampling`` (or ``num_frames``, an int) picks of ``total``, decoding in order, and the
    number of frames decoded (the frames are ``[]`` when that is not ``total``)."""
    sampling = FrameSampling(num_frames=sampling) if isinstance(sampling, int) else sampling
    convert = convert or frame_converter(None)
    indices = (sampling.indices(total, rate) or list(range(total))) if total > 0 else []
    with media._open(path) as container:
        picked, decoded = _decode_frames(container, path, set(indices), convert)
    if decoded != total or not indices:
        return [], decoded
    return [picked[i] for i in indices], decoded


def _prepare_stream(container, path: str):
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise MediaError(f"{path}: its video track's codec is not one this FFmpeg can decode")
    # frame threads each hold a frame: for huge frames, fewer threads so that memory stays bounded
    frame_bytes = 3 * max(stream.codec_context.width, 0) * max(stream.codec_context.height, 0)
    if frame_bytes and DECODE_BUDGET // frame_bytes < (os.cpu_count() or 1) + 1:
        stream.codec_context.thread_count = max(1, DECODE_BUDGET // frame_bytes)
    stream.thread_type = "AUTO"
    return stream


def _decode_frames(container, path: str, wanted: set[int] | None, convert: Callable):
    """Decode the first video track in order; return (frames, count) — a list of all frames, or a dict
    index → frame of the ``wanted`` ones."""
    stream = _prepare_stream(container, path)
    kept: list[np.ndarray] | dict[int, np.ndarray] = [] if wanted is None else {}
    count = 0
    for frame in container.decode(stream):
        if wanted is None:
            kept.append(convert(frame))
        elif count in wanted:
            kept[count] = convert(frame)
        count += 1
    return kept, count
