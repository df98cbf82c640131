"""Building and updating a media index on one machine (``pe-av index DIR --out INDEX``).

1. Walk ``DIR`` recursively for files with the wanted extensions (hidden files and folders, and the
   index folder itself, are left out).
2. Compare with the manifest: new files and files whose size or mtime changed are embedded, files
   that are gone are dropped, unchanged ones are skipped (failed ones too, unless ``retry_failed``).
3. Decode in DataLoader worker processes (:func:`pe_av.index.prepare.prepare_file`) while the main
   process runs the model on the previous batch (:func:`pe_av.index.embed.embed_prepared`);
   ``workers=0`` decodes in the main process (the serial path).
4. Save each finished batch as a shard at once and commit the manifest every ``commit_every``
   shards and at the end — also when interrupted (see :mod:`pe_av.index.writer`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..embed_parts import CliError
from ..media import special_file_problem
from .manifest import MODALITIES, FileRecord, Header, config_hash
from .writer import IndexWriter

#: extensions indexed by default (lowercase); videos are read for their audio too
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")

__all__ = ["AUDIO_EXTENSIONS", "VIDEO_EXTENSIONS", "BuildReport", "build_index", "plan_update", "walk_media"]


@dataclass
class BuildReport:
    """What a build or update did: paths added, changed (embedded again), removed and unchanged, the
    failure records of this run, files embedded and the seconds it took."""

    index: Path
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[FileRecord] = field(default_factory=list)
    embedded: int = 0
    seconds: float = 0.0

    @property
    def files_per_s(self) -> float:
        """Files processed (embedded or failed) per second of the embedding loop."""
        done = self.embedded + len(self.failed)
        return done / self.seconds if self.seconds > 0 else 0.0


def check_extensions(extensions: object) -> tuple[str, ...]:
    """``[".wav", "mp4"]`` → ``(".mp4", ".wav")`` (lowercase, with the dot); ``ValueError`` when empty."""
    if isinstance(extensions, str):
        extensions = extensions.split(",")
    names = sorted({("." + e.strip().lower().lstrip(".")) for e in extensions or () if e.strip().strip(".")})
    if not names:
        raise ValueError(f"extensions must name at least one file extension (e.g. '.wav,.mp4'), got {extensions!r}")
    return tuple(names)


def walk_media(root: Path, extensions: tuple[str, ...], skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """``relative POSIX path → (size, mtime_ns)`` of the media files under ``root``; a path that cannot
    be read as a regular file maps to ``(0, 0)`` (it becomes a failure record)."""
    found = {}
    skip = skip.resolve() if skip is not None else None
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(folder, d).resolve() != skip))
        for name in sorted(names):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in extensions:
                continue
            full = os.path.join(folder, name)
            rel = Path(os.path.relpath(full, root)).as_posix()
            try:
                info = os.stat(full)
            except OSError:
                found[rel] = (0, 0)
                continue
            found[rel] = (info.st_size, info.st_mtime_ns) if special_file_problem(info) is None else (0, 0)
    return found


def plan_update(records: dict[str, FileRecord], found: dict[str, tuple[int, int]], retry_failed: bool,
                report: BuildReport) -> list[str]:
    """Fill ``report``'s added/changed/removed/unchanged; return the paths to embed."""
    report.removed = sorted(set(records) - set(found))
    todo = []
    for path, key in found.items():
        record = records.get(path)
        if record is None:
            report.added.append(path)
        elif (record.size, record.mtime_ns) != key or (record.failed and retry_failed):
            report.changed.append(path)
        else:
            report.unchanged.append(path)
            continue
        todo.append(path)
    return todo


def resolve_modalities(requested: object, supported: tuple[str, ...], model_name: str) -> tuple[str, ...]:
    """The modalities to index: ``requested`` (a name, a comma list or a sequence; None: all the model
    has), each of which the model must support."""
    if requested is None:
        return supported
    names = requested.split(",") if isinstance(requested, str) else list(requested)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in MODALITIES]
    if not names or unknown:
        raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {requested!r}")
    missing = [n for n in names if n not in supported]
    if missing:
        raise CliError(None, f"{model_name} cannot embed {', '.join(missing)}; it handles {', '.join(supported)}")
    return tuple(m for m in MODALITIES if m in names)


def index_header(media_dir: Path, model_dir: str, model, modalities, extensions, num_frames, normalize) -> Header:
    settings = {"modalities": list(modalities), "extensions": list(extensions), "num_frames": num_frames,
                "normalize": bool(normalize), "dtype": str(model.dtype).removeprefix("torch.")}
    return Header(root=str(media_dir.resolve()), model=os.path.abspath(model_dir),
                  model_type=model.config.model_type, config_hash=config_hash(model_dir, settings),
                  settings=settings)


def build_index(media_dir, index_dir, model_dir, *, extensions=None, modalities=None, batch_size: int = 8,
                workers: int = 2, num_frames: int | None = None, normalize: bool = True, attn_impl=None,
                device=None, dtype=None, overwrite: bool = False, retry_failed: bool = False,
                progress: bool = True, commit_every: int = 64, say=print, loaded=None) -> BuildReport:
    """Build the index of ``media_dir`` in ``index_dir`` with the checkpoint ``model_dir``, or update the
    one there (see the module docs). ``loaded``: an already loaded ``(model, processor)`` of
    ``model_dir``. Returns a :class:`BuildReport`."""
    from .prepare import Plan, model_modalities

    media_dir, index_dir = Path(media_dir), Path(index_dir)
    if not media_dir.is_dir():
        raise CliError(None, f"media folder not found: {media_dir}")
    for name, value, least in (("batch_size", batch_size, 1), ("workers", workers, 0), ("commit_every", commit_every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    model, processor = loaded or _load(model_dir, attn_impl, device, dtype)
    modalities = resolve_modalities(modalities, model_modalities(model), type(model).__name__)
    if extensions is None:
        extensions = VIDEO_EXTENSIONS + (AUDIO_EXTENSIONS if "audio" in modalities else ())
    extensions = check_extensions(extensions)
    header = index_header(media_dir, model_dir, model, modalities, extensions, num_frames, normalize)
    writer = IndexWriter.open(index_dir, header, overwrite=overwrite, say=say)
    report = BuildReport(index_dir)
    todo = plan_update(writer.records, walk_media(media_dir, extensions, skip=index_dir), retry_failed, report)
    writer.drop(report.removed)
    plan = Plan(modalities, num_frames)
    start = time.perf_counter()
    try:
        for batch in _embedded_batches(model, processor, str(media_dir), todo, plan, batch_size, workers,
                                       normalize, progress):
            add_shard(writer, batch, report, say, commit_every)
    finally:
        report.seconds = time.perf_counter() - start
        writer.commit()  # also when interrupted: every finished shard is in the manifest
    return report


def add_shard(writer: IndexWriter, shard, report: BuildReport, say, commit_every: int) -> None:
    """Write one embedded shard, count it in ``report``, name its failures, and commit the manifest every
    ``commit_every`` shards (the local build and the Ray writer both take their shards here)."""
    writer.add(shard)
    report.embedded += len(shard.records) - len(shard.failures)
    report.failed += shard.failures
    for failure in shard.failures:
        say(f"index: failed {failure.path}: {failure.error}")
    if writer.shards_since_commit >= commit_every:
        writer.commit()


def _load(model_dir, attn_impl, device, dtype):
    from ..embed_run import load_model

    return load_model(str(model_dir), attn_impl, device, dtype)


def _embedded_batches(model, processor, root, paths, plan, batch_size, workers, normalize, progress):
    """Yield an :class:`~pe_av.index.embed.EmbeddedBatch` per ``batch_size`` files, decoded by ``workers``
    DataLoader processes ahead of the model."""
    import torch
    from tqdm.auto import tqdm

    from .embed import embed_prepared
    from .prepare import FileDataset, as_list

    if not paths:
        return
    loader = torch.utils.data.DataLoader(FileDataset(processor, root, paths, plan), batch_size=batch_size,
                                         num_workers=workers, collate_fn=as_list,
                                         prefetch_factor=2 if workers else None)
    with tqdm(total=len(paths), desc="index", unit="file", disable=not progress) as bar:
        for prepared in loader:
            yield embed_prepared(model, processor, prepared, plan.modalities, normalize)
            bar.update(len(prepared))
