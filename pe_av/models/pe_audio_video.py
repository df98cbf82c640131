"""``PeAudioVideoModel``: text, audio, video and audio+video in one embedding space.

Sub-models share weights as in the reference: ``audio_model.text_model`` and
``video_model.text_model`` are ``text_model``; the fusion encoder's audio and video encoders are
``audio_model.audio_encoder`` and ``video_model.video_encoder``. Checkpoints store each shared tensor
once, under the reference's key.

Differences from transformers (each fixes a reference defect; numbers are otherwise identical):

- Every modality combination works: text+video (the reference raises AttributeError), and a single
  modality returns its embeddings instead of raising.
- ``return_loss`` is honoured on every path (the reference ignores it with text+audio or text+video),
  with the SigLIP loss (labels ``2·I − 1``, see :mod:`pe_av.models.loss`).
- All eight ``get_*_embeds`` helpers work and return exactly what ``forward`` returns; the "plus
  text" ones concatenate audio/video first, as ``forward`` does (the reference's helpers put text first
  and concatenate an output object).
- Audio+video without text returns the towers' outputs (``audio_outputs``, ``video_outputs``,
  ``audio_video_outputs``) when they carry hidden states or attentions that were asked for; the
  reference computes and drops them (otherwise the fields are the reference's).
- ``output_hidden_states`` / ``output_attentions`` reach the towers on the text+audio and text+video
  paths too (the reference does not pass them to its ``PeAudioModel`` / ``PeVideoModel`` there).

Call options as transformers resolves them (see :mod:`pe_av.models.outputs`): ``return_dict`` from
the call or this config. ``output_hidden_states`` / ``output_attentions`` go to the fusion encoder when
audio and video are given (None: ``audio_video_config``'s; its audio and video encoders consult their
own configs), else to the audio or video encoder as their ``PeAudioModel`` / ``PeVideoModel`` would;
the text tower always gets them, ``output_hidden_states`` defaulting to ``-1`` (its last hidden state).
"""

from __future__ import annotations

from dataclasses import fields

import torch
import torch.nn as nn

from ..config import PeAudioVideoConfig
from .base import PePreTrainedModel
from .fusion import PeAudioVideoEncoder
from .heads import ContrastiveHead, scaled_logits
from .inputs import check_mask_has_input, check_same_batch
from .loss import sigmoid_contrastive_loss
from .outputs import AudioVideoEmbeddings, ModelOutput, PeAudioVideoOutput, call_option, finish
from .pe_audio import PeAudioModel
from .pe_video import PeVideoModel
from .text import ModernBertModel


class PeAudioVideoModel(PePreTrainedModel):
    """PE-AV: contrastive text / audio / video / audio+video encoder (transformers' ``PeAudioVideoModel``).

    ``forward`` takes any non-empty subset of ``input_ids`` (text), ``input_values`` (audio) and
    ``pixel_values_videos`` (video) and returns every embedding, pair logit and (with
    ``return_loss=True``) loss that the given modalities define.
    """

    config_class = PeAudioVideoConfig
    main_input_name = "input_ids"  # as transformers' (the encoders' are input_values / pixel_values_videos)
    tied_prefixes = {
        "audio_model.text_model.": "text_model.",
        "video_model.text_model.": "text_model.",
        "audio_video_encoder.embedder.audio_encoder.": "audio_model.audio_encoder.",
        "audio_video_encoder.embedder.video_encoder.": "video_model.video_encoder.",
    }

    def __init__(self, config: PeAudioVideoConfig) -> None:
        super().__init__(config)
        text_dim = config.text_config.hidden_size
        av_config = config.audio_video_config
        self.text_model = ModernBertModel(config.text_config)
        self.audio_model = PeAudioModel(config.audio_config)
        self.video_model = PeVideoModel(config.video_config)
        self.audio_video_encoder = PeAudioVideoEncoder(av_config)
        # the reference's weight tying, as module sharing
        self.audio_model.text_model = self.text_model
        self.video_model.text_model = self.text_model
        self.audio_video_encoder.embedder.audio_encoder = self.audio_model.audio_encoder
        self.audio_video_encoder.embedder.video_encoder = self.video_model.video_encoder

        self.audio_video_head = ContrastiveHead(av_config.hidden_size, text_dim)
        self.text_audio_video_head = ContrastiveHead(text_dim, text_dim)
        self.audio_plus_text_head = ContrastiveHead(text_dim + av_config.audio_config.hidden_size, text_dim)
        self.video_plus_text_head = ContrastiveHead(text_dim + av_config.video_config.hidden_size, text_dim)
        for pair in ("audio_video", "text_audio_video", "audio_plus_text", "video_plus_text"):
            setattr(self, f"{pair}_logit_scale", nn.Parameter(torch.zeros(1)))
            setattr(self, f"{pair}_logit_bias", nn.Parameter(torch.zeros(1)))
        self._maybe_init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Reference-style random init; the text tower keeps its own scheme, logit scales/biases start at 0."""
        super().init_weights()
        self.text_model.init_weights()

    # ------------------------------------------------------------------ single-purpose helpers

    def get_text_audio_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text embeddings in the text-audio space (``forward``'s ``text_audio_embeds``)."""
        return self.audio_model.get_text_audio_embeds(input_ids, attention_mask)

    def get_text_video_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text embeddings in the text-video space (``forward``'s ``text_video_embeds``)."""
        return self.video_model.get_text_video_embeds(input_ids, attention_mask)

    def get_text_audio_video_embeds(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Text embeddings in the text-(audio+video) space (``forward``'s ``text_audio_video_embeds``)."""
        return self.text_audio_video_head(self.text_model.text_embedding(input_ids, attention_mask))

    # every helper taking audio or video also takes precomputed features, keyword-only: input_features= /
    # pe_features= instead of input_values / pixel_values_videos (see pe_av.models.features)

    def get_audio_embeds(
        self, input_values: torch.Tensor | None = None, padding_mask: torch.Tensor | None = None, *,
        input_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Audio embeddings (``forward``'s ``audio_embeds``)."""
        return self.audio_model.get_audio_embeds(input_values, padding_mask, input_features=input_features)

    def get_video_embeds(
        self, pixel_values_videos: torch.Tensor | None = None, padding_mask_videos: torch.Tensor | None = None, *,
        pe_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Video embeddings (``forward``'s ``video_embeds``)."""
        return self.video_model.get_video_embeds(pixel_values_videos, padding_mask_videos, pe_features=pe_features)

    def get_audio_video_embeds(
        self,
        input_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        padding_mask_videos: torch.Tensor | None = None,
        return_audio_embeds: bool = False,
        return_video_embeds: bool = False,
        *,
        input_features: torch.Tensor | None = None,
        pe_features: torch.Tensor | None = None,
    ) -> AudioVideoEmbeddings:
        """Joint audio-video embeddings, optionally with the audio and video embeddings of the same pass."""
        outputs = self.audio_video_encoder(
            input_values, pixel_values_videos, padding_mask, padding_mask_videos, input_features=input_features,
            pe_features=pe_features, return_dict=True,
        )
        return AudioVideoEmbeddings(
            audio_embeds=self.audio_model.audio_head(outputs.audio_model_output.pooler_output)
            if return_audio_embeds
            else None,
            video_embeds=self.video_model.video_head(outputs.video_model_output.pooler_output)
            if return_video_embeds
            else None,
            audio_video_embeds=self.audio_video_head(outputs.pooler_output),
        )

    def get_audio_plus_text_embeds(
        self,
        input_ids: torch.Tensor,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        *,
        input_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings of (audio, caption) pairs, scored against videos (``forward``'s ``audio_plus_text_embeds``)."""
        check_same_batch("get_audio_plus_text_embeds", input_ids=input_ids, input_values=input_values,
                         input_features=input_features)
        audio = self.audio_model.audio_encoder(input_values, padding_mask, input_features=input_features,
                                               return_dict=True).pooler_output
        text = self.text_model.text_embedding(input_ids, attention_mask)
        return self.audio_plus_text_head(torch.cat([audio, text], dim=-1))

    def get_video_plus_text_embeds(
        self,
        input_ids: torch.Tensor,
        pixel_values_videos: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        padding_mask_videos: torch.Tensor | None = None,
        *,
        pe_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings of (video, caption) pairs, scored against audio (``forward``'s ``video_plus_text_embeds``)."""
        check_same_batch("get_video_plus_text_embeds", input_ids=input_ids, pixel_values_videos=pixel_values_videos,
                         pe_features=pe_features)
        video = self.video_model.video_encoder(pixel_values_videos, padding_mask_videos, pe_features=pe_features,
                                               return_dict=True).pooler_output
        text = self.text_model.text_embedding(input_ids, attention_mask)
        return self.video_plus_text_head(torch.cat([video, text], dim=-1))

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        padding_mask_videos: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        return_loss: bool = False,
        *,
        output_hidden_states: bool | int | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> PeAudioVideoOutput | tuple:
        """Embed the given modalities and score every pair they define.

        Args:
            input_ids / attention_mask: ``(n_text, T)`` token ids and 1/0 mask.
            pixel_values_videos / padding_mask_videos: ``(n_video, F, 3, H, W)`` frames and ``(n_video, F)`` mask.
            input_values / padding_mask: ``(n_audio, 1, L)`` 48 kHz waveforms and ``(n_audio, L)`` mask.
            return_loss: compute the sigmoid contrastive loss of every pair (needs two modalities and
                equal batch sizes: item ``i`` of each is one sample).
            output_hidden_states / output_attentions: the towers' hidden states / attention
                probabilities (see the module docstring for which tower gets them).
            return_dict: False returns ``output.to_tuple()``; None: ``config.return_dict``.

        Two or more modalities are paired samples and need one batch size (a ``ValueError`` otherwise):
        audio with video is fused clip by clip, and text with audio or video also gives the "plus text"
        embeddings of each (clip, caption) pair, as in the reference. For retrieval between batches of
        different sizes use the ``get_*_embeds`` helpers. A mask without its input is a ``ValueError``.
        """
        check_mask_has_input(attention_mask, "attention_mask", input_ids, "input_ids")
        check_mask_has_input(padding_mask, "padding_mask", input_values, "input_values")
        check_mask_has_input(padding_mask_videos, "padding_mask_videos", pixel_values_videos, "pixel_values_videos")
        has_text, has_audio, has_video = (x is not None for x in (input_ids, input_values, pixel_values_videos))
        given = has_text + has_audio + has_video
        if given == 0:
            raise ValueError("give at least one of input_ids, input_values or pixel_values_videos")
        if return_loss and given < 2:
            raise ValueError("return_loss=True needs two or more modalities to form contrastive pairs")
        check_same_batch(
            "return_loss=True" if return_loss else "forward with several modalities (item i of each is one sample)",
            input_ids=input_ids, input_values=input_values, pixel_values_videos=pixel_values_videos,
        )

        out = PeAudioVideoOutput()
        records = dict(output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True)
        audio_outputs = video_outputs = None
        # the towers run in transformers' order (audio/video, then text): dropout draws the same numbers
        if has_audio and has_video:
            fused = self.audio_video_encoder(input_values, pixel_values_videos, padding_mask, padding_mask_videos, **records)
            audio_outputs, video_outputs = fused.audio_model_output, fused.video_model_output
            if has_text or any(_records(o) for o in (fused, audio_outputs, video_outputs)):
                out.audio_video_outputs, out.audio_outputs, out.video_outputs = fused, audio_outputs, video_outputs
            out.audio_video_embeds = self.audio_video_head(fused.pooler_output)
        else:
            if has_audio:
                audio_outputs = self.audio_model.audio_encoder(input_values, padding_mask, **records)
            if has_video:
                video_outputs = self.video_model.video_encoder(pixel_values_videos, padding_mask_videos, **records)
            out.audio_outputs, out.video_outputs = audio_outputs, video_outputs
        if audio_outputs is not None:
            out.audio_embeds = self.audio_model.audio_head(audio_outputs.pooler_output)
        if video_outputs is not None:
            out.video_embeds = self.video_model.video_head(video_outputs.pooler_output)
        if has_text:
            text_options = dict(records, output_hidden_states=output_hidden_states or -1)
            out.text_outputs = self.text_model(input_ids, attention_mask, **text_options)
            self._text_side(out, out.text_outputs.pooler_output, given == 1, audio_outputs, video_outputs)
        self._pair_logits(out)
        if return_loss:
            self._losses(out)
        # rebuilt so that its keys are in declaration order, as transformers builds it (set fields were appended)
        out = PeAudioVideoOutput(**{field.name: getattr(out, field.name) for field in fields(out)})
        return finish(out, call_option(return_dict, self.config, "return_dict"))

    def _text_side(self, out: PeAudioVideoOutput, text_embeds: torch.Tensor, text_only: bool, audio, video) -> None:
        """Text embeddings for each space the other given modalities live in (all of them for text alone),
        and the "plus text" embeddings with the ``audio`` / ``video`` encoder outputs (None if not given)."""
        if out.audio_embeds is not None or text_only:
            out.text_audio_embeds = self.audio_model.text_audio_head(text_embeds)
        if out.video_embeds is not None or text_only:
            out.text_video_embeds = self.video_model.text_video_head(text_embeds)
        if out.audio_video_embeds is not None or text_only:
            out.text_audio_video_embeds = self.text_audio_video_head(text_embeds)
        if audio is not None:
            pooled = audio.pooler_output
            out.audio_plus_text_embeds = self.audio_plus_text_head(torch.cat([pooled, text_embeds], dim=-1))
        if video is not None:
            pooled = video.pooler_output
            out.video_plus_text_embeds = self.video_plus_text_head(torch.cat([pooled, text_embeds], dim=-1))

    def _pair_logits(self, out: PeAudioVideoOutput) -> None:
        audio_model, video_model = self.audio_model, self.video_model
        if out.audio_embeds is not None and out.text_audio_embeds is not None:
            out.logits_audio_text = scaled_logits(
                out.audio_embeds, out.text_audio_embeds, audio_model.text_audio_logit_scale, audio_model.text_audio_logit_bias
            )
        if out.video_embeds is not None and out.text_video_embeds is not None:
            out.logits_video_text = scaled_logits(
                out.video_embeds, out.text_video_embeds, video_model.text_video_logit_scale, video_model.text_video_logit_bias
            )
        if out.audio_embeds is not None and out.video_embeds is not None:
            out.logits_audio_video = scaled_logits(
                out.audio_embeds, out.video_embeds, self.audio_video_logit_scale, self.audio_video_logit_bias
            )
        if out.audio_video_embeds is not None and out.text_audio_video_embeds is not None:
            out.logits_audio_video_text = scaled_logits(
                out.audio_video_embeds, out.text_audio_video_embeds,
                self.text_audio_video_logit_scale, self.text_audio_video_logit_bias,
            )
        if out.audio_plus_text_embeds is not None and out.video_embeds is not None:
            out.logits_audio_plus_text_video = scaled_logits(
                out.audio_plus_text_embeds, out.video_embeds, self.audio_plus_text_logit_scale, self.audio_plus_text_logit_bias
            )
        if out.video_plus_text_embeds is not None and out.audio_embeds is not None:
            out.logits_video_plus_text_audio = scaled_logits(
                out.video_plus_text_embeds, out.audio_embeds, self.video_plus_text_logit_scale, self.video_plus_text_logit_bias
            )

    @staticmethod
    def _losses(out: PeAudioVideoOutput) -> None:
        pairs = {
            "audio_text_loss": out.logits_audio_text,
            "video_text_loss": out.logits_video_text,
            "audio_video_loss": out.logits_audio_video,
            "audio_video_text_loss": out.logits_audio_video_text,
            "audio_plus_text_video_loss": out.logits_audio_plus_text_video,
            "video_plus_text_audio_loss": out.logits_video_plus_text_audio,
        }
        total = None
        for name, logits in pairs.items():
            if logits is not None:
                loss = sigmoid_contrastive_loss(logits)
                setattr(out, name, loss)
                total = loss if total is None else total + loss
        out.loss = total


def _records(output: ModelOutput) -> bool:
    """Whether ``output`` carries hidden states or attentions."""
    return output.hidden_states is not None or output.attentions is not None
