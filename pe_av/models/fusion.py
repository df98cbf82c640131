"""``PeAudioVideoEncoder``: fuses the audio and video encoders' token sequences with a PE transformer.

Video tokens (one per frame) are projected to the audio width, aligned to the audio tokens by
nearest-neighbour resampling, layer-normed, concatenated with the audio tokens and projected; the PE
transformer then runs over the audio timeline with the audio padding mask.

Difference from transformers: the reference skips per-sample alignment when a batch-level shortcut
holds (equal lengths, or every audio length equal to the video length, or the reverse), even when the
masks say a sample's valid lengths differ. We align per sample whenever any sample has padding in
either modality, so each clip is aligned by its own valid lengths; on batches where the reference
takes its per-sample path, or has no padding, the numbers are identical.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PeAudioVideoEncoderConfig
from ..ops import LayerNorm, Linear
from .audio import PeAudioEncoder
from .inputs import check_right_padded, tracing
from .outputs import PeAudioVideoEncoderOutput, call_option, finish
from .pe_transformer import PeTransformerEncoder
from .video import PeVideoEncoder


def align_video_to_audio(
    video: torch.Tensor,
    audio_len: int,
    video_mask: torch.Tensor | None,
    audio_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Resample ``video`` ``(B, F, C)`` to ``audio_len`` steps by nearest neighbour.

    Without padding in either modality the whole batch is resampled at once. Otherwise each sample's
    valid frames are stretched over its valid audio tokens and the padded audio positions get zeros.
    Both give ``F.interpolate(mode="nearest")``'s source frames: ``floor(i · in / out)`` in float32.
    While tracing, masks always take the per-sample path (same numbers on unpadded batches).
    """
    batch, frames, width = video.shape
    if video_mask is None and audio_mask is None:
        padded = False
    else:
        padded = tracing() or any(m is not None and not bool(m.all()) for m in (video_mask, audio_mask))
    if not padded:
        if frames == audio_len:
            return video
        return F.interpolate(video.transpose(1, 2), size=audio_len, mode="nearest").transpose(1, 2)
    full = torch.ones(batch, dtype=torch.long, device=video.device)
    video_lengths = video_mask.long().sum(-1) if video_mask is not None else full * frames
    audio_lengths = audio_mask.long().sum(-1) if audio_mask is not None else full * audio_len
    steps = torch.arange(audio_len, device=video.device)
    scale = video_lengths.float() / audio_lengths.clamp(min=1).float()  # as interpolate: float32 in / out
    source = torch.floor(steps[None, :].float() * scale[:, None]).long()
    source = torch.minimum(source, (video_lengths - 1).clamp(min=0)[:, None])
    aligned = video.gather(1, source[:, :, None].expand(batch, audio_len, width))
    keep = (steps[None, :] < audio_lengths[:, None]) & (video_lengths[:, None] > 0)
    return torch.where(keep[:, :, None], aligned, torch.zeros((), dtype=video.dtype, device=video.device))


class PeAudioVideoEncoderEmbedder(nn.Module):
    """Runs both encoders and builds the fused ``inputs_embeds`` on the audio timeline."""

    def __init__(self, config: PeAudioVideoEncoderConfig) -> None:
        super().__init__()
        audio_width = config.audio_config.hidden_size
        video_width = config.video_config.hidden_size
        self.audio_encoder = PeAudioEncoder(config.audio_config)
        self.video_encoder = PeVideoEncoder(config.video_config)
        self.video_proj = nn.Conv1d(video_width, audio_width, kernel_size=1)
        self.video_norm = LayerNorm(audio_width)
        # in-features as the reference declares them (audio + video width); the concatenation it
        # receives is audio + projected video, so the two widths must agree (checked in the encoder)
        self.concat_modality_proj = Linear(audio_width + video_width, config.hidden_size)
        self.data_proj = Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        input_values: torch.Tensor,
        pixel_values_videos: torch.Tensor,
        padding_mask: torch.Tensor | None,
        padding_mask_videos: torch.Tensor | None,
        input_features: torch.Tensor | None = None,
        pe_features: torch.Tensor | None = None,
    ):
        # the encoders get no output options: their own configs decide, as in transformers
        audio_output = self.audio_encoder(input_values, padding_mask, input_features=input_features, return_dict=True)
        video_output = self.video_encoder(pixel_values_videos, padding_mask_videos, pe_features=pe_features,
                                          return_dict=True)
        audio_mask = None if audio_output.output_mask is None else audio_output.output_mask.bool()
        video_mask = None if padding_mask_videos is None else padding_mask_videos.bool()
        audio_hidden = audio_output.last_hidden_state
        video_hidden = self.video_proj(video_output.last_hidden_state.transpose(1, 2)).transpose(1, 2)
        video_hidden = align_video_to_audio(video_hidden, audio_hidden.shape[1], video_mask, audio_mask)
        fused = torch.cat([audio_hidden, self.video_norm(video_hidden)], dim=-1)
        inputs_embeds = self.data_proj(self.concat_modality_proj(fused))
        return inputs_embeds, audio_mask, audio_output, video_output


class PeAudioVideoEncoder(PeTransformerEncoder):
    """Audio-video fusion encoder of PE-AV: one token per audio token, fused with the aligned frames.

    Call with ``input_values`` (+ ``padding_mask``) and ``pixel_values_videos`` (+
    ``padding_mask_videos``); ``pooler_output`` is the joint audio-video embedding.
    """

    config_class = PeAudioVideoEncoderConfig
    main_input_name = "input_values"

    def __init__(self, config: PeAudioVideoEncoderConfig) -> None:
        super().__init__(config)
        if config.audio_config.hidden_size != config.video_config.hidden_size:
            raise ValueError(
                "PeAudioVideoEncoder needs audio_config.hidden_size == video_config.hidden_size "
                f"(the projected video is concatenated to the audio), got {config.audio_config.hidden_size} "
                f"and {config.video_config.hidden_size}"
            )
        self.embedder = PeAudioVideoEncoderEmbedder(config)
        self._maybe_init_weights()

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        padding_mask_videos: torch.Tensor | None = None,
        *,
        input_features: torch.Tensor | None = None,
        pe_features: torch.Tensor | None = None,
        output_hidden_states: bool | int | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> PeAudioVideoEncoderOutput | tuple:
        """Encode paired audio and video.

        Args:
            input_values: ``(B, 1, L)`` waveforms; ``padding_mask``: ``(B, L)``, 1 = real sample.
            pixel_values_videos: ``(B, F, 3, H, W)`` frames; ``padding_mask_videos``: ``(B, F)``, 1 = real frame.
                Both masks must be right-padded (1s, then 0s; a ``ValueError`` otherwise): each clip's
                valid frames are stretched over its valid audio tokens by count.
            input_features / pe_features: precomputed codec / per-frame features instead of
                ``input_values`` / ``pixel_values_videos`` (see :mod:`pe_av.models.features`).
            output_hidden_states / output_attentions: the fusion layers' hidden states / attention
                probabilities (None: this config's). The audio and video encoders' outputs carry theirs
                only when ``audio_config`` / ``video_config`` ask for them, as in transformers.
            return_dict: False returns ``output.to_tuple()``; None: ``config.return_dict``.

        Returns:
            :class:`PeAudioVideoEncoderOutput`: ``last_hidden_state`` ``(B, T_audio, C)``,
            ``pooler_output`` ``(B, C)``, and the two encoders' outputs.
        """
        recorder = self.recorder(
            call_option(output_hidden_states, self.config, "output_hidden_states"),
            call_option(output_attentions, self.config, "output_attentions"),
        )
        audio_name, audio = ("input_values", input_values) if input_features is None else ("input_features", input_features)
        video_name, video = ("pixel_values_videos", pixel_values_videos) if pe_features is None else ("pe_features", pe_features)
        if isinstance(audio, torch.Tensor) and isinstance(video, torch.Tensor):
            # inputs of a wrong rank get their encoder's own message instead
            ranks_ok = audio.dim() in ((2, 3) if input_features is None else (3,)) and video.dim() == (
                5 if pe_features is None else 3)
            if ranks_ok and audio.shape[0] != video.shape[0]:
                raise ValueError(
                    f"{audio_name} (batch {audio.shape[0]}) and {video_name} (batch "
                    f"{video.shape[0]}) must hold the same clips: the batch sizes differ"
                )
        why = "to align each clip's frames with its audio"
        check_right_padded(padding_mask, "padding_mask", why)
        check_right_padded(padding_mask_videos, "padding_mask_videos", why)
        inputs_embeds, mask, audio_output, video_output = self.embedder(
            input_values, pixel_values_videos, padding_mask, padding_mask_videos, input_features, pe_features
        )
        hidden_states = self.encode(inputs_embeds, mask, recorder)
        output = PeAudioVideoEncoderOutput(
            last_hidden_state=hidden_states[:, 1:],
            pooler_output=hidden_states[:, 0],
            audio_model_output=audio_output,
            video_model_output=video_output,
        )
        recorder.attach(output, hidden_states[:, 1:])
        return finish(output, call_option(return_dict, self.config, "return_dict"))
