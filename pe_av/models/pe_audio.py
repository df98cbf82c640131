"""``PeAudioModel`` and ``PeAudioFrameLevelModel``: text tower + audio encoder + contrastive heads.

Differences from transformers (each documented where it lives):

- Loss: SigLIP with labels ``2·I − 1`` (see :mod:`pe_av.models.loss`). The reference multiplies the
  logits by the identity, so off-diagonal pairs add a constant ``log 2`` and get zero gradient.
- ``get_text_audio_embeds`` works (the reference reads ``hidden_states`` it never asked for) and
  both ``get_*_embeds`` return exactly the embeddings ``forward`` returns.
- The frame-level loss is defined (the reference fails to broadcast): see
  :func:`pe_av.models.loss.frame_level_sigmoid_loss`.
- The text embedding follows ``text_config.text_embedding_layer`` (see :mod:`pe_av.models.text`).

Call options as transformers resolves them (see :mod:`pe_av.models.outputs`): ``return_dict`` from the
call or this config; ``output_hidden_states`` / ``output_attentions`` go to both towers, and when not
given the audio encoder consults ``audio_config`` while the text tower is asked for its last hidden
state only (``output_hidden_states=-1``: ``text_outputs.hidden_states`` holds Nones and the last state).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import PeAudioConfig
from .audio import PeAudioEncoder
from .base import PePreTrainedModel
from .heads import ContrastiveHead, scaled_logits
from .loss import frame_level_sigmoid_loss, sigmoid_contrastive_loss
from .outputs import PeAudioOutput, finish, call_option
from .text import ModernBertModel

__all__ = ["PeAudioModel", "PeAudioFrameLevelModel"]


class PeAudioModel(PePreTrainedModel):
    """Audio-text contrastive model (clip level): ModernBERT text tower + :class:`PeAudioEncoder`.

    ``logits_audio_text[i, j] = audio_embeds[i] · text_audio_embeds[j] · scale + bias``. The audio and
    text batches may differ in size (retrieval), except with ``return_loss=True``.
    """

    config_class = PeAudioConfig
    main_input_name = "input_ids"  # as transformers' (the encoder's is input_values)

    def __init__(self, config: PeAudioConfig) -> None:
        super().__init__(config)
        text_dim = config.text_config.hidden_size
        self.text_model = ModernBertModel(config.text_config)
        self.audio_encoder = PeAudioEncoder(config.audio_config)
        self.text_audio_head = ContrastiveHead(text_dim, text_dim)
        self.audio_head = ContrastiveHead(config.audio_config.hidden_size, text_dim)
        self.text_audio_logit_scale = nn.Parameter(torch.zeros(1))
        self.text_audio_logit_bias = nn.Parameter(torch.zeros(1))
        self._maybe_init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Reference-style random init: each tower its own scheme, heads N(0, text initializer_range)
        with unit LayerNorms, logit scale/bias at 0."""
        # the towers are initialised separately: the generic init does not know bias-free LayerNorms
        self.text_model.init_weights()
        self.audio_encoder.init_weights()
        std = self.config.text_config.initializer_range
        for head in (self.text_audio_head, self.audio_head):
            nn.init.normal_(head.proj.weight, std=std)
            nn.init.ones_(head.layer_norm.weight)
            nn.init.zeros_(head.layer_norm.bias)
        nn.init.zeros_(self.text_audio_logit_scale)
        nn.init.zeros_(self.text_audio_logit_bias)

    def get_text_audio_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(n_text, D)`` text embeddings in the audio-text space (as ``forward``'s ``text_audio_embeds``)."""
        return self.text_audio_head(self.text_model.text_embedding(input_ids, attention_mask))

    def get_audio_embeds(
        self, input_values: torch.Tensor | None = None, padding_mask: torch.Tensor | None = None, *,
        input_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(n_audio, D)`` audio embeddings in the audio-text space (as ``forward``'s ``audio_embeds``); from
        precomputed codec features with ``input_features=`` (see :mod:`pe_av.models.features`)."""
        outputs = self.audio_encoder(input_values, padding_mask, input_features=input_features, return_dict=True)
        return self._audio_embeds(outputs)

    def _audio_embeds(self, audio_outputs) -> torch.Tensor:
        return self.audio_head(audio_outputs.pooler_output)

    def _loss(self, logits: torch.Tensor, audio_outputs) -> torch.Tensor:
        return sigmoid_contrastive_loss(logits)

    def forward(
        self,
        input_ids: torch.Tensor,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        return_loss: bool = False,
        *,
        output_hidden_states: bool | int | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> PeAudioOutput | tuple:
        """Embed captions and audio clips and score every (clip, caption) pair.

        Args:
            input_ids: ``(n_text, T)`` token ids; ``attention_mask``: ``(n_text, T)``, 1 = real token.
            input_values: ``(n_audio, 1, L)`` 48 kHz waveforms; ``padding_mask``: ``(n_audio, L)``, 1 = real sample.
            return_loss: also compute the sigmoid contrastive loss (needs ``n_audio == n_text``, pair
                ``i`` matching).
            output_hidden_states / output_attentions: passed to both towers (see the module docstring).
            return_dict: False returns ``output.to_tuple()`` (the towers' outputs as tuples too);
                None: ``config.return_dict``.
        """
        if return_loss and isinstance(input_ids, torch.Tensor) and isinstance(input_values, torch.Tensor):
            if input_ids.shape[0] != input_values.shape[0]:
                raise ValueError(
                    f"return_loss=True needs one caption per clip: input_ids has batch {input_ids.shape[0]} "
                    f"but input_values has batch {input_values.shape[0]}"
                )
        options = dict(output_attentions=output_attentions, return_dict=True)
        audio_outputs = self.audio_encoder(input_values, padding_mask, output_hidden_states=output_hidden_states, **options)
        text_outputs = self.text_model(input_ids, attention_mask, output_hidden_states=output_hidden_states or -1, **options)
        audio_embeds = self._audio_embeds(audio_outputs)
        text_audio_embeds = self.text_audio_head(text_outputs.pooler_output)
        logits = scaled_logits(audio_embeds, text_audio_embeds, self.text_audio_logit_scale, self.text_audio_logit_bias)
        output = PeAudioOutput(
            loss=self._loss(logits, audio_outputs) if return_loss else None,
            logits_audio_text=logits,
            text_audio_embeds=text_audio_embeds,
            audio_embeds=audio_embeds,
            text_outputs=text_outputs,
            audio_outputs=audio_outputs,
        )
        return finish(output, call_option(return_dict, self.config, "return_dict"))


class PeAudioFrameLevelModel(PeAudioModel):
    """Frame-level audio-text model (PE-A-Frame): one audio embedding per audio token (25 per second).

    ``audio_embeds`` is ``(n_audio, frames, D)`` and ``logits_audio_text`` ``(n_audio, n_text, frames)``.
    Padded frames (``audio_outputs.output_mask`` is 0) get values too; ignore them. The loss is
    :func:`frame_level_sigmoid_loss` over valid frames.
    """

    def get_audio_embeds(
        self, input_values: torch.Tensor | None = None, padding_mask: torch.Tensor | None = None, *,
        input_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(n_audio, frames, D)`` per-frame audio embeddings (as ``forward``'s ``audio_embeds``)."""
        return super().get_audio_embeds(input_values, padding_mask, input_features=input_features)

    def _audio_embeds(self, audio_outputs) -> torch.Tensor:
        return self.audio_head(audio_outputs.last_hidden_state)

    def _loss(self, logits: torch.Tensor, audio_outputs) -> torch.Tensor:
        mask = audio_outputs.output_mask
        return frame_level_sigmoid_loss(logits, None if mask is None else mask.bool())
