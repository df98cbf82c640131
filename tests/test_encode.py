"""encode_* helpers: exactly get_*_embeds on the same processed batch, batching, progress, errors."""

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
