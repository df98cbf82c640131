"""The work folder of a resumable ``pe-av embed --out OUT`` run: ``OUT.parts/``.

While a run is going, every finished batch is saved there at once, so a crash, a signal or a bad file
costs at most the batch in flight::

    OUT.parts/
      run.json                     what the run embeds with: model, modality, normalize, num_frames,
                                   dtype (a --resume with other settings is refused)
      media-000000.safetensors     one per finished batch of files: tensor "embeddings" (k, dim) float32,
      media-000001.safetensors     metadata "items" (the file names as given) and "keys" (absolute path,
      ...                          size and mtime of each file, so a changed file is embedded again)
      text-000000.safetensors      the same for batches of --text captions (keys: the captions)
      failures.jsonl               one JSON line per input that could not be embedded in this run:
                                   {"file": ..., "reason": ...} or {"text": ..., "reason": ...}

Each shard is written atomically (temporary file in the folder, fsync, rename, fsync of the folder; see
:mod:`pe_av.atomic`) and read back to check it before the run goes on. ``--resume`` reuses every
readable shard whose keys match inputs of the new run and embeds only the rest (failed inputs are tried
again); at the end the run assembles ``OUT`` from the rows in input order and removes the folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .atomic import atomic_write_bytes, fsync_dir, remove_temp_files

FORMAT = "pe-av embed parts"
VERSION = 1
SETTINGS = ("model", "modality", "normalize", "num_frames", "fps", "max_frames", "dtype")
KINDS = ("media", "text")
OUT_FORMATS = (".npy", ".safetensors")
_SHARD = re.compile(r"(media|text)-(\d{6})\.safetensors")


class CliError(Exception):
    """An error the CLI prints as one line: ``pe-av <command>: error: <target>: <message>``."""

    def __init__(self, target: object, message: str) -> None:
        super().__init__(f"{target}: {message}" if target is not None else message)
        self.target, self.message = target, message


def media_key(path: str) -> str:
    """What identifies a media file across runs: its absolute path, size and modification time."""
    stat = os.stat(path)
    return json.dumps([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])


def parts_folder(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


@dataclass
class Outputs:
    out: Path
    media: Path | None  # where the file embeddings go (None: no files)
    text: Path | None  # where the caption embeddings go (None: no captions)
    failures: Path
    parts: Path

    @property
    def finals(self) -> list[Path]:
        return list(dict.fromkeys(p for p in (self.media, self.text, self.failures) if p is not None))


def check_out(value: str, has_media: bool, has_text: bool, overwrite: bool, resume: bool) -> Outputs:
    """Validate ``--out`` and decide every path the run writes; refuse to replace anything unless
    ``overwrite``, and an unfinished run's parts folder unless ``resume`` or ``overwrite``."""
    out = Path(value)
    if out.is_dir():
        raise CliError("--out", f"{out} is a directory; give a file name ending in {' or '.join(OUT_FORMATS)}")
    if out.suffix not in OUT_FORMATS:
        raise CliError(None, f"--out must end in {' or '.join(OUT_FORMATS)}, got {out.name!r}")
    if not out.parent.is_dir():
        raise CliError(None, f"--out directory does not exist: {out.parent}")
    try:
        fd, probe = tempfile.mkstemp(dir=out.parent, prefix=".pe-av-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CliError("--out", f"cannot write in {out.parent}: {exc.strerror or exc}") from exc
    if out.suffix == ".safetensors":
        media, text = (out if has_media else None), (out if has_text else None)
    else:
        media = out if has_media else None
        text = (out.with_name(out.stem + ".text.npy") if has_media else out) if has_text else None
    outputs = Outputs(out, media, text, out.with_name(out.name + ".failures.jsonl"), parts_folder(out))
    for path in outputs.finals:
        if path.is_dir():
            raise CliError(path, "is a directory; choose another --out")
        if path.exists() and not overwrite:
            raise CliError(path, "already exists; pass --overwrite to replace it")
    if outputs.parts.exists() and not (resume or overwrite):
        raise CliError(outputs.parts, "holds an unfinished run for this --out; pass --resume to continue it, "
                       "or --overwrite to start over")
    return outputs


def check_files(files: list[str]) -> list[str]:
    """Every media file exists and is a regular file; return their keys (see :func:`media_key`)."""
    from .media import special_file_problem  # the one description of directories, FIFOs, devices

    for path in files:
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise CliError(None, f"media file not found: {path}") from None
        except (OSError, ValueError) as exc:
            raise CliError(path, f"cannot access it: {exc}") from None
        problem = special_file_problem(info)
        if problem is not None:
            raise CliError(path, problem)
    return [media_key(path) for path in files]


@dataclass
class Parts:
    """The shards of one run (``folder`` None: no ``--out``, rows are kept in memory only)."""

    folder: Path | None
    rows: dict[str, dict[str, torch.Tensor]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failures: list[dict] = field(default_factory=list)
    reused_shards: int = 0
    ignored_shards: list[str] = field(default_factory=list)
    _next: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})

    # ------------------------------------------------------------------ opening

    @classmethod
    def start(cls, folder: Path | None, settings: dict, inputs: dict, resume: bool) -> Parts:
        """Open ``folder`` for a run: create it fresh, or (``resume``) load the shards it holds whose
        settings match. ``inputs`` maps each kind to its keys (what may be reused)."""
        parts = cls(folder)
        if folder is None:
            return parts
        if resume and folder.is_dir():
            parts._load(settings, inputs)
        target = folder
        try:
            if not resume:
                if folder.exists():
                    shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
                folder.mkdir()
                fsync_dir(folder.parent)
            record = {"format": FORMAT, "version": VERSION, **settings}
            target = folder / "run.json"
            atomic_write_bytes(target, (json.dumps(record, indent=1) + "\n").encode())
            target = folder / "failures.jsonl"
            atomic_write_bytes(target, b"")  # this run tries the failed inputs again
        except OSError as exc:
            raise CliError(target, f"cannot start the run's work folder: {_os_message(exc)}") from exc
        return parts

    def _load(self, settings: dict, inputs: dict) -> None:
        folder = self.folder
        remove_temp_files(folder)
        try:
            record = json.loads((folder / "run.json").read_text("utf-8"))
            if record.get("format") != FORMAT or record.get("version") != VERSION:
                raise ValueError(f"not a version {VERSION} parts folder")
        except (OSError, ValueError) as exc:
            raise CliError(folder, f"cannot resume from it ({exc}); pass --overwrite to start over") from exc
        changed = [f"{k}={record.get(k)!r} then, {settings[k]!r} now" for k in SETTINGS if record.get(k) != settings[k]]
        if changed:
            raise CliError(folder, f"was started with other settings ({'; '.join(changed)}); resume with the "
                           "same ones, or pass --overwrite to start over")
        wanted = {kind: set(inputs[kind]) for kind in KINDS}
        for path in sorted(folder.iterdir()):
            match = _SHARD.fullmatch(path.name)
            if not match:
                continue
            kind, number = match[1], int(match[2])
            self._next[kind] = max(self._next[kind], number + 1)
            try:
                keys, embeddings = _read_shard(path, kind)
            except (OSError, ValueError) as exc:
                self.ignored_shards.append(f"{path.name} (unreadable: {exc})")
                continue
            if not set(keys) & wanted[kind]:
                self.ignored_shards.append(f"{path.name} (its inputs are not in this run)")
                continue
            self.reused_shards += 1
            for key, row in zip(keys, embeddings):
                if key in wanted[kind]:
                    self.rows[kind][key] = row

    # ------------------------------------------------------------------ saving

    def add(self, kind: str, items: list[str], keys: list[str], embeddings: torch.Tensor) -> None:
        """Keep the rows of one batch; with a folder, write them as the next shard first (checked)."""
        embeddings = embeddings.float().contiguous()
        if self.folder is not None:
            from safetensors.torch import save

            path = self.folder / f"{kind}-{self._next[kind]:06d}.safetensors"
            self._next[kind] += 1
            metadata = {"kind": kind, "items": json.dumps(items), "keys": json.dumps(keys)}
            try:
                atomic_write_bytes(path, save({"embeddings": embeddings}, metadata), overwrite=False)
                read_keys, read_back = _read_shard(path, kind)
            except (OSError, ValueError) as exc:
                raise CliError(path, f"cannot save a finished batch: {_os_message(exc)}") from exc
            if read_keys != keys or not torch.equal(read_back, embeddings):
                raise CliError(path, "the saved batch reads back differently than it was written")
        for key, row in zip(keys, embeddings):
            self.rows[kind][key] = row

    def fail(self, kind: str, item: str, reason: str) -> None:
        """Record an input that could not be embedded (appended to failures.jsonl at once)."""
        entry = {"file" if kind == "media" else "text": item, "reason": reason}
        self.failures.append(entry)
        if self.folder is not None:
            try:
                with open(self.folder / "failures.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise CliError(self.folder / "failures.jsonl", f"cannot record a failure: {_os_message(exc)}") from exc

    def remove(self) -> None:
        if self.folder is not None and self.folder.is_dir():
            shutil.rmtree(self.folder)
            fsync_dir(self.folder.parent)


def _read_shard(path: Path, kind: str) -> tuple[list[str], torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            embeddings = f.get_tensor("embeddings") if "embeddings" in f.keys() else None
        keys = json.loads(metadata.get("keys", "null"))
    except OSError:
        raise
    except Exception as exc:  # SafetensorError, bad JSON: not a shard
        raise ValueError(f"not a readable shard: {exc}") from exc
    if metadata.get("kind") != kind or not isinstance(keys, list) or embeddings is None \
            or embeddings.dim() != 2 or embeddings.shape[0] != len(keys):
        raise ValueError("not a shard of this kind")
    return keys, embeddings


def _os_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})"
    return str(exc)


def describe_positions(positions: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"1-3, 6"`` (1-based input numbers, as ranges)."""
    spans, start, prev = [], None, None
    for p in sorted(positions):
        if start is None:
            start = prev = p
        elif p == prev + 1:
            prev = p
        else:
            spans.append((start, prev))
            start = prev = p
    if start is not None:
        spans.append((start, prev))
    return ", ".join(f"{a + 1}" if a == b else f"{a + 1}-{b + 1}" for a, b in spans)
