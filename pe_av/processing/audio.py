"""``PeAudioFeatureExtractor``: waveforms (or audio files) → ``input_values`` + ``padding_mask``.

Same configuration keys and numbers as transformers' ``PeAudioFeatureExtractor``: each clip, as
float32 mono at ``sampling_rate`` (48 kHz), is reflect-padded to a multiple of ``hop_length`` (1920,
one audio token), then the batch is padded with ``padding_value`` to the longest clip;
``padding_mask`` (int32, 1 = real sample) marks the reflected tail as real, as the reference does.

Calls take transformers' arguments in its order — ``padding`` (``None``/``True``/``"longest"``,
``"max_length"``, ``False``), ``truncation`` (with ``max_length``; not together with ``padding``),
``max_length`` (rounded up to ``hop_length``), ``return_tensors`` and ``sampling_rate`` — and return a
:class:`~pe_av.processing.batch.BatchFeature` with transformers' keys, order and types (with
``return_tensors=None``: ``input_values`` a list of ``(1, samples)`` arrays, ``padding_mask`` an array).

Beyond the reference: multichannel clips ``(channels, samples)`` are mixed down to mono by averaging,
other sampling rates are resampled (:func:`pe_av.processing.resample.resample`; the reference
raises), and file paths are decoded with PyAV (:func:`pe_av.media.load_audio`). ``return_tensors``
left out means ``"pt"`` (the reference: ``None``); ``padding="do_not_pad"`` means ``False`` and
``padding="max_length"`` below the longest clip is a ``ValueError`` (the reference fails with an
``IndexError`` on both).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .batch import BatchFeature, check_tensor_type
from .files import (
    FEATURE_EXTRACTOR_CONFIG,
    PROCESSOR_CONFIG,
    apply_overrides,
    part_configs,
    resolve_processor_dir,
    split_loading_kwargs,
    warn_unused,
)
from .options import UNSET, check_positive_int, padding_strategy
from .resample import resample

#: channel counts above this in a 2-D array are taken for a mistaken (samples, channels) layout or batch
MAX_CHANNELS = 16
#: the config keys this class reads (others are kept in ``extra``)
KNOWN = ("feature_size", "sampling_rate", "padding_value", "hop_length", "padding_side")


class PeAudioFeatureExtractor:
    """Audio preprocessing of PE-AV (transformers' ``PeAudioFeatureExtractor`` under the same name).

    Args:
        feature_size: 1 (mono); the reference supports nothing else.
        sampling_rate: rate the model was trained at (48000).
        padding_value: value of batch padding.
        hop_length: samples per audio token (1920); clips are reflect-padded to a multiple of it.
        padding_side: ``"right"`` or ``"left"`` batch padding.
        extra: other keys of the saved config, written back by :meth:`to_dict`.
    """

    config_type = "PeAudioFeatureExtractor"
    model_input_names: ClassVar[list[str]] = ["input_values"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 48_000,
        padding_value: float = 0.0,
        hop_length: int = 1920,
        padding_side: str = "right",
        extra: dict[str, Any] | None = None,
    ) -> None:
        if feature_size != 1:
            raise ValueError(f"only mono audio (feature_size=1) is supported, got feature_size={feature_size!r}")
        for name, value in (("sampling_rate", sampling_rate), ("hop_length", hop_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.feature_size = feature_size
        self.sampling_rate = sampling_rate
        self.padding_value = float(padding_value)
        self.hop_length = hop_length
        self.padding_side = padding_side
        self.extra = dict(extra or {})

    # ------------------------------------------------------------------ config

    @classmethod
    def from_dict(cls, config: dict[str, Any], **overrides: Any) -> PeAudioFeatureExtractor:
        """Build from a saved config dict (``preprocessor_config.json`` or processor_config's entry);
        ``overrides`` replace saved values."""
        config = {**config, **overrides}
        kwargs = {key: config[key] for key in KNOWN if key in config}
        extra = {key: value for key, value in config.items() if key not in KNOWN}
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> PeAudioFeatureExtractor:
        """Load the feature extractor config that transformers saves in ``path`` (a directory or a hub id):
        ``processor_config.json``'s ``feature_extractor``, or ``preprocessor_config.json``. Keywords: see
        :mod:`pe_av.processing.files` (settings such as ``hop_length=`` override the saved ones)."""
        hub, overrides = split_loading_kwargs(kwargs)
        directory = resolve_processor_dir(path, hub)
        config = part_configs(directory)["feature_extractor"]
        if config is None:
            raise FileNotFoundError(f"no feature extractor config in {directory}: looked for {PROCESSOR_CONFIG} "
                                    f"and {FEATURE_EXTRACTOR_CONFIG}")
        config = apply_overrides(config, overrides, KNOWN)
        warn_unused(overrides, set(config), cls.__name__)
        return cls.from_dict(config)

    def save_pretrained(self, directory: str | os.PathLike, **kwargs: Any) -> list[str]:
        """Write ``preprocessor_config.json``, as transformers' ``PeAudioFeatureExtractor.save_pretrained`` does."""
        path = Path(directory) / FEATURE_EXTRACTOR_CONFIG
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return [str(path)]

    def to_dict(self) -> dict[str, Any]:
        """The config dict transformers writes for this feature extractor."""
        return {
            "return_attention_mask": True,
            **self.extra,
            "feature_extractor_type": self.config_type,
            "feature_size": self.feature_size,
            "hop_length": self.hop_length,
            "padding_side": self.padding_side,
            "padding_value": self.padding_value,
            "sampling_rate": self.sampling_rate,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({json.dumps(self.to_dict(), sort_keys=True)})"

    # ------------------------------------------------------------------ call

    def __call__(
        self,
        raw_audio: object,
        padding: bool | str | None = None,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | None = UNSET,
        sampling_rate: int | None = None,
    ) -> BatchFeature:
        """Preprocess one clip or a batch (transformers' arguments, in its order).

        Args:
            raw_audio: a clip — 1-D samples, ``(channels, samples)`` array/tensor (mixed down), a list of
                floats, or a file path — or a non-empty list/tuple of clips. Samples must be floating
                point (integer PCM is refused rather than guessed at).
            padding: ``None``/``True``/``"longest"`` pad to the longest clip, ``"max_length"`` to
                ``max_length`` (rounded up to ``hop_length``), ``False`` not at all (no ``padding_mask``).
            truncation: cut clips to ``max_length`` rounded up to ``hop_length`` (not with ``padding``).
            max_length: in samples, for ``padding="max_length"`` and ``truncation``.
            return_tensors: ``"pt"`` (the default), ``"np"``, or ``None`` (``input_values`` as a list of
                ``(1, samples)`` arrays, ``padding_mask`` an int32 array, as transformers returns them).
            sampling_rate: rate of the given arrays (default: :attr:`sampling_rate`); other rates are
                resampled. Files are always decoded at :attr:`sampling_rate`.

        Returns:
            :class:`BatchFeature` with ``padding_mask`` ``(batch, samples)`` int32 (when padding) and
            ``input_values`` ``(batch, 1, samples)`` float32.
        """
        rt = "pt" if return_tensors is UNSET else check_tensor_type(return_tensors)
        pad = "longest" if padding is None else padding_strategy(padding)
        if pad != "do_not_pad" and padding is not None and truncation:
            raise ValueError("Both padding and truncation were set. Make sure you only set one.")
        check_positive_int("max_length", max_length)
        if truncation and max_length is None:
            raise ValueError("When setting truncation=True, make sure that max_length is defined.")
        if pad == "max_length" and max_length is None:
            raise ValueError("When setting padding='max_length', make sure that max_length is defined")
        source_rate = self.sampling_rate if sampling_rate is None else sampling_rate
        if isinstance(source_rate, bool) or not isinstance(source_rate, (int, np.integer)) or source_rate < 1:
            raise ValueError(f"sampling_rate must be a positive int (Hz), got {sampling_rate!r}")
        clips = [self._mono(clip, i, int(source_rate)) for i, clip in enumerate(as_clip_list(raw_audio))]
        clips = [reflect_pad_to_multiple(clip, self.hop_length) for clip in clips]
        limit = None if max_length is None else -(-max_length // self.hop_length) * self.hop_length
        if truncation:
            clips = [clip[:limit] for clip in clips]
        if pad == "do_not_pad":
            return BatchFeature({"input_values": [clip[None, :] for clip in clips]}, tensor_type=rt)
        longest = max(len(clip) for clip in clips)
        if pad == "max_length":
            if longest > limit:
                raise ValueError(
                    f"padding='max_length' with max_length={max_length}: a clip has {longest} samples, more than "
                    f"{limit}, and padding does not truncate (transformers fails here too). Pad to the longest "
                    "clip, or truncate with audio_kwargs={'truncation': True, 'max_length': ...}"
                )
            longest = limit
        values = np.full((len(clips), longest), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(clips), longest), dtype=np.int32)
        for i, clip in enumerate(clips):
            span = slice(0, len(clip)) if self.padding_side == "right" else slice(longest - len(clip), longest)
            values[i, span] = clip
            mask[i, span] = 1
        if rt == "pt":
            return BatchFeature({"padding_mask": torch.from_numpy(mask),
                                 "input_values": torch.from_numpy(values)[:, None, :]})
        inputs = values[:, None, :] if rt == "np" else list(values[:, None, :])
        return BatchFeature({"padding_mask": mask, "input_values": inputs})

    def _mono(self, clip: object, index: int, source_rate: int) -> np.ndarray:
        """One clip as a 1-D float32 array at :attr:`sampling_rate`."""
        if isinstance(clip, (str, os.PathLike)):
            from ..media import load_audio

            return load_audio(clip, self.sampling_rate)
        samples = _as_float_array(clip, f"audio[{index}]")
        if samples.ndim == 2:
            if samples.shape[0] > MAX_CHANNELS:
                raise ValueError(
                    f"audio[{index}] has shape {samples.shape}, read as (channels, samples) with "
                    f"{samples.shape[0]} channels; pass (channels, samples) or a list of 1-D clips for a batch"
                )
            samples = samples.mean(axis=0, dtype=np.float64).astype(np.float32) if samples.shape[0] > 1 else samples[0]
        elif samples.ndim != 1:
            raise ValueError(f"audio[{index}] must be 1-D samples or (channels, samples), got shape {samples.shape}")
        if samples.shape[0] == 0:
            raise ValueError(f"audio[{index}] has no samples")
        if not np.isfinite(samples).all():
            raise ValueError(f"audio[{index}] contains NaN or infinite samples")
        if source_rate != self.sampling_rate:
            samples = resample(samples, source_rate, self.sampling_rate)
        return samples


def reflect_pad_to_multiple(samples: np.ndarray, multiple: int) -> np.ndarray:
    """Extend ``samples`` to a multiple of ``multiple`` by mirroring its end (``np.pad`` "reflect"
    semantics, which keep reflecting back and forth when the pad is longer than the clip)."""
    length = len(samples)
    extra = -length % multiple
    if extra == 0:
        return samples
    if length == 1:
        return np.full(multiple, samples[0], dtype=samples.dtype)
    period = 2 * (length - 1)
    index = np.arange(length, length + extra) % period
    index = np.where(index >= length, period - index, index)
    return np.concatenate([samples, samples[index]])


def as_clip_list(audio: object) -> list[object]:
    """Split the input into clips: a list/tuple of clips, or one clip (array, path, list of floats)."""
    if isinstance(audio, (str, os.PathLike, np.ndarray, torch.Tensor)):
        return [audio]
    if not isinstance(audio, (list, tuple)):
        raise TypeError(
            "audio must be an array/tensor of samples, a file path, or a list of those, "
            f"got {type(audio).__name__}"
        )
    if not audio:
        raise ValueError("audio is an empty list; give at least one clip")
    if all(isinstance(x, (float, int, np.floating)) and not isinstance(x, bool) for x in audio):
        return [list(audio)]  # one clip given as a list of numbers, as the reference accepts
    return list(audio)


def _as_float_array(clip: object, name: str) -> np.ndarray:
    if isinstance(clip, torch.Tensor):
        if not clip.is_floating_point():
            raise TypeError(f"{name} must hold floating point samples in [-1, 1], got dtype {clip.dtype}")
        return clip.detach().to("cpu", torch.float32).numpy()
    if isinstance(clip, (list, tuple)):
        if not clip:
            raise ValueError(f"{name} has no samples")
        try:
            clip = np.asarray(clip, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a sequence of numbers: {exc}") from exc
    if not isinstance(clip, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, torch tensor, list of floats or file path, got "
                        f"{type(clip).__name__}")
    if not np.issubdtype(clip.dtype, np.floating):
        raise TypeError(
            f"{name} must hold floating point samples in [-1, 1], got dtype {clip.dtype} "
            "(convert integer PCM first, e.g. int16 / 32768)"
        )
    return clip.astype(np.float32, copy=False)

