"""``PeTokenizer``: the text side of the processors, on the ``tokenizers`` library alone.

Reads ``tokenizer.json`` (the ModernBERT tokenizer of the PE-AV checkpoints) plus the special-token
names of ``tokenizer_config.json``, and encodes batches the way transformers' fast tokenizer does
when called with ``padding=True, truncation=True, max_length=512``: special tokens added by the
file's post-processor, longest-first truncation counting them, right padding with the pad token.

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

import torch

from ..json_io import read_json_object

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
#: PE-AV's text limit (SPEC: ModernBERT text truncated at 512 tokens)
DEFAULT_MAX_LENGTH = 512
_PADDING = (True, "longest", "max_length", False, "do_not_pad")
#: held while a call sets a backend tokenizer's truncation/padding, encodes, and resets them
_BACKEND_LOCK = threading.Lock()


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
    return value if isinstance(value, str) else None


class PeTokenizer:
    """Text → ``input_ids`` / ``attention_mask`` (int64 tensors) with a ``tokenizers.Tokenizer``.

    Args:
        tokenizer: the backend (e.g. ``Tokenizer.from_file("tokenizer.json")``).
        pad_token: token used for padding; must be in the vocabulary when padding is needed.
        model_max_length: the tokenizer's own limit; truncation defaults to ``min(model_max_length, 512)``
            (PE-AV's text limit).
        padding_side / truncation_side: ``"right"`` or ``"left"``, as transformers.
        extra: other tokenizer_config.json entries, written back by :meth:`save_pretrained`.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        pad_token: str | None = None,
        model_max_length: int = DEFAULT_MAX_LENGTH,
        padding_side: str = "right",
        truncation_side: str = "right",
        extra: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(tokenizer, _tokenizer_class()):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("right", "left"):
                raise ValueError(f"{name} must be 'right' or 'left', got {side!r}")
        if isinstance(model_max_length, bool) or not isinstance(model_max_length, int) or model_max_length < 1:
            raise ValueError(f"model_max_length must be a positive int, got {model_max_length!r}")
        self.tokenizer = tokenizer
        self.pad_token = pad_token
        self.model_max_length = model_max_length
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.extra = dict(extra or {})
        with _BACKEND_LOCK:  # settings stored in tokenizer.json must not leak into calls
            self.tokenizer.no_truncation()
            self.tokenizer.no_padding()

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> PeTokenizer:
        """Load ``tokenizer.json`` (+ ``tokenizer_config.json`` when present) from ``directory``."""
        directory = Path(directory)
        path = directory / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {TOKENIZER_FILE} in {directory}: the text processor needs it")
        backend = _tokenizer_class()  # outside the try: a missing package stays an ImportError
        try:
            tokenizer = backend.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ValueError(f"cannot read {path}: {exc}") from exc
        config_path = directory / TOKENIZER_CONFIG_FILE
        config = read_json_object(config_path, holds="tokenizer settings") if config_path.is_file() else {}
        pad_token = _token_content(config.get("pad_token"))
        if pad_token is None and tokenizer.padding is not None:
            pad_token = tokenizer.padding.get("pad_token")
        max_length = config.get("model_max_length", DEFAULT_MAX_LENGTH)
        # transformers writes a huge sentinel when a tokenizer has no limit
        if not isinstance(max_length, int) or max_length < 1 or max_length > 1_000_000:
            max_length = DEFAULT_MAX_LENGTH
        return cls(
            tokenizer,
            pad_token=pad_token,
            model_max_length=max_length,
            padding_side=config.get("padding_side", "right"),
            truncation_side=config.get("truncation_side", "right"),
            extra=config,
        )

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` and a ``tokenizer_config.json`` that transformers can load."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(directory / TOKENIZER_FILE))
        config = {"backend": "tokenizers", "tokenizer_class": "TokenizersBackend", **self.extra}
        config.update(model_max_length=self.model_max_length, padding_side=self.padding_side,
                      truncation_side=self.truncation_side)
        if self.pad_token is not None:
            config["pad_token"] = self.pad_token
        (directory / TOKENIZER_CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    @property
    def max_length(self) -> int:
        """Default truncation length: ``min(model_max_length, 512)``."""
        return min(self.model_max_length, DEFAULT_MAX_LENGTH)

    @property
    def pad_token_id(self) -> int | None:
        """Id of :attr:`pad_token` (``None`` when there is none)."""
        return None if self.pad_token is None else self.tokenizer.token_to_id(self.pad_token)

    def __call__(
        self,
        text: str | Sequence[str],
        padding: bool | str = True,
        truncation: bool = True,
        max_length: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Tokenize a string or a list of strings into ``(batch, length)`` int64 tensors.

        Args:
            text: one string or a non-empty list of strings.
            padding: ``True``/``"longest"`` (pad to the longest), ``"max_length"`` (pad to ``max_length``)
                or ``False`` (every text must then have the same length).
            truncation: cut texts longer than ``max_length`` tokens (special tokens included).
            max_length: defaults to :attr:`max_length`.
        """
        texts = check_texts(text)
        if padding not in _PADDING:
            raise ValueError(f"padding must be one of {_PADDING}, got {padding!r}")
        if max_length is None:
            max_length = self.max_length
        elif isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        pad_id = None
        if padding in (True, "longest", "max_length"):
            pad_id = self.pad_token_id
            if pad_id is None:
                raise ValueError(
                    f"cannot pad: the tokenizer has no pad token in its vocabulary (pad_token={self.pad_token!r}); "
                    "set pad_token in tokenizer_config.json or call with padding=False"
                )
        with _BACKEND_LOCK:  # the backend's truncation/padding are shared state: set, encode, reset as one
            try:
                if truncation:
                    self.tokenizer.enable_truncation(max_length, direction=self.truncation_side)
                if pad_id is not None:
                    self.tokenizer.enable_padding(
                        direction=self.padding_side,
                        pad_id=pad_id,
                        pad_token=self.pad_token,
                        length=max_length if padding == "max_length" else None,
                    )
                encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
            finally:
                self.tokenizer.no_truncation()
                self.tokenizer.no_padding()
        lengths = {len(encoding.ids) for encoding in encodings}
        if len(lengths) > 1:
            raise ValueError(
                f"texts tokenize to different lengths {sorted(lengths)} and padding={padding!r}; "
                "use padding=True to batch them"
            )
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
        }


def check_texts(text: object) -> list[str]:
    """A string or a non-empty list/tuple of strings, as a list."""
    if isinstance(text, str):
        return [text]
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"text must be a string or a list of strings, got {type(text).__name__}")
    if not text:
        raise ValueError("text is an empty list; give at least one string")
    for i, item in enumerate(text):
        if not isinstance(item, str):
            raise TypeError(f"text[{i}] must be a string, got {type(item).__name__}")
    return list(text)
