"""Reading (and writing) audio and video files with PyAV, and the frame sampling rule.

- :func:`load_audio`: the first audio track of any file FFmpeg reads (wav, flac, mp3, ogg, m4a, and
  the audio of mp4/mkv/webm/mov) as float32 mono at the requested rate: decoded to float, channels
  averaged, then resampled (:class:`pe_av.processing.resample.StreamingResampler`, the same numbers
  as :func:`~pe_av.processing.resample.resample` of the whole track) frame by frame, so memory is
  the output plus a bounded block; ``offset`` / ``duration`` cut an excerpt (seeking when far in).
- :func:`load_video`: RGB uint8 frames ``(frames, H, W, 3)`` of the first video track: every frame, or
  those ``num_frames`` / ``fps`` / ``max_frames`` pick (:mod:`pe_av.media_frames`, the rules the video
  processor also applies to frame arrays), seeking to the keyframe before each kept frame
  (:mod:`pe_av.media_video`); with ``size`` each frame is resized as it is decoded (memory: the output
  frames plus one full-size one).
- :func:`media_info`: which tracks a file has.
- :func:`write_audio` / :func:`write_video`: small encoders used by the demo and the tests.

Problems are reported as ``FileNotFoundError`` (no such file) or ``ValueError`` naming the file and
what is wrong (a directory, FIFO or device instead of a file, not a media file, no audio/video
track, nothing decodable, NaN samples, a layout change mid-track); whatever else PyAV or FFmpeg
raise on a corrupt file (``av.error.*``, ``OSError``, ``IndexError``, ...) becomes such a
``ValueError`` too. Audio is converted to packed float32 by FFmpeg and each frame's layout and rate
are checked before its data is touched: PyAV reads planar frames with many channels out of bounds.

PyAV is imported on first use: ``import pe_av`` and the processors work on arrays without it, and the
functions that decode or encode raise ``ImportError`` (``pip install av``) when it is missing. This
module imports nothing of :mod:`pe_av.processing` at import time (that package imports this one), so
there is no import cycle; the resampler and the frame resize are imported when needed. The frame
by frame audio pipeline lives in :mod:`pe_av.media_audio`, the video decoding in :mod:`pe_av.media_video`
(both imported on first use too), the writers
in :mod:`pe_av.media_write` (re-exported here).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from .media_frames import FrameSampling, sample_frame_indices
from .media_write import AUDIO_CODECS, VIDEO_CODECS, write_audio, write_video

if TYPE_CHECKING:
    import av

__all__ = ["AUDIO_CODECS", "VIDEO_CODECS", "FrameSampling", "MediaError", "MediaInfo", "load_audio", "load_video",
           "media_info", "sample_frame_indices", "write_audio", "write_video"]


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


def special_file_problem(info: os.stat_result, kind: str = "media") -> str | None:
    """What is wrong with a path whose ``os.stat`` is ``info`` when it is not a regular file (a directory,
    FIFO, device or socket, each named), or None for a regular file. Never opens it (a FIFO would block)."""
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(info.st_mode):
            return f"is {what}, not a {kind} file (give the path of a regular file)"
    if not stat.S_ISREG(info.st_mode):
        return f"is not a regular file, so it cannot be read as a {kind} file"
    return None


def _check_path(path: object, kind: str) -> str:
    """The path as a str, after checking it names a non-empty regular file (without opening it, so
    a FIFO cannot block)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{kind} path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{kind} file not found: {path}") from None
    except (OSError, ValueError) as exc:  # permissions, a name too long, a NUL in the path, ...
        raise ValueError(f"cannot access the {kind} file {path!r}: {exc}") from None
    problem = special_file_problem(info, kind)
    if problem is not None:
        raise ValueError(f"{path} {problem}")
    if info.st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes)")
    return path


class MediaError(ValueError):
    """A media file that cannot be read as asked; the message names the file and the problem."""


@contextlib.contextmanager
def _reading(path: str, what: str) -> Iterator[None]:
    """Turn whatever decoding a corrupt file raises (PyAV's errors, ``OSError``, ``IndexError``, a
    ``MemoryError`` for absurd sizes, ...) into a ``ValueError`` naming ``path``; ``FileNotFoundError``
    stays for a file that vanished, ``ImportError`` for a missing PyAV."""
    try:
        yield
    except (MediaError, ImportError):
        raise
    except Exception as exc:
        if isinstance(exc, FileNotFoundError) and not os.path.exists(path):
            raise FileNotFoundError(f"media file not found: {path}") from exc
        raise MediaError(f"cannot decode {what} {path}: {type(exc).__name__}: {exc}") from exc


def _open(path: str) -> av.container.InputContainer:
    av = _av()
    try:  # metadata_errors: a tag that is not UTF-8 must not fail the file
        return av.open(path, mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        if isinstance(exc, FileNotFoundError) and not os.path.exists(path):
            raise FileNotFoundError(f"media file not found: {path}") from exc
        raise MediaError(f"cannot read {path}: not a media file FFmpeg understands ({exc})") from exc


def media_info(path: str | os.PathLike) -> MediaInfo:
    """Describe the first audio and video tracks of ``path``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for anything
    that is not a readable media file."""
    path = _check_path(path, "media")
    with _reading(path, "the tracks of"), _open(path) as container:
        audio = next(iter(container.streams.audio), None)
        video = next(iter(container.streams.video), None)
        duration = container.duration / _av().time_base if container.duration else None
        sound = audio.codec_context if audio is not None else None  # None too for a codec FFmpeg lacks
        picture = video.codec_context if video is not None else None
        return MediaInfo(
            path=path,
            has_audio=audio is not None,
            has_video=video is not None,
            sample_rate=getattr(sound, "sample_rate", None),
            channels=getattr(sound, "channels", None),
            fps=float(video.average_rate) if video is not None and video.average_rate else None,
            width=getattr(picture, "width", None),
            height=getattr(picture, "height", None),
            duration=duration,
        )


# ---------------------------------------------------------------------- audio


def _check_seconds(name: str, value: object, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {expected}, got {value!r}")
    return value


def load_audio(
    path: str | os.PathLike, sampling_rate: int = 48_000, *, offset: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """The first audio track of ``path`` as a 1-D float32 array at ``sampling_rate`` Hz (mono mixdown).

    Frames are decoded, converted to float, averaged over channels and resampled as they come
    (:class:`pe_av.processing.resample.StreamingResampler`, equal bit for bit to resampling the
    whole track), so memory stays at the output array plus a block of about 65536 samples.

    Args:
        path: an audio file, or a video file with an audio track.
        sampling_rate: output rate in Hz (positive int).
        offset: seconds to skip from the start (finite, >= 0). Offsets past about 2 s seek, so what
            comes before is not decoded. The samples are those of the whole track's output from
            ``round(offset · sampling_rate)`` on: exactly for PCM, FLAC and other decoders without
            state; after a seek, codecs whose decoders carry state (AAC noise substitution, Opus)
            may differ slightly from decoding the whole track.
        duration: seconds to return at most (finite, > 0): ``round(duration · sampling_rate)``
            samples, fewer when the track ends first. Decoding stops there.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file — not a regular file, not media, no audio track, nothing
            decodable, NaN or infinite samples, a channel layout or rate that changes mid-track, an
            ``offset`` past the end, or any decoding failure of a corrupt file.
        TypeError: a path or option of the wrong type.
    """
    path = _check_path(path, "audio")
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer, float)):
        raise TypeError(f"sampling_rate must be a positive integer number of Hz, got {type(sampling_rate).__name__}")
    if not math.isfinite(sampling_rate) or sampling_rate < 1 or int(sampling_rate) != sampling_rate:
        raise ValueError(f"sampling_rate must be a positive integer number of Hz, got {sampling_rate!r}")
    offset = _check_seconds("offset", offset, allow_zero=True)
    duration = None if duration is None else _check_seconds("duration", duration, allow_zero=False)
    start = round(offset * int(sampling_rate))
    count = None if duration is None else max(1, round(duration * int(sampling_rate)))
    with _reading(path, "the audio of"):
        # not at import time: media_audio imports this module and pe_av.processing
        from .media_audio import decode_audio

        result = decode_audio(path, int(sampling_rate), start, count)
    if result.size == 0:
        if start > 0:
            raise MediaError(f"{path}: offset={offset} s is at or past the end of the audio track")
        raise MediaError(f"{path}: the audio track holds no samples")
    return result


# ---------------------------------------------------------------------- video

def _check_size(size: object) -> object:
    if size is None or callable(size):
        return size
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size
    ):
        raise ValueError(f"size must be (height, width) with positive ints, or a function of (height, width) "
                         f"returning one, got {size!r}")
    return (int(size[0]), int(size[1]))


def load_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    size: tuple[int, int] | Callable | None = None,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """RGB frames ``(frames, H, W, 3)`` uint8 of the first video track of ``path``.

    Args:
        path: a video file.
        num_frames: keep only the evenly spaced frames :func:`sample_frame_indices` picks.
        fps: keep one frame every ``1/fps`` seconds (the file's frame rate says which); not with
            ``num_frames``.
        max_frames: keep at most this many: evenly spaced over the whole video when the other
            settings (or every frame) would give more. See :mod:`pe_av.media_frames` for the rules.
        size: ``(height, width)`` to resize each frame to as soon as it is decoded, with the video
            processor's resize (:func:`pe_av.processing.video.resize_frames`, antialiased bilinear),
            so memory holds the output frames plus one full-size frame rather than every full-size
            frame; or a function ``(height, width) → (h, w)`` of the decoded frame's size (how the
            processor passes a ``shortest_edge`` size). The frames equal resizing the full-size
            frames afterwards. Default: decoded size.

    With sampling, frame ``i`` is the one with the ``i``-th smallest packet timestamp, and the decoder
    seeks to the keyframe before each kept frame, so the frames between kept ones are mostly not
    decoded (see :mod:`pe_av.media_video`). Default: every frame.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file — not a regular file, not media, no video track, no decodable
            frame, frames that change size mid-stream (without ``size``), or any decoding failure;
            bad sampling settings.
    """
    path = _check_path(path, "video")
    sampling = FrameSampling(num_frames=num_frames, fps=fps, max_frames=max_frames)
    size = _check_size(size)
    with _reading(path, "the video of"):
        # not at import time: media_video imports this module
        from .media_video import decode_video, frame_converter

        frames = decode_video(path, sampling, frame_converter(size))
        if not frames:
            raise MediaError(f"{path}: the video track holds no decodable frames")
        shapes = sorted({frame.shape for frame in frames})
        if len(shapes) > 1:
            raise MediaError(f"{path}: the video's frames change size mid-stream ({shapes[0][:2]} and "
                             f"{shapes[-1][:2]}); pass size=(height, width) to resize them as they are decoded")
        return np.stack(frames)
