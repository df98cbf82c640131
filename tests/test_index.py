"""pe_av.index: the rows equal pe_av.encode's embeddings of the same files; the manifest describes the
files; a bad file is a failure record; updates embed only new and changed files and drop deleted ones;
an interrupted build keeps its shards and resumes; decoding in worker processes gives the serial rows."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from cli_helpers import make_checkpoint, temp_files, write_clips

import pe_av.index.embed
from pe_av import (
    PeAudioVideoModel,
    PeAudioVideoProcessor,
    encode_audio,
    encode_audio_video,
    encode_video,
)
from pe_av.demo import write_demo_media
from pe_av.index import MediaIndex, build_index
from pe_av.index.manifest import MANIFEST, read_manifest
from pe_av.index.store import SHARDS
from pe_av.index.writer import IndexWriter
from pe_av.media import media_info

ATOL = 1e-5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    model_dir = make_checkpoint(root / "model")
    media = root / "media"
    write_demo_media(media / "demo")
    write_clips(media / "clips" / "deeper", 3)
    (media / "broken.wav").write_bytes(b"RIFF but not really a wave file")
    (media / "notes.txt").write_text("not media, not indexed")
    model = PeAudioVideoModel.from_pretrained(model_dir)
    processor = PeAudioVideoProcessor.from_pretrained(model_dir)
    return {"root": root, "model_dir": model_dir, "media": media, "model": model, "processor": processor}


def copy_media(setup, tmp_path):
    media = tmp_path / "media"
    shutil.copytree(setup["media"], media)
    return media


def expected_rows(setup, media, paths, modality):
    full = [str(media / p) for p in paths]
    model, processor = setup["model"], setup["processor"]
    helper = {"audio": encode_audio, "video": encode_video, "audio_video": encode_audio_video}[modality]
    return helper(model, processor, full, progress=False)


def test_rows_equal_the_encode_helpers_and_manifest_describes_files(setup, tmp_path):
    media = copy_media(setup, tmp_path)
    index = MediaIndex.build(media, tmp_path / "idx", setup["model_dir"], workers=0, batch_size=3, progress=False)
    videos = {"demo/red_square.mp4", "demo/blue_stripes.webm"}
    audio_only = {"demo/tone_440hz.wav", "demo/beep_1760hz.flac", "demo/static.mp3",
                  "demo/scenes/scene.wav"} | {f"clips/deeper/clip_{i:02d}.wav" for i in range(3)}
    assert {r.path for r in index.files} == videos | audio_only
    assert [r.path for r in index.failures] == ["broken.wav"]  # notes.txt: not a media extension
    for modality in ("audio", "video", "audio_video"):
        paths, rows = index.embeddings(modality)
        assert set(paths) == (videos | audio_only if modality == "audio" else videos)
        torch.testing.assert_close(rows, expected_rows(setup, media, paths, modality), atol=ATOL, rtol=0)
    header, records = read_manifest(tmp_path / "idx")
    assert header.root == str(media.resolve()) and header.model == os.path.abspath(setup["model_dir"])
    assert header.model_type == "pe_audio_video" and len(header.config_hash) == 32
    for path, record in records.items():
        stat = (media / path).stat()
        assert (record.size, record.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        if not record.failed:
            assert record.duration == pytest.approx(media_info(media / path).duration)
            assert record.modalities == (["audio", "video", "audio_video"] if path in videos else ["audio"])
    assert not temp_files(tmp_path / "idx")


def test_bad_file_is_a_failure_record_and_the_run_goes_on(setup, tmp_path):
    media = tmp_path / "media"
    write_clips(media, 2)
    (media / "zero.wav").write_bytes(b"")
    (media / "fake.mp4").write_bytes(os.urandom(300))
    report = build_index(media, tmp_path / "idx", setup["model_dir"], workers=2, batch_size=4, progress=False,
                         say=lambda message: None)
    assert sorted(f.path for f in report.failed) == ["fake.mp4", "zero.wav"]
    assert report.embedded == 2
    index = MediaIndex.load(tmp_path / "idx")
    reasons = {r.path: r.error for r in index.failures}
    assert "empty" in reasons["zero.wav"] and "fake.mp4" in reasons["fake.mp4"]
    assert len(index) == 2


def test_update_embeds_new_and_changed_files_drops_deleted_ones(setup, tmp_path):
    media = copy_media(setup, tmp_path)
    index = MediaIndex.build(media, tmp_path / "idx", setup["model_dir"], workers=0, batch_size=2, progress=False,
                             say=lambda message: None)
    first_shards = sorted(p.name for p in (tmp_path / "idx" / SHARDS).iterdir())
    os.unlink(media / "demo" / "static.mp3")
    write_clips(media / "new", 1)
    changed = media / "clips" / "deeper" / "clip_00.wav"
    os.unlink(changed)
    shutil.copy(media / "demo" / "tone_440hz.wav", changed)  # other content under the old name
    report = index.update(workers=0, progress=False, say=lambda message: None)
    assert report.added == ["new/clip_00.wav"]
    assert report.changed == ["clips/deeper/clip_00.wav"]
    assert report.removed == ["demo/static.mp3"]
    assert "demo/red_square.mp4" in report.unchanged and "broken.wav" in report.unchanged
    assert report.embedded == 2
    paths, rows = index.embeddings("audio")
    assert "demo/static.mp3" not in paths and {"new/clip_00.wav", "clips/deeper/clip_00.wav"} <= set(paths)
    torch.testing.assert_close(rows, expected_rows(setup, media, paths, "audio"), atol=ATOL, rtol=0)
    hits = index.search(like=changed, modality="audio", k=3)
    assert {hits[0].path, hits[1].path} == {"clips/deeper/clip_00.wav", "demo/tone_440hz.wav"}
    assert all(h.path != "demo/static.mp3" for h in index.search("static", k=50))
    # files are batched in path order: the first shard held broken.wav (a failure record, no rows) and
    # clips/deeper/clip_00.wav (changed), so none of its rows is live any more and it is deleted
    now = sorted(p.name for p in (tmp_path / "idx" / SHARDS).iterdir())
    assert first_shards[0] == "00000000.safetensors" and first_shards[0] not in now
    assert set(first_shards[1:]) < set(now)
    live = {r.shard for r in index.records.values() if r.modalities}
    assert live <= set(now)


def test_interrupted_build_keeps_finished_shards_and_resumes(setup, tmp_path, monkeypatch):
    media = copy_media(setup, tmp_path)
    reference = MediaIndex.build(media, tmp_path / "ref", setup["model_dir"], workers=0, batch_size=2,
                                 progress=False, say=lambda message: None)
    calls = {"n": 0}
    original = pe_av.index.embed.embed_prepared

    def stop_after_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(pe_av.index.embed, "embed_prepared", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        build_index(media, tmp_path / "idx", setup["model_dir"], workers=0, batch_size=2, progress=False)
    monkeypatch.undo()
    _, records = read_manifest(tmp_path / "idx")
    assert len(records) == 4  # two finished batches of two, committed when interrupted
    report = build_index(media, tmp_path / "idx", setup["model_dir"], workers=0, batch_size=2, progress=False,
                         say=lambda message: None)
    assert not set(report.added) & set(records) and len(report.added) == len(reference.records) - 4
    resumed = MediaIndex.load(tmp_path / "idx")
    for modality in ("audio", "video", "audio_video"):
        ref_paths, ref_rows = reference.embeddings(modality)
        paths, rows = resumed.embeddings(modality)
        order = [paths.index(p) for p in ref_paths]
        assert sorted(paths) == sorted(ref_paths)
        torch.testing.assert_close(rows[order], ref_rows, atol=1e-6, rtol=0)


def test_shards_written_after_the_last_commit_are_adopted(setup, tmp_path):
    """A kill between a shard's write and the manifest's commit (no finally runs) loses nothing."""
    from pe_av.index.build import index_header
    from pe_av.index.embed import embed_prepared
    from pe_av.index.prepare import Plan, prepare_file

    media = tmp_path / "media"
    write_clips(media, 3)
    model, processor = setup["model"], setup["processor"]
    header = index_header(media, setup["model_dir"], model, ("audio",), (".wav",), None, True)
    writer = IndexWriter.open(tmp_path / "idx", header)
    prepared = [prepare_file(processor, str(media), f"clip_0{i}.wav", Plan(("audio",))) for i in range(2)]
    writer.add(embed_prepared(model, processor, prepared, ("audio",)))  # no commit: as if killed here
    assert read_manifest(tmp_path / "idx")[1] == {}
    report = build_index(media, tmp_path / "idx", setup["model_dir"], modalities="audio", extensions=".wav",
                         workers=0, progress=False)
    assert report.added == ["clip_02.wav"] and sorted(report.unchanged) == ["clip_00.wav", "clip_01.wav"]
    paths, rows = MediaIndex.load(tmp_path / "idx").embeddings("audio")
    torch.testing.assert_close(rows, expected_rows(setup, media, paths, "audio"), atol=ATOL, rtol=0)


def test_worker_processes_give_the_serial_rows(setup, tmp_path):
    media = copy_media(setup, tmp_path)
    serial = MediaIndex.build(media, tmp_path / "serial", setup["model_dir"], workers=0, batch_size=3,
                              progress=False, say=lambda message: None)
    parallel = MediaIndex.build(media, tmp_path / "parallel", setup["model_dir"], workers=2, batch_size=3,
                                progress=False, say=lambda message: None)
    for modality in serial.modalities:
        a, b = serial.embeddings(modality), parallel.embeddings(modality)
        assert a[0] == b[0]
        torch.testing.assert_close(a[1], b[1], atol=1e-6, rtol=0)
    assert [r.path for r in parallel.failures] == ["broken.wav"]


def test_settings_change_is_refused_without_overwrite(setup, tmp_path):
    from pe_av.embed_parts import CliError

    media = tmp_path / "media"
    write_clips(media, 1)
    build_index(media, tmp_path / "idx", setup["model_dir"], workers=0, progress=False)
    with pytest.raises(CliError, match="other settings.*config hash"):
        build_index(media, tmp_path / "idx", setup["model_dir"], workers=0, progress=False, normalize=False)
    report = build_index(media, tmp_path / "idx", setup["model_dir"], workers=0, progress=False, normalize=False,
                         overwrite=True)
    assert report.added == ["clip_00.wav"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("user data")
    with pytest.raises(CliError, match="holds no pe-av index"):
        build_index(media, tmp_path / "other", setup["model_dir"], workers=0, progress=False, overwrite=True)
    assert (tmp_path / "other" / "keep.txt").is_file()


def test_manifest_is_json_lines_with_a_header(setup, tmp_path):
    media = tmp_path / "media"
    write_clips(media, 2)
    build_index(media, tmp_path / "idx", setup["model_dir"], workers=0, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "idx" / MANIFEST).read_text().splitlines()]
    assert lines[0]["format"] == "pe-av index" and lines[0]["settings"]["modalities"] == ["audio", "video",
                                                                                           "audio_video"]
    assert [line["path"] for line in lines[1:]] == ["clip_00.wav", "clip_01.wav"]
    (tmp_path / "idx" / MANIFEST).write_text('{"format": "pe-av index", "version": 99}\n')
    with pytest.raises(ValueError, match="version 99"):
        MediaIndex.load(tmp_path / "idx")
