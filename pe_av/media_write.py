"""Small encoders for the demo and the tests: :func:`write_audio` and :func:`write_video` (PyAV).

Re-exported by :mod:`pe_av.media`; PyAV is imported when a writer runs (``ImportError`` naming
``pip install av`` when missing).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

#: extension → (video codec, audio codec) used by the writers
VIDEO_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "flac"),
    ".webm": ("libvpx-vp9", "libopus"),
}
AUDIO_CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus", ".m4a": "aac"}


def _av():
    from .media import _av  # not at import time: pe_av.media imports this module

    return _av()


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
    keyframe_interval: int | None = None,
) -> Path:
    """Encode RGB uint8 frames ``(frames, H, W, 3)`` (even H and W), optionally with an audio track,
    to ``path``; codecs follow the extension (:data:`VIDEO_CODECS`). ``keyframe_interval``: frames
    between keyframes (the codec's default when None)."""
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
        if keyframe_interval is not None:
            stream.codec_context.gop_size = keyframe_interval
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
