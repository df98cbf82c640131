"""encode_* helpers: exactly get_*_embeds on the same processed batch, batching, progress, errors."""

import sys

import numpy as np
import pytest
import torch

from pe_av import PeAudioFrameLevelModel, PeAudioModel, PeVideoModel
from pe_av.demo import TEXTS, demo_config, demo_model, demo_processor
from pe_av.encode import encode_audio, encode_audio_video, encode_text, encode_video
from pe_av.media import write_video


@pytest.fixture(scope="module")
def model():
    return demo_model()


@pytest.fixture(scope="module")
def processor():
    return demo_processor()


def audio_clips(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [0.3 * rng.standard_normal(int(n_samples)).astype(np.float32) for n_samples in (4000, 9000, 1920)[:n]]


def frame_stacks(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (frames, 30, 30, 3), dtype=np.uint8) for frames in (4, 2, 3)[:n]]


def test_helpers_equal_get_embeds_on_the_same_batch(model, processor):
    audio, videos = audio_clips(), frame_stacks()
    with torch.inference_mode():
        text = processor(text=TEXTS)
        a = processor(audio=audio)
        av = processor(audio=audio, videos=videos)
        expected = {
            "text_audio": model.get_text_audio_embeds(text.input_ids, text.attention_mask),
            "text_video": model.get_text_video_embeds(text.input_ids, text.attention_mask),
            "text_audio_video": model.get_text_audio_video_embeds(text.input_ids, text.attention_mask),
            "audio": model.get_audio_embeds(a.input_values, a.padding_mask),
            "video": model.get_video_embeds(av.pixel_values_videos, av.padding_mask_videos),
            "audio_video": model.get_audio_video_embeds(
                av.input_values, av.pixel_values_videos, av.padding_mask, av.padding_mask_videos
            ).audio_video_embeds,
        }
    raw = dict(normalize=False, batch_size=len(TEXTS))
    got = {
        "text_audio": encode_text(model, processor, TEXTS, target="audio", **raw),
        "text_video": encode_text(model, processor, TEXTS, target="video", **raw),
        "text_audio_video": encode_text(model, processor, TEXTS, **raw),
        "audio": encode_audio(model, processor, audio, **raw),
        "video": encode_video(model, processor, videos, **raw),
        "audio_video": encode_audio_video(model, processor, videos, audio=audio, **raw),
    }
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_batching_and_normalize(model, processor, capsys):
    audio = audio_clips()
    whole = encode_audio(model, processor, audio, batch_size=8, normalize=False)
    one_by_one = encode_audio(model, processor, audio, batch_size=1, normalize=False, progress=True)
    torch.testing.assert_close(one_by_one, whole, atol=1e-5, rtol=1e-5)  # clips are isolated in a padded batch
    assert "audio: 100%" in capsys.readouterr().err
    unit = encode_audio(model, processor, audio, batch_size=2)
    assert "audio: 100%" in capsys.readouterr().err  # shown by default: more than one batch
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(unit, torch.nn.functional.normalize(whole, dim=-1), atol=1e-5, rtol=1e-5)
    encode_audio(model, processor, audio, batch_size=1, progress=False)
    assert capsys.readouterr().err == ""


def test_audio_video_from_files_uses_their_audio(model, processor, tmp_path):
    rng = np.random.default_rng(1)
    paths, audio = [], []
    for i in range(2):
        clip = 0.3 * rng.standard_normal(12_000).astype(np.float32)
        paths.append(write_video(tmp_path / f"v{i}.mkv", rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), fps=6,
                                 audio=clip))
        audio.append(str(paths[-1]))
    from_files = encode_audio_video(model, processor, paths)
    explicit = encode_audio_video(model, processor, paths, audio=audio)
    assert torch.equal(from_files, explicit)


def test_single_modality_models(processor):
    config = demo_config()
    torch.manual_seed(0)
    audio_model, video_model = PeAudioModel(config.audio_config).eval(), PeVideoModel(config.video_config).eval()
    assert encode_text(audio_model, processor, "a tone").shape == (1, 32)
    assert encode_text(video_model, processor, ["a tone", "noise"]).shape == (2, 32)
    assert encode_audio(audio_model, processor, audio_clips(1)[0]).shape == (1, 32)
    assert encode_video(video_model, processor, frame_stacks(1)[0]).shape == (1, 32)
    with pytest.raises(ValueError, match="no text-video embedding space"):
        encode_text(audio_model, processor, "a", target="video")
    with pytest.raises(ValueError, match="no text-audio_video"):
        encode_text(video_model, processor, "a", target="audio_video")
    with pytest.raises(TypeError, match="encode_video needs a PeVideoModel or PeAudioVideoModel"):
        encode_video(audio_model, processor, frame_stacks(1))
    with pytest.raises(TypeError, match="per-frame"):
        encode_audio(PeAudioFrameLevelModel(config.audio_config), processor, audio_clips(1))


def test_bad_inputs(model, processor):
    with pytest.raises(ValueError, match="target must be"):
        encode_text(model, processor, "a", target="image")
    with pytest.raises(ValueError, match="text is an empty list"):
        encode_text(model, processor, [])
    with pytest.raises(ValueError, match="audio is an empty list"):
        encode_audio(model, processor, [])
    with pytest.raises(ValueError, match="videos is an empty list"):
        encode_video(model, processor, [])
    with pytest.raises(ValueError, match="batch_size"):
        encode_audio(model, processor, audio_clips(), batch_size=0)
    with pytest.raises(ValueError, match="2 videos but 1 audio clips"):
        encode_audio_video(model, processor, frame_stacks(2), audio=audio_clips(1))
    with pytest.raises(ValueError, match="are arrays, so their audio must be given"):
        encode_audio_video(model, processor, frame_stacks(2))
    with pytest.raises(TypeError, match="processor must be"):
        encode_audio(model, object(), audio_clips())
    with pytest.raises(TypeError, match="needs a"):
        encode_audio(torch.nn.Linear(2, 2), processor, audio_clips())
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        encode_audio(model, processor, ["gone.wav"])
    with pytest.raises(ValueError, match="sampling_rate"):
        encode_audio(model, processor, audio_clips(), sampling_rate=-1)


def test_processor_output_feeds_forward(model, processor):
    inputs = processor(text=TEXTS[:2], audio=audio_clips(2), videos=frame_stacks(2))
    assert sorted(inputs) == sorted(["input_ids", "attention_mask", "input_values", "padding_mask",
                                     "pixel_values_videos", "padding_mask_videos"])
    with torch.inference_mode():
        out = model(**inputs)
    expected = encode_audio_video(model, processor, frame_stacks(2), audio=audio_clips(2), normalize=False)
    assert torch.equal(out.audio_video_embeds, expected)
    assert out.logits_audio_video_text.shape == (2, 2)


def test_on_error_skip_keeps_the_good_inputs_and_names_the_bad(model, processor, tmp_path):
    clips = audio_clips()
    bad = np.full(3000, np.nan, np.float32)
    failures = []
    got = encode_audio(model, processor, [clips[0], bad, clips[1], clips[2]], batch_size=2, on_error="skip",
                       failures=failures)
    torch.testing.assert_close(got, encode_audio(model, processor, clips, batch_size=1), atol=1e-5, rtol=1e-5)
    assert [(f.index, f.item is bad) for f in failures] == [(1, True)]
    assert "NaN" in failures[0].reason
    # a file that cannot be decoded, in a batch of videos; the failure names the path
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    failures = []
    got = encode_video(model, processor, [frame_stacks(1)[0], str(junk)], on_error="skip", failures=failures)
    assert got.shape == (1, 32) and failures[0].index == 1 and failures[0].item == str(junk)
    assert str(junk) in failures[0].reason
    failures = []
    pairs = encode_audio_video(model, processor, [str(junk)], on_error="skip", failures=failures)
    assert pairs.shape == (0, 32) and failures[0].item == str(junk)  # nothing embedded: an empty (0, dim)


def test_on_error_raise_names_the_bad_input(model, processor):
    clips = audio_clips()
    bad = np.full(3000, np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN") as exc:
        encode_audio(model, processor, [clips[0], clips[1], bad], batch_size=4)
    if sys.version_info >= (3, 11):
        assert exc.value.__notes__ == ["while encoding audio input 2: ndarray of shape (3000,)"]
    with pytest.raises(ValueError, match="on_error must be one of"):
        encode_audio(model, processor, clips, on_error="ignore")


def test_on_error_skip_without_a_list_warns(model, processor):
    with pytest.warns(UserWarning, match=r"skipped 1 of 2 input\(s\): \[0\] ndarray of shape \(3000,\): .*(NaN|[Ii]nf)"):
        got = encode_audio(model, processor, [np.full(3000, np.inf, np.float32), audio_clips(1)[0]], on_error="skip")
    assert got.shape == (1, 32)
    assert encode_text(model, processor, ["a", "b"], on_error="skip").shape == (2, 32)


def test_iter_encode_yields_each_batch(model, processor):
    from pe_av.encode import iter_encode

    clips = audio_clips()
    batches = list(iter_encode(model, processor, "audio", clips, batch_size=2, progress=False))
    assert [b.indices for b in batches] == [[0, 1], [2]] and all(not b.failures for b in batches)
    torch.testing.assert_close(torch.cat([b.embeddings for b in batches]), encode_audio(model, processor, clips),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="kind must be one of"):
        iter_encode(model, processor, "image", clips)
    with pytest.raises(ValueError, match="batch_size"):
        iter_encode(model, processor, "audio", clips, batch_size=0)  # checked at once, not at the first batch
