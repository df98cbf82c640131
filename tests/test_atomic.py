"""pe_av.atomic: the target holds the old content or the whole new one; temp files never stay behind."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import pe_av.atomic
from pe_av.atomic import atomic_path, atomic_write_bytes, fsync_dir, remove_temp_files


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "a.bin"
    assert atomic_write_bytes(target, b"one") == target and target.read_bytes() == b"one"
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and leftovers(tmp_path) == []
    fsync_dir(tmp_path)


def test_temp_path_keeps_the_suffix_for_writers_that_add_one(tmp_path):
    target = tmp_path / "emb.npy"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npy" and tmp.name.startswith(".emb.npy.")
        np.save(tmp, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2] and sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy"]


@pytest.mark.parametrize("error", [ValueError("writer failed"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_an_error_in_the_writer_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise error
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_failing_fsync_or_rename_leaves_nothing(tmp_path, monkeypatch, step):
    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pe_av.atomic.os, step, fail)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(tmp_path / "a.bin", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_creates_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="created no file"), atomic_path(tmp_path / "a.bin"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_refuses_an_existing_target(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"new", overwrite=False)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"other", overwrite=False)
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []

    def no_links(*args):  # e.g. a FAT or some network filesystem
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(pe_av.atomic.os, "link", no_links)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"other", overwrite=False)
    atomic_write_bytes(tmp_path / "b.bin", b"b", overwrite=False)
    assert target.read_bytes() == b"new" and (tmp_path / "b.bin").read_bytes() == b"b"
    assert leftovers(tmp_path) == []


def test_remove_temp_files_removes_only_leftovers(tmp_path):
    names = [".emb.npy.0123abcd.tmp.npy", ".emb.npy.0123abcd.tmp", ".other.bin.89abcdef.tmp.bin",
             ".emb.npy.tmp.npy", "emb.npy", ".hidden.tmp-notes", "x.0123abcd.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    removed = remove_temp_files(tmp_path, name="emb.npy")
    assert sorted(p.name for p in removed) == [".emb.npy.0123abcd.tmp", ".emb.npy.0123abcd.tmp.npy"]
    assert [p.name for p in remove_temp_files(tmp_path)] == [".other.bin.89abcdef.tmp.bin"]
    assert sorted(os.listdir(tmp_path)) == sorted([".emb.npy.tmp.npy", "emb.npy", ".hidden.tmp-notes", "x.0123abcd.tmp"])
