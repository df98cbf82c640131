"""High-level encoding helpers (open_clip / sentence-transformers style).

Each helper runs the processor and the model's ``get_*_embeds`` over the inputs in batches of
``batch_size`` (with a tqdm bar when there is more than one batch, unless ``progress=False``), and
returns one ``(n, dim)`` tensor on the CPU in the model's dtype. With ``normalize=False`` the rows
are exactly what ``get_*_embeds`` returns for the same processed batch; with ``normalize=True``
(default) they are L2-normalized, so ``a @ b.T`` is the cosine similarity.

    model = PeAudioVideoModel.from_pretrained(path)
    processor = PeAudioVideoProcessor.from_pretrained(path)
    texts = encode_text(model, processor, ["a dog barks"], target="audio")
    clips = encode_audio(model, processor, ["bark.wav", "rain.flac"])
    scores = texts @ clips.T

**Bad inputs** (``on_error``). A batch that fails is retried input by input, so an error names the
input that caused it and the other inputs of the batch are kept:

- ``on_error="raise"`` (default): the first bad input's exception is raised (its type and message as
  before), with a note naming its position and path (``exc.__notes__``, Python 3.11+).
- ``on_error="skip"``: bad inputs are left out; the tensor holds one row per embedded input, in input
  order, and each bad input is appended to the ``failures`` list you pass as an
  :class:`EncodeFailure` ``(index, item, reason)`` (the rows are the inputs whose index is not in it).
  Without a ``failures`` list, skipped inputs are reported with a warning. When every input fails the
  result is an empty ``(0, dim)`` tensor.

      failures = []
      clips = encode_audio(model, processor, paths, on_error="skip", failures=failures)
      kept = [p for i, p in enumerate(paths) if i not in {f.index for f in failures}]

:func:`iter_encode` yields the same results batch by batch (``pe-av embed`` saves each as it comes).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .models import (
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioVideoModel,
    PeVideoModel,
)
from .processing import PeAudioVideoProcessor
from .processing.audio import as_clip_list
from .processing.text import check_texts
from .processing.video import as_video_list

TARGETS = ("audio", "video", "audio_video")
ON_ERROR = ("raise", "skip")
_TEXT_METHODS = {
    "audio": "get_text_audio_embeds",
    "video": "get_text_video_embeds",
    "audio_video": "get_text_audio_video_embeds",
}


def _check_model(model: object, kinds: tuple[type, ...], what: str) -> None:
    if isinstance(model, PeAudioFrameLevelModel):
        raise TypeError(f"{what} needs clip-level embeddings; PeAudioFrameLevelModel gives per-frame ones "
                        "(call model.get_audio_embeds directly)")
    if not isinstance(model, kinds):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise TypeError(f"{what} needs a {names}, got {type(model).__name__}")


def _check_processor(processor: object) -> None:
    if not isinstance(processor, PeAudioVideoProcessor):
        raise TypeError(
            f"processor must be a pe_av processor (e.g. PeAudioVideoProcessor), got {type(processor).__name__}"
        )


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def _tqdm() -> type:
    """``tqdm.auto.tqdm``, imported on first use (not with ``pe_av``)."""
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError(f"the encode helpers need tqdm, which cannot be imported ({exc}): pip install tqdm") from exc
    return tqdm


class EncodeFailure(NamedTuple):
    """An input that could not be embedded: its position in the inputs, the input itself, and why."""

    index: int
    item: object
    reason: str


@dataclass
class EncodedBatch:
    """One batch from :func:`iter_encode`: the embedded inputs' positions, their rows (same order), and
    the inputs of the batch that failed."""

    indices: list[int]
    embeddings: torch.Tensor
    failures: list[EncodeFailure] = field(default_factory=list)


def describe_error(exc: BaseException) -> str:
    """An error as one line: the message of pe_av's own input errors, ``file: reason`` for system errors,
    ``Type: message`` for others."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror}"
    message = " ".join(str(exc).split()) or "(no message)"
    if type(exc) in (ValueError, TypeError, FileNotFoundError) or type(exc).__name__ == "CheckpointError":
        return message
    return f"{type(exc).__name__}: {message}"


def describe_item(item: object) -> str:
    """A short name for an input in messages: its path, or its type and shape."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    shape = getattr(item, "shape", None)
    if shape is not None:
        return f"{type(item).__name__} of shape {tuple(shape)}"
    if isinstance(item, (list, tuple)):
        return f"{type(item).__name__} of length {len(item)}"
    return type(item).__name__


def _embed_dim(model: torch.nn.Module) -> int:
    text_config = getattr(getattr(model, "config", None), "text_config", None)
    return int(getattr(text_config, "hidden_size", 0))


def _check_on_error(on_error: object) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


def _failed(exc: Exception, index: int, labels: Sequence[object], on_error: str, desc: str) -> EncodeFailure:
    if on_error == "raise":
        if hasattr(exc, "add_note"):  # Python 3.11+
            exc.add_note(f"while encoding {desc} input {index}: {describe_item(labels[index])}")
        raise exc
    return EncodeFailure(index, labels[index], describe_error(exc))


def _embed_one_by_one(embed, batch, indices, labels, on_error, desc):
    """After a batch failed: each input alone, to find the bad one(s) and keep the others."""
    good, rows, failed = [], [], []
    for index, item in zip(indices, batch):
        try:
            with torch.inference_mode():
                rows.append(embed([item]).cpu())
            good.append(index)
        except Exception as exc:
            failed.append(_failed(exc, index, labels, on_error, desc))
    return good, rows, failed


def _iter_batches(items, labels, batch_size, embed, normalize, on_error, show, desc) -> Iterator[EncodedBatch]:
    with _tqdm()(total=len(items), desc=desc, unit="item", disable=not show) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            indices = list(range(start, start + len(batch)))
            try:
                with torch.inference_mode():
                    good, rows, failed = indices, [embed(batch).cpu()], []
            except Exception as exc:
                if len(batch) > 1:
                    good, rows, failed = _embed_one_by_one(embed, batch, indices, labels, on_error, desc)
                else:
                    good, rows, failed = [], [], [_failed(exc, start, labels, on_error, desc)]
            embeddings = torch.cat(rows) if rows else torch.empty(0, 0)
            if normalize and rows:
                embeddings = F.normalize(embeddings, dim=-1)
            bar.update(len(batch))
            yield EncodedBatch(good, embeddings, failed)


def _collect(model, prepared, batch_size, normalize, progress, on_error, failures) -> torch.Tensor:
    items, labels, embed, desc = prepared
    batch_size, on_error = _check_batch_size(batch_size), _check_on_error(on_error)
    show = progress if progress is not None else len(items) > batch_size
    rows, failed = [], []
    for batch in _iter_batches(items, labels, batch_size, embed, normalize, on_error, show, desc):
        rows += [batch.embeddings] if batch.indices else []
        failed += batch.failures
    if failures is not None:
        failures.extend(failed)
    elif failed:
        warnings.warn(f"encoding {desc} skipped {len(failed)} of {len(items)} input(s): "
                      + "; ".join(f"[{f.index}] {describe_item(f.item)}: {f.reason}" for f in failed), stacklevel=3)
    if not rows:
        return torch.empty(0, _embed_dim(model), dtype=getattr(model, "dtype", torch.float32))
    return torch.cat(rows)


def iter_encode(
    model: torch.nn.Module,
    processor: PeAudioVideoProcessor,
    kind: str,
    inputs: object,
    *,
    batch_size: int = 8,
    normalize: bool = True,
    progress: bool | None = None,
    on_error: str = "skip",
    **options: object,
) -> Iterator[EncodedBatch]:
    """Embed ``inputs`` batch by batch, yielding an :class:`EncodedBatch` as each one is done (for callers
    that save as they go, such as ``pe-av embed``). ``kind`` is ``"text"``, ``"audio"``, ``"video"`` or
    ``"audio_video"``; ``options`` are the matching ``encode_*`` helper's (``target``, ``max_length``,
    ``sampling_rate``, ``num_frames``, ``fps``, ``max_frames``, ``audio``). Arguments are checked here, before the first batch.
    """
    prepare = {"text": _prepare_text, "audio": _prepare_audio, "video": _prepare_video,
               "audio_video": _prepare_audio_video}
    if kind not in prepare:
        raise ValueError(f"kind must be one of {tuple(prepare)}, got {kind!r}")
    items, labels, embed, desc = prepare[kind](model, processor, inputs, **options)
    batch_size, on_error = _check_batch_size(batch_size), _check_on_error(on_error)
    show = progress if progress is not None else len(items) > batch_size
    return _iter_batches(items, labels, batch_size, embed, normalize, on_error, show, desc)


def _model_inputs(model: torch.nn.Module, inputs: dict) -> dict:
    return inputs.to(model.device, model.dtype)


def _prepare_text(model, processor, texts, target=None, max_length=None):
    _check_model(model, (PeAudioModel, PeVideoModel, PeAudioVideoModel), "encode_text")
    _check_processor(processor)
    if target is None:
        only = {PeAudioModel: "audio", PeVideoModel: "video"}
        target = next((t for kind, t in only.items() if isinstance(model, kind)), "audio_video")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    method = getattr(model, _TEXT_METHODS[target], None)
    if method is None or (target == "audio_video" and not isinstance(model, PeAudioVideoModel)):
        raise ValueError(f"{type(model).__name__} has no text-{target} embedding space")
    texts = check_texts(texts)

    def embed(batch: Sequence[str]) -> torch.Tensor:
        inputs = _model_inputs(model, processor(text=list(batch), max_length=max_length))
        return method(inputs["input_ids"], inputs["attention_mask"])

    return texts, texts, embed, f"text→{target}"


def _prepare_audio(model, processor, audio, sampling_rate=None):
    _check_model(model, (PeAudioModel, PeAudioVideoModel), "encode_audio")
    _check_processor(processor)
    clips = as_clip_list(audio)

    def embed(batch: Sequence[object]) -> torch.Tensor:
        inputs = _model_inputs(model, processor(audio=list(batch), sampling_rate=sampling_rate))
        return model.get_audio_embeds(inputs["input_values"], inputs["padding_mask"])

    return clips, clips, embed, "audio"


def _frame_options(num_frames, fps, max_frames) -> dict:
    """The frame sampling keywords that are set (see :mod:`pe_av.media_frames`)."""
    given = {"num_frames": num_frames, "fps": fps, "max_frames": max_frames}
    return {key: value for key, value in given.items() if value is not None}


def _prepare_video(model, processor, videos, num_frames=None, fps=None, max_frames=None):
    _check_model(model, (PeVideoModel, PeAudioVideoModel), "encode_video")
    _check_processor(processor)
    items = as_video_list(videos)
    frames = _frame_options(num_frames, fps, max_frames)

    def embed(batch: Sequence[object]) -> torch.Tensor:
        inputs = _model_inputs(model, processor(videos=list(batch), **frames))
        return model.get_video_embeds(inputs["pixel_values_videos"], inputs["padding_mask_videos"])

    return items, items, embed, "video"


def _prepare_audio_video(model, processor, videos, audio=None, sampling_rate=None, num_frames=None, fps=None,
                         max_frames=None):
    _check_model(model, (PeAudioVideoModel,), "encode_audio_video")
    _check_processor(processor)
    items = as_video_list(videos)
    if audio is None:
        not_files = [i for i, item in enumerate(items) if not isinstance(item, (str, os.PathLike))]
        if not_files:
            raise ValueError(f"videos{not_files} are arrays, so their audio must be given with audio=")
        clips = list(items)
    else:
        clips = as_clip_list(audio)
    if len(clips) != len(items):
        raise ValueError(f"got {len(items)} videos but {len(clips)} audio clips; give one clip per video")
    pairs = list(zip(clips, items))
    frames = _frame_options(num_frames, fps, max_frames)

    def embed(batch: Sequence[tuple[object, object]]) -> torch.Tensor:
        batch_audio, batch_videos = zip(*batch)
        inputs = _model_inputs(
            model,
            processor(audio=list(batch_audio), videos=list(batch_videos), sampling_rate=sampling_rate, **frames),
        )
        return model.get_audio_video_embeds(
            inputs["input_values"], inputs["pixel_values_videos"], inputs["padding_mask"], inputs["padding_mask_videos"]
        ).audio_video_embeds

    return pairs, items, embed, "audio+video"


def encode_text(
    model: torch.nn.Module,
    processor: PeAudioVideoProcessor,
    texts: str | Sequence[str],
    target: str | None = None,
    *,
    batch_size: int = 32,
    normalize: bool = True,
    progress: bool | None = None,
    max_length: int | None = None,
    on_error: str = "raise",
    failures: list[EncodeFailure] | None = None,
) -> torch.Tensor:
    """Embed captions in the space of ``target`` media: ``"audio"``, ``"video"`` or ``"audio_video"``.

    ``target`` defaults to the model's only one (``PeAudioModel`` → audio, ``PeVideoModel`` → video)
    and to ``"audio_video"`` for ``PeAudioVideoModel``. ``on_error``/``failures``: see the module docs.
    """
    prepared = _prepare_text(model, processor, texts, target, max_length)
    return _collect(model, prepared, batch_size, normalize, progress, on_error, failures)


def encode_audio(
    model: torch.nn.Module,
    processor: PeAudioVideoProcessor,
    audio: object,
    *,
    sampling_rate: int | None = None,
    batch_size: int = 8,
    normalize: bool = True,
    progress: bool | None = None,
    on_error: str = "raise",
    failures: list[EncodeFailure] | None = None,
) -> torch.Tensor:
    """Embed audio clips (file paths or arrays at ``sampling_rate``, default 48 kHz)."""
    prepared = _prepare_audio(model, processor, audio, sampling_rate)
    return _collect(model, prepared, batch_size, normalize, progress, on_error, failures)


def encode_video(
    model: torch.nn.Module,
    processor: PeAudioVideoProcessor,
    videos: object,
    *,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    batch_size: int = 8,
    normalize: bool = True,
    progress: bool | None = None,
    on_error: str = "raise",
    failures: list[EncodeFailure] | None = None,
) -> torch.Tensor:
    """Embed videos (file paths or frame arrays), using their frames only; ``num_frames`` / ``fps`` /
    ``max_frames`` pick the frames (:mod:`pe_av.media_frames`)."""
    prepared = _prepare_video(model, processor, videos, num_frames, fps, max_frames)
    return _collect(model, prepared, batch_size, normalize, progress, on_error, failures)


def encode_audio_video(
    model: torch.nn.Module,
    processor: PeAudioVideoProcessor,
    videos: object,
    audio: object = None,
    *,
    sampling_rate: int | None = None,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    batch_size: int = 8,
    normalize: bool = True,
    progress: bool | None = None,
    on_error: str = "raise",
    failures: list[EncodeFailure] | None = None,
) -> torch.Tensor:
    """Joint audio+video embeddings of ``videos``; the audio is ``audio`` (one clip per video) or, by
    default, the audio track of each video file. A failure names the video. Frames: as :func:`encode_video`."""
    prepared = _prepare_audio_video(model, processor, videos, audio, sampling_rate, num_frames, fps, max_frames)
    return _collect(model, prepared, batch_size, normalize, progress, on_error, failures)
