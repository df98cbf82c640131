"""Processors: text, audio and video in → the model's keyword arguments out.

``PeAudioVideoProcessor.from_pretrained(dir)(text=..., audio=..., videos=...)`` returns a
:class:`BatchFeature` (a dict of torch tensors) ready for ``model(**inputs)``, with transformers' key
names: ``input_ids``, ``attention_mask``, ``input_values``, ``padding_mask``, ``pixel_values_videos``,
``padding_mask_videos``. ``PeAudioProcessor`` (text + audio) and ``PeVideoProcessor`` (text + video)
are the single-modality variants, as in transformers.

Calls take transformers' keywords, routed to the parts as ``ProcessorMixin`` routes them
(:mod:`.options`): ``return_tensors`` ("pt" when not given, "np", None), ``padding``, ``max_length``,
``truncation`` (text only), ``sampling_rate``, ``num_frames`` and the other video settings, and the
``text_kwargs`` / ``audio_kwargs`` / ``videos_kwargs`` dicts.

``from_pretrained`` reads what transformers' ``save_pretrained`` writes: ``processor_config.json``
(transformers 5 nests the feature extractor and video processor configs in it), or the separate
``preprocessor_config.json`` / ``video_preprocessor_config.json`` of older versions, plus
``tokenizer.json`` and ``tokenizer_config.json``; it takes transformers' loading keywords
(:mod:`.files`). :meth:`save_pretrained` writes the transformers 5 layout, which transformers'
``AutoProcessor`` loads back. The constructor also takes transformers' own parts (its tokenizer,
feature extractor or video processor), converted to ours.

Differences from ``ProcessorMixin``: positional arguments are ``(text, audio, videos)`` (transformers:
``(images, text, videos, audio)``; by keyword both are the same); ``images=`` is a ``ValueError`` (there it
is ignored); ``sampling_rate`` without audio or ``num_frames`` without videos is a ``ValueError`` (there it
is ignored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from .audio import KNOWN as AUDIO_SETTINGS
from .audio import PeAudioFeatureExtractor
from .batch import BatchFeature
from .files import (
    FEATURE_EXTRACTOR_CONFIG,
    PROCESSOR_CONFIG,
    VIDEO_PROCESSOR_CONFIG,
    apply_overrides,
    part_configs,
    resolve_processor_dir,
    split_loading_kwargs,
    warn_unused,
)
from .options import AUDIO_KEYS, TEXT_KEYS, UNSET, VIDEO_KEYS, route_kwargs
from .text import SETTINGS as TEXT_SETTINGS
from .text import PeTokenizer
from .video import _KNOWN as VIDEO_SETTINGS
from .video import PeVideoVideoProcessor

__all__ = ["BatchFeature", "PeAudioProcessor", "PeAudioVideoProcessor", "PeVideoProcessor"]

_PARTS = {"audio": "feature_extractor", "video": "video_processor", "text": "tokenizer"}


def _adopt(name: str, part: object, cls: type) -> object:
    """``part`` as a pe_av part: ours as it is, transformers' converted (same settings), else a ``TypeError``."""
    if part is None or isinstance(part, cls):
        return part
    if cls is PeTokenizer and hasattr(part, "backend_tokenizer"):
        return PeTokenizer.from_transformers(part)
    if type(part).__name__ == cls.__name__ and type(part).__module__.startswith("transformers"):
        return cls.from_dict(part.to_dict())
    raise TypeError(f"{name} must be a {cls.__name__} (ours or transformers'), got {type(part).__name__}")


class PeAudioVideoProcessor:
    """Text + audio + video preprocessing of PE-AV (transformers' ``PeAudioVideoProcessor``).

    Args:
        feature_extractor: audio part (:class:`PeAudioFeatureExtractor`, or transformers' of that name).
        video_processor: video part (:class:`PeVideoVideoProcessor`, or transformers' of that name).
        tokenizer: text part (:class:`PeTokenizer`, or a transformers fast tokenizer).
    Any part may be missing; calling with that modality then raises.
    """

    modalities: ClassVar[tuple[str, ...]] = ("text", "audio", "video")
    attributes: ClassVar[list[str]] = ["feature_extractor", "video_processor", "tokenizer"]

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
            if part is not None and modality not in self.modalities:
                raise ValueError(f"{type(self).__name__} takes no {name} (it handles {', '.join(self.modalities)})")
            setattr(self, name, _adopt(name, part, cls))

    # ------------------------------------------------------------------ loading / saving

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> PeAudioVideoProcessor:
        """Load the processor files transformers saves in ``path`` (a directory or a hub id), those this class
        handles. Keywords: transformers' loading keywords, and settings of any part (``num_frames=8``,
        ``padding_side="left"``, ...) that override the saved ones (see :mod:`pe_av.processing.files`)."""
        hub, overrides = split_loading_kwargs(kwargs)
        directory = resolve_processor_dir(path, hub)
        configs = part_configs(directory)
        used: set[str] = set(TEXT_SETTINGS)
        parts: dict[str, Any] = {"feature_extractor": None, "video_processor": None, "tokenizer": None}
        audio, video = configs["feature_extractor"], configs["video_processor"]
        if audio is not None and "audio" in cls.modalities:
            audio = apply_overrides(audio, overrides, AUDIO_SETTINGS)
            used |= set(audio)
            parts["feature_extractor"] = PeAudioFeatureExtractor.from_dict(audio)
        if video is not None and "video" in cls.modalities:
            video = apply_overrides(video, overrides, VIDEO_SETTINGS)
            used |= set(video)
            parts["video_processor"] = PeVideoVideoProcessor.from_dict(video)
        if (directory / "tokenizer.json").is_file():
            text_overrides = {key: value for key, value in overrides.items() if key in TEXT_SETTINGS}
            parts["tokenizer"] = PeTokenizer.from_pretrained(directory, **text_overrides)
            parts["tokenizer"].name_or_path = os.fspath(path)
        if all(part is None for part in parts.values()):
            raise FileNotFoundError(
                f"no processor files in {directory}: looked for {PROCESSOR_CONFIG}, {FEATURE_EXTRACTOR_CONFIG}, "
                f"{VIDEO_PROCESSOR_CONFIG} and tokenizer.json"
            )
        warn_unused(overrides, used, cls.__name__)
        return cls(**{name: part for name, part in parts.items() if name in cls._part_names()})

    @classmethod
    def _part_names(cls) -> tuple[str, ...]:
        return tuple(_PARTS[m] for m in cls.modalities)

    @classmethod
    def get_attributes(cls) -> list[str]:
        """The names of the parts (transformers' ``ProcessorMixin.get_attributes``)."""
        return list(cls.attributes)

    def save_pretrained(self, directory: str | os.PathLike, **kwargs: Any) -> list[str]:
        """Write ``processor_config.json`` (+ tokenizer files) in transformers 5's layout."""
        if kwargs.get("push_to_hub"):
            raise ValueError("push_to_hub is not supported: save locally, then upload with huggingface_hub")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"processor_class": type(self).__name__}
        if self.feature_extractor is not None:
            config["feature_extractor"] = self.feature_extractor.to_dict()
        if self.video_processor is not None:
            config["video_processor"] = self.video_processor.to_dict()
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        files = [str(directory / PROCESSOR_CONFIG)]
        if self.tokenizer is not None:
            self.tokenizer.extra["processor_class"] = type(self).__name__
            files += self.tokenizer.save_pretrained(directory)
        return files

    # ------------------------------------------------------------------ call

    def __call__(
        self,
        text: str | list[str] | None = None,
        audio: object = None,
        videos: object = None,
        *,
        images: object = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Preprocess any non-empty combination of text, audio and videos.

        Args:
            text: a string or a list of strings (see :class:`PeTokenizer`).
            audio: clip(s) as arrays/tensors or file paths, see :class:`PeAudioFeatureExtractor`.
            videos: video(s) as frame arrays/tensors or file paths, see :class:`PeVideoVideoProcessor`.
            kwargs: transformers' keywords, routed to the parts (module docstring): e.g. ``return_tensors``,
                ``padding``, ``max_length``, ``truncation``, ``sampling_rate`` (of the audio arrays; other rates
                than 48 kHz are resampled), ``num_frames``, ``text_kwargs={...}``, ``audio_kwargs={...}``,
                ``videos_kwargs={...}``.

        Returns:
            :class:`BatchFeature` (torch tensors unless ``return_tensors`` says otherwise); pass it as
            ``model(**inputs)``.
        """
        if images is not None:
            raise ValueError(f"{type(self).__name__} takes no images (PE-AV has text, audio and videos)")
        if "audios" in kwargs:
            raise ValueError("You passed keyword argument `audios` which is deprecated. Please use `audio` instead.")
        if text is None and audio is None and videos is None:
            raise ValueError(f"{type(self).__name__} needs at least one of text, audio or videos")
        takes = {"text": TEXT_KEYS, "audio": AUDIO_KEYS, "videos": VIDEO_KEYS}
        routed = route_kwargs(kwargs, {m: keys for m, keys in takes.items() if m.rstrip("s") in self.modalities})
        if audio is None and routed["audio"].get("sampling_rate") is not None:
            raise ValueError("sampling_rate was given without audio")
        if videos is None and routed["videos"].get("num_frames") is not None:
            raise ValueError("num_frames was given without videos")
        out: dict[str, Any] = {}
        if text is not None:
            out.update(self._part("tokenizer", "text")(text, **routed["text"]))
        if videos is not None:
            out.update(self._part("video_processor", "videos")(videos, **routed["videos"]))
        if audio is not None:
            out.update(self._part("feature_extractor", "audio")(audio, **routed["audio"]))
        return_tensors = routed["text"].get("return_tensors", UNSET)
        return BatchFeature(out, tensor_type="pt" if return_tensors is UNSET else return_tensors)

    def _part(self, name: str, argument: str):
        part = getattr(self, name, None)
        if part is None:
            if name not in self._part_names():
                handled = ", ".join(self.modalities)
                raise ValueError(f"{type(self).__name__} does not take {argument} (it handles {handled})")
            raise ValueError(f"{type(self).__name__} has no {name}, so it cannot process {argument}")
        return part

    # ------------------------------------------------------------------ transformers' conveniences

    @property
    def model_input_names(self) -> list[str]:
        """The parts' ``model_input_names``, in the order of :attr:`attributes`."""
        names: list[str] = []
        for name in self.attributes:
            part = getattr(self, name, None)
            if part is not None:
                names += part.model_input_names
        return names

    def decode(self, *args: Any, **kwargs: Any) -> str | list[str]:
        """The tokenizer's :meth:`~PeTokenizer.decode`."""
        return self._part("tokenizer", "token ids").decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        """The tokenizer's :meth:`~PeTokenizer.batch_decode`."""
        return self._part("tokenizer", "token ids").batch_decode(*args, **kwargs)

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={type(getattr(self, name)).__name__}" for name in self._part_names())
        return f"{type(self).__name__}({parts})"


class PeAudioProcessor(PeAudioVideoProcessor):
    """Text + audio preprocessing (transformers' ``PeAudioProcessor``), for ``PeAudioModel``."""

    modalities = ("text", "audio")
    attributes: ClassVar[list[str]] = ["feature_extractor", "tokenizer"]

    def __init__(self, feature_extractor: PeAudioFeatureExtractor | None = None, tokenizer: PeTokenizer | None = None):
        super().__init__(feature_extractor=feature_extractor, tokenizer=tokenizer)


class PeVideoProcessor(PeAudioVideoProcessor):
    """Text + video preprocessing (transformers' ``PeVideoProcessor``), for ``PeVideoModel``."""

    modalities = ("text", "video")
    attributes: ClassVar[list[str]] = ["video_processor", "tokenizer"]

    def __init__(self, video_processor: PeVideoVideoProcessor | None = None, tokenizer: PeTokenizer | None = None):
        super().__init__(video_processor=video_processor, tokenizer=tokenizer)
