"""Output dataclasses, with transformers' field names. Absent fields are ``None``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch


@dataclass
class ModelOutput:
    """Dataclass with attribute access, ``out["name"]`` access and ``to_tuple()`` (non-None fields)."""

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str):
            raise TypeError(f"index {type(self).__name__} by field name, got {type(key).__name__}")
        if key not in self.keys():
            raise KeyError(f"{type(self).__name__} has no field {key!r} (or it is None); fields: {self.keys()}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        """Names of the fields that are not None, in declaration order."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.keys())


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class PeAudioEncoderOutput(BaseModelOutputWithPooling):
    """Output of :class:`PeAudioEncoder`.

    ``last_hidden_state``: ``(B, T, C)`` (class token removed); ``pooler_output``: ``(B, C)`` (class
    token); ``output_mask``: ``(B, T)`` validity of each audio token (None without a padding mask);
    ``codec_features`` stays None, as in transformers.
    """

    codec_features: torch.Tensor | None = None
    output_mask: torch.Tensor | None = None
