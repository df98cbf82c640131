"""Processors vs transformers' PeAudioFeatureExtractor / PeVideoVideoProcessor / tokenizer / processors.

Tolerances: masks and token ids exact; audio values exact (the same float32 copies and reflections);
video pixels exact as well — we resize with the same torch kernel torchvision dispatches to (native
uint8 antialiased bilinear on AVX2/AVX-512/ARM CPUs, float32 + round elsewhere) and fold rescale
into normalize in float32 as the reference does, so the pixels agree bit for bit. (The brief allows up
to what different bilinear implementations agree on; we need no slack.)
"""

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, pre_tokenizers, processors
from tokenizers.models import WordLevel

from oracle import max_abs_diff, transformers
from pe_av.processing import (
    PeAudioFeatureExtractor,
    PeAudioProcessor,
    PeAudioVideoProcessor,
    PeTokenizer,
    PeVideoProcessor,
    PeVideoVideoProcessor,
)

pytestmark = pytest.mark.oracle

WORDS = "a dog barks the cat sings loud music quiet rain over and under".split()
VIDEO_CONFIG = dict(
    do_resize=True, size={"height": 40, "width": 36}, do_rescale=True, do_normalize=True,
    image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.5, 0.5], do_convert_rgb=True,
)


def backend_tokenizer() -> Tokenizer:
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tokenizer


def reference_tokenizer(model_max_length=512):
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend_tokenizer(), pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        unk_token="[UNK]", mask_token="[MASK]", model_max_length=model_max_length,
    )


def clips(lengths=(5000, 1920, 3, 1, 7000, 3841), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) for n in lengths]


def videos(shapes=((5, 50, 64), (3, 50, 64), (4, 20, 18)), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]


def assert_same(ours: dict, ref, keys=None):
    for key in keys or ours:
        expected = ref[key]
        assert ours[key].shape == expected.shape, key
        assert ours[key].dtype == expected.dtype, f"{key}: {ours[key].dtype} vs {expected.dtype}"
        assert max_abs_diff(ours[key], expected) == 0.0, key


# ---------------------------------------------------------------------------------------- audio


@pytest.mark.parametrize("hop", [1920, 6])
def test_audio_matches_reference(hop):
    data = clips()
    ref = transformers.PeAudioFeatureExtractor(hop_length=hop)(data, sampling_rate=48_000, return_tensors="pt")
    ours = PeAudioFeatureExtractor(hop_length=hop)(data)
    assert_same(ours, ref)
    assert ours["input_values"].shape[-1] % hop == 0


def test_audio_single_clip_list_of_floats_and_float64_match_reference():
    fe, ref_fe = PeAudioFeatureExtractor(), transformers.PeAudioFeatureExtractor()
    clip = clips((4000,))[0]
    for given in (clip, clip.astype(np.float64), clip[:50].tolist(), [clip.astype(np.float64)]):
        assert_same(fe(given), ref_fe(given, sampling_rate=48_000, return_tensors="pt"))


def test_audio_left_padding_matches_reference():
    data = clips((100, 5000))
    ref = transformers.PeAudioFeatureExtractor(padding_side="left")(data, sampling_rate=48_000, return_tensors="pt")
    assert_same(PeAudioFeatureExtractor(padding_side="left")(data), ref)


# ---------------------------------------------------------------------------------------- video


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"do_sample_frames": True, "num_frames": 4},  # the -16-frame checkpoints' rule (fewer frames here)
        {"do_sample_frames": True, "num_frames": 7},  # more than some videos have: frames repeat
        {"size": {"shortest_edge": 24}},
        {"do_normalize": False},
        {"do_center_crop": True, "crop_size": {"height": 30, "width": 40}},
    ],
)
def test_video_matches_reference(extra):
    config = {**VIDEO_CONFIG, **extra}
    data = videos(((5, 50, 64), (3, 50, 64), (4, 50, 64))) if "shortest_edge" in str(extra) else videos()
    ref = transformers.PeVideoVideoProcessor(**config)(data, return_tensors="pt")
    ours = PeVideoVideoProcessor(**config)(data)
    assert_same(ours, ref, ["pixel_values_videos"])
    if "padding_mask_videos" in ref:
        assert_same(ours, ref, ["padding_mask_videos"])
    else:  # the reference leaves the mask out when every video has the same length; ours is all-ones
        assert ours["padding_mask_videos"].all()


@pytest.mark.parametrize("kind", ["float", "channels_first_tensor", "grayscale", "batched_5d", "upsample"])
def test_video_input_forms_match_reference(kind):
    data = videos()
    if kind == "float":
        data = [v.astype(np.float32) * 0.9 for v in data]
    elif kind == "channels_first_tensor":
        data = [torch.from_numpy(v).permute(0, 3, 1, 2) for v in data]
    elif kind == "grayscale":
        data = [v[..., :1] for v in data]
    elif kind == "batched_5d":
        data = np.stack(videos(((3, 20, 22), (3, 20, 22))))
    elif kind == "upsample":
        data = videos(((2, 8, 10),))
    ref = transformers.PeVideoVideoProcessor(**VIDEO_CONFIG)(data, return_tensors="pt")
    assert_same(PeVideoVideoProcessor(**VIDEO_CONFIG)(data), ref, ["pixel_values_videos"])


# ---------------------------------------------------------------------------------------- text


@pytest.mark.parametrize("max_length", [None, 6])
def test_text_matches_reference(max_length):
    texts = ["a dog barks", "the cat sings loud music", "rain", "a " * 700 + "dog"]
    ref_tok = reference_tokenizer()
    ref = ref_tok(texts, padding=True, truncation=True, max_length=max_length or 512, return_tensors="pt")
    ours = PeTokenizer(backend_tokenizer(), pad_token="[PAD]")(texts, max_length=max_length)
    assert_same(ours, ref, ["input_ids", "attention_mask"])
    assert ours["input_ids"].shape[1] == (max_length or 512)


# ---------------------------------------------------------------------------------------- processors


def reference_processor():
    return transformers.PeAudioVideoProcessor(
        feature_extractor=transformers.PeAudioFeatureExtractor(),
        video_processor=transformers.PeVideoVideoProcessor(**VIDEO_CONFIG, do_sample_frames=True, num_frames=3),
        tokenizer=reference_tokenizer(),
    )


def call_both(ours, ref):
    texts, audio, video = ["a dog barks", "the cat sings"], clips((5000, 3000)), videos()[:2]
    # truncation goes in text_kwargs: at top level the reference hands it to the audio extractor too,
    # which then refuses padding + truncation
    expected = ref(text=texts, audio=audio, videos=video, padding=True, text_kwargs={"truncation": True},
                   sampling_rate=48_000, return_tensors="pt")
    got = ours(text=texts, audio=audio, videos=video)
    return got, expected


def test_processor_loads_transformers_save(tmp_path):
    reference_processor().save_pretrained(tmp_path)
    ours = PeAudioVideoProcessor.from_pretrained(tmp_path)
    got, expected = call_both(ours, transformers.AutoProcessor.from_pretrained(tmp_path))
    keys = ["input_ids", "attention_mask", "input_values", "padding_mask", "pixel_values_videos"]
    assert_same(got, expected, keys)
    assert sorted(got) == sorted(keys + ["padding_mask_videos"])
    assert got["pixel_values_videos"].shape[1] == 3  # num_frames from the saved config


def test_processor_reads_separate_config_files(tmp_path):
    """Older transformers write preprocessor_config.json and video_preprocessor_config.json."""
    ref = reference_processor()
    ref.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(ref.feature_extractor.to_json_string())
    (tmp_path / "video_preprocessor_config.json").write_text(ref.video_processor.to_json_string())
    got, expected = call_both(PeAudioVideoProcessor.from_pretrained(tmp_path), ref)
    assert_same(got, expected, ["input_ids", "input_values", "padding_mask", "pixel_values_videos"])


def test_our_save_loads_in_transformers(tmp_path):
    reference_processor().save_pretrained(tmp_path / "ref")
    ours = PeAudioVideoProcessor.from_pretrained(tmp_path / "ref")
    ours.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "processor_config.json").read_text())
    assert saved["processor_class"] == "PeAudioVideoProcessor"
    got, expected = call_both(ours, transformers.AutoProcessor.from_pretrained(tmp_path / "ours"))
    assert_same(got, expected, ["input_ids", "attention_mask", "input_values", "padding_mask", "pixel_values_videos"])


def test_single_modality_processors_load_transformers_saves(tmp_path):
    transformers.PeAudioProcessor(
        feature_extractor=transformers.PeAudioFeatureExtractor(), tokenizer=reference_tokenizer()
    ).save_pretrained(tmp_path / "audio")
    transformers.PeVideoProcessor(
        video_processor=transformers.PeVideoVideoProcessor(**VIDEO_CONFIG), tokenizer=reference_tokenizer()
    ).save_pretrained(tmp_path / "video")
    audio = PeAudioProcessor.from_pretrained(tmp_path / "audio")
    video = PeVideoProcessor.from_pretrained(tmp_path / "video")
    assert audio.feature_extractor is not None and audio.tokenizer is not None
    assert video.video_processor is not None and video.tokenizer is not None
    keys = {"input_ids", "attention_mask", "input_values", "padding_mask"}
    assert set(audio(text="a dog", audio=clips((100,)))) == keys
    with pytest.raises(ValueError, match="does not take videos"):
        audio(videos=videos()[:1])
    with pytest.raises(ValueError, match="does not take audio"):
        video(audio=clips((100,)))
