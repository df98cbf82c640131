"""Reading (and writing) audio and video files with PyAV, and the frame sampling rule.

- :func:`load_audio`: the first audio track of any file FFmpeg reads (wav, flac, mp3, ogg, m4a, and
  the audio of mp4/mkv/webm/mov) as float32 mono at the requested rate: decoded to float, channels
  averaged, then resampled with :func:`pe_av.processing.resample.resample`.
- :func:`load_video`: RGB uint8 frames ``(frames, H, W, 3)`` of the first video track: every frame, or
  ``num_frames`` evenly spaced ones (:func:`sample_frame_indices`, the rule the video processor also
  applies to frame arrays), decoding only once when the container's packet count is right.
- :func:`media_info`: which tracks a file has.
- :func:`write_audio` / :func:`write_video`: small encoders used by the demo and the tests.

Problems are reported as ``FileNotFoundError`` (no such file) or ``ValueError`` naming the file and
what is wrong (not a media file, no audio/video track, nothing decodable).

PyAV is imported on first use: ``import pe_av`` and the processors work on arrays without it, and the
functions that decode or encode raise ``ImportError`` (``pip install av``) when it is missing. This
module imports nothing of :mod:`pe_av.processing` at import time (that package imports this one), so
there is no import cycle; the resampler is imported when :func:`load_audio` needs it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

#: extension → (video codec, audio codec) used by the writers
VIDEO_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "flac"),
    ".webm": ("libvpx-vp9", "libopus"),
}
AUDIO_CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus", ".m4a": "aac"}


@dataclass(frozen=True)
class MediaInfo:
    """Tracks of a media file (first audio and first video stream)."""

    path: str
    has_audio: bool
    has_video: bool
    sample_rate: int | None = None
    channels: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None


def _av() -> ModuleType:
    """PyAV, imported on first use; a clear ``ImportError`` when it is not installed."""
    try:
        return importlib.import_module("av")
    except ImportError as exc:
        raise ImportError(
            f"decoding and writing audio/video files needs PyAV (the av package), which cannot be imported "
            f"({exc}): pip install av"
        ) from exc


def sample_frame_indices(total_frames: int, num_frames: int) -> list[int]:
    """``num_frames`` evenly spaced indices into ``total_frames`` frames, first and last included
    (the reference's rule; repeats frames when the video is shorter than ``num_frames``)."""
    if isinstance(total_frames, bool) or not isinstance(total_frames, int) or total_frames < 1:
        raise ValueError(f"total_frames must be a positive int, got {total_frames!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if num_frames == 1:
        return [0]
    return [int(i * (total_frames - 1) / (num_frames - 1)) for i in range(num_frames)]


def _check_path(path: object, kind: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{kind} path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{kind} file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a {kind} file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty (0 bytes)")
    return path


def _open(path: str) -> av.container.InputContainer:
    av = _av()
    try:
        return av.open(path, mode="r")
    except av.FFmpegError as exc:
        raise ValueError(f"cannot read {path}: not a media file FFmpeg understands ({exc})") from exc


def media_info(path: str | os.PathLike) -> MediaInfo:
    """Describe the first audio and video tracks of ``path``."""
    path = _check_path(path, "media")
    with _open(path) as container:
        audio = next(iter(container.streams.audio), None)
        video = next(iter(container.streams.video), None)
        duration = container.duration / _av().time_base if container.duration else None
        return MediaInfo(
            path=path,
            has_audio=audio is not None,
            has_video=video is not None,
            sample_rate=audio.codec_context.sample_rate if audio is not None else None,
            channels=audio.codec_context.channels if audio is not None else None,
            fps=float(video.average_rate) if video is not None and video.average_rate else None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            duration=duration,
        )


def load_audio(path: str | os.PathLike, sampling_rate: int = 48_000) -> np.ndarray:
    """The first audio track of ``path`` as a 1-D float32 array at ``sampling_rate`` Hz (mono mixdown)."""
    path = _check_path(path, "audio")
    chunks: list[np.ndarray] = []
    with _open(path) as container:
        av = _av()
        stream = next(iter(container.streams.audio), None)
        if stream is None:
            raise ValueError(f"{path} has no audio track")
        converter = av.AudioResampler(format="fltp")  # sample format only: keeps rate and channels
        try:
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray() for out in converter.resample(frame))
            chunks.extend(out.to_ndarray() for out in converter.resample(None))
        except av.FFmpegError as exc:
            raise ValueError(f"cannot decode the audio of {path}: {exc}") from exc
        source_rate = converter.rate
    chunks = [chunk for chunk in chunks if chunk.size]
    if not chunks:
        raise ValueError(f"{path}: the audio track holds no samples")
    samples = np.concatenate(chunks, axis=1)  # (channels, samples)
    mono = samples.mean(axis=0, dtype=np.float64).astype(np.float32)
    if source_rate != sampling_rate:
        from .processing.resample import resample  # not at import time: pe_av.processing imports this module

        mono = resample(mono, int(source_rate), int(sampling_rate))
    return mono


def load_video(path: str | os.PathLike, num_frames: int | None = None) -> np.ndarray:
    """RGB frames ``(frames, H, W, 3)`` uint8 of the first video track of ``path``.

    With ``num_frames``, only the evenly spaced frames :func:`sample_frame_indices` picks are kept (the
    total comes from counting packets; if decoding yields a different count, the file is decoded again
    with the true count).
    """
    path = _check_path(path, "video")
    if num_frames is not None:
        sample_frame_indices(1, num_frames)  # validates num_frames
    with _open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video track")
        if num_frames is None:
            frames, _ = _decode_frames(container, path, wanted=None)
        else:
            total = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    if num_frames is not None:
        frames, decoded = _decode_selected(path, total, num_frames)
        if decoded != total and decoded > 0:
            frames, _ = _decode_selected(path, decoded, num_frames)
    if not frames:
        raise ValueError(f"{path}: the video track holds no decodable frames")
    return np.stack(frames)


def _decode_selected(path: str, total: int, num_frames: int) -> tuple[list[np.ndarray], int]:
    indices = sample_frame_indices(max(total, 1), num_frames)
    with _open(path) as container:
        picked, decoded = _decode_frames(container, path, wanted=set(indices))
    if decoded != total:
        return [], decoded
    return [picked[i] for i in indices], decoded


def _decode_frames(container, path: str, wanted: set[int] | None):
    """Decode the first video track; return (frames, count) — a list of all frames, or a dict
    index → frame of the ``wanted`` ones."""
    av = _av()
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    kept: list[np.ndarray] | dict[int, np.ndarray] = [] if wanted is None else {}
    count = 0
    try:
        for frame in container.decode(stream):
            if wanted is None:
                kept.append(frame.to_ndarray(format="rgb24"))
            elif count in wanted:
                kept[count] = frame.to_ndarray(format="rgb24")
            count += 1
    except av.FFmpegError as exc:
        raise ValueError(f"cannot decode the video of {path}: {exc}") from exc
    return kept, count


# ---------------------------------------------------------------------- writing


def write_audio(path: str | os.PathLike, samples: np.ndarray, sampling_rate: int, codec: str | None = None) -> Path:
    """Encode float samples in [-1, 1] (``(samples,)`` or ``(channels, samples)``) to ``path``; the codec
    follows the extension (:data:`AUDIO_CODECS`) unless given."""
    path = Path(path)
    codec = codec or AUDIO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"no audio codec for extension {path.suffix!r}; known: {sorted(AUDIO_CODECS)}")
    av = _av()
    with av.open(str(path), mode="w") as container:
        _add_audio(container, codec, np.asarray(samples, dtype=np.float32), sampling_rate)
    return path


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = 24,
    audio: np.ndarray | None = None,
    sampling_rate: int = 48_000,
) -> Path:
    """Encode RGB uint8 frames ``(frames, H, W, 3)`` (even H and W), optionally with an audio track,
    to ``path``; codecs follow the extension (:data:`VIDEO_CODECS`)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_CODECS:
        raise ValueError(f"no video codec for extension {path.suffix!r}; known: {sorted(VIDEO_CODECS)}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (frames, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"frame height and width must be even for yuv420p, got {frames.shape[1:3]}")
    video_codec, audio_codec = VIDEO_CODECS[path.suffix.lower()]
    av = _av()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(video_codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if video_codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        encode_audio = None
        if audio is not None:
            encode_audio = _add_audio(container, audio_codec, np.asarray(audio, dtype=np.float32), sampling_rate,
                                      encode_now=False)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if encode_audio is not None:
            encode_audio()
    return path


def _add_audio(container, codec: str, samples: np.ndarray, rate: int, encode_now: bool = True):
    planar = samples[None, :] if samples.ndim == 1 else samples
    if planar.ndim != 2 or planar.shape[1] == 0 or planar.shape[0] > 2:
        raise ValueError(f"audio must be (samples,) or (channels ≤ 2, samples) with samples, got {samples.shape}")
    av = _av()
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono" if planar.shape[0] == 1 else "stereo"

    def encode() -> None:
        block = 1024
        for start in range(0, planar.shape[1], block):
            chunk = np.ascontiguousarray(planar[:, start : start + block])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    if encode_now:
        encode()
        return None
    return encode
