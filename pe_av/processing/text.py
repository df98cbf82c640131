"""``PeTokenizer``: the text side of the processors, on the ``tokenizers`` library alone.

Reads ``tokenizer.json`` (the ModernBERT tokenizer of the PE-AV checkpoints) plus ``tokenizer_config.json``
(special tokens, ``model_max_length``, padding/truncation sides), and encodes the way transformers' fast
tokenizer (``TokenizersBackend``) does: special tokens added by the file's post-processor, truncation
strategies counting them, padding with the pad token. ``__call__`` takes transformers' arguments and
returns a :class:`~pe_av.processing.batch.BatchEncoding`; vocabulary, special tokens and decoding are in
:mod:`.text_vocab`.

Deliberate differences (README "Beyond the reference"): arguments left out default to ``padding=True``,
``truncation=True`` and ``return_tensors="pt"`` (transformers: no padding, no truncation, Python lists), so
``model(**tokenizer(texts))`` works; truncation without ``max_length`` cuts at ``min(model_max_length, 512)``
(PE-AV's text limit; transformers: ``model_max_length``). Given explicitly, every argument means what it
means in transformers (``return_tensors=None`` gives lists, unbatched for one string).

``tokenizers`` is imported when a ``PeTokenizer`` is built or loaded, not with ``pe_av``; without it
those raise ``ImportError`` (``pip install tokenizers``).

Threads: a ``tokenizers.Tokenizer`` holds its truncation and padding settings as mutable state, which
each call sets for itself. Calls therefore configure, encode and reset under one process-wide lock
(:data:`_BACKEND_LOCK`, shared by every ``PeTokenizer`` so that two of them wrapping the same backend are
covered too): any number of threads may call a ``PeTokenizer`` at once, each with its own
``max_length`` and ``padding``. The batch itself is still encoded in parallel by ``tokenizers``.
Code that uses the backend's truncation or padding directly (``PeTokenizer.tokenizer``) from another
thread is outside this lock.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..json_io import read_json_object
from .batch import BatchEncoding, check_tensor_type
from .files import resolve_processor_dir, split_loading_kwargs, warn_unused
from .options import (
    UNSET,
    check_positive_int,
    logger,
    padding_strategy,
    truncation_strategy,
)
from .text_inputs import batch_inputs, check_texts, collect_outputs
from .text_vocab import SPECIAL_TOKENS, TokenizerVocab

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["PeTokenizer", "check_texts"]

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
#: PE-AV's text limit (SPEC: ModernBERT text truncated at 512 tokens)
DEFAULT_MAX_LENGTH = 512
#: held while a call sets a backend tokenizer's truncation/padding, encodes, and resets them
_BACKEND_LOCK = threading.Lock()
#: settings read from tokenizer_config.json (and overridable in from_pretrained)
SETTINGS = (*SPECIAL_TOKENS, "extra_special_tokens", "model_max_length", "padding_side", "truncation_side",
            "clean_up_tokenization_spaces", "model_input_names")


def _tokenizer_class() -> type[Tokenizer]:
    """``tokenizers.Tokenizer``, imported on first use; a clear ``ImportError`` when it is missing."""
    try:
        return importlib.import_module("tokenizers").Tokenizer
    except ImportError as exc:
        raise ImportError(
            f"the text processor needs the tokenizers package, which cannot be imported ({exc}): "
            "pip install tokenizers"
        ) from exc


def _token_content(value: object) -> str | None:
    """tokenizer_config.json writes special tokens as strings or as ``{"content": ...}`` dicts."""
    if isinstance(value, dict):
        value = value.get("content")
    value = getattr(value, "content", value)  # a tokenizers.AddedToken
    return value if isinstance(value, str) else None


class PeTokenizer(TokenizerVocab):
    """Text → ``input_ids`` / ``attention_mask`` with a ``tokenizers.Tokenizer`` (transformers' fast tokenizer API).

    Args:
        tokenizer: the backend (e.g. ``Tokenizer.from_file("tokenizer.json")``).
        pad_token: token used for padding; must be in the vocabulary when padding is needed.
        model_max_length: the tokenizer's own limit; truncation defaults to ``min(model_max_length, 512)``.
        padding_side / truncation_side: ``"right"`` or ``"left"``, as transformers.
        extra: other tokenizer_config.json entries, written back by :meth:`save_pretrained` (named special
            tokens found there are used when not given as arguments).
        bos_token ... mask_token, extra_special_tokens: the other special tokens.
        clean_up_tokenization_spaces: :meth:`decode`'s default.
        model_input_names: what ``__call__`` returns by default (``token_type_ids`` only if listed).
    """

    is_fast = True

    def __init__(
        self,
        tokenizer: Tokenizer,
        pad_token: str | None = None,
        model_max_length: int = DEFAULT_MAX_LENGTH,
        padding_side: str = "right",
        truncation_side: str = "right",
        extra: dict[str, Any] | None = None,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        unk_token: str | None = None,
        sep_token: str | None = None,
        cls_token: str | None = None,
        mask_token: str | None = None,
        extra_special_tokens: Sequence[str] | None = None,
        clean_up_tokenization_spaces: bool = False,
        model_input_names: Sequence[str] | None = None,
        name_or_path: str = "",
    ) -> None:
        if not isinstance(tokenizer, _tokenizer_class()):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("right", "left"):
                raise ValueError(f"{name} must be 'right' or 'left', got {side!r}")
        check_positive_int("model_max_length", model_max_length, allow_none=False)
        self.tokenizer = tokenizer
        self.extra = dict(extra or {})
        given = {"bos_token": bos_token, "eos_token": eos_token, "unk_token": unk_token, "sep_token": sep_token,
                     "pad_token": pad_token, "cls_token": cls_token, "mask_token": mask_token}
        self._special_tokens: dict[str, str | None] = {}
        for name in SPECIAL_TOKENS:
            setattr(self, name, given[name] if given[name] is not None else _token_content(self.extra.get(name)))
        if extra_special_tokens is None:
            extra_special_tokens = self.extra.get("extra_special_tokens", self.extra.get("additional_special_tokens"))
        if isinstance(extra_special_tokens, dict):  # transformers 5 also allows {name: token}
            extra_special_tokens = list(extra_special_tokens.values())
        self.extra_special_tokens = [t for t in map(_token_content, extra_special_tokens or []) if t is not None]
        self.model_max_length = model_max_length
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.model_input_names = list(model_input_names or ["input_ids", "attention_mask"])
        self.name_or_path = name_or_path
        with _BACKEND_LOCK:  # settings stored in tokenizer.json must not leak into calls
            self.tokenizer.no_truncation()
            self.tokenizer.no_padding()

    # ------------------------------------------------------------------ loading / saving

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> PeTokenizer:
        """Load ``tokenizer.json`` (+ ``tokenizer_config.json`` when present) from a directory or a hub id.

        Takes transformers' loading keywords (see :mod:`pe_av.processing.files`); ``padding_side=``,
        ``model_max_length=``, special tokens and the other :data:`SETTINGS` override the saved ones.
        """
        hub, overrides = split_loading_kwargs(kwargs)
        directory = resolve_processor_dir(path, hub)
        file = directory / TOKENIZER_FILE
        if not file.is_file():
            raise FileNotFoundError(f"no {TOKENIZER_FILE} in {directory}: the text processor needs it")
        backend = _tokenizer_class()  # outside the try: a missing package stays an ImportError
        try:
            tokenizer = backend.from_file(str(file))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ValueError(f"cannot read {file}: {exc}") from exc
        config_path = directory / TOKENIZER_CONFIG_FILE
        config = read_json_object(config_path, holds="tokenizer settings") if config_path.is_file() else {}
        config.update({key: value for key, value in overrides.items() if key in SETTINGS})
        warn_unused(overrides, set(SETTINGS), cls.__name__)
        if config.get("pad_token") is None and tokenizer.padding is not None:
            config["pad_token"] = tokenizer.padding.get("pad_token")
        max_length = config.get("model_max_length", DEFAULT_MAX_LENGTH)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            max_length = DEFAULT_MAX_LENGTH
        return cls(
            tokenizer,
            pad_token=_token_content(config.get("pad_token")),
            model_max_length=max_length,
            padding_side=config.get("padding_side", "right"),
            truncation_side=config.get("truncation_side", "right"),
            extra=config,
            clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
            model_input_names=config.get("model_input_names"),
            name_or_path=os.fspath(path),
        )

    @classmethod
    def from_transformers(cls, tokenizer: Any) -> PeTokenizer:
        """A ``PeTokenizer`` equal to a transformers fast tokenizer (a copy of its ``backend_tokenizer``)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, _tokenizer_class()):
            raise TypeError(
                f"expected a transformers fast tokenizer (with a tokenizers.Tokenizer as backend_tokenizer), "
                f"got {type(tokenizer).__name__}"
            )
        special = {name: _token_content(getattr(tokenizer, name, None)) for name in SPECIAL_TOKENS}
        max_length = getattr(tokenizer, "model_max_length", DEFAULT_MAX_LENGTH)
        return cls(
            _tokenizer_class().from_str(backend.to_str()),
            model_max_length=max_length if isinstance(max_length, int) and max_length >= 1 else DEFAULT_MAX_LENGTH,
            padding_side=getattr(tokenizer, "padding_side", "right"),
            truncation_side=getattr(tokenizer, "truncation_side", "right"),
            extra_special_tokens=[str(t) for t in getattr(tokenizer, "extra_special_tokens", None) or []],
            clean_up_tokenization_spaces=bool(getattr(tokenizer, "clean_up_tokenization_spaces", False)),
            model_input_names=list(getattr(tokenizer, "model_input_names", None) or []) or None,
            name_or_path=str(getattr(tokenizer, "name_or_path", "")),
            **special,
        )

    def save_pretrained(self, directory: str | os.PathLike, **kwargs: Any) -> tuple[str, str]:
        """Write ``tokenizer.json`` and a ``tokenizer_config.json`` that transformers can load."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(directory / TOKENIZER_FILE))
        config = {"backend": "tokenizers", "tokenizer_class": "TokenizersBackend", **self.extra}
        config.update(model_max_length=self.model_max_length, padding_side=self.padding_side,
                      truncation_side=self.truncation_side,
                      clean_up_tokenization_spaces=self.clean_up_tokenization_spaces)
        config.update(self.special_tokens_map)
        config.pop("additional_special_tokens", None)
        if self.extra_special_tokens:
            config["extra_special_tokens"] = list(self.extra_special_tokens)
        if self.model_input_names != ["input_ids", "attention_mask"]:
            config["model_input_names"] = list(self.model_input_names)
        (directory / TOKENIZER_CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return str(directory / TOKENIZER_CONFIG_FILE), str(directory / TOKENIZER_FILE)

    @property
    def max_length(self) -> int:
        """Default truncation length: ``min(model_max_length, 512)``."""
        return min(self.model_max_length, DEFAULT_MAX_LENGTH)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
                f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map})")

    # ------------------------------------------------------------------ encoding

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        text_pair: str | Sequence[str] | None = None,
        text_target: object = None,
        text_pair_target: object = None,
        add_special_tokens: bool = True,
        padding: bool | str = UNSET,
        truncation: bool | str | None = UNSET,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = UNSET,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Tokenize a string, a list of strings (``is_split_into_words``: lists of words), or pairs of them.

        Arguments are transformers' (``padding``: True/"longest", "max_length", False; ``truncation``: True/
        "longest_first", "only_first", "only_second", False; ``return_tensors``: "pt", "np", None), with
        the defaults of the module's docstring. Returns a :class:`BatchEncoding`.
        """
        if text_target is not None or text_pair_target is not None:
            raise ValueError("text_target / text_pair_target are not supported: PE-AV's text tower has no decoder")
        if kwargs:
            logger.warning("Keyword arguments %s not recognized by the tokenizer; ignored.", sorted(kwargs))
        if text is None:
            raise ValueError("You need to specify `text`: a string or a list of strings")
        batched, inputs = batch_inputs(text, text_pair, is_split_into_words)
        rt = "pt" if return_tensors is UNSET else check_tensor_type(return_tensors)
        pad = padding_strategy(True if padding is UNSET else padding)
        check_positive_int("max_length", max_length)
        check_positive_int("pad_to_multiple_of", pad_to_multiple_of)
        if truncation is UNSET:
            truncation = True
        elif truncation is None and max_length is not None and pad == "do_not_pad":
            truncation = "longest_first"  # transformers: max_length alone turns truncation on
        trunc = truncation_strategy(truncation)
        if max_length is None and (trunc is not None or pad == "max_length"):
            max_length = self.max_length
        if trunc and pad != "do_not_pad" and pad_to_multiple_of and max_length % pad_to_multiple_of:
            raise ValueError(f"Truncation and padding are both activated but truncation length ({max_length}) is "
                             f"not a multiple of pad_to_multiple_of ({pad_to_multiple_of}).")
        side = self.padding_side if padding_side is None else padding_side
        if side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {side!r}")
        encodings = self._encode(inputs, add_special_tokens, is_split_into_words, pad, trunc, max_length, stride,
                                 pad_to_multiple_of, side)
        wanted = {
            "token_type_ids": "token_type_ids" in self.model_input_names if return_token_type_ids is None
            else return_token_type_ids,
            "attention_mask": "attention_mask" in self.model_input_names if return_attention_mask is None
            else return_attention_mask,
            "special_tokens_mask": return_special_tokens_mask, "offset_mapping": return_offsets_mapping,
        }
        data, flat = collect_outputs(encodings, wanted, return_length, return_overflowing_tokens)
        if rt == "pt" and len({len(ids) for ids in data["input_ids"]}) > 1:
            raise ValueError(
                f"texts tokenize to different lengths {sorted({len(ids) for ids in data['input_ids']})} and "
                f"padding={padding!r}: Unable to create tensor; use padding=True (and/or truncation=True) to batch "
                "them, or return_tensors=None for lists"
            )
        out = BatchEncoding(data, flat, tensor_type=rt)
        if not batched and rt is None and not return_overflowing_tokens:
            out = BatchEncoding({key: value[0] if value and isinstance(value[0], list) else value
                                 for key, value in out.items()}, out.encodings)
        return out

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True, **kwargs: Any):
        """The ids of one text (or pair): a list, or a ``(1, length)`` tensor/array with ``return_tensors``."""
        kwargs.setdefault("return_tensors", None)
        kwargs.setdefault("padding", False)
        return self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]

    def _encode(self, inputs, add_special_tokens, pretokenized, pad, trunc, max_length, stride, multiple, side):
        pad_id = None
        if pad != "do_not_pad":
            pad_id = None if self.pad_token is None else self.tokenizer.token_to_id(self.pad_token)
            if pad_id is None:
                raise ValueError(
                    f"cannot pad: the tokenizer has no pad token in its vocabulary (pad_token={self.pad_token!r}); "
                    "set pad_token in tokenizer_config.json or call with padding=False"
                )
        with _BACKEND_LOCK:  # the backend's truncation/padding are shared state: set, encode, reset as one
            try:
                if trunc is not None:
                    self.tokenizer.enable_truncation(max_length, stride=stride, strategy=trunc,
                                                     direction=self.truncation_side)
                if pad_id is not None:
                    self.tokenizer.enable_padding(
                        direction=side, pad_id=pad_id, pad_token=self.pad_token, pad_type_id=0,
                        length=max_length if pad == "max_length" else None, pad_to_multiple_of=multiple,
                    )
                return self.tokenizer.encode_batch(inputs, add_special_tokens=add_special_tokens,
                                                   is_pretokenized=pretokenized)
            except Exception as exc:
                if type(exc) is Exception:  # the backend's errors (e.g. "Second sequence not provided")
                    raise ValueError(f"tokenizing failed: {exc}") from exc
                raise
            finally:
                self.tokenizer.no_truncation()
                self.tokenizer.no_padding()
