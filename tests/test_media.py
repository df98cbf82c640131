"""Decoding real files with PyAV: formats, mixdown, resampling, frame sampling, clear errors.

Every file is made here with PyAV's encoders (tiny: ≤ 0.5 s, 32×32)."""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pe_av.media import load_audio, load_video, media_info, write_audio, write_video
from pe_av.media_video import _decode_selected
from pe_av.processing import PeAudioFeatureExtractor, PeVideoVideoProcessor, resample

RATE = 48_000
FRAMES = 12


def tone(freq, seconds=0.5, rate=RATE, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def moving_bar(frames=FRAMES, size=32):
    video = np.zeros((frames, size, size, 3), np.uint8)
    for i in range(frames):
        video[i, :, :, 0] = 20 * i  # a brightness ramp tells frames apart
        video[i, 8:24, 2 * i : 2 * i + 8, 1] = 255
    return video


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    stereo = np.stack([tone(440), tone(660, amplitude=0.25)])
    return {
        "wav": write_audio(root / "stereo.wav", stereo, RATE),
        "flac": write_audio(root / "tone.flac", tone(440, rate=44_100), 44_100),
        "mp3": write_audio(root / "tone.mp3", tone(440), RATE),
        "ogg": write_audio(root / "tone.ogg", tone(440), RATE),
        "mp4": write_video(root / "clip.mp4", moving_bar(), fps=24, audio=tone(440)),
        "mkv": write_video(root / "clip.mkv", moving_bar(), fps=24, audio=tone(440)),
        "webm": write_video(root / "clip.webm", moving_bar(), fps=24, audio=tone(440)),
        "silent": write_video(root / "silent.mp4", moving_bar(), fps=24),
        "root": root,
    }


def test_wav_stereo_is_mixed_down(files):
    audio = load_audio(files["wav"])
    expected = (tone(440) + tone(660, amplitude=0.25)) / 2
    assert audio.dtype == np.float32 and audio.shape == expected.shape
    np.testing.assert_allclose(audio, expected, atol=1e-4)  # 16-bit PCM


def test_flac_is_resampled_to_the_target_rate(files):
    audio = load_audio(files["flac"], sampling_rate=RATE)
    assert len(audio) == RATE // 2
    np.testing.assert_allclose(audio[500:-500], tone(440)[500:-500], atol=2e-4)
    at_16k = load_audio(files["flac"], sampling_rate=16_000)
    np.testing.assert_allclose(at_16k, resample(load_audio(files["flac"], 44_100), 44_100, 16_000), atol=1e-6)


@pytest.mark.parametrize("kind", ["mp3", "ogg", "mp4", "mkv", "webm"])
def test_lossy_and_container_audio_decodes(kind, files):
    audio = load_audio(files[kind])
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    assert abs(len(audio) - RATE // 2) <= 2048  # codec priming/padding
    middle = audio[len(audio) // 4 : -len(audio) // 4]
    assert abs(np.sqrt(np.mean(middle**2)) - 0.5 / np.sqrt(2)) < 0.03  # the tone's RMS


@pytest.mark.parametrize("kind", ["mp4", "mkv", "webm"])
def test_video_frames_decode_and_sample(kind, files):
    frames = load_video(files[kind])
    assert frames.shape == (FRAMES, 32, 32, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(float) - moving_bar()).mean() < 8  # yuv420 + lossy codec
    sampled = load_video(files[kind], num_frames=4)
    np.testing.assert_array_equal(sampled, frames[[0, 3, 7, 11]])
    np.testing.assert_array_equal(load_video(files[kind], num_frames=20)[:3], frames[[0, 0, 1]])


def test_frame_count_mismatch_triggers_a_second_pass(files):
    """When the packet count is wrong the selection is redone with the decoded count."""
    picked, decoded = _decode_selected(str(files["mp4"]), FRAMES + 5, 4)
    assert picked == [] and decoded == FRAMES
    picked, decoded = _decode_selected(str(files["mp4"]), decoded, 4)
    np.testing.assert_array_equal(np.stack(picked), load_video(files["mp4"])[[0, 3, 7, 11]])


def test_media_info(files):
    info = media_info(files["webm"])
    assert info.has_audio and info.has_video and (info.width, info.height) == (32, 32) and info.fps == 24
    assert not media_info(files["silent"]).has_audio
    assert not media_info(files["flac"]).has_video and media_info(files["flac"]).sample_rate == 44_100


def test_processors_accept_paths(files):
    fe = PeAudioFeatureExtractor()
    from_path = fe([str(files["wav"]), files["flac"]])
    from_arrays = fe([load_audio(files["wav"]), load_audio(files["flac"])])
    for key in from_path:
        assert (from_path[key] == from_arrays[key]).all()
    vp = PeVideoVideoProcessor(size={"height": 28, "width": 28}, do_sample_frames=True, num_frames=5)
    frames = load_video(files["mp4"])
    assert (vp(files["mp4"])["pixel_values_videos"] == vp(frames)["pixel_values_videos"]).all()


def test_missing_tracks(files):
    with pytest.raises(ValueError, match="silent.mp4 has no audio track"):
        load_audio(files["silent"])
    with pytest.raises(ValueError, match="tone.flac has no video track"):
        load_video(files["flac"])


def test_bad_files(files):
    root = files["root"]
    (root / "empty.wav").write_bytes(b"")
    (root / "garbage.mp4").write_bytes(b"this is not a video" * 50)
    (root / "cut.mp4").write_bytes(files["mp4"].read_bytes()[:300])
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        load_audio(root / "nowhere.wav")
    with pytest.raises(FileNotFoundError, match="nowhere.mp4"):
        load_video(root / "nowhere.mp4")
    with pytest.raises(ValueError, match="is a directory"):
        load_audio(root)
    with pytest.raises(ValueError, match=r"empty.wav is empty \(0 bytes\)"):
        load_audio(root / "empty.wav")
    for loader in (load_audio, load_video, media_info):
        with pytest.raises(ValueError, match="garbage.mp4"):
            loader(root / "garbage.mp4")
    with pytest.raises(ValueError, match="cut.mp4"):
        load_video(root / "cut.mp4")
    with pytest.raises(TypeError, match="str or os.PathLike"):
        load_audio(3)
    with pytest.raises(ValueError, match="num_frames"):
        load_video(files["mp4"], num_frames=0)


def test_writer_validation(tmp_path):
    with pytest.raises(ValueError, match="no audio codec"):
        write_audio(tmp_path / "x.xyz", tone(440), RATE)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 31, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 32, 32, 3), np.float32))


# ---------------------------------------------------------------------- optional packages

WITHOUT_OPTIONAL_PACKAGES = """
import sys
for name in ("av", "tokenizers", "tqdm"):
    sys.modules[name] = None  # `import name` now raises ImportError, as if it were not installed

import numpy as np
import pytest

import pe_av
from pe_av import media, processing
from pe_av.encode import _tqdm

fe = pe_av.PeAudioFeatureExtractor()
vp = pe_av.PeVideoVideoProcessor(size={"height": 14, "width": 14}, do_sample_frames=True, num_frames=2)
processor = pe_av.PeAudioVideoProcessor(feature_extractor=fe, video_processor=vp)
out = processor(audio=[np.zeros(100, np.float32)], videos=[np.zeros((5, 20, 20, 3), np.uint8)], sampling_rate=16_000)
assert out.input_values.shape == (1, 1, 1920) and out.pixel_values_videos.shape == (1, 2, 3, 14, 14)
assert pe_av.PeAudioProcessor(feature_extractor=fe)(audio=np.zeros(10, np.float32)).padding_mask.sum() == 1920
assert pe_av.PeVideoProcessor(video_processor=vp)(videos=np.zeros((3, 8, 8, 3), np.uint8)).padding_mask_videos.all()
assert media.sample_frame_indices(3, 5) == processing.sample_frame_indices(3, 5) == [0, 0, 1, 1, 2]

workdir = sys.argv[1]
clip = workdir + "/clip.wav"
open(clip, "wb").write(b"RIFF" + bytes(100))
for call in (lambda: pe_av.load_audio(clip), lambda: pe_av.load_video(clip), lambda: pe_av.media_info(clip),
             lambda: fe(clip), lambda: vp(clip),
             lambda: media.write_audio(workdir + "/out.wav", np.zeros(10, np.float32), 48_000)):
    with pytest.raises(ImportError, match="pip install av"):
        call()
with pytest.raises(FileNotFoundError):  # path checks still come first
    pe_av.load_audio(workdir + "/missing.wav")
open(workdir + "/tokenizer.json", "w").write("{}")
with pytest.raises(ImportError, match="pip install tokenizers"):
    pe_av.PeTokenizer.from_pretrained(workdir)
with pytest.raises(ImportError, match="pip install tqdm"):
    _tqdm()
print("OK")
"""


def test_pe_av_works_without_pyav_tokenizers_or_tqdm(tmp_path):
    """``import pe_av`` and the array processors need none of PyAV, tokenizers and tqdm; what does
    need them raises ImportError naming the package to install."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    script = textwrap.dedent(WITHOUT_OPTIONAL_PACKAGES)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stdout + result.stderr
