"""Sound events (pe_av.detect_events, pe-av detect): spans from known frame scores, the frame period from
the config, the model's own per-frame probabilities, windows, the PNG plot and its missing-matplotlib path."""

from __future__ import annotations

import json
import math
import struct
import sys

import numpy as np
import pytest
import torch
from cli_helpers import run

from pe_av import (
    PeAudioFeatureExtractor,
    PeAudioFrameLevelModel,
    detect_events,
    events_from_scores,
)
from pe_av.demo import demo_frame_model, demo_tokenizer
from pe_av.media import write_audio
from pe_av.processing import PeAudioProcessor
from pe_av.tasks.events import Event, median_smooth
from pe_av.tasks.plot import plot_events

P = 0.04  # a frame period for the pure tests


def scores_with(length: int, *spans: tuple[int, int, float], base: float = 0.1) -> np.ndarray:
    """One query's scores: ``base`` everywhere, ``value`` on each ``[start, stop)``."""
    row = np.full(length, base)
    for start, stop, value in spans:
        row[start:stop] = value
    return row


def test_spans_from_known_scores():
    row = scores_with(50, (5, 10, 0.9), (20, 21, 0.31), (30, 50, 0.6))
    events = events_from_scores(row[None], ["dog"], P)
    assert [(e.query, round(e.onset_s / P), round(e.offset_s / P)) for e in events] == \
        [("dog", 5, 10), ("dog", 20, 21), ("dog", 30, 50)]
    assert [e.score for e in events] == pytest.approx([0.9, 0.31, 0.6])
    assert isinstance(events[0], Event) and events[0].onset_s == pytest.approx(5 * P)


def test_threshold_is_strict_and_configurable():
    row = scores_with(20, (2, 4, 0.3), (10, 12, 0.5))
    assert [round(e.onset_s / P) for e in events_from_scores(row[None], ["q"], P)] == [10]  # 0.3 is not > 0.3
    assert [round(e.onset_s / P) for e in events_from_scores(row[None], ["q"], P, threshold=0.2)] == [2, 10]


def test_min_duration_and_merge_gap():
    row = scores_with(60, (0, 3, 0.8), (10, 20, 0.7), (23, 30, 0.9), (50, 51, 0.95))
    kept = events_from_scores(row[None], ["q"], P, min_duration=4 * P)
    assert [(round(e.onset_s / P), round(e.offset_s / P)) for e in kept] == [(10, 20), (23, 30)]
    merged = events_from_scores(row[None], ["q"], P, merge_gap=3 * P)  # the gap 20..23 is 3 frames
    assert [(round(e.onset_s / P), round(e.offset_s / P)) for e in merged] == [(0, 3), (10, 30), (50, 51)]
    assert merged[1].score == pytest.approx(0.9)
    short_gap = events_from_scores(row[None], ["q"], P, merge_gap=2 * P)
    assert len(short_gap) == 4
    # merged first, then filtered: the two halves are each too short, together long enough
    both = events_from_scores(row[None], ["q"], P, merge_gap=3 * P, min_duration=15 * P)
    assert [(round(e.onset_s / P), round(e.offset_s / P)) for e in both] == [(10, 30)]


def test_median_filter_removes_spikes_and_dropouts():
    row = scores_with(40, (5, 6, 0.9), (20, 35, 0.8))
    row[27] = 0.0  # a one-frame dropout inside the event
    raw = events_from_scores(row[None], ["q"], P)
    assert len(raw) == 3
    smooth = events_from_scores(row[None], ["q"], P, median_filter=3 * P)
    assert [(round(e.onset_s / P), round(e.offset_s / P)) for e in smooth] == [(20, 35)]


def test_median_smooth_equals_a_plain_loop():
    rng = np.random.default_rng(0)
    scores = rng.random((3, 23))
    for width in (1, 3, 5, 7):
        half = width // 2
        expected = np.array([[np.median(row[max(0, i - half): i + half + 1].tolist()
                                        + [row[0]] * max(0, half - i) + [row[-1]] * max(0, i + half + 1 - len(row)))
                              for i in range(len(row))] for row in scores])
        np.testing.assert_allclose(median_smooth(scores, width), expected)
    with pytest.raises(ValueError, match="odd"):
        median_smooth(scores, 4)


def test_queries_sorted_by_onset_and_clipped_to_the_duration():
    scores = np.stack([scores_with(10, (6, 10, 0.9)), scores_with(10, (1, 3, 0.8))])
    events = events_from_scores(scores, ["late", "early"], P, duration=9.5 * P)
    assert [e.query for e in events] == ["early", "late"]
    assert events[1].offset_s == pytest.approx(9.5 * P)


@pytest.mark.parametrize("kwargs, match", [({"threshold": 1.5}, "threshold"), ({"min_duration": -1}, "min_duration"),
                                           ({"merge_gap": float("nan")}, "merge_gap"),
                                           ({"median_filter": "3"}, "median_filter")])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        events_from_scores(np.zeros((1, 5)), ["q"], P, **kwargs)
    with pytest.raises(ValueError, match="queries"):
        events_from_scores(np.zeros((2, 5)), ["q"], P)


# ---------------------------------------------------------------------- on a model

RATE = 48_000


@pytest.fixture(scope="module")
def processor():
    return PeAudioProcessor(feature_extractor=PeAudioFeatureExtractor(), tokenizer=demo_tokenizer())


@pytest.fixture(scope="module")
def model():
    return demo_frame_model(seed=0)


QUERIES = ["a pure tone", "static noise"]


def scene(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.where(t < seconds / 2, 0.5 * np.sin(2 * np.pi * 440 * t),
                    np.random.default_rng(0).uniform(-0.3, 0.3, len(t))).astype(np.float32)


def model_probs(model, processor, samples):
    """sigmoid of forward's per-frame logits_audio_text, (queries, frames)."""
    inputs = processor(text=QUERIES, audio=[samples])
    with torch.no_grad():
        out = model(inputs["input_ids"], inputs["input_values"], inputs["attention_mask"], inputs["padding_mask"])
    return out.logits_audio_text[0].sigmoid().numpy()


def test_one_window_scores_are_the_models_own(model, processor):
    samples = scene()
    detection = detect_events(model, processor, samples, QUERIES, threshold=0.5, min_duration=0.08)
    expected = model_probs(model, processor, samples)
    assert detection.frame_period == pytest.approx(1920 / RATE)
    np.testing.assert_allclose(detection.scores, expected, atol=1e-5)
    assert detection.events == events_from_scores(expected, QUERIES, 1920 / RATE, threshold=0.5, min_duration=0.08,
                                                  duration=len(samples) / RATE)


def test_the_frame_period_comes_from_the_config(processor):
    torch.manual_seed(0)
    config = demo_frame_model().config
    config.audio_config.dac_config.downsampling_ratios = [2, 8, 5, 12]  # hop 960: 20 ms at 48 kHz
    model = PeAudioFrameLevelModel(config).eval()
    with torch.no_grad():  # as the demo model: spread weights, unit logit scale, so scores differ from 0.5
        for name, param in model.named_parameters():
            param.mul_(10.0) if param.dim() >= 2 else param.fill_(1.0) if name.endswith("logit_scale") else None
    samples = scene(0.5)  # 24000 samples: 25 frames of 960 (the processor pads to 1920, one frame more)
    detection = detect_events(model, processor, samples, QUERIES)
    assert detection.frame_period == pytest.approx(960 / RATE)
    assert detection.scores.shape == (2, math.ceil(len(samples) / 960)) == (2, 25)
    expected = model_probs(model, processor, samples)[:, :25]
    assert expected.std() > 0.01
    np.testing.assert_allclose(detection.scores, expected, atol=1e-5)


def test_windows_cover_long_audio_and_average_overlaps(model, processor):
    samples = scene(2.0)
    hop = 1920
    detection = detect_events(model, processor, samples, QUERIES, window_s=0.8, hop_s=0.4)
    window, step = round(0.8 * RATE / hop) * hop, round(0.4 * RATE / hop) * hop
    total = np.zeros((2, math.ceil(len(samples) / hop)))
    count = np.zeros(total.shape[1])
    start = 0
    while True:
        piece = samples[start : start + window]
        probs = model_probs(model, processor, piece)
        total[:, start // hop : start // hop + probs.shape[1]] += probs
        count[start // hop : start // hop + probs.shape[1]] += 1
        if start + window >= len(samples):
            break
        start += step
    np.testing.assert_allclose(detection.scores, total / count, atol=1e-5)
    assert detection.duration == pytest.approx(len(samples) / RATE)


def test_detect_needs_a_frame_level_model(processor):
    from pe_av.demo import demo_model

    with pytest.raises(TypeError, match="PeAudioFrameLevelModel"):
        detect_events(demo_model(), processor, scene(), QUERIES)


def test_bad_queries(model, processor):
    for queries in ([], "dog", ["a", "a"], ["a", ""]):
        with pytest.raises(ValueError, match="queries"):
            detect_events(model, processor, scene(0.2), queries)


# ---------------------------------------------------------------------- plot


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_is_a_png_of_the_expected_size(model, processor, tmp_path):
    detection = detect_events(model, processor, scene(), QUERIES, threshold=0.5)
    path = plot_events(detection, tmp_path / "events.png", width=640, row_height=150)
    assert png_size(path) == (640, 300)
    with pytest.raises(FileExistsError):
        plot_events(detection, path)
    plot_events(detection, path, width=500, row_height=100, overwrite=True)
    assert png_size(path) == (500, 200)


@pytest.fixture()
def no_matplotlib(monkeypatch):
    """Imports of matplotlib fail, as where it is not installed."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_matplotlib_the_plot_says_how_to_install_it(model, processor, tmp_path, no_matplotlib):
    detection = detect_events(model, processor, scene(0.3), QUERIES)
    with pytest.raises(ImportError, match=r"pip install 'pe-av\[plot\]'"):
        plot_events(detection, tmp_path / "events.png")
    assert not (tmp_path / "events.png").exists()


# ---------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model, processor):
    directory = tmp_path_factory.mktemp("detect") / "tiny-pe-a-frame"
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    return write_audio(tmp_path_factory.mktemp("scene") / "scene.wav", scene(), RATE)


def test_cli_json_equals_the_api(checkpoint, scene_file, model, processor):
    status, out, err = run(["detect", "--model", checkpoint, scene_file, "--queries", *QUERIES, "--threshold", "0.5",
                            "--median-filter", "0.12", "--json", "--no-progress"])
    assert status == 0, err
    expected = detect_events(model, processor, str(scene_file), QUERIES, threshold=0.5, median_filter=0.12)
    rows = json.loads(out)
    assert [r["query"] for r in rows] == [e.query for e in expected]
    np.testing.assert_allclose([[r["onset_s"], r["offset_s"], r["score"]] for r in rows],
                               [[e.onset_s, e.offset_s, e.score] for e in expected], atol=1e-6)


def test_cli_csv_and_plot_files(checkpoint, scene_file, tmp_path):
    out, plot = tmp_path / "events.csv", tmp_path / "events.png"
    argv = ["detect", "--model", checkpoint, scene_file, "--queries", *QUERIES, "--out", out, "--plot", plot,
            "--no-progress"]
    status, _, err = run(argv)
    assert status == 0, err
    assert out.read_text().splitlines()[0] == "query,onset_s,offset_s,score"
    assert png_size(plot) == (1000, 320)
    status, _, err = run(argv)
    assert status == 1 and "already exists" in err


def test_cli_without_matplotlib_says_how_to_install_it(checkpoint, scene_file, tmp_path, no_matplotlib):
    status, _, err = run(["detect", "--model", checkpoint, scene_file, "--queries", "a", "--plot",
                          tmp_path / "e.png"])
    assert status == 1 and "pip install 'pe-av[plot]'" in err
    assert not (tmp_path / "e.png").exists()
