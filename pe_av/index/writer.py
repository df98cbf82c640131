"""Opening an index folder for writing, adding finished batches as shards, committing the manifest.

Used by the local build (:mod:`pe_av.index.build`) and by the Ray writer (:mod:`pe_av.distributed`),
so both produce the same layout::

    INDEX/
      manifest.jsonl            header + one record per file (pe_av.index.manifest)
      shards/00000000.safetensors, …   one per finished batch (pe_av.index.store)

Crash safety: a shard is complete or absent (atomic write); the manifest is complete (atomic
rewrite); shards written after the last commit are adopted on the next open; a shard is deleted only
after a committed manifest stopped naming it. So killing a build at any point loses at most the batch
in flight, and the next run goes on from there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..atomic import fsync_dir
from ..embed_parts import CliError
from .embed import EmbeddedBatch
from .manifest import MANIFEST, FileRecord, Header, read_manifest, write_manifest
from .store import SHARDS, adopt_shards, remove_dead_shards, write_shard

__all__ = ["IndexWriter"]


class IndexWriter:
    """An index folder open for writing: :attr:`header`, :attr:`records` (path → record), plus
    :meth:`add` (a batch → a shard), :meth:`drop` (files gone) and :meth:`commit` (the manifest)."""

    def __init__(self, folder: Path, header: Header, records: dict[str, FileRecord]) -> None:
        self.folder, self.header, self.records = folder, header, records
        self.shards_since_commit = 0

    @classmethod
    def open(cls, folder: str | os.PathLike, header: Header, *, overwrite: bool = False, say=print) -> IndexWriter:
        """Create the index ``folder`` for ``header``, or open the one there to update it. An existing index
        must have the same root and config hash (else ``CliError``, unless ``overwrite``, which starts it
        over); a folder holding anything else is refused."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise CliError(folder, "exists and is not a folder; choose another index path")
        manifest = folder / MANIFEST
        if folder.is_dir() and not manifest.is_file() and any(p.name != SHARDS for p in folder.iterdir()):
            raise CliError(folder, "is a folder that holds no pe-av index; give a new or empty folder")
        if manifest.is_file() and overwrite:
            _clear(folder)
        if manifest.is_file():
            old, records = _read(folder)
            problems = [f"{what} {a!r} then, {b!r} now" for what, a, b in (
                ("media folder", old.root, header.root), ("model", old.model, header.model),
                ("config hash", old.config_hash, header.config_hash)) if a != b]
            if problems:
                raise CliError(folder, f"was built with other settings ({'; '.join(problems)}); pass --overwrite "
                               "to rebuild it, or choose another index path")
            header.next_shard = old.next_shard
        else:
            folder.mkdir(parents=True, exist_ok=True)
            records = {}
        (folder / SHARDS).mkdir(exist_ok=True)
        header.next_shard = adopt_shards(folder, records, header.next_shard, header.config_hash, say)
        writer = cls(folder, header, records)
        writer.commit()  # the header is on disk before the first shard
        return writer

    def add(self, batch: EmbeddedBatch) -> str:
        """Write ``batch`` as the next shard and take its records; return the shard's name."""
        try:
            name = write_shard(self.folder, self.header.next_shard, batch.embeddings, batch.rows, batch.records,
                               self.header.config_hash)
        except OSError as exc:
            raise CliError(self.folder / SHARDS, f"cannot save a finished batch: {exc}") from exc
        self.header.next_shard += 1
        self.shards_since_commit += 1
        for record in batch.records:
            self.records[record.path] = record
        return name

    def drop(self, paths: list[str]) -> None:
        """Forget files that are gone (their rows die; their shards go at the commit)."""
        for path in paths:
            self.records.pop(path, None)

    def commit(self) -> None:
        """Write the manifest (atomically), then delete the shards it no longer names."""
        try:
            write_manifest(self.folder, self.header, self.records)
        except OSError as exc:
            raise CliError(self.folder / MANIFEST, f"cannot write the manifest: {exc}") from exc
        remove_dead_shards(self.folder, self.records, self.header.next_shard)
        self.shards_since_commit = 0


def _read(folder: Path) -> tuple[Header, dict[str, FileRecord]]:
    try:
        return read_manifest(folder)
    except ValueError as exc:
        raise CliError(folder, f"cannot update it: {exc}; pass --overwrite to rebuild it") from exc


def _clear(folder: Path) -> None:
    """Remove an index's own files (manifest, shards), nothing else."""
    shutil.rmtree(folder / SHARDS, ignore_errors=True)
    (folder / MANIFEST).unlink()
    fsync_dir(folder)
