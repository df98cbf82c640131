"""Decoding an audio track into resampled mono float32, frame by frame (for :func:`pe_av.media.load_audio`).

Each decoded frame is checked against the first one (sample format, layout, rate) before its data
is touched, converted by FFmpeg to packed float32 (PyAV reads planar frames of 8 channels or more
out of bounds), averaged over channels in float64 (as ``mean(axis=0)`` sums), checked for NaN /
infinity, and fed to a :class:`~pe_av.processing.resample.StreamingResampler`, whose outputs go
into one growing buffer: memory is the output plus about a block. With an offset far enough in,
the container is sought first and the position of the first frame is read from its timestamp.

Errors are :class:`pe_av.media.MediaError` (a ``ValueError``) naming the file. This module is
imported by :mod:`pe_av.media` when audio is loaded, never at import time (no import cycle).
"""

from __future__ import annotations

import math

import numpy as np

from . import media
from .media import MediaError
from .processing.resample import StreamingResampler

#: seconds decoded before the samples an offset needs, so that the decoder has settled
SEEK_MARGIN = 0.5


def decode_audio(path: str, rate: int, start: int, count: int | None) -> np.ndarray:
    """Output samples ``[start, start + count)`` (``count=None``: to the end) of the first audio track
    of ``path`` mixed down and resampled to ``rate``; seeks when ``start`` is far in, and decodes from
    the beginning when the seek cannot be placed."""
    try:
        return _decode(path, rate, start, count, seek=start > 0)
    except _CannotSeek:
        return _decode(path, rate, start, count, seek=False)


class _CannotSeek(Exception):
    """Timestamps cannot place the first frame after a seek: decode from the start instead."""


def _decode(path: str, rate: int, start: int, count: int | None, seek: bool) -> np.ndarray:
    av = media._av()
    with media._open(path) as container:
        stream = next(iter(container.streams.audio), None)
        if stream is None:
            raise MediaError(f"{path} has no audio track")
        if stream.codec_context is None:
            raise MediaError(f"{path}: its audio track's codec is not one this FFmpeg can decode")
        out = _Growing(_expected_samples(container, stream, rate, start, count))
        converter = av.AudioResampler(format="flt")  # packed float32, the first frame's layout and rate
        needed = _seek(av, container, stream, rate, start) if seek else None
        signature = resampler = None
        position = 0  # source sample index of the next decoded sample
        for frame in container.decode(stream):
            if signature is None:
                signature = _first_frame(path, frame)
                if needed is not None:
                    position = _position_after_seek(stream, frame, signature[3], needed)
                resampler = StreamingResampler(signature[3], rate, first=position, start=start)
            elif _signature(frame) != signature:
                raise MediaError(
                    f"{path}: the audio track changes from {_describe(signature)} to {_describe(_signature(frame))} "
                    f"at {position / signature[3]:.3f} s; one layout and rate per track is supported (re-encode "
                    "it, e.g. ffmpeg -i IN -ac 1 -ar 48000 OUT.wav)"
                )
            if frame.samples == 0:
                continue
            for converted in converter.resample(frame):
                position = _feed(path, converted, signature, position, resampler, out)
            if count is not None and out.size >= count:
                break
        else:
            if resampler is not None:
                for converted in converter.resample(None):
                    position = _feed(path, converted, signature, position, resampler, out)
                out.append(_finite(path, resampler.finish(), position / signature[3]))
    return out.result(count)


def _seek(av, container, stream, rate: int, start: int) -> int | None:
    """Seek to :data:`SEEK_MARGIN` before the first input sample that output ``start`` needs; return
    that sample's index, or ``None`` when it is close to the start (no seek: decoding is cheaper)."""
    declared = stream.codec_context.sample_rate
    if not declared or not stream.time_base:
        raise _CannotSeek
    needed = StreamingResampler(declared, rate).first_input_needed(start)
    seconds = needed / declared - SEEK_MARGIN
    if seconds <= 1.0:
        return None
    try:
        container.seek((stream.start_time or 0) + int(seconds / stream.time_base), stream=stream)
    except (av.FFmpegError, OSError) as exc:  # a container that cannot seek
        raise _CannotSeek from exc
    return needed


def _position_after_seek(stream, frame, source_rate: int, needed: int) -> int:
    """Index of the first sample of the first frame after a seek, from its timestamp; it must come at
    or before ``needed`` for the outputs to be those of the whole track."""
    if frame.pts is None or source_rate != stream.codec_context.sample_rate:
        raise _CannotSeek
    position = round((frame.pts - (stream.start_time or 0)) * stream.time_base * source_rate)
    if not 0 <= position <= needed:
        raise _CannotSeek
    return position


def _describe(signature: tuple) -> str:
    fmt, layout, channels, rate = signature
    return f"{channels} channel(s) ({layout}, {fmt}) at {rate} Hz"


def _signature(frame) -> tuple:
    return frame.format.name, frame.layout.name, frame.layout.nb_channels, frame.sample_rate


def _first_frame(path: str, frame) -> tuple:
    signature = _signature(frame)
    if signature[2] < 1 or signature[3] < 1:
        raise MediaError(f"{path}: the audio track decodes to {_describe(signature)}, which is not audio")
    return signature


def _feed(path: str, frame, signature: tuple, position: int, resampler, out: _Growing) -> int:
    """Mix one packed float32 frame down to mono, check it, resample it into ``out``."""
    channels = signature[2]
    packed = frame.to_ndarray().reshape(-1)
    if packed.size != frame.samples * channels:
        raise MediaError(f"{path}: an audio frame holds {packed.size} values for {frame.samples} samples × "
                         f"{channels} channels")
    samples = packed.reshape(frame.samples, channels)
    if channels == 1:
        mono = samples[:, 0]
    else:  # the mean over channels, summed in channel order in float64 (as mean over axis 0 does)
        total = samples[:, 0].astype(np.float64)
        for channel in range(1, channels):
            total += samples[:, channel]
        mono = (total / channels).astype(np.float32)
    at = position / signature[3]
    _finite(path, mono, at)
    out.append(_finite(path, resampler.feed(mono), at))
    return position + frame.samples


def _finite(path: str, samples: np.ndarray, at: float) -> np.ndarray:
    if not np.isfinite(samples).all():
        raise MediaError(f"{path}: the audio track decodes to NaN or infinite samples (near {at:.3f} s)")
    return samples


def _expected_samples(container, stream, rate: int, start: int, count: int | None) -> int:
    """A first capacity for the output: the duration the container states (capped, as a corrupt
    header may state anything), else 1 Mi samples; the buffer grows when it is too small."""
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000
    estimate = 1 << 20 if seconds is None or not math.isfinite(seconds) or seconds <= 0 \
        else int(min(seconds, 1e7) * rate * 1.01) + 8192 - start
    if count is not None:
        estimate = min(estimate, count)
    return int(min(max(estimate, 4096), 1 << 27))


class _Growing:
    """A float32 buffer filled in order; it grows in place (``ndarray.resize``: realloc, no copy of
    large blocks) so the peak stays near the final size rather than twice it."""

    def __init__(self, capacity: int) -> None:
        self.data = np.empty(capacity, np.float32)
        self.size = 0

    def append(self, samples: np.ndarray) -> None:
        end = self.size + len(samples)
        if end > len(self.data):
            self.data.resize(max(end, len(self.data) + len(self.data) // 4), refcheck=False)
        self.data[self.size : end] = samples
        self.size = end

    def result(self, count: int | None) -> np.ndarray:
        size = self.size if count is None else min(self.size, count)
        self.data.resize(size, refcheck=False)
        return self.data
