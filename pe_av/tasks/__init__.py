"""The layer above the model: zero-shot classification, sound events with timestamps, long audio.

- :func:`classify` (:mod:`.classify`): media × label names → probabilities, with prompt-template
  ensembles (:mod:`.templates`) and the model's own pair logit scale and bias.
- :func:`detect_events` (:mod:`.events`): a ``PeAudioFrameLevelModel``'s per-frame scores → events
  ``(query, onset_s, offset_s, score)``; :func:`plot_events` (:mod:`.plot`, needs matplotlib) draws them.
- :func:`embed_audio_windows` (:mod:`.long_media`): audio longer than a window → per-window embeddings
  with timestamps and a pooled embedding, decoded window by window.
"""

from .classify import Classification, classify, label_embeddings
from .events import Event, EventDetection, detect_events, events_from_scores
from .long_media import (
    AudioWindow,
    WindowedEmbeddings,
    embed_audio_windows,
    iter_audio_windows,
)
from .plot import plot_events
from .templates import TEMPLATE_SETS, read_templates

__all__ = [
    "TEMPLATE_SETS",
    "AudioWindow",
    "Classification",
    "Event",
    "EventDetection",
    "WindowedEmbeddings",
    "classify",
    "detect_events",
    "embed_audio_windows",
    "events_from_scores",
    "iter_audio_windows",
    "label_embeddings",
    "plot_events",
    "read_templates",
]
