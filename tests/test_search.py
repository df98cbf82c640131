"""pe-av search / MediaIndex.search: the hits are the top k of the manual computation (text embedding ·
each row), whatever the chunk size; FAISS gives the same hits; --like scores media against media; the
CLI prints a table of score, modality, path; bad arguments are clear errors."""

from __future__ import annotations

import json

import pytest
from cli_helpers import make_checkpoint, run, write_clips

from pe_av import PeAudioVideoModel, PeAudioVideoProcessor, encode_text
from pe_av.demo import write_demo_media
from pe_av.index import MediaIndex

QUERIES = ["a pure tone", "static noise", "a red square moves"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    model_dir = make_checkpoint(root / "model")
    write_demo_media(root / "media" / "demo")
    write_clips(root / "media" / "clips", 6)
    status, out, err = run(["index", root / "media", "--model", model_dir, "--out", root / "idx", "--workers", "0",
                            "--batch-size", "4", "--no-progress"])
    assert status == 0, err
    assert "12 file(s) (12 audio, 2 video, 2 audio_video rows)" in out
    model = PeAudioVideoModel.from_pretrained(model_dir)
    processor = PeAudioVideoProcessor.from_pretrained(model_dir)
    return {"root": root, "index": MediaIndex.load(root / "idx"), "model": model, "processor": processor}


def manual_top(built, query: str, modalities, k: int):
    """Top k by the manual computation: encode_text in each modality's space, dot every row."""
    index, scored = built["index"], []
    for modality in modalities:
        text = encode_text(built["model"], built["processor"], [query], target=modality, progress=False)[0]
        paths, rows = index.embeddings(modality)
        scored += [(float(s), p, modality) for s, p in zip((rows @ text).tolist(), paths)]
    return sorted(scored, key=lambda t: -t[0])[:k]


@pytest.mark.parametrize("chunk_rows", [1, 3, 65536])
def test_text_search_is_the_manual_top_k_for_any_chunk_size(built, chunk_rows):
    index = built["index"]
    for query in QUERIES:
        for modality, k in ((None, 5), ("audio", 11), ("video", 1), ("audio_video", 4)):
            hits = index.search(query, k=k, modality=modality, chunk_rows=chunk_rows)
            want = manual_top(built, query, index.modalities if modality is None else (modality,), k)
            assert [(h.path, h.modality) for h in hits] == [(p, m) for _, p, m in want]
            assert [h.score for h in hits] == pytest.approx([s for s, _, _ in want], abs=1e-6)


def test_faiss_gives_the_exact_hits(built):
    # faiss-cpu comes with the test extra, so this runs in CI (a missing faiss is an ImportError here)
    index = built["index"]
    for query in QUERIES:
        for modality in (None, "audio", "video"):
            exact = index.search(query, k=6, modality=modality)
            fast = index.search(query, k=6, modality=modality, backend="faiss")
            assert [(h.path, h.modality) for h in fast] == [(h.path, h.modality) for h in exact]
            assert [h.score for h in fast] == pytest.approx([h.score for h in exact], abs=1e-5)


def test_like_scores_a_file_against_rows_of_its_modalities(built):
    index = built["index"]
    video = built["root"] / "media" / "demo" / "red_square.mp4"
    hits = index.search(like=video, k=30)
    assert {h.modality for h in hits} == {"audio", "video", "audio_video"}
    for modality in ("audio", "video", "audio_video"):
        paths, rows = index.embeddings(modality)
        own = rows[paths.index("demo/red_square.mp4")]
        mine = [h for h in hits if h.modality == modality]
        assert mine[0].path == "demo/red_square.mp4" and mine[0].score == pytest.approx(1.0, abs=1e-5)
        assert [h.score for h in mine] == pytest.approx(sorted((rows @ own).tolist(), reverse=True), abs=1e-5)
    audio_only = index.search(like=built["root"] / "media" / "clips" / "clip_02.wav", k=3)
    assert {h.modality for h in audio_only} == {"audio"} and audio_only[0].path == "clips/clip_02.wav"


def test_cli_prints_a_results_table_and_json(built):
    status, out, err = run(["search", built["root"] / "idx", "a pure tone", "--k", "3"])
    assert status == 0, err
    header, *lines = out.strip().splitlines()
    assert header.split() == ["score", "modality", "path"] and len(lines) == 3
    want = manual_top(built, "a pure tone", built["index"].modalities, 3)
    for line, (score, path, modality) in zip(lines, want):
        value, kind, shown = line.split()
        assert (float(value), kind, shown) == (pytest.approx(score, abs=5e-4), modality,
                                               str(built["index"].root / path))
    status, out, _ = run(["search", built["root"] / "idx", "--like", built["root"] / "media" / "clips" / "clip_01.wav",
                          "--k", "2", "--modality", "audio", "--json"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and rows[0]["path"].endswith("clips/clip_01.wav") and rows[0]["modality"] == "audio"


def test_bad_arguments_are_clear_errors(built, tmp_path):
    index = built["index"]
    for kwargs, message in (({"k": 0}, "k must be a positive int"), ({"backend": "annoy"}, "backend must be one of"),
                            ({"modality": "image"}, "modality must be one of"),
                            ({"chunk_rows": 0}, "chunk_rows must be")):
        with pytest.raises(ValueError, match=message):
            index.search("a tone", **kwargs)
    with pytest.raises(ValueError, match="one of them"):
        index.search("a tone", like="x.wav")
    with pytest.raises(ValueError, match="non-empty string"):
        index.search("  ")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"no")
    with pytest.raises(ValueError, match="bad.wav"):
        index.search(like=bad)
    status, _, err = run(["search", tmp_path / "nowhere", "x"])
    assert status == 1 and "index folder not found" in err
    status, _, err = run(["search", tmp_path, "x"])
    assert status == 1 and "is not a pe-av index" in err
    status, _, err = run(["index", tmp_path, "--out", tmp_path / "new.index"])
    assert status == 1 and "--model: is needed" in err
    with pytest.raises(SystemExit):
        run(["search", built["root"] / "idx"])


def test_index_usage_errors(tmp_path):
    for argv in (["index", tmp_path, "--out", tmp_path / "i", "--actors", "2"],
                 ["index", tmp_path, "--out", tmp_path / "i", "--workers", "-1"],
                 ["index", tmp_path, "--out", tmp_path / "i", "--ray", "--cpus-per-decoder", "0"],
                 ["search", tmp_path, "q", "--k", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            run(argv)
        assert exit_info.value.code == 2
