"""Processors: text, audio and video in → the model's keyword arguments out.

- :mod:`.processor`: :class:`PeAudioVideoProcessor` / :class:`PeAudioProcessor` /
  :class:`PeVideoProcessor` (transformers' names);
- :mod:`.batch`: the :class:`BatchFeature` they return (and the tokenizer's :class:`BatchEncoding`);
- :mod:`.audio`: :class:`PeAudioFeatureExtractor` (waveforms → ``input_values`` + ``padding_mask``);
- :mod:`.video` (+ :mod:`.video_frames`): :class:`PeVideoVideoProcessor` (frames → ``pixel_values_videos`` +
  ``padding_mask_videos``);
- :mod:`.text` (+ :mod:`.text_vocab`, :mod:`.text_inputs`): :class:`PeTokenizer` (text → ``input_ids`` +
  ``attention_mask``, and back);
- :mod:`.options`: call defaults and the routing of a processor's keywords to its parts;
- :mod:`.files`: local directories or hub ids, transformers' loading keywords;
- :mod:`.resample`: band-limited resampling of waveforms.

Decoding files lives in :mod:`pe_av.media`, which also owns frame sampling
(:func:`~pe_av.media.sample_frame_indices`, re-exported here); ``media`` imports nothing of this
package at import time, so the two never form an import cycle.
"""

from .audio import PeAudioFeatureExtractor, reflect_pad_to_multiple
from .batch import BatchEncoding, BatchFeature
from .processor import PeAudioProcessor, PeAudioVideoProcessor, PeVideoProcessor
from .resample import resample
from .text import PeTokenizer, check_texts
from .video import PeVideoVideoProcessor, resize_frames, sample_frame_indices

__all__ = [
    "BatchEncoding",
    "BatchFeature",
    "PeAudioFeatureExtractor",
    "PeAudioProcessor",
    "PeAudioVideoProcessor",
    "PeTokenizer",
    "PeVideoProcessor",
    "PeVideoVideoProcessor",
    "check_texts",
    "reflect_pad_to_multiple",
    "resample",
    "resize_frames",
    "sample_frame_indices",
]
