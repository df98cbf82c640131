"""``PeVideoModel``: text tower + video encoder + contrastive heads (video-text).

Differences from transformers (each documented where it lives):

- Loss: SigLIP with labels ``2·I − 1`` (see :mod:`pe_av.models.loss`). The reference's ``I · logits``
  gives off-diagonal pairs no gradient.
- ``get_video_embeds`` / ``get_text_video_embeds`` exist and return what ``forward`` returns (the
  reference defines its helpers inside ``__init__``, so they do not).
- The encoder's own differences (chunked ViT, padded frames) are listed in :mod:`pe_av.models.video`.

Call options as in :mod:`pe_av.models.pe_audio`: ``return_dict`` from the call or this config;
``output_hidden_states`` / ``output_attentions`` go to both towers, and when not given the video
encoder consults ``video_config`` while the text tower is asked for its last hidden state only.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import PeVideoConfig
from .base import PePreTrainedModel
from .heads import ContrastiveHead, scaled_logits
from .loss import sigmoid_contrastive_loss
from .outputs import PeVideoOutput, call_option, finish
from .text import ModernBertModel
from .video import PeVideoEncoder

__all__ = ["PeVideoModel"]


class PeVideoModel(PePreTrainedModel):
    """Video-text contrastive model: ModernBERT text tower + :class:`PeVideoEncoder`.

    ``logits_video_text[i, j] = video_embeds[i] · text_video_embeds[j] · scale + bias``. The video and
    text batches may differ in size (retrieval), except with ``return_loss=True``.
    """

    config_class = PeVideoConfig
    main_input_name = "input_ids"  # as transformers' (the encoder's is pixel_values_videos)

    def __init__(self, config: PeVideoConfig) -> None:
        super().__init__(config)
        text_dim = config.text_config.hidden_size
        self.text_model = ModernBertModel(config.text_config)
        self.video_encoder = PeVideoEncoder(config.video_config)
        self.text_video_head = ContrastiveHead(text_dim, text_dim)
        self.video_head = ContrastiveHead(config.video_config.hidden_size, text_dim)
        self.text_video_logit_scale = nn.Parameter(torch.zeros(1))
        self.text_video_logit_bias = nn.Parameter(torch.zeros(1))
        self._maybe_init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Reference-style random init; the text tower keeps its own scheme, logit scale/bias start at 0."""
        super().init_weights()
        self.text_model.init_weights()
        nn.init.zeros_(self.text_video_logit_scale)
        nn.init.zeros_(self.text_video_logit_bias)

    def get_text_video_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(n_text, D)`` text embeddings in the video-text space (as ``forward``'s ``text_video_embeds``)."""
        return self.text_video_head(self.text_model.text_embedding(input_ids, attention_mask))

    #: the name ``PeAudioVideoModel`` calls on its video sub-model
    get_text_embeds = get_text_video_embeds

    def get_video_embeds(
        self, pixel_values_videos: torch.Tensor | None = None, padding_mask_videos: torch.Tensor | None = None, *,
        pe_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(n_video, D)`` video embeddings in the video-text space (as ``forward``'s ``video_embeds``); from
        precomputed per-frame features with ``pe_features=`` (see :mod:`pe_av.models.features`)."""
        outputs = self.video_encoder(pixel_values_videos, padding_mask_videos, pe_features=pe_features, return_dict=True)
        return self.video_head(outputs.pooler_output)

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values_videos: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        padding_mask_videos: torch.Tensor | None = None,
        return_loss: bool = False,
        *,
        output_hidden_states: bool | int | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> PeVideoOutput | tuple:
        """Embed captions and videos and score every (video, caption) pair.

        Args:
            input_ids: ``(n_text, T)`` token ids; ``attention_mask``: ``(n_text, T)``, 1 = real token.
            pixel_values_videos: ``(n_video, F, 3, H, W)`` frames; ``padding_mask_videos``: ``(n_video, F)``,
                1 = real frame.
            return_loss: also compute the sigmoid contrastive loss (needs ``n_video == n_text``, pair
                ``i`` matching).
            output_hidden_states / output_attentions: passed to both towers (see the module docstring).
            return_dict: False returns ``output.to_tuple()`` (the towers' outputs as tuples too);
                None: ``config.return_dict``.
        """
        if return_loss and isinstance(input_ids, torch.Tensor) and isinstance(pixel_values_videos, torch.Tensor):
            if input_ids.shape[0] != pixel_values_videos.shape[0]:
                raise ValueError(
                    f"return_loss=True needs one caption per video: input_ids has batch {input_ids.shape[0]} "
                    f"but pixel_values_videos has batch {pixel_values_videos.shape[0]}"
                )
        options = dict(output_attentions=output_attentions, return_dict=True)
        video_outputs = self.video_encoder(
            pixel_values_videos, padding_mask_videos, output_hidden_states=output_hidden_states, **options
        )
        text_outputs = self.text_model(input_ids, attention_mask, output_hidden_states=output_hidden_states or -1, **options)
        video_embeds = self.video_head(video_outputs.pooler_output)
        text_video_embeds = self.text_video_head(text_outputs.pooler_output)
        logits = scaled_logits(video_embeds, text_video_embeds, self.text_video_logit_scale, self.text_video_logit_bias)
        output = PeVideoOutput(
            loss=sigmoid_contrastive_loss(logits) if return_loss else None,
            logits_video_text=logits,
            text_video_embeds=text_video_embeds,
            video_embeds=video_embeds,
            text_outputs=text_outputs,
            video_outputs=video_outputs,
        )
        return finish(output, call_option(return_dict, self.config, "return_dict"))
