"""Decoding that fails cleanly, excerpts, streaming resampling and resize-on-decode.

One test per error class of issue 14 (each asserts the type and that the message names the file):
not a regular file (directory, FIFO, device), NaN / infinite samples, a video track with no
decodable frame, a metadata tag that is not UTF-8, a channel layout or rate that changes
mid-stream, and whatever else PyAV raises. Then ``load_audio``'s ``offset`` / ``duration``, the
streaming resampler (equal bit for bit to :func:`resample`), and ``load_video(size=...)`` (equal to
resizing after decoding). Files are made here, tiny, with the project's writers.
"""

import math
import os
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from pe_av import media
from pe_av.media import load_audio, load_video, media_info, write_audio, write_video
from pe_av.processing import PeVideoVideoProcessor, resample, resize_frames
from pe_av.processing.resample import StreamingResampler

LOADERS = (load_audio, load_video, media_info)


def tone(freq=440.0, seconds=0.25, rate=48_000, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def frames(count=6, height=32, width=48):
    video = np.zeros((count, height, width, 3), np.uint8)
    for i in range(count):
        video[i, :, :, 0] = 30 * i
        video[i, 4:20, 3 * i : 3 * i + 12, 1] = 255
    return video


def write_packed(path, samples, rate, layout, codec, container_format=None):
    """Multichannel audio through packed float frames (PyAV's planar from_ndarray stops at 8 channels)."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        for start in range(0, samples.shape[1], 1024):
            chunk = np.ascontiguousarray(samples[:, start : start + 1024].T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return Path(path)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("robust")


# ---------------------------------------------------------------------- one test per error class


def test_not_regular_files_get_their_own_message(root):
    kinds = [(root, "is a directory")]
    if hasattr(os, "mkfifo"):
        fifo = root / "pipe.wav"
        os.mkfifo(fifo)  # opening it would block until a writer comes: it must only be stat'ed
        kinds.append((fifo, r"is a named pipe \(FIFO\)"))
    if os.path.exists("/dev/null"):
        kinds.append((Path("/dev/null"), "is a character device"))
    for path, message in kinds:
        for loader in LOADERS:
            with pytest.raises(ValueError, match=f"{path}.* {message}, not a"):
                loader(path)
    with pytest.raises(FileNotFoundError, match="audio file not found: .*missing.wav"):
        load_audio(root / "missing.wav")
    with pytest.raises(FileNotFoundError, match="video file not found"):
        load_video(root / "not-a-dir.wav" / "clip.mp4")  # a path through a file


def test_nan_and_infinite_samples_are_an_error_naming_the_file(root):
    for bad in (np.nan, np.inf, -np.inf):
        samples = tone(rate=16_000)
        samples[1000] = bad
        path = write_audio(root / f"bad-{bad}.wav", samples, 16_000, codec="pcm_f32le")  # float PCM keeps NaN
        with pytest.raises(ValueError, match=rf"{path}: the audio track decodes to NaN or infinite samples"):
            load_audio(path)
    fine = write_audio(root / "fine.wav", tone(rate=16_000), 16_000, codec="pcm_f32le")
    assert np.isfinite(load_audio(fine)).all()


def test_video_track_with_no_decodable_frame(root):
    path = root / "empty-video.mkv"
    with av.open(str(path), "w") as container:  # a video stream that never gets a packet
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        sound = container.add_stream("flac", rate=48_000)
        sound.layout = "mono"
        frame = av.AudioFrame.from_ndarray(tone()[None, :1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48_000, 0
        container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
        container.mux(video.encode(None))
    for num_frames in (None, 1, 4):  # num_frames=N used to raise KeyError: 0
        with pytest.raises(ValueError, match=f"{path}: the video track holds no decodable frames"):
            load_video(path, num_frames=num_frames)
    assert media_info(path).has_video and len(load_audio(path)) == 1024


def with_info_tag(wav: bytes, tag: bytes) -> bytes:
    """``wav`` with a RIFF LIST/INFO title chunk holding ``tag`` (raw bytes) before its data chunk."""
    info = b"INAM" + struct.pack("<I", len(tag)) + tag + b"\0" * (len(tag) % 2)
    chunk = b"LIST" + struct.pack("<I", 4 + len(info)) + b"INFO" + info
    at = wav.index(b"data")
    body = wav[8:at] + chunk + wav[at:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_metadata_that_is_not_utf8_is_replaced_not_fatal(root):
    clean = write_audio(root / "clean.wav", tone(), 48_000)
    tagged = root / "tagged.wav"
    tagged.write_bytes(with_info_tag(clean.read_bytes(), b"caf\xe9 \xff\xfe\x80"))
    with pytest.raises(UnicodeDecodeError):  # what PyAV does by default: no file name in it
        av.open(str(tagged)).close()
    np.testing.assert_array_equal(load_audio(tagged), load_audio(clean))
    assert media_info(tagged).has_audio


def test_channel_layout_or_rate_changing_mid_stream(root):
    """Raw ADTS (AAC) streams carry their layout and rate per frame: joining two makes a track
    whose frames change mid-stream, which used to reach PyAV's planar conversion unchecked."""
    mono = write_audio(root / "mono.aac", tone(seconds=0.5), 48_000, codec="aac")
    stereo = write_audio(root / "stereo.aac", np.stack([tone(seconds=0.5)] * 2), 48_000, codec="aac")
    slower = write_audio(root / "slower.aac", tone(seconds=0.5, rate=44_100), 44_100, codec="aac")
    for second, change in ((stereo, "1 channel.* to 2 channel"), (slower, "1 channel.* at 48000 Hz to 1 channel.* at 44100 Hz")):
        joined = root / f"mono-then-{second.stem}.aac"
        joined.write_bytes(mono.read_bytes() + second.read_bytes())
        with pytest.raises(ValueError, match=rf"{joined}: the audio track changes from {change}"):
            load_audio(joined)


def test_many_channels_decode_without_planar_conversion(root):
    """12 channels (and AAC 7.1) used to crash the process: PyAV's planar frames read past their
    plane pointers from 8 channels on. They now come packed and mix down to the channel mean."""
    rng = np.random.default_rng(0)
    samples = (0.3 * rng.standard_normal((12, 5000))).astype(np.float32)
    wav = write_packed(root / "twelve.wav", samples, 48_000, "7.1.4", "pcm_f32le")
    np.testing.assert_array_equal(load_audio(wav), samples.mean(axis=0, dtype=np.float64).astype(np.float32))
    surround = write_packed(root / "surround.aac", np.tile(tone(seconds=0.5), (8, 1)), 48_000, "7.1", "aac", "adts")
    audio = load_audio(surround)  # AAC's LFE channel keeps only lows: 7 of the 8 channels hold the tone
    assert abs(np.sqrt(np.mean(audio[4000:-4000] ** 2)) - 7 / 8 * 0.5 / np.sqrt(2)) < 0.02


def write_raw_h264(path, height, width, count=3):
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.read_bytes()


def test_frames_changing_size_mid_stream(root):
    """Two raw H.264 streams joined: the decoder's frames change size; without ``size`` that is an
    error naming the file (it was numpy's stacking error), with ``size`` every frame is resized."""
    joined = root / "sizes.h264"
    joined.write_bytes(write_raw_h264(root / "a.h264", 32, 32) + write_raw_h264(root / "b.h264", 48, 64))
    for num_frames in (None, 2):
        with pytest.raises(ValueError, match=rf"{joined}: the video's frames change size mid-stream"):
            load_video(joined, num_frames=num_frames)
    assert load_video(joined, size=(16, 24)).shape == (6, 16, 24, 3)


class Broken:
    """A container whose decoding raises ``error`` (what PyAV raises on some corrupt files)."""

    def __init__(self, error):
        self.error = error
        self.streams = type("Streams", (), {"audio": [self], "video": [self]})()  # the container is its stream
        self.codec_context = type("Codec", (), {"sample_rate": 48_000, "width": 8, "height": 8})()
        self.duration = self.time_base = self.start_time = None

    def decode(self, *args):
        raise self.error

    demux = decode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("error", [
    av.error.InvalidDataError(-1094995529, "Invalid data found when processing input"),
    OSError(5, "Input/output error"), RuntimeError("boom"), IndexError("list index out of range"),
    KeyError(0), MemoryError(), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
], ids=lambda e: type(e).__name__)
def test_any_other_decoder_error_becomes_a_value_error_naming_the_file(root, monkeypatch, error):
    path = write_audio(root / "ok.wav", tone(), 48_000)
    monkeypatch.setattr(media, "_open", lambda p: Broken(error))
    for loader in (load_audio, load_video):
        with pytest.raises(ValueError, match=f"cannot decode the (audio|video) of {path}: {type(error).__name__}"):
            loader(path)


def test_a_file_that_vanishes_is_still_not_found(root, monkeypatch):
    path = write_audio(root / "gone.wav", tone(), 48_000)

    def vanish(p):
        os.remove(p)
        return av.open(p)

    monkeypatch.setattr(media, "_open", vanish)
    with pytest.raises(FileNotFoundError, match=f"media file not found: {path}"):
        load_audio(path)


# ---------------------------------------------------------------------- offset / duration


@pytest.fixture(scope="module")
def long_files(root):
    rng = np.random.default_rng(1)
    t = np.arange(5 * 22_050) / 22_050
    signal = (0.4 * np.sin(2 * math.pi * 330 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    return [write_audio(root / "long.wav", np.stack([signal, signal[::-1]]), 22_050),
            write_audio(root / "long.flac", signal, 22_050)]


@pytest.mark.parametrize("offset, duration", [(0.0, 0.5), (0.3, 1.0), (3.7, 0.8), (4.2, None), (4.5, 3.0)])
def test_offset_and_duration_cut_the_whole_file_output_exactly(long_files, offset, duration):
    """Far offsets seek (3.7 s and later here); PCM and FLAC excerpts equal the whole output's slice."""
    for path in long_files:
        whole = load_audio(path)
        start = round(offset * 48_000)
        stop = len(whole) if duration is None else start + round(duration * 48_000)
        np.testing.assert_array_equal(load_audio(path, offset=offset, duration=duration), whole[start:stop])


def test_offset_and_duration_are_checked(long_files):
    path = long_files[0]
    for name, value in (("offset", -1.0), ("offset", math.nan), ("offset", math.inf), ("duration", 0.0),
                        ("duration", -2), ("duration", math.inf)):
        with pytest.raises(ValueError, match=f"{name} must be a finite number of seconds"):
            load_audio(path, **{name: value})
    for name, value in (("offset", "1"), ("duration", True)):
        with pytest.raises(TypeError, match=f"{name} must be a number of seconds"):
            load_audio(path, **{name: value})
    with pytest.raises(ValueError, match=f"{path}: offset=9.0 s is at or past the end"):
        load_audio(path, offset=9.0)
    with pytest.raises(ValueError, match="sampling_rate must be a positive integer"):
        load_audio(path, sampling_rate=0)


# ---------------------------------------------------------------------- streaming resampler


@pytest.mark.parametrize("source, target", [(16_000, 48_000), (44_100, 48_000), (96_000, 48_000),
                                            (44_100, 16_000), (47_999, 48_000), (48_000, 48_000)])
def test_streaming_resampler_equals_resample_bit_for_bit(source, target):
    rng = np.random.default_rng(source)
    signal = rng.uniform(-1, 1, 150_000 if source != 47_999 else 20_000).astype(np.float32)
    whole = resample(signal, source, target)
    for piece in (1, 1024, 30_001):
        signal_used, expected = (signal[:3000], resample(signal[:3000], source, target)) if piece == 1 \
            else (signal, whole)
        stream = StreamingResampler(source, target)
        parts = [stream.feed(signal_used[i : i + piece]) for i in range(0, len(signal_used), piece)]
        np.testing.assert_array_equal(np.concatenate([*parts, stream.finish()]), expected)
    start = len(whole) // 2 + 7  # the tail, fed from the first sample it needs (what a seek does)
    first = StreamingResampler(source, target).first_input_needed(start)
    stream = StreamingResampler(source, target, first=first, start=start)
    np.testing.assert_array_equal(np.concatenate([stream.feed(signal[first:]), stream.finish()]), whole[start:])


def test_blocked_float32_resampling_stays_within_1e6_of_float64():
    """Blocks change the float32 summation order against one whole-signal convolution; the outputs
    stay within 1e-6 of the float64 computation of the same filter (so within 1e-6 of before)."""
    signal = np.random.default_rng(2).uniform(-1, 1, 300_000)
    for source in (16_000, 44_100, 22_050):
        exact = resample(signal, source, 48_000)
        assert np.abs(resample(signal.astype(np.float32), source, 48_000) - exact).max() < 1e-6


def test_load_audio_equals_resampling_the_decoded_track(long_files, root):
    for path in [*long_files, write_audio(root / "short.flac", tone(rate=44_100), 44_100)]:
        native = media_info(path).sample_rate
        np.testing.assert_array_equal(load_audio(path), resample(load_audio(path, native), native, 48_000))


# ---------------------------------------------------------------------- resize on decode


@pytest.fixture(scope="module")
def clip(root):
    return write_video(root / "clip.mp4", frames(count=9, height=40, width=64), fps=12)


def as_chw(video):
    return torch.from_numpy(video).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("size", [(16, 24), (56, 30), (40, 64)])
def test_load_video_resizes_as_it_decodes_like_resizing_afterwards(clip, size):
    full = load_video(clip)
    expected = resize_frames(as_chw(full), *size).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(load_video(clip, size=size), expected)
    np.testing.assert_array_equal(load_video(clip, num_frames=4, size=size), expected[[0, 2, 5, 8]])
    np.testing.assert_array_equal(load_video(clip, size=lambda h, w: size), expected)


def test_processor_on_a_path_equals_processing_the_decoded_frames(clip):
    """The processor loads files with ``size``, so it then meets frames already at the target size:
    :func:`resize_frames` of such frames is the identity (the same tensor comes back), which is why
    the pixels equal today's decode-everything-then-resize path."""
    already = as_chw(load_video(clip, size=(28, 28)))
    assert resize_frames(already, 28, 28) is already
    for size in ({"height": 28, "width": 28}, {"shortest_edge": 20}):
        for num_frames in (None, 5):
            vp = PeVideoVideoProcessor(size=size)
            from_path = vp(clip, num_frames=num_frames)["pixel_values_videos"]
            from_frames = vp(load_video(clip), num_frames=num_frames)["pixel_values_videos"]
            assert from_path.shape == from_frames.shape and torch.equal(from_path, from_frames)
    unresized = PeVideoVideoProcessor(do_resize=False)(clip)["pixel_values_videos"]
    assert unresized.shape == (1, 9, 3, 40, 64)


@pytest.mark.parametrize("size", [(0, 10), (10,), "336", (10.0, 10), (True, 4)])
def test_load_video_size_is_checked(clip, size):
    with pytest.raises(ValueError, match="size must be"):
        load_video(clip, size=size)
