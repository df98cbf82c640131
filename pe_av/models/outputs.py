"""Output dataclasses, with transformers' field names. Absent fields are ``None``.

Also the call options transformers' forwards take, resolved as transformers 5 resolves them
(:func:`call_option`, :class:`Recorder`, :func:`finish`):

- ``return_dict``, ``output_hidden_states``, ``output_attentions``: the call's value, or when it is
  None the model's own config (``config.<name>``, else ``config.extra[<name>]``), else ``True`` /
  ``False`` / ``False``. Each model consults its own config: sub-encoders called by an encoder (the
  fusion encoder's audio and video encoders) get no options from the call, so their configs decide.
- ``output_hidden_states``: True for all, an int or a list of ints for those indices (negative ones
  count from the end; the others are None), as transformers' capture does. The last entry, when
  recorded, is the final ``last_hidden_state``. ``hidden_states`` then ``attentions`` are set after
  the output's other fields, so their keys (and tuple positions) come last, as transformers adds them.
- ``return_dict=False`` returns ``output.to_tuple()``.
- One deliberate difference: an explicit ``None`` means "use the config" here; transformers' encoders
  read an explicitly passed ``output_hidden_states=None`` as False.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.utils._pytree as pytree


class ModelOutput(OrderedDict):
    """A dataclass that is also an ordered dict of its set (non-None) fields, as transformers' ``ModelOutput``.

    ``out.name`` reads any field; ``out["name"]``, ``"name" in out``, iteration, ``len``, ``keys`` /
    ``values`` / ``items`` see only the fields that are set, in the order they were set (declaration
    order for the constructor's), as transformers' do; ``out[0]`` and ``out[:2]`` index :meth:`to_tuple`. Setting a field (``out.loss = x`` or ``out["loss"] = x``) keeps
    both views in step. Removing keys (``del``, ``pop``, ``update``, ``setdefault``) is refused, as in
    transformers. ``_tuple_nested`` names fields whose outputs :meth:`to_tuple` turns into tuples too
    (transformers does so for some classes and not others; we follow it class by class).
    """

    _tuple_nested: ClassVar[tuple[str, ...]] = ()
    #: pe_av additions transformers' class lacks: attributes only, never keys (dict and tuple views stay transformers')
    _attribute_only: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register_pytree(cls)

    def __post_init__(self) -> None:
        for field in fields(self):
            value = self.__dict__.get(field.name)
            if value is not None and field.name not in self._attribute_only:
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
        if name in self.__dataclass_fields__ and value is not None and name not in self._attribute_only:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"a {type(self).__name__} cannot drop or merge keys; build a new output instead")

    __delitem__ = pop = popitem = update = setdefault = _refuse

    def __reduce__(self):
        # pickle/copy by setting the fields again in key order, so both views (and the order) are rebuilt
        return _rebuild, (type(self), _fields_in_order(self))

    def to_tuple(self) -> tuple[Any, ...]:
        """The set fields' values in order (nested outputs named by ``_tuple_nested`` as tuples too)."""
        return tuple(
            value.to_tuple() if key in self._tuple_nested and isinstance(value, ModelOutput) else value
            for key, value in self.items()
        )


def _fields_in_order(output: ModelOutput) -> list[tuple[str, Any]]:
    """The set keys in order, then the set attribute-only fields."""
    extra = [(name, getattr(output, name)) for name in output._attribute_only if getattr(output, name) is not None]
    return list(output.items()) + extra


def _rebuild(cls: type[ModelOutput], pairs: Any) -> ModelOutput:
    """An output of ``cls`` with ``pairs`` set in order (keys keep that order, as transformers' do)."""
    output = cls()
    for name, value in pairs:
        setattr(output, name, value)
    return output


def _register_pytree(cls: type[ModelOutput]) -> None:
    """Make an output class a pytree node (``torch.export``, DDP's static graph, ``torch.compile``)."""

    def flatten(output: ModelOutput) -> tuple[list[Any], list[str]]:
        pairs = _fields_in_order(output)
        return [v for _, v in pairs], [k for k, _ in pairs]

    def unflatten(values: Any, keys: Any) -> ModelOutput:
        return _rebuild(cls, zip(keys, values))

    def flatten_with_keys(output: ModelOutput):
        pairs = _fields_in_order(output)
        return [(pytree.MappingKey(k), v) for k, v in pairs], [k for k, _ in pairs]

    try:
        pytree.register_pytree_node(
            cls, flatten, unflatten, serialized_type_name=f"{cls.__module__}.{cls.__name__}",
            flatten_with_keys_fn=flatten_with_keys,
        )
    except ValueError:  # already registered (a module reloaded in the same process)
        pass


@dataclass
class BaseModelOutput(ModelOutput):
    """Output of :class:`~pe_av.models.text.ModernBertModel` (transformers' ``BaseModelOutput``).

    ``pooler_output`` (the text embedding) is a pe_av addition: an attribute, not a key, so the dict
    and tuple views are transformers'.
    """

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor | None, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    pooler_output: torch.Tensor | None = None

    _attribute_only: ClassVar[tuple[str, ...]] = ("pooler_output",)


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor | None, ...] | None = None
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
    text_outputs: BaseModelOutput | None = None
    audio_outputs: PeAudioEncoderOutput | None = None

    _tuple_nested: ClassVar[tuple[str, ...]] = ("text_outputs", "audio_outputs")


@dataclass
class ImageClassifierOutput(ModelOutput):
    """Output of :class:`PeVisionModel`: ``logits`` ``(N, num_classes)`` of the ViT's classifier head and,
    if asked, ``hidden_states``: a list of block outputs ``(N, C, H, W)`` (patch tokens), as timm's
    ``forward_intermediates`` gives them to transformers."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: list[torch.Tensor] | None = None
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
    text_outputs: BaseModelOutput | None = None
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

    text_outputs: BaseModelOutput | None = None
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


# --------------------------------------------------------------------------------------------------
# Call options (see the module docstring)

_OPTION_DEFAULTS = {"return_dict": True, "output_hidden_states": False, "output_attentions": False}


def call_option(value: Any, config: Any, name: str) -> Any:
    """``value``, or when None the config's ``name`` (a field or an ``extra`` key), else the default."""
    if value is not None:
        return value
    configured = getattr(config, name, None)
    if configured is None:
        configured = (getattr(config, "extra", None) or {}).get(name)
    return _OPTION_DEFAULTS[name] if configured is None else configured


def finish(output: ModelOutput, return_dict: bool) -> ModelOutput | tuple[Any, ...]:
    """``output``, or ``output.to_tuple()`` when ``return_dict`` is False."""
    return output if return_dict else output.to_tuple()


def ties_last_hidden_state(config: Any) -> bool:
    """``config.tie_last_hidden_states`` as transformers reads it (unset: true)."""
    value = getattr(config, "tie_last_hidden_states", None)
    return True if value is None else bool(value)


class Recorder:
    """Collects the hidden states and attention probabilities one forward was asked for.

    ``output_hidden_states``: falsy for none, True for all ``num_states`` (input of the first layer,
    then each layer's output), an int or a list of ints for those indices only (the others are
    recorded as None, and never kept). ``output_attentions``: record each layer's probabilities.
    """

    def __init__(
        self, output_hidden_states: Any, output_attentions: Any, num_states: int, tie_last: bool = True
    ) -> None:
        #: whether the last recorded state becomes the final (normed) output, as transformers'
        #: ``config.tie_last_hidden_states`` (default true) decides; false keeps the last layer's own output
        self.tie_last = tie_last
        self.selected: set[int] | None = None
        if output_hidden_states and not isinstance(output_hidden_states, bool):
            chosen = [output_hidden_states] if isinstance(output_hidden_states, int) else list(output_hidden_states)
            self.selected = {i % num_states for i in chosen if -num_states <= i < num_states}
        self.states: list[torch.Tensor | None] | None = [] if output_hidden_states else None
        self.attentions: list[torch.Tensor] | None = [] if output_attentions else None

    def wants_state(self) -> bool:
        """Whether the next hidden state is recorded (compute it only then)."""
        return self.states is not None and (self.selected is None or len(self.states) in self.selected)

    def add_state(self, state: torch.Tensor | None) -> None:
        """Record the next hidden state (pass None when :meth:`wants_state` is False)."""
        if self.states is not None:
            self.states.append(state if self.wants_state() else None)

    def hidden_states(self, last: torch.Tensor) -> tuple[torch.Tensor | None, ...] | None:
        """The recorded states, the last one (when recorded and tied) replaced by the final ``last``."""
        if self.states is None:
            return None
        states = list(self.states)
        if self.tie_last and states and states[-1] is not None:
            states[-1] = last
        return tuple(states)

    def attach(self, output: ModelOutput, last: torch.Tensor) -> ModelOutput:
        """Set ``hidden_states`` (last one: ``last``) then ``attentions`` on ``output`` when recorded. Set
        after the other fields, their keys come last, as transformers' capture adds them."""
        hidden_states = self.hidden_states(last)
        if hidden_states is not None:
            output.hidden_states = hidden_states
        if self.attentions is not None:
            output.attentions = tuple(self.attentions)
        return output
