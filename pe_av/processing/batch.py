"""``BatchFeature`` and ``BatchEncoding``: what the processors and the tokenizer return, with transformers' API.

Both are dicts (``model(**inputs)`` works) with attribute access (``inputs.input_ids``), and behave as
transformers' classes of the same names:

- ``convert_to_tensors("pt" | "np" | None)`` converts the values in place (lists of tensors are stacked,
  lists of arrays or numbers become one tensor; strings and other objects are left alone; ragged values
  are a ``ValueError`` that suggests ``padding=True``) and returns the batch;
- ``BatchFeature.to(...)`` takes what ``torch.Tensor.to`` takes — a device, a dtype, both, ``device=`` /
  ``dtype=`` / ``non_blocking=`` — casts only floating tensors to a dtype (ids and masks keep theirs),
  moves every tensor (in lists and tuples too) to the device, and returns the same batch, modified;
- ``BatchEncoding.to(device)`` moves every tensor and refuses nothing but dtypes (which it ignores, with a
  warning, as transformers does); ``encodings``, ``tokens(i)``, ``word_ids(i)``, ``sequence_ids(i)``,
  ``n_sequences`` and ``enc[i]`` (the ``tokenizers.Encoding`` of item ``i``) come from the backend;
- ``.data`` is the batch itself, ``pickle`` and ``copy`` keep everything.

Difference: transformers' classes derive from ``collections.UserDict``; these derive from ``dict`` (so
``isinstance(inputs, dict)`` holds, and ``.data`` is the batch rather than a separate dict).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

TENSOR_TYPES = ("pt", "np")

__all__ = ["BatchEncoding", "BatchFeature", "check_tensor_type"]


def check_tensor_type(tensor_type: object) -> str | None:
    """``"pt"``, ``"np"`` or ``None`` (also given as transformers' ``TensorType`` enum); else a ``ValueError``."""
    if tensor_type is None:
        return None
    value = getattr(tensor_type, "value", tensor_type)  # transformers.TensorType is a str enum
    if value not in TENSOR_TYPES:
        raise ValueError(f"{tensor_type!r} is not a valid TensorType, please select one of {list(TENSOR_TYPES)}")
    return value


def _array_like(value: object) -> bool:
    """What transformers converts: arrays, tensors, numbers, and (nested) lists/tuples of them."""
    if isinstance(value, (np.ndarray, torch.Tensor, int, float, bool, np.number)):
        return True
    if isinstance(value, (list, tuple)):
        return len(value) == 0 or _array_like(value[0])
    return False


def _as_torch(value: object, empty_dtype: torch.dtype | None) -> torch.Tensor:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return torch.stack(list(value))
    if isinstance(value, (list, tuple)) and value:
        first = value[0]
        if isinstance(first, np.ndarray) or (
            isinstance(first, (list, tuple)) and first and isinstance(first[0], np.ndarray)
        ):
            value = np.array(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if empty_dtype is not None and isinstance(value, (list, tuple)) and _is_empty(value):
        return torch.tensor(value, dtype=empty_dtype)
    return torch.tensor(value)


def _as_numpy(value: object, empty_dtype: type | None) -> np.ndarray:
    nested = isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray))
    if nested and len({len(v) for v in value}) > 1:  # ragged: an object array of rows, as transformers builds it
        rows = np.empty(len(value), dtype=object)
        rows[:] = [np.asarray(v) for v in value]
        return rows
    if empty_dtype is not None and isinstance(value, (list, tuple)) and _is_empty(value):
        return np.asarray(value, dtype=empty_dtype)
    return np.asarray(value)


def _is_empty(value: object) -> bool:
    return isinstance(value, (list, tuple)) and (len(value) == 0 or all(_is_empty(v) for v in value))


class BatchFeature(dict):
    """Model inputs by name (transformers' ``BatchFeature``): a dict with attribute access, ``to`` and
    ``convert_to_tensors``.

    Args:
        data: the named values.
        tensor_type: ``"pt"``, ``"np"`` or ``None`` (leave as they are), applied at once.
        skip_tensor_conversion: keys that :meth:`convert_to_tensors` leaves alone.
    """

    _empty_dtypes: tuple[torch.dtype | None, type | None] = (None, None)

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        tensor_type: object = None,
        skip_tensor_conversion: list[str] | set[str] | None = None,
    ) -> None:
        super().__init__(data or {})
        self.skip_tensor_conversion = skip_tensor_conversion
        self.convert_to_tensors(tensor_type)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("skip_tensor_conversion", "_encodings", "_n_sequences"):
            raise AttributeError(name)  # attributes of the object itself, read before they are set (unpickling)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no input named {name!r}; have {sorted(self)}") from None

    @property
    def data(self) -> BatchFeature:
        """The batch itself (transformers keeps its values in a ``.data`` dict)."""
        return self

    @data.setter
    def data(self, values: dict[str, Any]) -> None:
        self.clear()
        self.update(values)

    def convert_to_tensors(self, tensor_type: object = None, skip_tensor_conversion=None) -> BatchFeature:
        """Convert the values to torch tensors (``"pt"``) or numpy arrays (``"np"``) in place; ``None``: leave them."""
        tensor_type = check_tensor_type(tensor_type)
        if tensor_type is None:
            return self
        skip = skip_tensor_conversion if skip_tensor_conversion is not None else self.skip_tensor_conversion
        for key, value in list(self.items()):
            if (skip and key in skip) or not _array_like(value):
                continue
            if isinstance(value, torch.Tensor if tensor_type == "pt" else np.ndarray):
                continue
            try:
                if tensor_type == "pt":
                    self[key] = _as_torch(value, self._empty_dtypes[0])
                else:
                    self[key] = _as_numpy(value, self._empty_dtypes[1])
            except Exception as exc:  # torch and numpy raise several types on ragged input
                raise ValueError(
                    f"Unable to convert output {key!r} (type: {type(value).__name__}) to tensor: {exc}\n"
                    "You can try:\n  1. Use padding=True to ensure all outputs have the same shape\n"
                    "  2. Set return_tensors=None to return Python objects instead of tensors"
                ) from exc
        return self

    def to(self, *args: Any, **kwargs: Any) -> BatchFeature:
        """Move tensors to a device and/or cast floating ones to a dtype, as ``torch.Tensor.to`` takes them.

        ``to("cuda")``, ``to(torch.bfloat16)``, ``to("cuda", torch.bfloat16)``, ``to(device=..., dtype=...,
        non_blocking=True)``: floating tensors get every argument; other tensors (ids, masks) only the device.
        Returns this batch, modified in place.
        """
        device = kwargs.get("device")
        non_blocking = kwargs.get("non_blocking", False)
        if device is None and args:
            first = args[0]
            if isinstance(first, torch.dtype):
                pass
            elif isinstance(first, (str, int, torch.device)) and not isinstance(first, bool):
                device = first
            else:
                raise ValueError(f"Attempting to cast a BatchFeature to type {first}. This is not supported.")

        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value.to(*args, **kwargs)
            if isinstance(value, torch.Tensor) and device is not None:
                return value.to(device=device, non_blocking=non_blocking)
            if isinstance(value, (list, tuple)):
                return type(value)(move(item) for item in value)
            return value

        self.data = {key: move(value) for key, value in self.items()}
        return self


class BatchEncoding(BatchFeature):
    """The tokenizer's output (transformers' ``BatchEncoding``): a :class:`BatchFeature` that keeps the
    backend's ``tokenizers.Encoding`` of each item."""

    _empty_dtypes = (torch.int64, np.int64)

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        encoding: Any = None,
        tensor_type: object = None,
        prepend_batch_axis: bool = False,
        n_sequences: int | None = None,
    ) -> None:
        if encoding is not None and not isinstance(encoding, (list, tuple)):
            encoding = [encoding]
        self._encodings = None if encoding is None else list(encoding)
        if n_sequences is None and self._encodings:
            n_sequences = self._encodings[0].n_sequences
        self._n_sequences = n_sequences
        super().__init__(data)
        self.convert_to_tensors(tensor_type, prepend_batch_axis=prepend_batch_axis)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            return super().__getitem__(item)
        if self._encodings is not None:
            return self._encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        raise KeyError(
            "Invalid key. Only three types of key are available: "
            "(1) string, (2) integers for backend Encoding, and (3) slices for data subsetting."
        )

    def convert_to_tensors(self, tensor_type: object = None, prepend_batch_axis: bool = False) -> BatchEncoding:
        """As :meth:`BatchFeature.convert_to_tensors`; ``prepend_batch_axis`` wraps each value in a batch of one."""
        if prepend_batch_axis and check_tensor_type(tensor_type) is not None:
            self.data = {key: [value] for key, value in self.items()}
        return super().convert_to_tensors(tensor_type)

    def to(self, device: Any, *, non_blocking: bool = False) -> BatchEncoding:
        """Move every tensor to ``device`` (returns this batch). A dtype is ignored with a warning, as in
        transformers: token ids must stay integers."""
        if isinstance(device, (str, int, torch.device)) and not isinstance(device, bool):
            self.data = {
                key: value.to(device=device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value
                for key, value in self.items()
            }
        else:
            warnings.warn(f"Attempting to cast a BatchEncoding to type {device}. This is not supported.", stacklevel=2)
        return self

    @property
    def encodings(self) -> list[Any] | None:
        """The backend's ``tokenizers.Encoding`` of each item."""
        return self._encodings

    @property
    def n_sequences(self) -> int | None:
        """1 for single texts, 2 for pairs."""
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    def _encoding(self, batch_index: int, what: str) -> Any:
        if not self._encodings:
            raise ValueError(f"{what}() is not available when using Python based tokenizers")
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The tokens of item ``batch_index`` (padding included)."""
        return self._encoding(batch_index, "tokens").tokens

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of item ``batch_index``, the index of the word it comes from (``None``: special)."""
        return self._encoding(batch_index, "word_ids").word_ids

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of item ``batch_index``: 0 (first text), 1 (pair) or ``None`` (special)."""
        return self._encoding(batch_index, "sequence_ids").sequence_ids

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
