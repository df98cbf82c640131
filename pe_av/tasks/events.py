"""Sound events with timestamps from a frame-level model (``PeAudioFrameLevelModel``, PE-A-Frame).

The model scores every audio frame against each text query: ``p = sigmoid(frame · query · scale +
bias)`` with its learned ``text_audio_logit_scale`` / ``_bias``. One frame is ``hop_length`` samples
(the product of the DAC encoder's strides, from the model's config) at the processor's sampling
rate: 1920 / 48000 = 40 ms for the released models. Frame ``i`` covers ``[i, i + 1)`` frame periods.

From the scores to events (:func:`events_from_scores`, a pure function), per query:

1. ``median_filter`` (seconds, optional): a running median over that many frames (rounded to an odd
   count, edges repeated), which removes isolated spikes and one-frame dropouts;
2. ``threshold``: frames with ``p > threshold`` are active (the original code's rule, default 0.3);
3. each run of active frames is a span; spans separated by at most ``merge_gap`` seconds of
   inactive frames are merged into one;
4. spans shorter than ``min_duration`` seconds are dropped (after merging);
5. each event is ``(query, onset_s, offset_s, score)`` with ``score`` the highest (filtered)
   probability inside it; offsets are clipped to the audio's duration.

Long audio is scored in windows of ``window_s`` seconds (:func:`pe_av.tasks.long_media.iter_audio_windows`,
aligned on the frame grid); where windows overlap (``hop_s < window_s``) a frame's probability is the
mean of the windows' probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..models import PeAudioFrameLevelModel
from ..models.heads import scaled_logits

__all__ = ["Event", "EventDetection", "detect_events", "events_from_scores", "median_smooth"]


class Event(NamedTuple):
    """One detected event: its query, onset and offset in seconds, and its peak probability."""

    query: str
    onset_s: float
    offset_s: float
    score: float


@dataclass
class EventDetection:
    """What :func:`detect_events` returns: the ``events`` (iterate it for them) and the per-frame
    probabilities ``scores`` ``(queries, frames)`` they were found in (after the median filter)."""

    events: list[Event]
    queries: list[str]
    scores: np.ndarray
    frame_period: float
    duration: float
    threshold: float

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def rows(self) -> list[dict[str, object]]:
        """The events as dicts ``{query, onset_s, offset_s, score}`` (for JSON/CSV)."""
        return [event._asdict() for event in self.events]


def median_smooth(scores: np.ndarray, width: int) -> np.ndarray:
    """Running median over the last axis with an odd ``width`` (edges repeated); ``width`` 1: unchanged."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1 or width % 2 == 0:
        raise ValueError(f"width must be a positive odd int, got {width!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if width == 1 or scores.shape[-1] == 0:
        return scores.copy()
    half = width // 2
    padded = np.concatenate([np.repeat(scores[..., :1], half, -1), scores, np.repeat(scores[..., -1:], half, -1)], -1)
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1), axis=-1)


def _spans(active: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` frame ranges of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _check_seconds(name: str, value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def filter_width(median_filter: float | None, frame_period: float) -> int:
    """The odd number of frames a ``median_filter`` of that many seconds spans (1: no filter)."""
    frames = max(1, round(_check_seconds("median_filter", median_filter) / frame_period))
    return frames if frames % 2 else frames + 1


def events_from_scores(
    scores: np.ndarray,
    queries: Sequence[str],
    frame_period: float,
    *,
    threshold: float = 0.3,
    median_filter: float | None = None,
    min_duration: float = 0.0,
    merge_gap: float = 0.0,
    duration: float | None = None,
) -> list[Event]:
    """Events from per-frame probabilities ``scores`` ``(queries, frames)`` (steps: module docstring),
    sorted by onset, then query order."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(queries):
        raise ValueError(f"scores must be (queries, frames) with {len(queries)} queries, got shape {scores.shape}")
    if not (isinstance(frame_period, (int, float)) and frame_period > 0):
        raise ValueError(f"frame_period must be a positive number of seconds, got {frame_period!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
        raise ValueError(f"threshold must be a probability in [0, 1), got {threshold!r}")
    min_duration, merge_gap = _check_seconds("min_duration", min_duration), _check_seconds("merge_gap", merge_gap)
    end = scores.shape[1] * frame_period if duration is None else float(duration)
    smoothed = median_smooth(scores, filter_width(median_filter, frame_period))
    gap_frames = merge_gap / frame_period + 1e-9
    events = []
    for q, query in enumerate(queries):
        merged: list[list[int]] = []
        for start, stop in _spans(smoothed[q] > threshold):
            if merged and start - merged[-1][1] <= gap_frames:
                merged[-1][1] = stop
            else:
                merged.append([start, stop])
        for start, stop in merged:
            onset, offset = start * frame_period, min(stop * frame_period, end)
            if offset - onset + 1e-9 >= min_duration and offset > onset:
                events.append(Event(query, onset, offset, float(smoothed[q, start:stop].max())))
    order = {query: i for i, query in enumerate(queries)}
    return sorted(events, key=lambda e: (e.onset_s, order[e.query]))


def frame_period(model: PeAudioFrameLevelModel, processor: object) -> float:
    """Seconds per audio frame: the model's ``hop_length`` samples at the processor's sampling rate."""
    hop = model.config.audio_config.dac_config.hop_length
    return hop / processor.feature_extractor.sampling_rate


def frame_scores(model, processor, audio, queries, window_s=30.0, hop_s=None, batch_size=4, progress=None):
    """``(probabilities (queries, frames), duration_s)`` of ``audio`` (a path or 1-D array at the
    processor's rate), window by window (overlaps averaged)."""
    from ..encode import _tqdm
    from .long_media import _batches, iter_audio_windows

    hop, rate = model.config.audio_config.dac_config.hop_length, processor.feature_extractor.sampling_rate
    with torch.inference_mode():
        text = processor(text=list(queries)).to(model.device)
        queries_embeds = model.get_text_audio_embeds(text["input_ids"], text["attention_mask"])
    scale, bias = model.text_audio_logit_scale, model.text_audio_logit_bias
    total, count, end = np.zeros((len(queries), 0)), np.zeros(0), 0
    windows = iter_audio_windows(audio, rate, window_s, hop_s, align=hop)
    with _tqdm()(desc="scoring frames", unit="window", disable=not progress) as bar:
        for batch in _batches(windows, batch_size):
            inputs = processor(audio=[w.samples for w in batch]).to(model.device, model.dtype)
            with torch.inference_mode():
                frames = model.get_audio_embeds(inputs["input_values"], inputs["padding_mask"])
                probs = scaled_logits(frames, queries_embeds, scale, bias).float().sigmoid().cpu().numpy()
            for window, window_probs in zip(batch, probs):
                first, n = window.start // hop, math.ceil(len(window.samples) / hop)
                if first + n > total.shape[1]:
                    grow = first + n - total.shape[1]
                    total, count = np.pad(total, ((0, 0), (0, grow))), np.pad(count, (0, grow))
                total[:, first : first + n] += window_probs[:, :n]
                count[first : first + n] += 1
                end = max(end, window.start + len(window.samples))
            bar.update(len(batch))
    return total / np.maximum(count, 1), end / rate


def detect_events(
    model: PeAudioFrameLevelModel,
    processor: object,
    audio: object,
    queries: Sequence[str],
    *,
    threshold: float = 0.3,
    median_filter: float | None = None,
    min_duration: float = 0.0,
    merge_gap: float = 0.0,
    window_s: float = 30.0,
    hop_s: float | None = None,
    batch_size: int = 4,
    progress: bool | None = None,
) -> EventDetection:
    """Find when each text query sounds in ``audio`` (a file path, or a 1-D float array at the
    processor's sampling rate); see the module docstring for every step and parameter.

    Returns:
        :class:`EventDetection`: iterate it for :class:`Event` rows ``(query, onset_s, offset_s, score)``.
    """
    if not isinstance(model, PeAudioFrameLevelModel):
        raise TypeError(f"detect_events needs a PeAudioFrameLevelModel (per-frame scores), got {type(model).__name__}")
    if isinstance(queries, str) or not isinstance(queries, Sequence) or not queries or \
            not all(isinstance(q, str) and q.strip() for q in queries):
        raise ValueError(f"queries must be a non-empty list of non-empty strings, got {queries!r}")
    if len(set(queries)) != len(queries):
        raise ValueError(f"queries must be distinct, got {list(queries)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    period = frame_period(model, processor)
    options = {"threshold": threshold, "median_filter": median_filter, "min_duration": min_duration,
               "merge_gap": merge_gap}
    events_from_scores(np.zeros((len(queries), 0)), queries, period, **options)  # checks them before the work
    scores, duration = frame_scores(model, processor, audio, queries, window_s, hop_s, batch_size, progress)
    events = events_from_scores(scores, queries, period, duration=duration, **options)
    smoothed = median_smooth(scores, filter_width(median_filter, period))
    return EventDetection(events, list(queries), smoothed, period, duration, float(threshold))
