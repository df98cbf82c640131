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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .models import PeAudioFrameLevelModel, PeAudioModel, PeAudioVideoModel, PeVideoModel
from .processing import PeAudioVideoProcessor
from .processing.audio import as_clip_list
from .processing.text import check_texts
from .processing.video import as_video_list

TARGETS = ("audio", "video", "audio_video")
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


def _run_batches(
    model: torch.nn.Module,
    items: Sequence[object],
    batch_size: int,
    embed: Callable[[Sequence[object]], torch.Tensor],
    normalize: bool,
    progress: bool | None,
    desc: str,
) -> torch.Tensor:
    batch_size = _check_batch_size(batch_size)
    show = progress if progress is not None else len(items) > batch_size
    outputs = []
    tqdm = _tqdm()
    with torch.inference_mode(), tqdm(total=len(items), desc=desc, unit="item", disable=not show) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            outputs.append(embed(batch).cpu())
            bar.update(len(batch))
    embeddings = torch.cat(outputs)
    return F.normalize(embeddings, dim=-1) if normalize else embeddings


def _model_inputs(model: torch.nn.Module, inputs: dict) -> dict:
    return inputs.to(model.device, model.dtype)


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
) -> torch.Tensor:
    """Embed captions in the space of ``target`` media: ``"audio"``, ``"video"`` or ``"audio_video"``.

    ``target`` defaults to the model's only one (``PeAudioModel`` → audio, ``PeVideoModel`` → video)
    and to ``"audio_video"`` for ``PeAudioVideoModel``.
    """
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

    return _run_batches(model, texts, batch_size, embed, normalize, progress, f"text→{target}")


def encode_audio(
    model: torch.nn.Module,
    processor: PeAudioVideoProcessor,
    audio: object,
    *,
    sampling_rate: int | None = None,
    batch_size: int = 8,
    normalize: bool = True,
    progress: bool | None = None,
) -> torch.Tensor:
    """Embed audio clips (file paths or arrays at ``sampling_rate``, default 48 kHz)."""
    _check_model(model, (PeAudioModel, PeAudioVideoModel), "encode_audio")
    _check_processor(processor)
    clips = as_clip_list(audio)

    def embed(batch: Sequence[object]) -> torch.Tensor:
        inputs = _model_inputs(model, processor(audio=list(batch), sampling_rate=sampling_rate))
        return model.get_audio_embeds(inputs["input_values"], inputs["padding_mask"])

    return _run_batches(model, clips, batch_size, embed, normalize, progress, "audio")


def encode_video(
    model: torch.nn.Module,
    processor: PeAudioVideoProcessor,
    videos: object,
    *,
    num_frames: int | None = None,
    batch_size: int = 8,
    normalize: bool = True,
    progress: bool | None = None,
) -> torch.Tensor:
    """Embed videos (file paths or frame arrays), using their frames only."""
    _check_model(model, (PeVideoModel, PeAudioVideoModel), "encode_video")
    _check_processor(processor)
    items = as_video_list(videos)

    def embed(batch: Sequence[object]) -> torch.Tensor:
        inputs = _model_inputs(model, processor(videos=list(batch), num_frames=num_frames))
        return model.get_video_embeds(inputs["pixel_values_videos"], inputs["padding_mask_videos"])

    return _run_batches(model, items, batch_size, embed, normalize, progress, "video")


def encode_audio_video(
    model: torch.nn.Module,
    processor: PeAudioVideoProcessor,
    videos: object,
    audio: object = None,
    *,
    sampling_rate: int | None = None,
    num_frames: int | None = None,
    batch_size: int = 8,
    normalize: bool = True,
    progress: bool | None = None,
) -> torch.Tensor:
    """Joint audio+video embeddings of ``videos``; the audio is ``audio`` (one clip per video) or, by
    default, the audio track of each video file."""
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

    def embed(batch: Sequence[tuple[object, object]]) -> torch.Tensor:
        batch_audio, batch_videos = zip(*batch)
        inputs = _model_inputs(
            model,
            processor(audio=list(batch_audio), videos=list(batch_videos), sampling_rate=sampling_rate,
                      num_frames=num_frames),
        )
        return model.get_audio_video_embeds(
            inputs["input_values"], inputs["pixel_values_videos"], inputs["padding_mask"], inputs["padding_mask_videos"]
        ).audio_video_embeds

    return _run_batches(model, pairs, batch_size, embed, normalize, progress, "audio+video")
