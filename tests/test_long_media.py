"""Long media: fps= / max_frames= frame sampling (rules, seeking decoder, processor, encode, CLI) and long
audio embedded in windows (timestamps, pooling, equal to embedding each window)."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import make_checkpoint, run

from pe_av import (
    FrameSampling,
    embed_audio_windows,
    encode_audio,
    encode_video,
    iter_audio_windows,
)
from pe_av.demo import demo_model, demo_processor
from pe_av.media import (
    load_audio,
    load_video,
    sample_frame_indices,
    write_audio,
    write_video,
)
from pe_av.media_video import decode_video, frame_converter

RATE = 48_000


# ---------------------------------------------------------------------- frame sampling rules


def test_num_frames_is_the_reference_rule():
    assert FrameSampling(num_frames=5).indices(100) == sample_frame_indices(100, 5)
    assert FrameSampling(num_frames=5, max_frames=3).indices(100) == sample_frame_indices(100, 3)


@pytest.mark.parametrize("total, video_fps, fps", [(240, 24.0, 2.0), (250, 25.0, 3.0), (7, 30.0, 1.0), (91, 29.97, 4)])
def test_fps_takes_one_frame_every_one_over_fps_seconds(total, video_fps, fps):
    indices = FrameSampling(fps=fps).indices(total, video_fps)
    duration = total / video_fps
    assert len(indices) == max(1, math.ceil(duration * fps - 1e-9))
    for k, index in enumerate(indices):  # frame shown at time k / fps
        assert index / video_fps <= k / fps + 1e-9 < (index + 1) / video_fps


def test_max_frames_spreads_over_the_whole_video():
    assert FrameSampling(max_frames=10).indices(8) is None  # fewer frames than the cap: all of them
    assert FrameSampling(max_frames=4).indices(100) == sample_frame_indices(100, 4)
    assert FrameSampling(fps=2, max_frames=64).indices(30 * 600, 30.0) == sample_frame_indices(30 * 600, 64)
    assert len(FrameSampling(fps=2, max_frames=64).indices(30 * 20, 30.0)) == 40


@pytest.mark.parametrize("kwargs, match", [({"num_frames": 2, "fps": 1}, "not both"), ({"fps": 0}, "fps"),
                                           ({"max_frames": 0}, "max_frames"), ({"fps": float("inf")}, "fps")])
def test_bad_sampling(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FrameSampling(**kwargs)
    with pytest.raises(ValueError, match="frame rate"):
        FrameSampling(fps=2).indices(10)


# ---------------------------------------------------------------------- decoding


def frames_of(count: int) -> np.ndarray:
    video = np.zeros((count, 32, 32, 3), np.uint8)
    for i in range(count):
        video[i, :, :, 0] = (i * 5) % 256
        video[i, i % 32, :, 1] = 255
    return video


def write_with_b_frames(path, frames, fps=24):
    """libx264 at its default preset (B-frames: decode order differs from presentation order), GOP 10."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.gop_size = 10
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    frames = frames_of(120)
    return {
        "mp4": write_video(root / "gop.mp4", frames, fps=24, keyframe_interval=12),
        "webm": write_video(root / "gop.webm", frames, fps=24, keyframe_interval=12),
        "bframes": write_with_b_frames(root / "bframes.mp4", frames),
        "one_gop": write_video(root / "one.mp4", frames, fps=24),
    }


SAMPLINGS = [FrameSampling(fps=2), FrameSampling(num_frames=7), FrameSampling(max_frames=5),
             FrameSampling(fps=1, max_frames=3)]


@pytest.mark.parametrize("kind", ["mp4", "webm", "bframes", "one_gop"])
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=str)
def test_sampled_frames_equal_the_full_decode(videos, kind, sampling):
    everything = load_video(videos[kind])
    stats = {}
    picked = np.stack(decode_video(str(videos[kind]), sampling, frame_converter(None), stats))
    np.testing.assert_array_equal(picked, everything[sampling.indices(len(everything), 24.0)])
    if kind in ("mp4", "webm", "bframes"):  # keyframes every 10-12 frames: seeking skips most of the 120
        assert stats["method"] == "seek" and stats["decoded"] < 60, stats


def test_load_video_takes_fps_and_max_frames(videos):
    everything = load_video(videos["mp4"])
    np.testing.assert_array_equal(load_video(videos["mp4"], fps=4), everything[::6])
    np.testing.assert_array_equal(load_video(videos["mp4"], max_frames=4, size=(16, 16)).shape, (4, 16, 16, 3))
    with pytest.raises(ValueError, match="not both"):
        load_video(videos["mp4"], num_frames=3, fps=2)


def test_processor_and_encode_with_fps(videos):
    processor = demo_processor()
    from_file = processor(videos=[str(videos["mp4"])], fps=2, max_frames=8)["pixel_values_videos"]
    frames = load_video(videos["mp4"])
    from_array = processor(videos=[frames], fps=2, max_frames=8, video_metadata={"fps": 24})["pixel_values_videos"]
    assert from_file.shape[1] == 8
    torch.testing.assert_close(from_file, from_array)
    with pytest.raises(ValueError, match="frame rate"):
        processor(videos=[frames], fps=2)
    model = demo_model()
    embedded = encode_video(model, processor, [str(videos["mp4"])], fps=2, max_frames=8, normalize=False)
    with torch.no_grad():
        expected = model.get_video_embeds(from_file, torch.ones(1, 8, dtype=torch.bool))
    torch.testing.assert_close(embedded, expected)


def test_embed_cli_takes_fps_and_max_frames(videos, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "tiny")
    out = tmp_path / "v.npy"
    status, _, err = run(["embed", "--model", checkpoint, str(videos["mp4"]), "--modality", "video", "--fps", "2",
                          "--max-frames", "8", "--out", out, "--no-normalize", "--no-progress"])
    assert status == 0, err
    model, processor = demo_model(), demo_processor()
    expected = encode_video(model, processor, [str(videos["mp4"])], fps=2, max_frames=8, normalize=False)
    np.testing.assert_allclose(np.load(out), expected.numpy(), atol=1e-5)
    with pytest.raises(SystemExit):
        run(["embed", "--model", checkpoint, str(videos["mp4"]), "--fps", "2", "--num-frames", "3"])


# ---------------------------------------------------------------------- audio windows


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.4, 0.4, int(seconds * RATE)).astype(np.float32)


def test_windows_of_an_array_and_of_a_file_agree(tmp_path):
    samples = noise(2.3)
    path = write_audio(tmp_path / "n.wav", samples, RATE, codec="pcm_f32le")
    from_array = list(iter_audio_windows(samples, RATE, window_s=1.0, hop_s=0.5))
    from_file = list(iter_audio_windows(path, RATE, window_s=1.0, hop_s=0.5))
    assert [w.start for w in from_array] == [w.start for w in from_file] == [0, 24000, 48000, 72000]
    assert [len(w.samples) for w in from_array] == [48000, 48000, 48000, len(samples) - 72000]
    for a, b in zip(from_array, from_file):
        np.testing.assert_array_equal(a.samples, b.samples)
    pieces = [from_array[0].samples, from_array[2].samples, from_array[3].samples[24000:]]
    np.testing.assert_array_equal(np.concatenate(pieces), samples)  # the windows cover the audio to its end
    exact = noise(2.0)  # ends exactly at a window's end: no empty window after it
    assert [w.start for w in iter_audio_windows(exact, RATE, window_s=1.0)] == [0, 48000]
    with pytest.raises(ValueError, match="hop_s"):
        list(iter_audio_windows(samples, RATE, window_s=1.0, hop_s=2.0))


def test_window_embeddings_and_pooling():
    model, processor = demo_model(), demo_processor()
    samples = noise(2.5, seed=3)
    result = embed_audio_windows(model, processor, samples, window_s=1.0, hop_s=0.75, batch_size=2, progress=False)
    starts = [0.0, 0.75, 1.5]
    assert result.starts == pytest.approx(starts) and result.ends == pytest.approx([1.0, 1.75, 2.5])
    pieces = [samples[int(s * RATE): int(s * RATE) + RATE] for s in starts]
    expected = encode_audio(model, processor, pieces, normalize=True)
    torch.testing.assert_close(result.embeddings, expected, atol=1e-5, rtol=1e-5)
    weights = torch.tensor([len(p) for p in pieces], dtype=torch.float32)[:, None]
    torch.testing.assert_close(result.pooled, F.normalize((expected * weights).sum(0) / weights.sum(), dim=-1),
                               atol=1e-5, rtol=1e-5)
    raw = embed_audio_windows(model, processor, samples, window_s=1.0, hop_s=0.75, normalize=False, progress=False)
    raw_expected = encode_audio(model, processor, pieces, normalize=False)
    torch.testing.assert_close(raw.pooled, (raw_expected * weights).sum(0) / weights.sum(), atol=1e-5, rtol=1e-5)


def test_short_audio_is_one_window_equal_to_the_clip(tmp_path):
    model, processor = demo_model(), demo_processor()
    path = write_audio(tmp_path / "short.wav", noise(0.7), RATE)
    result = embed_audio_windows(model, processor, path, progress=False)
    assert result.starts == [0.0] and result.ends[0] == pytest.approx(len(load_audio(path)) / RATE)
    torch.testing.assert_close(result.pooled, encode_audio(model, processor, [path])[0], atol=1e-6, rtol=1e-5)
