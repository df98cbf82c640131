"""Long audio in windows: per-window embeddings with timestamps, and one pooled embedding.

PE-AV was trained on clips of about 30 s; a longer recording is cut into windows of ``window_s``
seconds starting every ``hop_s`` seconds (default: ``hop_s = window_s``, no overlap; the last
window is whatever is left, shorter). Each window is decoded on its own
(:func:`pe_av.media.load_audio` with ``offset`` / ``duration``, which seeks), so memory holds a batch
of windows, never the whole file: a 10-minute file peaks like a 30-second one.

**Pooling.** ``pooled`` is the mean of the window embeddings, each first scaled to unit length and
weighted by the seconds of audio it covers (a short last window counts less), then scaled to unit
length again (with ``normalize=False``: the same weighted mean of the raw embeddings, not rescaled).
For audio no longer than one window there is one window, and ``pooled`` is that clip's embedding.

:func:`iter_audio_windows` (the windows themselves) is shared with :func:`pe_av.detect_events` and
can be used by anything that walks long audio.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["AudioWindow", "WindowedEmbeddings", "embed_audio_windows", "iter_audio_windows", "window_samples"]


@dataclass
class AudioWindow:
    """One window: its first sample (at ``rate``), its samples, and its place in seconds."""

    start: int
    samples: np.ndarray
    rate: int

    @property
    def start_s(self) -> float:
        return self.start / self.rate

    @property
    def end_s(self) -> float:
        return (self.start + len(self.samples)) / self.rate


@dataclass
class WindowedEmbeddings:
    """What :func:`embed_audio_windows` returns: ``embeddings`` ``(windows, D)`` float32, the windows'
    ``starts`` and ``ends`` in seconds, and the ``pooled`` ``(D,)`` embedding (module docstring)."""

    embeddings: torch.Tensor
    starts: list[float]
    ends: list[float]
    pooled: torch.Tensor


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def window_samples(rate: int, window_s: float, hop_s: float | None, align: int = 1) -> tuple[int, int]:
    """``(window, hop)`` in samples at ``rate``, each rounded to a multiple of ``align`` (at least one)."""
    window_s = _seconds("window_s", window_s)
    hop_s = window_s if hop_s is None else _seconds("hop_s", hop_s)
    if hop_s > window_s:
        raise ValueError(f"hop_s ({hop_s}) must not exceed window_s ({window_s}): audio between windows would be skipped")
    window = max(1, round(window_s * rate / align)) * align
    hop = max(1, round(hop_s * rate / align)) * align
    return window, min(hop, window)


def iter_audio_windows(
    audio: object, sampling_rate: int = 48_000, window_s: float = 30.0, hop_s: float | None = None, align: int = 1
) -> Iterator[AudioWindow]:
    """The windows of ``audio`` — a file path (decoded window by window, seeking) or a 1-D float array
    at ``sampling_rate`` — in order. ``align``: window and hop are multiples of this many samples (the
    model's hop, so that windows start on its frame grid)."""
    window, hop = window_samples(sampling_rate, window_s, hop_s, align)
    if isinstance(audio, (str, os.PathLike)):
        yield from _file_windows(audio, sampling_rate, window, hop)
        return
    samples = _as_samples(audio)
    start = 0
    while True:
        yield AudioWindow(start, samples[start : start + window], sampling_rate)
        if start + window >= len(samples):
            return
        start += hop


def _file_windows(path: str | os.PathLike, rate: int, window: int, hop: int) -> Iterator[AudioWindow]:
    from ..media import load_audio

    start = 0
    while True:
        # one sample more than the window says whether audio goes on after it
        samples = load_audio(path, rate, offset=start / rate, duration=(window + 1) / rate)
        yield AudioWindow(start, samples[:window], rate)
        if len(samples) <= window:
            return
        start += hop


def _as_samples(audio: object) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if not isinstance(audio, np.ndarray) or audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        shape = getattr(audio, "shape", None)
        raise ValueError(f"audio must be a file path or a 1-D float array of samples, got {type(audio).__name__}"
                         + (f" of shape {tuple(shape)}" if shape is not None else ""))
    if len(audio) == 0:
        raise ValueError("audio has no samples")
    return audio.astype(np.float32, copy=False)


def _batches(windows: Iterator[AudioWindow], size: int) -> Iterator[list[AudioWindow]]:
    batch: list[AudioWindow] = []
    for window in windows:
        batch.append(window)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _window_count(audio: object, rate: int, window: int, hop: int) -> int | None:
    """How many windows there will be, for the progress bar (None when the file does not say)."""
    from ..media import media_info

    if isinstance(audio, (str, os.PathLike)):
        try:
            seconds = media_info(audio).duration
        except (OSError, ValueError):
            return None
        if not seconds:
            return None
        total = int(seconds * rate)
    else:
        total = len(audio)
    return 1 + max(0, math.ceil((total - window) / hop))


def embed_audio_windows(
    model: torch.nn.Module,
    processor: object,
    audio: object,
    *,
    window_s: float = 30.0,
    hop_s: float | None = None,
    sampling_rate: int | None = None,
    batch_size: int = 4,
    normalize: bool = True,
    progress: bool | None = None,
) -> WindowedEmbeddings:
    """Embed one (long) audio input window by window (see the module docstring).

    Args:
        model / processor: as :func:`pe_av.encode_audio` takes them.
        audio: a file path, or a 1-D float array at ``sampling_rate`` (default: the processor's, 48 kHz).
        window_s / hop_s: window length and the step between window starts, in seconds.
        batch_size: windows embedded at once (memory grows with it, not with the file).
        normalize: L2-normalize each window's embedding (and the pooled one).
        progress: a tqdm bar over the windows (default: when there is more than one batch).
    """
    from ..encode import _tqdm, encode_audio

    rate = int(sampling_rate or getattr(getattr(processor, "feature_extractor", None), "sampling_rate", 48_000))
    window, hop = window_samples(rate, window_s, hop_s)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    count = _window_count(audio, rate, window, hop)
    show = progress if progress is not None else count is None or count > batch_size
    rows, starts, ends, weights = [], [], [], []
    with _tqdm()(total=count, desc="audio windows", unit="window", disable=not show) as bar:
        for batch in _batches(iter_audio_windows(audio, rate, window / rate, hop / rate), batch_size):
            rows.append(encode_audio(model, processor, [w.samples for w in batch], sampling_rate=rate,
                                     batch_size=len(batch), normalize=False, progress=False).float())
            starts += [w.start_s for w in batch]
            ends += [w.end_s for w in batch]
            weights += [len(w.samples) for w in batch]
            bar.update(len(batch))
    raw = torch.cat(rows)
    weight = torch.tensor(weights, dtype=torch.float32)[:, None]
    unit = F.normalize(raw, dim=-1)
    pooled = F.normalize((unit * weight).sum(0) / weight.sum(), dim=-1) if normalize \
        else (raw * weight).sum(0) / weight.sum()
    return WindowedEmbeddings(unit if normalize else raw, starts, ends, pooled)
