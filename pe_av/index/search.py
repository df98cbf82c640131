"""Nearest rows of an index to query embeddings: exact (chunked matmul) or FAISS.

Exact search reads one shard at a time and scores its live rows in chunks of ``chunk_rows``, keeping
a running top ``k``: memory is one shard plus a chunk of scores, whatever the index's size. The FAISS
backend (``pip install pe-av[faiss]``) puts the live rows of a modality in a flat inner-product index
(or any ``faiss.index_factory`` string, e.g. ``"HNSW32"`` for approximate search) built once per
:class:`MediaIndex <pe_av.index.MediaIndex>` and kept for later queries; the flat index gives the
exact search's results. Scores are dot products: cosine similarities when the index is normalized.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .manifest import FileRecord
from .store import live_rows, read_shard, shard_paths

BACKENDS = ("exact", "faiss")

__all__ = ["BACKENDS", "Hit", "exact_search", "faiss_search", "merge_hits"]


@dataclass(frozen=True)
class Hit:
    """One result: its score, the file (relative to the index's media folder) and the modality matched."""

    score: float
    path: str
    modality: str


def _live_shards(index_dir: Path, records: dict[str, FileRecord]) -> list[Path]:
    names = {r.shard for r in records.values() if r.modalities}
    return [path for _, path in shard_paths(index_dir) if path.name in names]


def exact_search(index_dir: Path, records: dict[str, FileRecord], modality: str, query: torch.Tensor, k: int,
                 chunk_rows: int = 65536) -> list[Hit]:
    """The ``k`` live ``modality`` rows with the highest ``row · query``, best first."""
    query = query.float().reshape(-1)
    best_scores, best_paths = torch.empty(0), []
    for path in _live_shards(index_dir, records):
        shard = read_shard(path)
        keep = live_rows(shard, modality, records)
        if not keep:
            continue
        rows, names = shard.embeddings[modality], shard.rows[modality]
        for start in range(0, len(keep), chunk_rows):
            chunk = keep[start : start + chunk_rows]
            scores = torch.cat([best_scores, rows[chunk] @ query])
            candidates = best_paths + [names[i] for i in chunk]
            top = torch.topk(scores, min(k, len(scores)))
            best_scores, best_paths = top.values, [candidates[i] for i in top.indices.tolist()]
    return [Hit(float(s), p, modality) for s, p in zip(best_scores.tolist(), best_paths)]


def live_matrix(index_dir: Path, records: dict[str, FileRecord], modality: str) -> tuple[list[str], torch.Tensor]:
    """Every live ``modality`` row of the index in memory: (paths, ``(n, dim)`` float32)."""
    paths, blocks = [], []
    for path in _live_shards(index_dir, records):
        shard = read_shard(path)
        keep = live_rows(shard, modality, records)
        if keep:
            paths += [shard.rows[modality][i] for i in keep]
            blocks.append(shard.embeddings[modality][keep])
    return paths, torch.cat(blocks) if blocks else torch.empty(0, 0)


def faiss_module():
    """``faiss``, or an ``ImportError`` saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(f"the faiss backend needs faiss-cpu, which cannot be imported ({exc}): "
                          "pip install 'pe-av[faiss]'") from exc
    return faiss


def build_faiss(paths: list[str], rows: torch.Tensor, factory: str = "Flat"):
    """A FAISS inner-product index over ``rows`` (kept with ``paths`` for the lookup)."""
    faiss = faiss_module()
    if not paths:
        return None, []
    index = faiss.index_factory(rows.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    data = rows.float().contiguous().numpy()
    if not index.is_trained:
        index.train(data)
    index.add(data)
    return index, paths


def faiss_search(built, modality: str, query: torch.Tensor, k: int) -> list[Hit]:
    index, paths = built
    if not paths:
        return []
    scores, ids = index.search(query.float().reshape(1, -1).contiguous().numpy(), min(k, len(paths)))
    return [Hit(float(s), paths[i], modality) for s, i in zip(scores[0].tolist(), ids[0].tolist()) if i >= 0]


def merge_hits(hits: list[Hit], k: int) -> list[Hit]:
    """The ``k`` best of several modalities' hits (stable: ties keep modality order)."""
    return sorted(hits, key=lambda h: -h.score)[:k]
