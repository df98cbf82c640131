"""Processors on bad and edge-case inputs: on their own, and where they meet the model and the CLI.

- The processors' own behaviour (no oracle): resampling, mixdown, input forms, errors, save/load.
- Where the processor and the CLI meet the model: processor outputs pass the model's input checks, and
  faults that only show at that boundary (left padding, a tokenizer bigger than the model's vocabulary,
  tensors on the wrong device, broken checkpoints behind ``pe-av embed``) are clear errors.

Comparisons with transformers' processors are in tests/test_processing.py; the CLI's own bad-input
cases in tests/test_cli.py.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil

import numpy as np
import pytest
import torch

from pe_av.cli import main
from pe_av.demo import TEXTS, demo_model, demo_processor, demo_tokenizer
from pe_av.loading import SAFE_WEIGHTS_NAME
from pe_av.processing import (
    BatchFeature,
    PeAudioFeatureExtractor,
    PeAudioVideoProcessor,
    PeVideoVideoProcessor,
    reflect_pad_to_multiple,
    resample,
    sample_frame_indices,
)

HOP = 1920  # the demo model's DAC hop


def sine(freq, rate, seconds=0.5, phase=0.3):
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * math.pi * freq * t + phase)


# ---------------------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("source,target,freq", [(44_100, 48_000, 1000), (16_000, 48_000, 3000), (96_000, 48_000, 9000),
                                                (48_000, 16_000, 2000), (47_999, 48_000, 500)])
def test_resample_reproduces_band_limited_sine(source, target, freq):
    out = resample(sine(freq, source).astype(np.float32), source, target)
    assert out.dtype == np.float32 and len(out) == math.ceil(len(sine(freq, source)) * target / source)
    expected = sine(freq, target, seconds=len(out) / target)[: len(out)]
    inner = slice(target // 50, -target // 50)  # away from the zero-padded edges
    assert np.abs(out[inner] - expected[inner]).max() < 1e-4


def test_resample_removes_what_the_new_rate_cannot_hold():
    out = resample(torch.from_numpy(sine(30_000, 96_000)), 96_000, 48_000)
    assert out.dtype == torch.float64 and out[1000:-1000].abs().max() < 1e-3


def test_resample_identity_and_batched():
    x = torch.randn(2, 3, 1000)
    assert resample(x, 48_000, 48_000) is x
    batched = resample(x, 16_000, 48_000)
    assert batched.shape == (2, 3, 3000)
    torch.testing.assert_close(batched[1, 2], resample(x[1, 2], 16_000, 48_000))


@pytest.mark.parametrize("rate", [0, -5, 1.5, float("nan"), "48000", True])
def test_resample_rejects_bad_rates(rate):
    with pytest.raises((ValueError, TypeError), match="source_rate"):
        resample(np.zeros(10, np.float32), rate, 48_000)


def test_resample_rejects_bad_waveforms():
    with pytest.raises(TypeError, match="floating"):
        resample(np.zeros(10, np.int16), 16_000, 48_000)
    with pytest.raises(ValueError, match="at least one sample"):
        resample(np.zeros(0, np.float32), 16_000, 48_000)
    with pytest.raises(TypeError, match="numpy array or torch.Tensor"):
        resample([0.0, 1.0], 16_000, 48_000)


# ---------------------------------------------------------------------------------------- audio


@pytest.mark.parametrize("length", [1, 2, 3, 7, 100, 1919, 1920, 1921])
def test_reflect_pad_equals_numpy_reflect(length):
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    expected = np.pad(x, (0, -length % 1920), "reflect")
    np.testing.assert_array_equal(reflect_pad_to_multiple(x, 1920), expected)


def test_audio_other_rates_are_resampled_and_stereo_mixed_down():
    fe = PeAudioFeatureExtractor()
    left, right = sine(440, 16_000).astype(np.float32), sine(660, 16_000).astype(np.float32)
    out = fe(np.stack([left, right]), sampling_rate=16_000)
    expected = resample((left + right) / 2, 16_000, 48_000)
    assert out["input_values"].shape == (1, 1, 24_960) and out["padding_mask"].dtype == torch.int32  # 13 hops
    np.testing.assert_allclose(out["input_values"][0, 0, :24_000].numpy(), expected, atol=1e-6)
    torch.testing.assert_close(fe(torch.from_numpy(left))["input_values"], fe(left)["input_values"])


def test_audio_batch_mask_marks_reflected_tail_as_real():
    out = PeAudioFeatureExtractor(hop_length=8)([np.ones(3, np.float32), np.ones(20, np.float32)])
    assert out["input_values"].shape == (2, 1, 24)
    assert out["padding_mask"].sum(1).tolist() == [8, 24]


@pytest.mark.parametrize(
    "audio,error,match",
    [
        ([], ValueError, "empty list"),
        (np.zeros(0, np.float32), ValueError, "no samples"),
        (np.zeros(100, np.int16), TypeError, "int16 / 32768"),
        (torch.zeros(100, dtype=torch.long), TypeError, "floating point"),
        (np.zeros((2, 3, 4), np.float32), ValueError, "1-D samples or"),
        (np.zeros((1000, 2), np.float32), ValueError, "channels"),
        (np.array([0.0, np.nan], np.float32), ValueError, "NaN"),
        ({"a": 1}, TypeError, "audio must be"),
        ([np.zeros(10, np.float32), object()], TypeError, r"audio\[1\]"),
        (["missing.wav"], FileNotFoundError, "missing.wav"),
    ],
)
def test_audio_bad_inputs(audio, error, match):
    with pytest.raises(error, match=match):
        PeAudioFeatureExtractor()(audio)


@pytest.mark.parametrize("rate", [0, -1, 1.5, "48k"])
def test_audio_bad_sampling_rate(rate):
    with pytest.raises(ValueError, match="sampling_rate"):
        PeAudioFeatureExtractor()(np.zeros(10, np.float32), sampling_rate=rate)


def test_audio_config_validation():
    with pytest.raises(ValueError, match="mono"):
        PeAudioFeatureExtractor(feature_size=2)
    with pytest.raises(ValueError, match="hop_length"):
        PeAudioFeatureExtractor(hop_length=0)


# ---------------------------------------------------------------------------------------- video


def test_sample_frame_indices():
    assert sample_frame_indices(100, 16) == [int(i * 99 / 15) for i in range(16)]
    assert sample_frame_indices(10, 1) == [0]
    assert sample_frame_indices(3, 5) == [0, 0, 1, 1, 2]
    with pytest.raises(ValueError, match="num_frames"):
        sample_frame_indices(10, 0)


def test_video_mask_and_padding():
    vp = PeVideoVideoProcessor(size={"height": 14, "width": 14})
    out = vp([np.zeros((3, 20, 20, 3), np.uint8), np.zeros((1, 20, 20, 3), np.uint8)])
    assert out["pixel_values_videos"].shape == (2, 3, 3, 14, 14)
    assert out["padding_mask_videos"].tolist() == [[True] * 3, [True, False, False]]
    assert (out["pixel_values_videos"][0] == -1).all() and (out["pixel_values_videos"][1, 1:] == 0).all()
    assert vp(np.zeros((5, 20, 20, 3), np.uint8), num_frames=2)["pixel_values_videos"].shape[1] == 2


@pytest.mark.parametrize(
    "videos,error,match",
    [
        ([], ValueError, "empty list"),
        (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "no frames"),
        (np.zeros((8, 8, 3), np.uint8), ValueError, "array of shape"),
        (np.zeros((2, 8, 8, 4), np.uint8), ValueError, "RGBA"),
        (np.zeros((2, 8, 8, 3), bool), TypeError, "uint8"),
        (np.full((2, 8, 8, 3), np.nan, np.float32), ValueError, "NaN"),
        ([np.zeros((2, 8, 8, 3), np.uint8), "nope.mp4"], FileNotFoundError, "nope.mp4"),
        (12, TypeError, "videos must be"),
    ],
)
def test_video_bad_inputs(videos, error, match):
    with pytest.raises(error, match=match):
        PeVideoVideoProcessor(size={"height": 8, "width": 8})(videos)


def test_video_config_validation():
    with pytest.raises(ValueError, match="bilinear"):
        PeVideoVideoProcessor(resample=3)
    with pytest.raises(ValueError, match="size"):
        PeVideoVideoProcessor(size={"longest_edge": 3})
    with pytest.raises(ValueError, match="fps"):
        PeVideoVideoProcessor(do_sample_frames=True, fps=-2)
    with pytest.raises(ValueError, match="num_frames or fps"):
        PeVideoVideoProcessor(do_sample_frames=True, num_frames=4, fps=2)
    with pytest.raises(ValueError, match="num_frames"):
        PeVideoVideoProcessor(do_sample_frames=True, num_frames=0)


# ---------------------------------------------------------------------------------------- processor


def test_processor_round_trip_and_batch_feature(tmp_path):
    processor = demo_processor()
    processor.save_pretrained(tmp_path)
    loaded = PeAudioVideoProcessor.from_pretrained(tmp_path)
    inputs = dict(text=["a pure tone", "static"], audio=[np.zeros(100, np.float32)],
                  videos=[np.zeros((2, 30, 30, 3), np.uint8)])
    first, second = processor(**inputs), loaded(**inputs)
    assert isinstance(second, BatchFeature) and sorted(first) == sorted(second)
    for key in first:
        assert torch.equal(first[key], second[key])
    moved = second.to("cpu", torch.float64)
    assert moved.input_values.dtype == torch.float64 and moved.padding_mask.dtype == torch.int32
    with pytest.raises(AttributeError, match="no input named"):
        second.nothing


def test_processor_errors(tmp_path):
    processor = demo_processor()
    with pytest.raises(ValueError, match="at least one of"):
        processor()
    with pytest.raises(ValueError, match="sampling_rate was given without audio"):
        processor(text="a", sampling_rate=16_000)
    with pytest.raises(TypeError, match="text must be"):
        processor(text=3)
    with pytest.raises(ValueError, match="text is an empty list"):
        processor(text=[])
    with pytest.raises(TypeError, match=r"text\[1\]"):
        processor(text=["a", None])
    with pytest.raises(ValueError, match="has no video_processor"):
        PeAudioVideoProcessor(tokenizer=demo_tokenizer())(videos=np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(TypeError, match="feature_extractor must be"):
        PeAudioVideoProcessor(feature_extractor="x")
    with pytest.raises(FileNotFoundError, match="no processor files"):
        PeAudioVideoProcessor.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PeAudioVideoProcessor.from_pretrained(tmp_path / "missing")
    (tmp_path / "processor_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        PeAudioVideoProcessor.from_pretrained(tmp_path)


def test_tokenizer_padding_options():
    tokenizer = demo_tokenizer()
    assert tokenizer(["a pure tone"], padding="max_length", max_length=8)["input_ids"].shape == (1, 8)
    with pytest.raises(ValueError, match="different lengths"):
        tokenizer(["a", "a pure tone"], padding=False)
    with pytest.raises(ValueError, match="padding must be"):
        tokenizer("a", padding="sideways")
    with pytest.raises(ValueError, match="max_length"):
        tokenizer("a", max_length=0)
    tokenizer.pad_token = "[NOPE]"
    with pytest.raises(ValueError, match="no pad token"):
        tokenizer(["a", "a b"])

# ==================================================================================================
# where the processors meet the model


@pytest.fixture(scope="module")
def model():
    return demo_model()


@pytest.fixture(scope="module")
def processor():
    return demo_processor()


def clips():
    rng = np.random.default_rng(0)
    # lengths off the hop on purpose: the processor reflect-pads each clip, then zero-pads the batch
    return [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (2 * HOP + 77, HOP - 5, 3 * HOP)]


def videos():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (n, 30, 30, 3), dtype=np.uint8) for n in (3, 1, 2)]


def test_processor_batches_pass_the_model_checks(model, processor):
    inputs = processor(text=TEXTS[:3], audio=clips(), videos=videos())
    with torch.no_grad():
        out = model(**inputs, return_loss=True)
    for name in out.keys():
        value = getattr(out, name)
        if isinstance(value, torch.Tensor):
            assert torch.isfinite(value).all(), name


def test_processed_clip_alone_equals_it_in_the_batch(processor):
    """End to end: a clip processed and encoded alone equals it processed and encoded in a padded batch
    (in float64, where only a real leak could show: float32 rounding of this model is ~1e-5)."""
    model = demo_model().double()

    def embed(**inputs):
        return model.get_audio_video_embeds(**processor(**inputs).to("cpu", torch.float64), return_audio_embeds=True)

    with torch.no_grad():
        together = embed(audio=clips(), videos=videos())
        for i, (clip, video) in enumerate(zip(clips(), videos())):
            alone = embed(audio=[clip], videos=[video])
            assert (alone.audio_embeds[0] - together.audio_embeds[i]).abs().max().item() <= 1e-10
            assert (alone.audio_video_embeds[0] - together.audio_video_embeds[i]).abs().max().item() <= 1e-10


def test_left_padded_text_is_refused(model, processor):
    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        inputs = processor(text=["a pure tone", "static"])
    finally:
        tokenizer.padding_side = side
    with pytest.raises(ValueError, match=r"attention_mask marks position 0 of text\(s\) \[1\] as padding"):
        model.get_text_audio_embeds(**inputs)


def test_tokenizer_larger_than_the_model_vocabulary(processor):
    small = demo_model()
    small.text_model.config.vocab_size = 6  # as if the checkpoint came with another model's tokenizer
    inputs = processor(text=["a pure tone"])
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 6\) \(the vocabulary\)"):
        small.get_text_audio_embeds(**inputs)


def test_processor_outputs_on_another_device(model, processor):
    inputs = processor(text=["a pure tone"], audio=clips()[:1]).to("meta")
    with pytest.raises(ValueError, match="is on meta but the model is on cpu"):
        model(**inputs)


# --------------------------------------------------------------------------------------------------
# the CLI in front of a broken checkpoint: exit status 1 and one clear line, no traceback


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, err.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model, processor):
    directory = tmp_path_factory.mktemp("cli") / "tiny"
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def truncate(directory):
    path = directory / SAFE_WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:1000])


def pickle_only(directory):
    os.remove(directory / SAFE_WEIGHTS_NAME)
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")


def config_list(directory):
    (directory / "config.json").write_text("[]")


@pytest.mark.parametrize("damage, message", [
    (truncate, "cannot read"),
    (pickle_only, "holds only pickle weights"),
    (config_list, "must hold a JSON object"),
])
def test_embed_with_a_broken_checkpoint(checkpoint, tmp_path, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    damage(broken)
    status, stderr = run(["embed", "--model", broken, "--text", TEXTS[0], "--no-progress"])
    assert status == 1 and stderr.startswith("pe-av embed: error:") and message in stderr, stderr
    assert "Traceback" not in stderr


def test_embed_works_on_the_intact_checkpoint(checkpoint):
    status, stderr = run(["embed", "--model", checkpoint, "--text", TEXTS[0], "--no-progress"])
    assert status == 0, stderr
