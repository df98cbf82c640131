"""The model half of indexing: a batch of :class:`~pe_av.index.prepare.PreparedFile` → rows per modality.

Files are batched per modality — every file with audio for ``get_audio_embeds``, with frames for
``get_video_embeds``, with both for ``get_audio_video_embeds`` — padded as the processor pads a batch
(the feature extractor pads the audio; frames are padded with zeros and masked), and run through
:mod:`pe_av.encode`'s batch loop, so a batch that fails is retried file by file and only the bad file
is lost, exactly as in ``pe-av embed``. A file that fails in one modality fails whole (no partial
rows), so a file in the index has every modality it could have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..processing.batch import BatchFeature
from .manifest import FileRecord
from .prepare import PreparedFile

__all__ = ["EmbeddedBatch", "embed_prepared"]


@dataclass
class EmbeddedBatch:
    """Rows of one batch: ``embeddings`` / ``rows`` per modality (same order), and one record per file
    (failures included; ``shard`` is set when the batch is written)."""

    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    rows: dict[str, list[str]] = field(default_factory=dict)
    records: list[FileRecord] = field(default_factory=list)

    @property
    def failures(self) -> list[FileRecord]:
        return [r for r in self.records if r.failed]


def _audio_batch(processor, files: list[PreparedFile]) -> BatchFeature:
    return processor.feature_extractor([f.audio for f in files])


def _video_batch(files: list[PreparedFile]) -> BatchFeature:
    # the video processor's batching: zero-padded frames, a mask of the real ones
    lengths = torch.tensor([len(f.video) for f in files])
    pixels = torch.nn.utils.rnn.pad_sequence([f.video for f in files], batch_first=True, padding_value=0.0)
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    return BatchFeature({"pixel_values_videos": pixels, "padding_mask_videos": mask})


def _embedder(model, processor, modality: str):
    def embed(files: list[PreparedFile]) -> torch.Tensor:
        if modality != "video":
            audio = _audio_batch(processor, files).to(model.device, model.dtype)
        if modality != "audio":
            video = _video_batch(files).to(model.device, model.dtype)
        if modality == "audio":
            return model.get_audio_embeds(audio["input_values"], audio["padding_mask"])
        if modality == "video":
            return model.get_video_embeds(video["pixel_values_videos"], video["padding_mask_videos"])
        return model.get_audio_video_embeds(audio["input_values"], video["pixel_values_videos"],
                                            audio["padding_mask"], video["padding_mask_videos"]).audio_video_embeds

    return embed


def embed_prepared(model, processor, files: list[PreparedFile], modalities: tuple[str, ...],
                   normalize: bool = True) -> EmbeddedBatch:
    """Embed prepared files in each of ``modalities`` they allow; return the rows and a record per file."""
    from ..encode import _iter_batches

    failed = {f.path: f.error for f in files if f.error is not None}
    planned = {f.path: f.modalities(modalities) for f in files if f.error is None}
    embedded: dict[str, tuple[list[str], torch.Tensor]] = {}
    for modality in modalities:
        batch = [f for f in files if modality in planned.get(f.path, ()) and f.path not in failed]
        if not batch:
            continue
        labels = [f.path for f in batch]
        result = next(_iter_batches(batch, labels, len(batch), _embedder(model, processor, modality), normalize,
                                    "skip", False, modality))
        for failure in result.failures:
            failed[failure.item.path] = f"{modality}: {failure.reason}"
        embedded[modality] = ([batch[i].path for i in result.indices], result.embeddings)
    out = EmbeddedBatch()
    for modality, (paths, rows) in embedded.items():
        keep = [i for i, path in enumerate(paths) if path not in failed]
        if keep:
            out.rows[modality] = [paths[i] for i in keep]
            out.embeddings[modality] = rows[keep].float()
    for f in files:
        error = failed.get(f.path)
        out.records.append(FileRecord(f.path, f.size, f.mtime_ns, f.duration,
                                      [] if error else planned[f.path], error=error))
    return out
