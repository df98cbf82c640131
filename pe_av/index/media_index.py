""":class:`MediaIndex`: a folder of media, embedded once, searched by text or by example.

    index = MediaIndex.build("media/", "media.index", "tiny-pe-av")   # or MediaIndex.load("media.index")
    index.update()                                 # after files were added, changed or deleted
    for hit in index.search("a dog barks", k=5):   # text → media, in each modality's text space
        print(f"{hit.score:.3f}  {hit.modality:<11}  {index.full_path(hit)}")
    index.search(like="query.mp4", modality="video")  # media → media
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .build import BuildReport, build_index
from .embed import embed_prepared
from .manifest import FileRecord, Header, read_manifest
from .prepare import Plan, prepare_file
from .search import (
    BACKENDS,
    Hit,
    build_faiss,
    exact_search,
    faiss_search,
    live_matrix,
    merge_hits,
)

__all__ = ["MediaIndex"]


class MediaIndex:
    """An index folder written by ``pe-av index`` / :meth:`build`: its :attr:`header` (root, model,
    settings) and :attr:`records` (path → :class:`~pe_av.index.manifest.FileRecord`). The model is
    loaded on the first search that needs it (or pass ``model`` and ``processor`` to :meth:`load`)."""

    def __init__(self, path: Path, header: Header, records: dict[str, FileRecord], model=None, processor=None,
                 model_dir: str | None = None) -> None:
        self.path, self.header, self.records = path, header, records
        self._loaded = (model, processor) if model is not None and processor is not None else None
        self._model_dir = model_dir or header.model
        self._faiss: dict[tuple[str, str], object] = {}
        self.last_report: BuildReport | None = None

    # ------------------------------------------------------------------ opening and building

    @classmethod
    def load(cls, path: str | os.PathLike, *, model=None, processor=None, model_dir: str | None = None) -> MediaIndex:
        """Open the index at ``path`` (``model_dir``: where its checkpoint is now, if it moved)."""
        header, records = read_manifest(path)
        return cls(Path(path), header, records, model, processor, model_dir)

    @classmethod
    def build(cls, media_dir: str | os.PathLike, path: str | os.PathLike, model_dir: str | os.PathLike,
              **options: object) -> MediaIndex:
        """Index ``media_dir`` into ``path`` with the checkpoint ``model_dir`` (or update the index there);
        ``options`` are :func:`pe_av.index.build.build_index`'s. The report is :attr:`last_report`."""
        report = build_index(media_dir, path, model_dir, **options)
        index = cls.load(path)
        index.last_report = report
        return index

    def update(self, **options: object) -> BuildReport:
        """Bring the index up to date with its media folder, with the settings it was built with:
        embed new and changed files, drop deleted ones. ``options``: ``batch_size``, ``workers``,
        ``retry_failed``, ``progress``, ``attn_impl``, ``device``, ... (not the settings)."""
        settings = self.header.settings
        fixed = {"extensions": settings["extensions"], "modalities": settings["modalities"],
                 "num_frames": settings["num_frames"], "normalize": settings["normalize"],
                 "dtype": settings["dtype"]}
        clash = sorted(set(options) & set(fixed))
        if clash:
            raise ValueError(f"update() keeps the index's settings; {clash} cannot change (rebuild with "
                             "MediaIndex.build(..., overwrite=True))")
        report = build_index(self.header.root, self.path, self._model_dir, **fixed, **options)
        self.header, self.records = read_manifest(self.path)
        self._faiss.clear()
        self.last_report = report
        return report

    # ------------------------------------------------------------------ contents

    @property
    def root(self) -> Path:
        """The media folder (paths in the index are relative to it)."""
        return Path(self.header.root)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.header.settings["modalities"])

    @property
    def files(self) -> list[FileRecord]:
        """The records of the files that have rows."""
        return [r for r in self.records.values() if not r.failed]

    @property
    def failures(self) -> list[FileRecord]:
        """The records of the files that could not be embedded (``error`` says why)."""
        return [r for r in self.records.values() if r.failed]

    def __len__(self) -> int:
        return len(self.files)

    def full_path(self, hit: Hit | str) -> Path:
        return self.root / (hit.path if isinstance(hit, Hit) else hit)

    def embeddings(self, modality: str) -> tuple[list[str], torch.Tensor]:
        """All live rows of ``modality`` in memory: (paths, ``(n, dim)`` float32)."""
        self._check_modality(modality)
        return live_matrix(self.path, self.records, modality)

    # ------------------------------------------------------------------ queries

    def model(self):
        """``(model, processor)``, loaded from the index's checkpoint on first use."""
        if self._loaded is None:
            from ..embed_run import load_model

            self._loaded = load_model(self._model_dir, None, None, self.header.settings["dtype"])
        return self._loaded

    def embed_text(self, text: str, modality: str) -> torch.Tensor:
        """``text`` in the text space of ``modality`` (1-D)."""
        from ..encode import encode_text

        model, processor = self.model()
        return encode_text(model, processor, [text], target=modality, progress=False,
                           normalize=self.header.settings["normalize"])[0]

    def embed_file(self, path: str | os.PathLike) -> dict[str, torch.Tensor]:
        """A media file embedded as the index embeds its files: modality → 1-D embedding."""
        model, processor = self.model()
        full = os.path.abspath(path)
        plan = Plan(self.modalities, self.header.settings["num_frames"])
        prepared = prepare_file(processor, os.path.dirname(full), os.path.basename(full), plan)
        batch = embed_prepared(model, processor, [prepared], plan.modalities, self.header.settings["normalize"])
        if batch.failures:
            raise ValueError(batch.failures[0].error)
        return {m: rows[0] for m, rows in batch.embeddings.items()}

    def search(self, query: str | None = None, *, like: str | os.PathLike | None = None, k: int = 10,
               modality: str | None = None, backend: str = "exact", chunk_rows: int = 65536,
               faiss_factory: str = "Flat") -> list[Hit]:
        """The ``k`` best matches, best first, of a text ``query`` (scored in each modality's text space)
        or of a media file (``like``, scored against rows of the modalities it has). ``modality``
        restricts the search to one of :attr:`modalities`; ``backend``: ``"exact"`` (chunked matmul over
        the shards, ``chunk_rows`` rows at a time) or ``"faiss"`` (``faiss_factory`` index)."""
        if (query is None) == (like is None):
            raise ValueError("give a text query or like=FILE (one of them)")
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise ValueError(f"query must be a non-empty string, got {query!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
        wanted = self.modalities if modality is None else (self._check_modality(modality),)
        if like is not None:
            queries = {m: e for m, e in self.embed_file(like).items() if m in wanted}
            if not queries:
                raise ValueError(f"{like} has none of the modalities searched ({', '.join(wanted)})")
        else:
            queries = {m: self.embed_text(query, m) for m in wanted}
        hits = []
        for m, vector in queries.items():
            if backend == "exact":
                hits += exact_search(self.path, self.records, m, vector, k, chunk_rows)
            else:
                if (m, faiss_factory) not in self._faiss:
                    self._faiss[(m, faiss_factory)] = build_faiss(*live_matrix(self.path, self.records, m),
                                                                  factory=faiss_factory)
                hits += faiss_search(self._faiss[(m, faiss_factory)], m, vector, k)
        return merge_hits(hits, k)

    def _check_modality(self, modality: str) -> str:
        if modality not in self.modalities:
            raise ValueError(f"modality must be one of this index's {self.modalities}, got {modality!r}")
        return modality
