"""Drop-in: the same calls through transformers' processors and ours, on the same saved processor.

Each test runs one call both ways and compares what comes back (tests/dropin_compare.py: class, keys in
order, value types, dtypes, shapes, values exactly), or checks that both raise the same error type.
Deliberate differences (README "Beyond the reference") are asserted as such, next to the comparison.
"""

import json
import pickle

import numpy as np
import pytest
import torch
from dropin_compare import assert_same_batch, assert_same_value, both
from oracle import transformers
from test_processing import (
    VIDEO_CONFIG,
    clips,
    reference_processor,
    reference_tokenizer,
    videos,
)

from pe_av.processing import (
    BatchFeature,
    PeAudioFeatureExtractor,
    PeAudioProcessor,
    PeAudioVideoProcessor,
    PeVideoProcessor,
    PeVideoVideoProcessor,
)

pytestmark = pytest.mark.oracle

RATE = 48_000


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(our processor, theirs) loaded from one transformers save (3-frame sampling), and (ours, theirs) of a
    second save whose video processor keeps every frame."""
    root = tmp_path_factory.mktemp("dropin")
    reference_processor().save_pretrained(root / "sampled")
    transformers.PeAudioVideoProcessor(
        feature_extractor=transformers.PeAudioFeatureExtractor(hop_length=8),
        video_processor=transformers.PeVideoVideoProcessor(**VIDEO_CONFIG),
        tokenizer=reference_tokenizer(),
    ).save_pretrained(root / "all_frames")
    return {name: (PeAudioVideoProcessor.from_pretrained(root / name), transformers.AutoProcessor.from_pretrained(root / name))
            for name in ("sampled", "all_frames")} | {"root": root}


# ---------------------------------------------------------------------------------------- feature extractor

AUDIO_CALLS = [
    {"return_tensors": "pt"}, {"return_tensors": "np"}, {"return_tensors": None},
    {"padding": True, "return_tensors": "pt"}, {"padding": "longest", "return_tensors": None},
    {"padding": "max_length", "max_length": 30, "return_tensors": "pt"}, {"padding": "max_length", "max_length": 30},
    {"padding": True, "max_length": 10, "return_tensors": "pt"},  # max_length unused when padding to the longest
    {"truncation": True, "max_length": 10, "return_tensors": "pt"}, {"truncation": True, "max_length": 10},
    {"padding": False}, {"padding": False, "truncation": True, "max_length": 10},
    {"padding": False, "return_tensors": "pt"},  # ragged: a ValueError both ways
    {"padding": True, "truncation": True, "max_length": 10},  # refused both ways
    {"truncation": True}, {"padding": "max_length", "return_tensors": "pt"},  # no max_length: refused
    {"return_tensors": "tf"}, {"padding": "sideways"},
]


@pytest.mark.parametrize("kwargs", AUDIO_CALLS, ids=str)
def test_feature_extractor_calls(kwargs):
    data = [np.arange(n, dtype=np.float32) / 40 for n in (5, 13, 20)]
    mine = {"return_tensors": None, **kwargs}  # not given means None in transformers; ours default to "pt"
    ours, theirs = both(lambda: PeAudioFeatureExtractor(hop_length=8)(data, sampling_rate=RATE, **mine),
                        lambda: transformers.PeAudioFeatureExtractor(hop_length=8)(data, sampling_rate=RATE, **kwargs))
    if theirs is not None:
        assert_same_batch(ours, theirs)


def test_feature_extractor_forms_and_rates():
    fe, ref = PeAudioFeatureExtractor(hop_length=8), transformers.PeAudioFeatureExtractor(hop_length=8)
    for data in (np.ones(11, np.float32), [np.ones(3, np.float32)] * 2, torch.ones(9), [0.5] * 7):
        assert_same_batch(fe(data, sampling_rate=RATE, return_tensors=None), ref(data, sampling_rate=RATE))
        assert_same_batch(fe(data), ref(data, sampling_rate=RATE, return_tensors="pt"))  # default: torch tensors
    # deliberate: another rate is resampled (transformers refuses it)
    with pytest.raises(ValueError, match="sampling rate"):
        ref(np.ones(160, np.float32), sampling_rate=16_000)
    assert fe(np.ones(160, np.float32), sampling_rate=16_000)["input_values"].shape == (1, 1, 480)
    with pytest.raises(TypeError):  # transformers' extractor takes no other keywords either
        fe(np.ones(10, np.float32), return_attention_mask=True)
    assert fe.model_input_names == ref.model_input_names


# ---------------------------------------------------------------------------------------- video processor

VIDEO_CALLS = [
    {"return_tensors": "pt"}, {"return_tensors": "np"}, {"return_tensors": None}, {},
    {"do_sample_frames": True, "num_frames": 2, "return_tensors": "pt"}, {"do_sample_frames": True, "return_tensors": "pt"},
    {"size": {"height": 10, "width": 12}, "return_tensors": "pt"}, {"do_normalize": False, "return_tensors": "np"},
    {"image_mean": [0.1, 0.2, 0.3], "image_std": 0.25, "do_rescale": False, "return_tensors": "pt"},
    {"do_center_crop": True, "crop_size": {"height": 20, "width": 30}, "return_tensors": "pt"},
    {"device": "cpu", "return_tensors": "pt"}, {"input_data_format": "channels_last", "return_tensors": "pt"},
    {"foo": 3, "return_tensors": "pt"}, {"return_tensors": "tf"},
]


@pytest.mark.parametrize("kwargs", VIDEO_CALLS, ids=str)
def test_video_processor_calls(kwargs):
    data = videos()  # 5, 3 and 4 frames
    mine = {"return_tensors": None, **kwargs}  # not given means None in transformers; ours default to "pt"
    ours, theirs = both(lambda: PeVideoVideoProcessor(**VIDEO_CONFIG)(data, **mine),
                        lambda: transformers.PeVideoVideoProcessor(**VIDEO_CONFIG)(data, **kwargs))
    if theirs is None:
        return
    assert_same_batch(ours, theirs, extra=("padding_mask_videos",))  # None: per-video tensors, no mask, both
    if "padding_mask_videos" in ours and "padding_mask_videos" not in theirs:  # deliberate: always there (all videos equally long: all True)
        assert ours["padding_mask_videos"].all()


def test_video_processor_sampling_rules():
    data = videos()
    sampled, ref = PeVideoVideoProcessor(**VIDEO_CONFIG, do_sample_frames=True, num_frames=3), \
        transformers.PeVideoVideoProcessor(**VIDEO_CONFIG, do_sample_frames=True, num_frames=3)
    for kwargs in ({}, {"num_frames": 2}, {"do_sample_frames": False}, {"do_sample_frames": True, "num_frames": 4}):
        assert_same_batch(sampled(data, **kwargs), ref(data, return_tensors="pt", **kwargs),
                          extra=("padding_mask_videos",))
    # deliberate: num_frames alone samples (transformers keeps every frame unless do_sample_frames=True)
    plain = PeVideoVideoProcessor(**VIDEO_CONFIG)
    assert plain(data, num_frames=2)["pixel_values_videos"].shape[1] == 2
    assert transformers.PeVideoVideoProcessor(**VIDEO_CONFIG)(data, num_frames=2, return_tensors="pt")[
        "pixel_values_videos"].shape[1] == 5
    assert plain(data, num_frames=2, do_sample_frames=False)["pixel_values_videos"].shape[1] == 5
    assert plain.model_input_names == ref.model_input_names


# ---------------------------------------------------------------------------------------- processor

PROCESSOR_CALLS = [
    {"return_tensors": "pt", "padding": True, "text_kwargs": {"truncation": True}},
    {"return_tensors": "np", "padding": True}, {"return_tensors": None, "text_kwargs": {"padding": False}},
    {"return_tensors": None, "padding": "longest"},
    {"return_tensors": "pt", "text_kwargs": {"padding": "max_length", "max_length": 12},
         "audio_kwargs": {"padding": "max_length", "max_length": 8000}, "videos_kwargs": {"num_frames": 2}},
    {"return_tensors": "pt", "padding": True, "max_length": 4, "text_kwargs": {"truncation": True}},
    {"common_kwargs": {"return_tensors": "pt"}, "padding": True}, {"return_tensors": "pt", "num_frames": 2, "padding": True},
    {"return_tensors": "pt", "padding": True, "videos_kwargs": {"do_sample_frames": False}},
    {"return_tensors": "pt", "padding": True, "sampling_rate": RATE, "do_normalize": False,
         "videos_kwargs": {"size": {"height": 20, "width": 18}}},
    {"return_tensors": "pt", "text_kwargs": {"padding": True}, "audio_kwargs": {"truncation": True, "max_length": 4000}},
    {"return_tensors": "pt", "padding": True, "foo": 1},  # an unknown keyword is ignored both ways
    {"return_tensors": "pt", "padding": True, "text_kwargs": {"padding": True}},  # twice: refused both ways
    {"return_tensors": "pt", "audios": clips((100,))},  # the deprecated name: refused both ways
]


def inputs():
    return {"text": ["a dog barks", "the cat sings loud music"], "audio": clips((5000, 3000)), "videos": videos()[:2]}


@pytest.mark.parametrize("kwargs", PROCESSOR_CALLS, ids=str)
def test_processor_calls(saved, kwargs):
    ours, theirs = saved["sampled"]
    mine = {"return_tensors": None, **kwargs} if "common_kwargs" not in kwargs else kwargs
    got, expected = both(lambda: ours(**inputs(), **mine), lambda: theirs(**inputs(), **kwargs))
    if expected is not None:
        assert_same_batch(got, expected, extra=("padding_mask_videos",))
        if "padding_mask_videos" in got and "padding_mask_videos" not in expected:
            assert np.all(np.asarray(got["padding_mask_videos"]))


@pytest.mark.parametrize("modality", ["text", "audio", "videos"])
@pytest.mark.parametrize("return_tensors", ["pt", "np", None])
def test_processor_one_modality(saved, modality, return_tensors):
    ours, theirs = saved["all_frames"]
    given = {modality: inputs()[modality]}
    expected = theirs(**given, return_tensors=return_tensors, padding=True)
    got = ours(**given, return_tensors=return_tensors, padding=True)
    assert_same_batch(got, expected, extra=("padding_mask_videos",))


def test_processor_single_text_and_defaults(saved):
    ours, theirs = saved["all_frames"]
    assert_same_batch(ours(text="a dog barks", return_tensors=None), theirs(text="a dog barks"))  # unbatched lists
    # not given: torch tensors, padded, truncated at 512 (deliberate); transformers gives lists
    expected = theirs(**inputs(), return_tensors="pt", padding=True, sampling_rate=RATE, text_kwargs={"truncation": True})
    assert_same_batch(ours(**inputs()), expected)
    # deliberate: a top-level truncation=True goes to the text only; transformers' extractor refuses it
    with pytest.raises(ValueError, match="padding and truncation"):
        theirs(**inputs(), return_tensors="pt", padding=True, truncation=True)
    assert_same_batch(ours(**inputs(), return_tensors="pt", padding=True, truncation=True), expected)


def test_processor_attributes_decode_and_transformers_parts(saved):
    ours, theirs = saved["sampled"]
    assert ours.model_input_names == theirs.model_input_names
    assert ours.get_attributes() == theirs.get_attributes()
    ids = [[2, 5, 6, 7, 3, 0], [2, 14, 3, 0, 0, 0]]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == theirs.batch_decode(ids, skip_special_tokens=skip)
        assert ours.decode(ids[0], skip_special_tokens=skip) == theirs.decode(ids[0], skip_special_tokens=skip)
    for cls, ref_cls, parts in ((PeAudioProcessor, transformers.PeAudioProcessor, ("feature_extractor", "tokenizer")),
                                (PeVideoProcessor, transformers.PeVideoProcessor, ("video_processor", "tokenizer"))):
        mine, reference = cls(*(getattr(theirs, p) for p in parts)), ref_cls(*(getattr(theirs, p) for p in parts))
        assert mine.model_input_names == reference.model_input_names and mine.get_attributes() == list(parts)
    # transformers' parts are converted to ours, with the same settings
    built = PeAudioVideoProcessor(theirs.feature_extractor, theirs.video_processor, theirs.tokenizer)
    assert_same_batch(built(**inputs(), return_tensors="pt", padding=True),
                      theirs(**inputs(), return_tensors="pt", padding=True), extra=("padding_mask_videos",))


def test_processor_loading_keywords_and_overrides(saved):
    root = saved["root"]
    keywords = {"revision": "main", "cache_dir": str(root / "cache"), "local_files_only": True, "trust_remote_code": True}
    overrides = {"num_frames": 2, "padding_side": "left", "hop_length": 8, "foo": 1}
    ours = PeAudioVideoProcessor.from_pretrained(root / "sampled", **keywords, **overrides)
    theirs = transformers.AutoProcessor.from_pretrained(root / "sampled", **keywords, **overrides)
    assert (ours.video_processor.num_frames, ours.feature_extractor.hop_length) == (2, 8)
    assert ours.feature_extractor.padding_side == theirs.feature_extractor.padding_side == "left"
    assert ours.tokenizer.padding_side == theirs.tokenizer.padding_side == "left"
    assert_same_batch(ours(**inputs(), return_tensors="pt", padding=True),
                      theirs(**inputs(), return_tensors="pt", padding=True), extra=("padding_mask_videos",))
    for ours_part, theirs_part, data in ((PeAudioFeatureExtractor, transformers.PeAudioFeatureExtractor, clips()),
                                         (PeVideoVideoProcessor, transformers.PeVideoVideoProcessor, videos())):
        mine, reference = ours_part.from_pretrained(root / "all_frames", **keywords), \
            theirs_part.from_pretrained(root / "all_frames", **keywords)
        expected = json.loads(json.dumps(reference.to_dict()))
        assert {k: v for k, v in json.loads(json.dumps(mine.to_dict())).items() if k in expected} == expected
        mine.save_pretrained(root / f"part-{ours_part.__name__}")  # the part's own file, which transformers reads
        reloaded = theirs_part.from_pretrained(root / f"part-{ours_part.__name__}")
        assert_same_batch(reloaded(data, return_tensors="pt"), reference(data, return_tensors="pt"))


def test_hub_keywords_reach_the_download(saved, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(saved["root"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    ours = PeAudioVideoProcessor.from_pretrained("org/pe-av", revision="v1", cache_dir="/c", local_files_only=True,
                                                 token="t", force_download=True, subfolder="sampled",
                                                 trust_remote_code=True)
    assert ours.video_processor.num_frames == 3
    repo, kwargs = calls[0]
    assert repo == "org/pe-av" and kwargs["allow_patterns"] == ["sampled/*.json", "sampled/*.txt", "sampled/*.model"]
    assert {k: kwargs[k] for k in ("revision", "cache_dir", "local_files_only", "token", "force_download")} == {
        "revision": "v1", "cache_dir": "/c", "local_files_only": True, "token": "t", "force_download": True}
    from pe_av import AutoProcessor, AutoTokenizer

    assert type(AutoProcessor.from_pretrained("org/pe-av", subfolder="sampled", revision="v2")).__name__ == \
        "PeAudioVideoProcessor" and calls[-1][1]["revision"] == "v2"
    assert AutoTokenizer.from_pretrained("org/pe-av", subfolder="sampled", use_auth_token="u").pad_token == "[PAD]"
    assert calls[-1][1]["token"] == "u"


# ---------------------------------------------------------------------------------------- BatchFeature


def batch_pair():
    data = {"input_values": torch.randn(2, 1, 8), "padding_mask": torch.ones(2, 8, dtype=torch.int32),
                "input_ids": torch.tensor([[2, 5, 3]]), "pixel_values_videos": [torch.randn(2, 3, 4, 4)], "note": "x"}
    return BatchFeature(dict(data)), transformers.BatchFeature(dict(data))


@pytest.mark.parametrize("args,kwargs", [
    (("cpu",), {}), ((torch.bfloat16,), {}), (("cpu", torch.float16), {}), ((), {"dtype": torch.float64}),
    ((), {"device": "meta"}), ((torch.device("cpu"),), {"non_blocking": True}), (("meta", torch.float16), {}),
    (([1],), {}),
], ids=str)
def test_batch_feature_to(args, kwargs):
    ours, theirs = batch_pair()
    got, expected = both(lambda: ours.to(*args, **kwargs), lambda: theirs.to(*args, **kwargs))
    if expected is not None:
        assert got is ours and expected is theirs  # in place, as transformers
        assert_same_batch(got, expected)


@pytest.mark.parametrize("tensor_type", ["pt", "np", None])
def test_batch_feature_conversion_and_pickling(tensor_type):
    data = {"input_ids": [[1, 2], [3, 4]], "ragged": [[1], [2, 3]] if tensor_type != "pt" else [[1], [2]],
                "arrays": [np.ones((1, 3), np.float32)] * 2, "tensors": [torch.ones(2)] * 3, "words": ["a", "b"]}
    if tensor_type != "np":  # transformers fails on an empty list for numpy
        data["empty"] = []
    ours, theirs = BatchFeature(dict(data), tensor_type=tensor_type), transformers.BatchFeature(dict(data), tensor_type)
    assert_same_batch(ours, theirs)
    assert_same_batch(BatchFeature(dict(data)).convert_to_tensors(tensor_type),
                      transformers.BatchFeature(dict(data)).convert_to_tensors(tensor_type))
    assert_same_batch(pickle.loads(pickle.dumps(ours)), pickle.loads(pickle.dumps(theirs)))
    assert list(ours.keys()) == list(theirs.keys()) and [k for k, _ in ours.items()] == [k for k, _ in theirs.items()]
    assert_same_value(ours.input_ids, theirs.input_ids)
    assert ours.data["input_ids"] is ours["input_ids"] and isinstance(theirs.data, dict)
    with pytest.raises(ValueError, match="Unable to convert"):  # ragged values cannot be a tensor
        BatchFeature({"x": [[1], [2, 3]]}, tensor_type="pt")
    with pytest.raises(AttributeError):
        _ = ours.missing
