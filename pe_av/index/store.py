"""The shards of a media index: ``INDEX/shards/<number>.safetensors``, one per finished batch of files.

A shard holds one float32 tensor per modality (``"audio"``, ``"video"``, ``"audio_video"``, each
``(rows, dim)``) and, in its metadata, which file each row belongs to (``rows``: modality → paths)
and the file records of its batch (``files``, failures included), so that a shard describes itself:
an interrupted build loses only the batch in flight, and the next open adopts every shard numbered
from the manifest's ``next_shard`` on (:func:`adopt_shards`). A shard is written atomically and never
replaced (:func:`pe_av.atomic.atomic_write_bytes` with ``overwrite=False``), then read back.

A row is live while the manifest's record of its file names its shard: a file embedded again (it
changed) gets rows in a newer shard and the old ones are dead; a shard with no live row is deleted
when the manifest is committed (:func:`remove_dead_shards`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import torch

from ..atomic import atomic_write_bytes, fsync_dir, remove_temp_files
from .manifest import MODALITIES, FileRecord

SHARDS = "shards"
SHARD_FORMAT = "pe-av index shard"
_NAME = re.compile(r"(\d{8})\.safetensors")

__all__ = ["SHARDS", "Shard", "adopt_shards", "read_shard", "remove_dead_shards", "shard_name", "shard_number",
           "write_shard"]


def shard_name(number: int) -> str:
    return f"{number:08d}.safetensors"


def shard_number(name: str) -> int | None:
    match = _NAME.fullmatch(name)
    return int(match[1]) if match else None


class Shard:
    """A shard read back: ``embeddings`` (modality → tensor, only when read with tensors), ``rows``
    (modality → paths), ``records`` (the batch's file records) and the ``config_hash`` it was made with."""

    def __init__(self, name: str, embeddings: dict[str, torch.Tensor], rows: dict[str, list[str]],
                 records: list[FileRecord], config_hash: str) -> None:
        self.name, self.embeddings, self.rows, self.records, self.config_hash = \
            name, embeddings, rows, records, config_hash


def write_shard(index_dir: Path, number: int, embeddings: dict[str, torch.Tensor], rows: dict[str, list[str]],
                records: list[FileRecord], config_hash: str) -> str:
    """Write shard ``number`` (atomically, never over an existing one) and check it reads back; return
    its name. Every record gets the shard's name."""
    from safetensors.torch import save

    name = shard_name(number)
    for record in records:
        record.shard = name
    tensors = {m: embeddings[m].float().contiguous() for m in MODALITIES if m in embeddings}
    for m, tensor in tensors.items():
        if tensor.dim() != 2 or tensor.shape[0] != len(rows.get(m, ())):
            raise ValueError(f"shard {name}: {m} has {tuple(tensor.shape)} rows for {len(rows.get(m, ()))} paths")
    metadata = {"format": SHARD_FORMAT, "config_hash": config_hash,
                "rows": json.dumps({m: rows[m] for m in tensors}),
                "files": json.dumps([r.to_json() for r in records])}
    path = index_dir / SHARDS / name
    atomic_write_bytes(path, save(tensors, metadata), overwrite=False)
    back = read_shard(path)
    if back.rows != {m: rows[m] for m in tensors} or any(not torch.equal(back.embeddings[m], t)
                                                          for m, t in tensors.items()):
        raise OSError(f"{path}: the saved shard reads back differently than it was written")
    return name


def read_shard(path: Path, tensors: bool = True) -> Shard:
    """Read a shard (its tensors too unless ``tensors=False``); ``ValueError`` when it is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            embeddings = {key: f.get_tensor(key) for key in f.keys()} if tensors else {}
        if metadata.get("format") != SHARD_FORMAT:
            raise ValueError("no pe-av shard metadata")
        rows = json.loads(metadata["rows"])
        records = [FileRecord.from_json(item, str(path)) for item in json.loads(metadata["files"])]
    except OSError:
        raise
    except Exception as exc:  # SafetensorError, bad JSON, missing keys
        raise ValueError(f"{path} is not a readable index shard: {exc}") from exc
    for record in records:
        record.shard = path.name
    return Shard(path.name, embeddings, rows, records, metadata.get("config_hash", ""))


def shard_paths(index_dir: Path) -> Iterator[tuple[int, Path]]:
    """``(number, path)`` of every shard file, in number order."""
    folder = index_dir / SHARDS
    if not folder.is_dir():
        return iter(())
    found = ((shard_number(p.name), p) for p in folder.iterdir())
    return iter(sorted((n, p) for n, p in found if n is not None))


def adopt_shards(index_dir: Path, records: dict[str, FileRecord], next_shard: int, config_hash: str,
                 say=print) -> int:
    """Take into ``records`` the file records of shards numbered ``next_shard`` or more (written by a
    run that was interrupted before it committed the manifest), in order, so a later shard's record of
    a file wins; return the new ``next_shard``. Shards made with another ``config_hash`` or unreadable
    are left out (and deleted at the next commit)."""
    remove_temp_files(index_dir)
    if (index_dir / SHARDS).is_dir():
        remove_temp_files(index_dir / SHARDS)
    for number, path in shard_paths(index_dir):
        if number < next_shard:
            continue
        next_shard = number + 1
        try:
            shard = read_shard(path, tensors=False)
        except ValueError as exc:
            say(f"index: ignoring {path.name}: {exc}")
            continue
        if shard.config_hash != config_hash:
            say(f"index: ignoring {path.name}: made with other settings")
            continue
        for record in shard.records:
            records[record.path] = record
    return next_shard


def remove_dead_shards(index_dir: Path, records: dict[str, FileRecord], below: int) -> list[str]:
    """Delete the shards numbered below ``below`` that no record names (their rows are all dead); call
    it after the manifest naming ``records`` was committed. Return the names removed."""
    live = {record.shard for record in records.values() if record.modalities}  # failure records hold no rows
    removed = []
    for number, path in shard_paths(index_dir):
        if number < below and path.name not in live:
            os.unlink(path)
            removed.append(path.name)
    if removed:
        fsync_dir(index_dir / SHARDS)
    return removed


def live_rows(shard: Shard, modality: str, records: dict[str, FileRecord]) -> list[int]:
    """Positions of ``shard``'s ``modality`` rows whose file's record still names this shard."""
    return [i for i, path in enumerate(shard.rows.get(modality, ()))
            if (r := records.get(path)) is not None and r.shard == shard.name and modality in r.modalities]
