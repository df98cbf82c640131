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
