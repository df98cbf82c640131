"""Drop-in: ``PeTokenizer`` against transformers' fast tokenizer (``TokenizersBackend``) on the same files.

Both load one ``tokenizer.json`` + ``tokenizer_config.json`` saved by transformers; each call runs both
ways and the results are compared exactly (tests/dropin_compare.py), or both must raise the same type.
"""

import json
import pickle

import numpy as np
import pytest
import torch
from dropin_compare import assert_same_batch, assert_same_value, both
from oracle import transformers
from test_processing import reference_tokenizer

from pe_av import AutoTokenizer
from pe_av.processing import BatchEncoding, PeAudioVideoProcessor, PeTokenizer

pytestmark = pytest.mark.oracle

TEXTS = ["a dog barks", "the cat sings loud music over and under the rain rain rain", "rain"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(ours, theirs), loaded from one transformers save with model_max_length=8 (so limits show)."""
    directory = tmp_path_factory.mktemp("tok")
    reference_tokenizer(model_max_length=8).save_pretrained(directory)
    return PeTokenizer.from_pretrained(directory), transformers.AutoTokenizer.from_pretrained(directory), directory


CALLS = [
    {}, {"return_tensors": "pt", "padding": True}, {"return_tensors": "np", "padding": True},
    {"padding": "longest", "return_tensors": "pt"}, {"padding": "max_length", "max_length": 10, "truncation": True},
    {"padding": "max_length"}, {"padding": False}, {"max_length": 4}, {"truncation": True},
    {"truncation": True, "max_length": 4, "padding": True, "return_tensors": "pt"}, {"padding": True, "max_length": 4},
    {"truncation": "only_first", "max_length": 4}, {"truncation": "longest_first", "max_length": 5},
    {"truncation": False, "padding": True}, {"truncation": "only_second", "max_length": 4},
    {"padding": True, "pad_to_multiple_of": 4, "return_tensors": "pt"},
    {"padding": "max_length", "max_length": 4, "truncation": True, "pad_to_multiple_of": 3},
    {"padding": True, "padding_side": "left", "return_tensors": "pt"},
    {"add_special_tokens": False, "padding": True}, {"return_attention_mask": False},
    {"return_token_type_ids": True, "padding": True, "return_tensors": "np"},
    {"return_special_tokens_mask": True, "return_offsets_mapping": True, "return_length": True, "padding": True},
    {"return_special_tokens_mask": True, "return_offsets_mapping": True, "return_length": True, "padding": True,
         "return_tensors": "pt"},
    {"truncation": True, "max_length": 4, "stride": 1, "return_overflowing_tokens": True},
    {"return_tensors": "pt"},  # ragged: refused both ways
    {"return_tensors": "np"},  # ragged: an object array both ways
    {"padding": "sideways"}, {"truncation": "sideways"}, {"return_tensors": "tf"},
]


def call_both(pair, text, **kwargs):
    ours, theirs, _ = pair
    mine = {"return_tensors": None, "padding": False, "truncation": None, **kwargs}  # transformers' defaults
    return both(lambda: ours(text, **mine), lambda: theirs(text, **kwargs))


@pytest.mark.parametrize("kwargs", CALLS, ids=str)
def test_tokenizer_calls(pair, kwargs):
    got, expected = call_both(pair, TEXTS, **kwargs)
    if expected is not None:
        assert_same_batch(got, expected)
        assert [e.ids for e in got.encodings] == [e.ids for e in expected.encodings]


@pytest.mark.parametrize("kwargs", [{}, {"return_tensors": "pt"}, {"return_tensors": "np"},
                                    {"padding": "max_length", "max_length": 6}, {"return_length": True}], ids=str)
def test_tokenizer_single_text_pairs_and_words(pair, kwargs):
    for text, extra in (("a dog barks", {}), ("a dog", {"text_pair": "the cat"}),
                        (["a dog", "rain"], {"text_pair": ["the cat", "a"], "padding": True}),
                        ([["a", "dog"], ["rain"]], {"is_split_into_words": True, "padding": True}),
                        (["a", "dog"], {"is_split_into_words": True})):
        got, expected = call_both(pair, text, **{**extra, **kwargs})
        assert_same_batch(got, expected)


def test_batch_encoding_api(pair):
    ours, theirs, _ = pair
    got, expected = ours(TEXTS, padding=True, truncation=False), theirs(TEXTS, padding=True, return_tensors="pt")
    assert isinstance(got, BatchEncoding) and got.is_fast and got.n_sequences == expected.n_sequences == 1
    for i in range(len(TEXTS)):
        assert got.tokens(i) == expected.tokens(i) and got.word_ids(i) == expected.word_ids(i)
        assert got.sequence_ids(i) == expected.sequence_ids(i) and got[i].ids == expected[i].ids
    assert_same_value(got.input_ids, expected.input_ids)
    assert_same_batch(got.to("cpu"), expected.to("cpu"))
    with pytest.warns(UserWarning, match="not supported"):  # a dtype is ignored (transformers logs the same)
        assert got.to(torch.float16)["input_ids"].dtype == torch.int64
    assert expected.to(torch.float16)["input_ids"].dtype == torch.int64
    assert_same_batch(pickle.loads(pickle.dumps(got)), pickle.loads(pickle.dumps(expected)))
    assert pickle.loads(pickle.dumps(got)).tokens(0) == expected.tokens(0)
    assert_same_batch(got.convert_to_tensors("np"), expected.convert_to_tensors("np"))


def test_vocabulary_and_special_tokens(pair):
    ours, theirs, _ = pair
    for name in ("vocab_size", "model_input_names", "padding_side", "truncation_side", "model_max_length",
                 "all_special_tokens", "all_special_ids", "special_tokens_map", "clean_up_tokenization_spaces",
                 "is_fast", "extra_special_tokens"):
        assert getattr(ours, name) == getattr(theirs, name), name
    for name in ("pad", "cls", "sep", "mask", "unk", "bos", "eos"):
        assert getattr(ours, f"{name}_token") == getattr(theirs, f"{name}_token"), name
        assert getattr(ours, f"{name}_token_id") == getattr(theirs, f"{name}_token_id"), name
    assert len(ours) == len(theirs) and ours.get_vocab() == theirs.get_vocab()
    for tokens in ("dog", "zzz", ["dog", "[CLS]", "zzz"], []):
        assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)
    for ids in (5, [2, 5, 6, 3, 0], torch.tensor([2, 5, 3]), np.array([2, 14, 3])):
        for skip in (False, True):
            assert ours.convert_ids_to_tokens(ids, skip_special_tokens=skip) == \
                theirs.convert_ids_to_tokens(ids, skip_special_tokens=skip)
    for text in ("a dog barks", "[CLS] rain"):
        assert ours.tokenize(text) == theirs.tokenize(text)
        assert ours.tokenize(text, add_special_tokens=True) == theirs.tokenize(text, add_special_tokens=True)


@pytest.mark.parametrize("ids", [[2, 5, 6, 7, 3, 0, 0], 5, [], torch.tensor([2, 5, 3]), np.array([2, 14, 3, 0]),
                                 [[2, 5, 3, 0], [2, 14, 3, 0]], torch.tensor([[2, 5, 3], [2, 14, 3]])], ids=str)
def test_decode(pair, ids):
    ours, theirs, _ = pair
    for skip in (False, True):
        for clean in (None, True, False):
            assert ours.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean) == \
                theirs.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
        if not isinstance(ids, int):
            assert ours.batch_decode(ids, skip_special_tokens=skip) == theirs.batch_decode(ids, skip_special_tokens=skip)


def test_encode(pair):
    ours, theirs, _ = pair
    for args, kwargs in ((("a dog barks",), {}), (("a dog", "rain"), {}), (("a dog barks",), {"max_length": 3}),
                         (("a dog",), {"add_special_tokens": False}), (("a dog",), {"return_tensors": "pt"}),
                         (("a dog",), {"padding": "max_length", "max_length": 6, "return_tensors": "np"})):
        assert_same_value(ours.encode(*args, **kwargs), theirs.encode(*args, **kwargs))


def test_save_round_trips_and_transformers_tokenizers(pair, tmp_path):
    ours, theirs, directory = pair
    ours.save_pretrained(tmp_path / "ours")
    for reloaded in (transformers.AutoTokenizer.from_pretrained(tmp_path / "ours"),
                     PeTokenizer.from_pretrained(tmp_path / "ours")):
        assert_same_batch(reloaded(TEXTS, padding=True, truncation=True, return_tensors="pt"),
                          theirs(TEXTS, padding=True, truncation=True, return_tensors="pt"))
        assert reloaded.special_tokens_map == theirs.special_tokens_map
        assert reloaded.model_max_length == theirs.model_max_length
    converted = PeTokenizer.from_transformers(theirs)  # a transformers tokenizer, wrapped
    assert_same_batch(converted(TEXTS, padding="max_length", max_length=12, truncation=True),
                      theirs(TEXTS, padding="max_length", max_length=12, truncation=True, return_tensors="pt"))
    assert converted.special_tokens_map == theirs.special_tokens_map
    assert converted.backend_tokenizer is not theirs.backend_tokenizer  # a copy: the two never share settings
    processor = PeAudioVideoProcessor(tokenizer=theirs)
    assert isinstance(processor.tokenizer, PeTokenizer)
    assert processor.decode([2, 5, 3], skip_special_tokens=True) == theirs.decode([2, 5, 3], skip_special_tokens=True)
    # loading keywords and setting overrides, as transformers' AutoTokenizer takes them
    keywords = {"padding_side": "left", "use_fast": True, "trust_remote_code": True, "revision": "main", "model_max_length": 6}
    left, reference = AutoTokenizer.from_pretrained(directory, **keywords), \
        transformers.AutoTokenizer.from_pretrained(directory, **keywords)
    assert (left.padding_side, left.model_max_length) == (reference.padding_side, reference.model_max_length)
    assert_same_batch(left(TEXTS, padding=True, truncation=True), reference(TEXTS, padding=True, truncation=True,
                                                                             return_tensors="pt"))
    saved = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    assert saved["tokenizer_class"] == "TokenizersBackend" and saved["pad_token"] == "[PAD]"


def test_defaults_are_the_documented_differences(pair):
    ours, theirs, _ = pair
    # not given: padding=True, truncation=True (at min(model_max_length, 512)), return_tensors="pt"
    assert_same_batch(ours(TEXTS), theirs(TEXTS, padding=True, truncation=True, return_tensors="pt"))
    assert_same_batch(ours("a dog"), theirs("a dog", padding=True, truncation=True, return_tensors="pt"))
    with pytest.raises(ValueError, match="text is an empty list"):  # transformers: an IndexError
        ours([])
    with pytest.raises(TypeError, match="text must be"):  # transformers: a ValueError
        ours(3)


def test_built_from_a_backend_as_transformers_builds_it():
    """``PeTokenizer(backend, ...)`` and ``PreTrainedTokenizerFast(tokenizer_object=backend, ...)``: transformers
    registers the special tokens in its backend; ours leaves the given backend as it is and still decodes alike."""
    from test_processing import backend_tokenizer

    specials = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "mask_token": "[MASK]"}
    ours, theirs = PeTokenizer(backend_tokenizer(), **specials), reference_tokenizer()
    assert ours.tokenizer.get_added_tokens_decoder() == {}  # untouched
    ids = [[2, 5, 6, 7, 3, 0], [2, 1, 4, 3, 0, 0]]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == theirs.batch_decode(ids, skip_special_tokens=skip)
        assert ours.convert_ids_to_tokens(ids[1], skip) == theirs.convert_ids_to_tokens(ids[1], skip)
    assert ours.all_special_ids == theirs.all_special_ids and len(ours) == len(theirs)
    assert_same_batch(ours(TEXTS), theirs(TEXTS, padding=True, truncation=True, return_tensors="pt"))
    ours.pad_token = "[MASK]"  # settable, as transformers' special tokens are
    theirs.pad_token = "[MASK]"
    assert ours.pad_token_id == theirs.pad_token_id == 4
    assert_same_batch(ours(TEXTS, padding=True, truncation=False),
                      theirs(TEXTS, padding=True, return_tensors="pt"))
