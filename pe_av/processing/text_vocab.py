"""The vocabulary side of :class:`~pe_av.processing.text.PeTokenizer`: special tokens, ids ↔ tokens, decoding.

Behaves as transformers' ``TokenizersBackend`` (the fast tokenizer) on the same ``tokenizer.json``:

- named special tokens ``bos/eos/unk/sep/pad/cls/mask_token`` (strings, settable) and their ``*_token_id``
  (a token missing from the vocabulary maps to ``unk_token_id``, as in transformers);
  ``special_tokens_map``, ``all_special_tokens`` / ``all_special_ids`` (named first, in that order, then
  ``extra_special_tokens``), ``extra_special_tokens``;
- ``vocab_size`` (without added tokens), ``len(tokenizer)`` and ``get_vocab()`` (with them);
- ``convert_ids_to_tokens`` / ``convert_tokens_to_ids`` (unknown tokens → ``unk_token_id``), ``tokenize``;
- ``decode`` (one sequence, or a batch of them) and ``batch_decode``, with ``skip_special_tokens`` and
  ``clean_up_tokenization_spaces`` (default: the tokenizer's setting, ``False`` unless its config says so).

``skip_special_tokens`` drops the backend's special added tokens and every id of ``all_special_ids``:
transformers registers the named special tokens in the backend when it builds a tokenizer, so this gives
its result without changing the backend ``PeTokenizer`` was given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

#: transformers' order of the named special tokens (``SPECIAL_TOKENS_ATTRIBUTES``)
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _py(value: Any) -> Any:
    """Tensors, arrays and numpy scalars as Python ints/lists (transformers' ``to_py_obj``)."""
    if isinstance(value, (torch.Tensor, np.ndarray, np.number)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_py(item) for item in value]
    return value


def _special_token_property(name: str) -> property:
    def get(self) -> str | None:
        return self._special_tokens.get(name)

    def set(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            value = getattr(value, "content", value)  # a tokenizers.AddedToken
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None, got {type(value).__name__}")
        self._special_tokens[name] = value

    return property(get, set, doc=f"The ``{name}`` (a string, or None when the tokenizer has none).")


def _special_id_property(name: str) -> property:
    def get(self) -> int | None:
        token = self._special_tokens.get(name)
        return None if token is None else self.convert_tokens_to_ids(token)

    return property(get, doc=f"Id of :attr:`{name}` (``unk_token_id`` when it is not in the vocabulary).")


class TokenizerVocab:
    """Mixin of :class:`PeTokenizer`: needs ``self.tokenizer`` (the ``tokenizers.Tokenizer``),
    ``self._special_tokens`` (name → token), ``self.extra_special_tokens`` and
    ``self.clean_up_tokenization_spaces``."""

    tokenizer: Any
    _special_tokens: dict[str, str | None]
    extra_special_tokens: list[str]
    clean_up_tokenization_spaces: bool

    bos_token = _special_token_property("bos_token")
    eos_token = _special_token_property("eos_token")
    unk_token = _special_token_property("unk_token")
    sep_token = _special_token_property("sep_token")
    pad_token = _special_token_property("pad_token")
    cls_token = _special_token_property("cls_token")
    mask_token = _special_token_property("mask_token")
    bos_token_id = _special_id_property("bos_token")
    eos_token_id = _special_id_property("eos_token")
    unk_token_id = _special_id_property("unk_token")
    sep_token_id = _special_id_property("sep_token")
    pad_token_id = _special_id_property("pad_token")
    cls_token_id = _special_id_property("cls_token")
    mask_token_id = _special_id_property("mask_token")

    # ------------------------------------------------------------------ special tokens

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens that are set, by name."""
        return {name: self._special_tokens[name] for name in SPECIAL_TOKENS if self._special_tokens.get(name)}

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token once: the named ones in transformers' order, then the extra ones."""
        seen: dict[str, None] = {}
        for token in [*self.special_tokens_map.values(), *self.extra_special_tokens]:
            seen.setdefault(str(token), None)
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of :attr:`all_special_tokens`."""
        return self.convert_tokens_to_ids(self.all_special_tokens)

    # ------------------------------------------------------------------ vocabulary

    @property
    def backend_tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` doing the work (as transformers names it)."""
        return self.tokenizer

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        return self.tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        """Size of the whole vocabulary, added tokens included."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def __bool__(self) -> bool:
        return True  # not len(): an empty vocabulary is still a tokenizer

    def get_vocab(self) -> dict[str, int]:
        """Token → id, added tokens included."""
        return self.tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | None | list[int | None]:
        """Id of a token (or ids of a list of tokens); tokens not in the vocabulary get ``unk_token_id``."""
        if isinstance(tokens, str):
            return self._token_id(tokens)
        return [self._token_id(token) for token in tokens]

    def _token_id(self, token: str) -> int | None:
        index = self.tokenizer.token_to_id(token)
        if index is None:
            unk = self._special_tokens.get("unk_token")
            return None if unk is None else self.tokenizer.token_to_id(unk)
        return index

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | None | list:
        """Token of an id (or tokens of a list of ids, without the special ones if ``skip_special_tokens``)."""
        ids = _py(ids)
        if isinstance(ids, int):
            return self.tokenizer.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self.tokenizer.id_to_token(int(i)) for i in ids if int(i) not in skip]

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any) -> list:
        """The tokens of ``text`` (and ``pair``), without special tokens unless asked."""
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise TypeError("tokenize takes a string (and optionally a pair string)")
        inputs = text if pair is None else (text, pair)
        return self.tokenizer.encode(inputs, add_special_tokens=add_special_tokens).tokens

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self.tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    # ------------------------------------------------------------------ decoding

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str | list[str]:
        """Text of a sequence of ids (list, tensor or array; an int is one id), or a list of texts for a batch."""
        token_ids = _py(token_ids)
        if isinstance(token_ids, dict):
            token_ids = _py(token_ids["input_ids"])
        if isinstance(token_ids, list) and token_ids and isinstance(token_ids[0], (list, tuple)):
            return [self._decode(seq, skip_special_tokens, clean_up_tokenization_spaces) for seq in token_ids]
        return self._decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces)

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Texts of a batch of id sequences (a single sequence gives a list of one text)."""
        sequences = _py(sequences)
        if isinstance(sequences, dict):
            sequences = _py(sequences["input_ids"])
        if isinstance(sequences, list) and not sequences:
            return []
        result = self.decode(sequences, skip_special_tokens, clean_up_tokenization_spaces)
        return [result] if isinstance(result, str) else result

    def _decode(self, ids: Any, skip_special_tokens: bool, clean_up: bool | None) -> str:
        if isinstance(ids, int):
            ids = [ids]
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise TypeError(f"decode takes token ids (ints, a list of ints, a tensor or array), got {ids!r:.80}")
        if skip_special_tokens:
            special = set(self.all_special_ids)
            ids = [i for i in ids if i not in special]
        text = self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        clean_up = self.clean_up_tokenization_spaces if clean_up is None else clean_up
        if clean_up and type(self.tokenizer.model).__name__ != "BPE":  # transformers skips BPE: it would corrupt it
            text = clean_up_tokenization(text)
        return text


def clean_up_tokenization(text: str) -> str:
    """transformers' ``clean_up_tokenization``: drop the spaces WordPiece decoding leaves before punctuation."""
    for spaced, joined in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                           (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(spaced, joined)
    return text
