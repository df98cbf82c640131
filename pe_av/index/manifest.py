"""The manifest of a media index: ``INDEX/manifest.jsonl``.

The first line is the header (what the index was built with); every other line is one media file::

    {"format": "pe-av index", "version": 1, "root": "/abs/media", "model": "/abs/ckpt", "model_type": ...,
     "config_hash": "…", "settings": {...}, "next_shard": 12}
    {"path": "birds/robin.mp4", "size": 81234, "mtime_ns": …, "duration": 4.2,
     "modalities": ["audio", "video", "audio_video"], "shard": "00000003.safetensors", "error": null}
    {"path": "broken.wav", "size": 17, "mtime_ns": …, "duration": null, "modalities": [], "shard": "…",
     "error": "cannot decode the audio of …"}

``path`` is relative to ``root`` (POSIX separators), so a file is known by where it sits in the
collection; ``size`` and ``mtime_ns`` tell an unchanged file from a changed one. A file whose
``error`` is set is a failure record: it has no rows. The manifest is rewritten whole and atomically
(:func:`pe_av.atomic.atomic_write_bytes`), so a reader sees one committed state; shards written after
the last commit carry the same records in their metadata and are adopted on the next open
(:mod:`pe_av.index.store`). JSON lines rather than one JSON document: a collection of millions of
files is read line by line, never as one string.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import atomic_write_bytes

FORMAT = "pe-av index"
VERSION = 1
MANIFEST = "manifest.jsonl"
#: what an index can hold per file, in the order rows are embedded and listed
MODALITIES = ("audio", "video", "audio_video")
#: longest manifest line read (a record is ~200 bytes; the header a few kB)
MAX_LINE = 1 << 20

__all__ = ["FORMAT", "MANIFEST", "MODALITIES", "FileRecord", "Header", "config_hash", "read_manifest",
           "write_manifest"]


@dataclass
class FileRecord:
    """One media file of the index: where it is (relative to the root), its size and mtime when it was
    embedded, its duration, the modalities it has rows for, the shard holding them, or why it failed."""

    path: str
    size: int
    mtime_ns: int
    duration: float | None = None
    modalities: list[str] = field(default_factory=list)
    shard: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object, where: str) -> FileRecord:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ValueError(f"{where}: not a file record (an object with a 'path')")
        try:
            record = cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})
        except TypeError as exc:
            raise ValueError(f"{where}: not a file record ({exc})") from exc
        if not isinstance(record.size, int) or not isinstance(record.mtime_ns, int) \
                or not isinstance(record.modalities, list) or not set(record.modalities) <= set(MODALITIES):
            raise ValueError(f"{where}: file record {record.path!r} has a bad size, mtime_ns or modalities")
        return record


@dataclass
class Header:
    """What an index is built with. ``settings``: ``modalities``, ``extensions``, ``num_frames``,
    ``normalize``, ``dtype``; ``next_shard``: the number the next shard gets (shards numbered from it
    on were written after this manifest and are adopted on open)."""

    root: str
    model: str
    model_type: str
    config_hash: str
    settings: dict
    next_shard: int = 0
    format: str = FORMAT
    version: int = VERSION

    def to_json(self) -> dict:
        return asdict(self)


def config_hash(model_dir: str | os.PathLike, settings: dict) -> str:
    """A digest of the checkpoint's config and processor files and the index settings: rows embedded
    under another hash are not comparable, so an index refuses to mix them. (The weights are not
    hashed, they can be gigabytes: rebuild with ``--overwrite`` after changing them.)"""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    folder = Path(model_dir)
    for name in ("config.json", "processor_config.json", "preprocessor_config.json",
                 "video_preprocessor_config.json", "tokenizer.json"):
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def read_manifest(index_dir: str | os.PathLike) -> tuple[Header, dict[str, FileRecord]]:
    """The header and the file records (by path) of ``index_dir``'s manifest; ``FileNotFoundError`` when
    there is none, ``ValueError`` naming the file and line when it cannot be read."""
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{index_dir} is not a pe-av index (no {MANIFEST})")
    records: dict[str, FileRecord] = {}
    header = None
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            where = f"{path} line {number}"
            if len(line) > MAX_LINE:
                raise ValueError(f"{where}: longer than {MAX_LINE} bytes; not a pe-av manifest")
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc})") from exc
            if header is None:
                header = _header(data, where)
                continue
            record = FileRecord.from_json(data, where)
            records[record.path] = record
    if header is None:
        raise ValueError(f"{path} is empty; not a pe-av index")
    return header, records


def _header(data: object, where: str) -> Header:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{where}: not a pe-av index header")
    if data.get("version") != VERSION:
        raise ValueError(f"{where}: index version {data.get('version')!r}; this pe-av reads version {VERSION}")
    try:
        return Header(**{key: data[key] for key in Header.__dataclass_fields__})
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{where}: incomplete index header (missing {exc})") from exc


def write_manifest(index_dir: str | os.PathLike, header: Header, records: dict[str, FileRecord]) -> Path:
    """Write the manifest atomically: header, then the records sorted by path."""
    lines = [json.dumps(header.to_json())] + [json.dumps(records[key].to_json()) for key in sorted(records)]
    return atomic_write_bytes(Path(index_dir) / MANIFEST, ("\n".join(lines) + "\n").encode())
