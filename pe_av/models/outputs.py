"""Output dataclasses, with transformers' field names. Absent fields are ``None``."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.utils._pytree as pytree


class ModelOutput(OrderedDict):
    """A dataclass that is also an ordered dict of its set (non-None) fields, as transformers' ``ModelOutput``.

    ``out.name`` reads any field; ``out["name"]``, ``"name" in out``, iteration, ``len``, ``keys`` /
    ``values`` / ``items`` see only the fields that are set, in declaration order; ``out[0]`` and
    ``out[:2]`` index :meth:`to_tuple`. Setting a field (``out.loss = x`` or ``out["loss"] = x``) keeps
    both views in step. Removing keys (``del``, ``pop``, ``update``, ``setdefault``) is refused, as in
    transformers. ``_tuple_nested`` names fields whose outputs :meth:`to_tuple` turns into tuples too
    (transformers does so for some classes and not others; we follow it class by class).
    """

    _tuple_nested: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register_pytree(cls)

    def __post_init__(self) -> None:
        for field in fields(self):
            value = self.__dict__.get(field.name)
            if value is not None:
                super().__setitem__(field.name, value)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self:
                raise KeyError(f"{type(self).__name__} has no field {key!r} set; set fields: {list(self.keys())}")
            return super().__getitem__(key)
        if isinstance(key, (int, slice)) and not isinstance(key, bool):
            return self.to_tuple()[key]
        raise TypeError(f"index {type(self).__name__} by field name, int or slice, got {type(key).__name__}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dataclass_fields__ and value is not None:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"a {type(self).__name__} cannot drop or merge keys; build a new output instead")

    __delitem__ = pop = popitem = update = setdefault = _refuse

    def __reduce__(self):
        # pickle/copy through the dataclass constructor, so both views are rebuilt
        return type(self), tuple(getattr(self, field.name) for field in fields(self))

    def to_tuple(self) -> tuple[Any, ...]:
        """The set fields' values in order (nested outputs named by ``_tuple_nested`` as tuples too)."""
        return tuple(
            value.to_tuple() if key in self._tuple_nested and isinstance(value, ModelOutput) else value
            for key, value in self.items()
        )


def _register_pytree(cls: type[ModelOutput]) -> None:
    """Make an output class a pytree node (``torch.export``, DDP's static graph, ``torch.compile``)."""

    def flatten(output: ModelOutput) -> tuple[list[Any], list[str]]:
        return list(output.values()), list(output.keys())

    def unflatten(values: Any, keys: Any) -> ModelOutput:
        return cls(**dict(zip(keys, values)))

    def flatten_with_keys(output: ModelOutput):
        return [(pytree.MappingKey(k), v) for k, v in output.items()], list(output.keys())

    try:
        pytree.register_pytree_node(
            cls, flatten, unflatten, serialized_type_name=f"{cls.__module__}.{cls.__name__}",
            flatten_with_keys_fn=flatten_with_keys,
        )
    except ValueError:  # already registered (a module reloaded in the same process)
        pass


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


@dataclass
class PeAudioOutput(ModelOutput):
    """Output of :class:`PeAudioModel` and :class:`PeAudioFrameLevelModel` (transformers' field names).

    ``loss``: sigmoid contrastive loss (only with ``return_loss=True``); ``logits_audio_text``:
    ``(n_audio, n_text)``, or ``(n_audio, n_text, frames)`` for the frame-level model;
    ``text_audio_embeds``: ``(n_text, D)``; ``audio_embeds``: ``(n_audio, D)``, or
    ``(n_audio, frames, D)`` for the frame-level model; ``text_outputs`` / ``audio_outputs``: the
    towers' outputs.
    """

    loss: torch.Tensor | None = None
    logits_audio_text: torch.Tensor | None = None
    text_audio_embeds: torch.Tensor | None = None
    audio_embeds: torch.Tensor | None = None
    text_outputs: BaseModelOutputWithPooling | None = None
    audio_outputs: PeAudioEncoderOutput | None = None

    _tuple_nested: ClassVar[tuple[str, ...]] = ("text_outputs", "audio_outputs")


@dataclass
class ImageClassifierOutput(ModelOutput):
    """Output of :class:`PeVisionModel`: ``logits`` ``(N, num_classes)`` of the ViT's classifier head."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class PeVideoOutput(ModelOutput):
    """Output of :class:`PeVideoModel` (transformers' field names).

    ``loss``: sigmoid contrastive loss (only with ``return_loss=True``); ``logits_video_text``:
    ``(n_video, n_text)``; ``text_video_embeds``: ``(n_text, D)``; ``video_embeds``: ``(n_video, D)``;
    ``text_outputs`` / ``video_outputs``: the towers' outputs.
    """

    loss: torch.Tensor | None = None
    logits_video_text: torch.Tensor | None = None
    text_video_embeds: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None
    text_outputs: BaseModelOutputWithPooling | None = None
    video_outputs: BaseModelOutputWithPooling | None = None

    _tuple_nested: ClassVar[tuple[str, ...]] = ("text_outputs", "video_outputs")


@dataclass
class PeAudioVideoEncoderOutput(BaseModelOutputWithPooling):
    """Output of :class:`PeAudioVideoEncoder`: the fused sequence and pooled vector, plus the audio and
    video encoders' own outputs (``audio_model_output`` / ``video_model_output``)."""

    audio_model_output: PeAudioEncoderOutput | None = None
    video_model_output: BaseModelOutputWithPooling | None = None


@dataclass
class AudioVideoEmbeddings(ModelOutput):
    """Return value of :meth:`PeAudioVideoModel.get_audio_video_embeds`."""

    audio_embeds: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None
    audio_video_embeds: torch.Tensor | None = None


@dataclass
class PeAudioVideoOutput(ModelOutput):
    """Output of :class:`PeAudioVideoModel` (transformers' field names).

    Embeddings are ``(batch, D)`` in their pair's shared space; ``logits_x_y`` are ``(n_x, n_y)``
    pair scores (``x @ y.T · scale + bias``); ``*_loss`` are sigmoid contrastive losses (with
    ``return_loss=True``), and ``loss`` is their sum. Which fields are set depends on the modalities
    given; the rest are None.
    """

    audio_embeds: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None
    audio_video_embeds: torch.Tensor | None = None
    text_audio_embeds: torch.Tensor | None = None
    text_video_embeds: torch.Tensor | None = None
    text_audio_video_embeds: torch.Tensor | None = None
    audio_plus_text_embeds: torch.Tensor | None = None
    video_plus_text_embeds: torch.Tensor | None = None

    text_outputs: BaseModelOutputWithPooling | None = None
    audio_outputs: PeAudioEncoderOutput | None = None
    video_outputs: BaseModelOutputWithPooling | None = None
    audio_video_outputs: PeAudioVideoEncoderOutput | None = None

    logits_audio_text: torch.Tensor | None = None
    logits_video_text: torch.Tensor | None = None
    logits_audio_video: torch.Tensor | None = None
    logits_audio_video_text: torch.Tensor | None = None
    logits_audio_plus_text_video: torch.Tensor | None = None
    logits_video_plus_text_audio: torch.Tensor | None = None

    audio_text_loss: torch.Tensor | None = None
    video_text_loss: torch.Tensor | None = None
    audio_video_loss: torch.Tensor | None = None
    audio_video_text_loss: torch.Tensor | None = None
    audio_plus_text_video_loss: torch.Tensor | None = None
    video_plus_text_audio_loss: torch.Tensor | None = None
    loss: torch.Tensor | None = None
