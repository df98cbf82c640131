"""The CPU half of indexing: one media file → the processor's inputs for each modality it has.

:func:`prepare_file` runs where decoding runs — DataLoader worker processes for ``pe-av index``, Ray
CPU tasks for :mod:`pe_av.distributed` — and returns a :class:`PreparedFile`: the file's size and
mtime (taken before decoding, so a file changed meanwhile is embedded again next time), its duration,
and its audio and frames exactly as the processor's own parts make them (the feature extractor
without batch padding, the video processor without batching). :func:`pe_av.index.embed.embed_prepared`
batches them for the model. Any problem with the file is caught and kept as ``error``: a bad file
never stops a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .manifest import MODALITIES

__all__ = ["Plan", "PreparedFile", "model_modalities", "prepare_file"]


@dataclass(frozen=True)
class Plan:
    """What to prepare for every file: the modalities wanted (those the file has are kept) and the
    video frame count (``None``: the processor's)."""

    modalities: tuple[str, ...]
    num_frames: int | None = None

    @property
    def audio(self) -> bool:
        return "audio" in self.modalities or "audio_video" in self.modalities

    @property
    def video(self) -> bool:
        return "video" in self.modalities or "audio_video" in self.modalities


@dataclass
class PreparedFile:
    """One file, decoded and preprocessed: ``audio`` is the feature extractor's 1-D float32 samples
    (reflect-padded to a whole hop, not batch-padded), ``video`` the video processor's ``(frames, 3, H,
    W)`` float32 pixels; each ``None`` when the file has no such track or it is not wanted. ``error``
    says why the file cannot be embedded (then both are ``None``)."""

    path: str
    size: int
    mtime_ns: int
    duration: float | None = None
    audio: np.ndarray | None = None
    video: torch.Tensor | None = None
    error: str | None = None

    def modalities(self, wanted: tuple[str, ...]) -> list[str]:
        """The wanted modalities this file can be embedded in."""
        has = {"audio": self.audio is not None, "video": self.video is not None}
        has["audio_video"] = has["audio"] and has["video"]
        return [m for m in MODALITIES if m in wanted and has[m]]


def model_modalities(model: object) -> tuple[str, ...]:
    """What ``model`` embeds media in: audio (``PeAudioModel``), video (``PeVideoModel``), or all three."""
    from ..models import (
        PeAudioFrameLevelModel,
        PeAudioModel,
        PeAudioVideoModel,
        PeVideoModel,
    )

    if isinstance(model, PeAudioFrameLevelModel):
        raise TypeError("an index needs clip-level embeddings; PeAudioFrameLevelModel gives per-frame ones")
    if isinstance(model, PeAudioVideoModel):
        return MODALITIES
    if isinstance(model, PeAudioModel):
        return ("audio",)
    if isinstance(model, PeVideoModel):
        return ("video",)
    raise TypeError(f"an index needs a PeAudioModel, PeVideoModel or PeAudioVideoModel, got {type(model).__name__}")


def prepare_file(processor: object, root: str, path: str, plan: Plan) -> PreparedFile:
    """Decode and preprocess ``root/path`` for the modalities of ``plan`` it has (see the module docs);
    never raises for a bad file."""
    from ..encode import describe_error
    from ..media import media_info

    full = os.path.join(root, path)
    try:
        stat = os.stat(full)
    except OSError as exc:
        return PreparedFile(path, 0, 0, error=describe_error(exc))
    prepared = PreparedFile(path, stat.st_size, stat.st_mtime_ns)
    try:
        info = media_info(full)
        prepared.duration = info.duration
        if plan.audio and info.has_audio and processor.feature_extractor is not None:
            clip = processor.feature_extractor([full], padding=False, return_tensors=None)["input_values"][0]
            prepared.audio = np.ascontiguousarray(clip[0])
        if plan.video and info.has_video and processor.video_processor is not None:
            prepared.video = processor.video_processor([full], num_frames=plan.num_frames,
                                                       return_tensors=None)["pixel_values_videos"][0]
        if not prepared.modalities(plan.modalities):
            tracks = [t for t, has in (("audio", info.has_audio), ("video", info.has_video)) if has] or ["no"]
            raise ValueError(f"{full} has {' and '.join(tracks)} track(s); the index embeds "
                             f"{', '.join(plan.modalities)}")
    except Exception as exc:  # noqa: BLE001 (a bad file is a failure record, never a dead run)
        return PreparedFile(path, stat.st_size, stat.st_mtime_ns, prepared.duration, error=describe_error(exc))
    return prepared


class FileDataset(torch.utils.data.Dataset):
    """The files of a build as a map-style dataset of :class:`PreparedFile` (for a DataLoader whose
    workers decode while the main process runs the model)."""

    def __init__(self, processor: object, root: str, paths: list[str], plan: Plan) -> None:
        self.processor, self.root, self.paths, self.plan = processor, root, paths, plan

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> PreparedFile:
        return prepare_file(self.processor, self.root, self.paths[index], self.plan)


def as_list(batch: list) -> list:
    """The DataLoader ``collate_fn``: keep the batch as a list (files are batched per modality later)."""
    return batch
