"""Processors: text, audio and video in → the model's keyword arguments out.

``PeAudioVideoProcessor.from_pretrained(dir)(text=..., audio=..., videos=...)`` returns a
:class:`BatchFeature` (a dict of torch tensors) ready for ``model(**inputs)``, with transformers' key
names: ``input_ids``, ``attention_mask``, ``input_values``, ``padding_mask``, ``pixel_values_videos``,
``padding_mask_videos``. ``PeAudioProcessor`` (text + audio) and ``PeVideoProcessor`` (text + video)
are the single-modality variants, as in transformers.

``from_pretrained`` reads what transformers' ``save_pretrained`` writes: ``processor_config.json``
(transformers 5 nests the feature extractor and video processor configs in it), or the separate
``preprocessor_config.json`` / ``video_preprocessor_config.json`` of older versions, plus
``tokenizer.json`` and ``tokenizer_config.json``. :meth:`save_pretrained` writes the transformers 5
layout, which transformers' ``AutoProcessor`` loads back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..json_io import read_json_object
from ..loading import resolve_model_dir
from .audio import PeAudioFeatureExtractor
from .text import PeTokenizer
from .video import PeVideoVideoProcessor

PROCESSOR_CONFIG = "processor_config.json"
FEATURE_EXTRACTOR_CONFIG = "preprocessor_config.json"
VIDEO_PROCESSOR_CONFIG = "video_preprocessor_config.json"

__all__ = ["BatchFeature", "PeAudioProcessor", "PeAudioVideoProcessor", "PeVideoProcessor"]


class BatchFeature(dict):
    """A dict of tensors with attribute access and :meth:`to` (as transformers' ``BatchFeature``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no input named {name!r}; have {sorted(self)}") from None

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> BatchFeature:
        """Move every tensor to ``device``; cast floating ones (waveforms, pixels) to ``dtype``."""
        moved = BatchFeature()
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                cast = dtype if dtype is not None and value.is_floating_point() else None
                value = value.to(device=device, dtype=cast)
            moved[key] = value
        return moved


class PeAudioVideoProcessor:
    """Text + audio + video preprocessing of PE-AV (transformers' ``PeAudioVideoProcessor``).

    Args:
        feature_extractor: audio part (:class:`PeAudioFeatureExtractor`).
        video_processor: video part (:class:`PeVideoVideoProcessor`).
        tokenizer: text part (:class:`PeTokenizer`).
    Any part may be missing; calling with that modality then raises.
    """

    modalities: ClassVar[tuple[str, ...]] = ("text", "audio", "video")

    def __init__(
        self,
        feature_extractor: PeAudioFeatureExtractor | None = None,
        video_processor: PeVideoVideoProcessor | None = None,
        tokenizer: PeTokenizer | None = None,
    ) -> None:
        parts = (
            ("feature_extractor", feature_extractor, PeAudioFeatureExtractor, "audio"),
            ("video_processor", video_processor, PeVideoVideoProcessor, "video"),
            ("tokenizer", tokenizer, PeTokenizer, "text"),
        )
        for name, part, cls, modality in parts:
            if part is not None and not isinstance(part, cls):
                raise TypeError(f"{name} must be a {cls.__name__}, got {type(part).__name__}")
            if part is not None and modality not in self.modalities:
                raise ValueError(f"{type(self).__name__} takes no {name} (it handles {', '.join(self.modalities)})")
        self.feature_extractor = feature_extractor
        self.video_processor = video_processor
        self.tokenizer = tokenizer

    # ------------------------------------------------------------------ loading / saving

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> PeAudioVideoProcessor:
        """Load the processor files transformers saves in ``directory`` (those this class handles); a hub
        id is fetched through ``huggingface_hub`` when installed, as for the models."""
        directory = Path(resolve_model_dir(directory))
        nested = _read_if_present(directory / PROCESSOR_CONFIG)
        legacy = _read_if_present(directory / FEATURE_EXTRACTOR_CONFIG)
        audio_config = nested.get("feature_extractor")
        if audio_config is None and "video_processor_type" not in legacy and legacy:
            audio_config = legacy
        video_config = nested.get("video_processor")
        if video_config is None:
            video_config = _read_if_present(directory / VIDEO_PROCESSOR_CONFIG) or None
        if video_config is None and "video_processor_type" in legacy:
            video_config = legacy
        for name, config in (("feature_extractor", audio_config), ("video_processor", video_config)):
            if config is not None and not isinstance(config, dict):
                raise ValueError(f"the {name} config in {directory} must be a JSON object, got {type(config).__name__}")
        parts = {
            "feature_extractor": PeAudioFeatureExtractor.from_dict(audio_config)
            if audio_config is not None and "audio" in cls.modalities
            else None,
            "video_processor": PeVideoVideoProcessor.from_dict(video_config)
            if video_config is not None and "video" in cls.modalities
            else None,
            "tokenizer": PeTokenizer.from_pretrained(directory) if (directory / "tokenizer.json").is_file() else None,
        }
        if all(part is None for part in parts.values()):
            raise FileNotFoundError(
                f"no processor files in {directory}: looked for {PROCESSOR_CONFIG}, {FEATURE_EXTRACTOR_CONFIG}, "
                f"{VIDEO_PROCESSOR_CONFIG} and tokenizer.json"
            )
        return cls(**{name: part for name, part in parts.items() if name in cls._part_names()})

    @classmethod
    def _part_names(cls) -> tuple[str, ...]:
        names = {"audio": "feature_extractor", "video": "video_processor", "text": "tokenizer"}
        return tuple(names[m] for m in cls.modalities)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``processor_config.json`` (+ tokenizer files) in transformers 5's layout."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"processor_class": type(self).__name__}
        if self.feature_extractor is not None:
            config["feature_extractor"] = self.feature_extractor.to_dict()
        if self.video_processor is not None:
            config["video_processor"] = self.video_processor.to_dict()
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if self.tokenizer is not None:
            self.tokenizer.extra["processor_class"] = type(self).__name__
            self.tokenizer.save_pretrained(directory)

    # ------------------------------------------------------------------ call

    def __call__(
        self,
        text: str | list[str] | None = None,
        audio: object = None,
        videos: object = None,
        *,
        sampling_rate: int | None = None,
        num_frames: int | None = None,
        padding: bool | str = True,
        truncation: bool = True,
        max_length: int | None = None,
    ) -> BatchFeature:
        """Preprocess any non-empty combination of text, audio and videos.

        Args:
            text: a string or a list of strings (tokenized, padded, truncated at ``max_length``).
            audio: clip(s) as arrays/tensors or file paths, see :class:`PeAudioFeatureExtractor`.
            videos: video(s) as frame arrays/tensors or file paths, see :class:`PeVideoVideoProcessor`.
            sampling_rate: rate of the audio arrays (default 48 kHz; others are resampled).
            num_frames: frames to sample per video (default: the video config's).
            padding, truncation, max_length: text options, see :class:`PeTokenizer`.

        Returns:
            :class:`BatchFeature` of torch tensors; pass it as ``model(**inputs)``.
        """
        if text is None and audio is None and videos is None:
            raise ValueError(f"{type(self).__name__} needs at least one of text, audio or videos")
        out = BatchFeature()
        if text is not None:
            tokenizer = self._part("tokenizer", "text")
            out.update(tokenizer(text, padding=padding, truncation=truncation, max_length=max_length))
        if audio is not None:
            out.update(self._part("feature_extractor", "audio")(audio, sampling_rate=sampling_rate))
        elif sampling_rate is not None:
            raise ValueError("sampling_rate was given without audio")
        if videos is not None:
            out.update(self._part("video_processor", "videos")(videos, num_frames=num_frames))
        elif num_frames is not None:
            raise ValueError("num_frames was given without videos")
        return out

    def _part(self, name: str, argument: str):
        part = getattr(self, name, None)
        if part is None:
            if name not in self._part_names():
                handled = ", ".join(self.modalities)
                raise ValueError(f"{type(self).__name__} does not take {argument} (it handles {handled})")
            raise ValueError(f"{type(self).__name__} has no {name}, so it cannot process {argument}")
        return part

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={type(getattr(self, name)).__name__}" for name in self._part_names())
        return f"{type(self).__name__}({parts})"


class PeAudioProcessor(PeAudioVideoProcessor):
    """Text + audio preprocessing (transformers' ``PeAudioProcessor``), for ``PeAudioModel``."""

    modalities = ("text", "audio")

    def __init__(self, feature_extractor: PeAudioFeatureExtractor | None = None, tokenizer: PeTokenizer | None = None):
        super().__init__(feature_extractor=feature_extractor, tokenizer=tokenizer)


class PeVideoProcessor(PeAudioVideoProcessor):
    """Text + video preprocessing (transformers' ``PeVideoProcessor``), for ``PeVideoModel``."""

    modalities = ("text", "video")

    def __init__(self, video_processor: PeVideoVideoProcessor | None = None, tokenizer: PeTokenizer | None = None):
        super().__init__(video_processor=video_processor, tokenizer=tokenizer)


def _read_if_present(path: Path) -> dict[str, Any]:
    return read_json_object(path, holds="processor settings") if path.is_file() else {}
