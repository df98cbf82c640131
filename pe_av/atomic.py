"""Atomic file writes: a reader sees the old file, or the whole new one, never a partial one.

Every write goes to a temporary file in the target's own folder (same filesystem, so the final rename
is atomic), is flushed and fsynced, then renamed onto the target with :func:`os.replace` (or linked
with :func:`os.link` when the target must not be replaced), and the folder is fsynced so the rename
itself survives a crash. On any error — the write, the fsync, the rename, ``KeyboardInterrupt`` — the
temporary file is removed and the target is left as it was.

Temporary files are named ``.<name>.<random>.tmp<suffix>`` (they keep the target's suffix, because some
writers, e.g. ``numpy.save``, append one otherwise), so :func:`remove_temp_files` can clear the ones a
killed process left behind.

    with atomic_path("emb.npy") as tmp:
        np.save(tmp, array)          # any writer that takes a path
    atomic_write_bytes("meta.json", b"{}")
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TEMP_MARK", "atomic_path", "atomic_write_bytes", "fsync_dir", "fsync_file", "remove_temp_files"]

TEMP_MARK = ".tmp"


def fsync_file(path: str | os.PathLike) -> None:
    """Flush ``path``'s data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (new, renamed or removed files) to the disk; a no-op where folders cannot
    be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse to fsync a folder
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_MARK}{target.suffix}")


def _link_or_fail(tmp: Path, target: Path) -> None:
    """Put ``tmp`` at ``target`` only if ``target`` does not exist (atomic where hard links work)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "already exists", str(target)) from None
    except OSError as exc:  # no hard links here (some network or FAT filesystems): check, then rename
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "already exists", str(target)) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without error, fsync it and move it
    onto ``path`` atomically. With ``overwrite=False`` an existing ``path`` is never replaced: the move
    raises ``FileExistsError`` instead. On error the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    tmp = _temp_name(target)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(errno.ENOENT, "the writer created no file", str(tmp))
        fsync_file(tmp)
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_or_fail(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); return ``path``."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def remove_temp_files(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in ``folder`` (only those for
    target ``name`` when given); return what was removed."""
    removed = []
    pattern = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}" + re.escape(TEMP_MARK) + r"(\.[^.]*)?")
    for entry in Path(folder).iterdir():
        match = pattern.fullmatch(entry.name)
        if match and (name is None or match["name"] == name) and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed
