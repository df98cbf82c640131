"""The two Ray Data steps of indexing: decoding (CPU tasks) and the model (actors that load it once).

- :func:`decode_files` (CPU tasks, ``map_batches``): paths → :class:`~pe_av.index.prepare.PreparedFile`
  per file (our PyAV decoding and the processor's preprocessing, :func:`pe_av.index.prepare.prepare_file`);
  stateless tasks, so Ray Data scales them over the cluster's CPUs and reuses the worker processes
  (the processor is loaded once per process).
- :class:`EmbedBatches` (model actors, GPU or CPU): prepared files → rows per modality and one record
  per file (:func:`pe_av.index.embed.embed_prepared`); loads the model once (path, ``attn_impl``,
  ``dtype``, ``device``).

Rows travel between them as ``{"path": str, "blob": bytes}`` (the pickled object), so the Arrow blocks
hold no ragged tensors; a file's failure is inside its blob, never an exception, so a bad file is a row,
not a failed task. Tasks that die with their worker (a crash, a killed actor) are retried by Ray.
"""

from __future__ import annotations

import functools
import pickle

import numpy as np

from ..index.embed import EmbeddedBatch, embed_prepared
from ..index.prepare import Plan, prepare_file

__all__ = ["EmbedBatches", "decode_files", "join_rows", "split_batch"]


@functools.lru_cache(maxsize=4)
def _processor(model_dir: str):
    """The checkpoint's processor, loaded once per worker process (Ray reuses its workers across tasks)."""
    from ..config import load_config
    from ..registry import processor_class_for

    return processor_class_for(load_config(model_dir).model_type).from_pretrained(model_dir)


def decode_files(batch: dict, *, model_dir: str, root: str, modalities: tuple[str, ...],
                 num_frames: int | None) -> dict:
    """``map_batches`` step (CPU tasks): ``{"path": [...]}`` → ``{"path": [...], "blob": [pickled
    PreparedFile]}``."""
    processor, plan = _processor(str(model_dir)), Plan(tuple(modalities), num_frames)
    paths = [str(p) for p in batch["path"]]
    blobs = [pickle.dumps(prepare_file(processor, root, p, plan)) for p in paths]
    return {"path": np.array(paths, dtype=object), "blob": np.array(blobs, dtype=object)}


class EmbedBatches:
    """``map_batches`` step on model actors: prepared files → one row per file, ``{"path", "blob"}`` with
    the pickled ``(record, {modality: row})``."""

    def __init__(self, model_dir: str, modalities: tuple[str, ...], normalize: bool = True,
                 attn_impl: str | None = None, device: str | None = None, dtype: str | None = None) -> None:
        from ..embed_run import load_model

        self.model, self.processor = load_model(model_dir, attn_impl, device, dtype)
        self.modalities, self.normalize = tuple(modalities), normalize

    def __call__(self, batch: dict) -> dict:
        prepared = [pickle.loads(blob) for blob in batch["blob"]]
        embedded = embed_prepared(self.model, self.processor, prepared, self.modalities, self.normalize)
        rows = split_batch(embedded)
        return {"path": np.array([r[0].path for r in rows], dtype=object),
                "blob": np.array([pickle.dumps(r) for r in rows], dtype=object)}


def split_batch(batch: EmbeddedBatch) -> list[tuple]:
    """An embedded batch as one ``(record, {modality: 1-D numpy row})`` per file."""
    per_file = {r.path: (r, {}) for r in batch.records}
    for modality, paths in batch.rows.items():
        for path, row in zip(paths, batch.embeddings[modality]):
            per_file[path][1][modality] = row.numpy()
    return list(per_file.values())


def join_rows(rows: list[tuple]) -> EmbeddedBatch:
    """The inverse of :func:`split_batch`: files' rows → one batch (for one shard)."""
    import torch

    out = EmbeddedBatch()
    for record, vectors in rows:
        out.records.append(record)
        for modality, row in vectors.items():
            out.rows.setdefault(modality, []).append(record.path)
            out.embeddings.setdefault(modality, []).append(torch.from_numpy(np.asarray(row, dtype=np.float32)))
    out.embeddings = {m: torch.stack(v) for m, v in out.embeddings.items()}
    return out
