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
from .inputs import check_right_padded
from .outputs import PeAudioVideoEncoderOutput
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
    """
    batch, frames, _ = video.shape
    padded = (video_mask is not None and not bool(video_mask.all())) or (
        audio_mask is not None and not bool(audio_mask.all())
    )
    if not padded:
        if frames == audio_len:
            return video
        return F.interpolate(video.transpose(1, 2), size=audio_len, mode="nearest").transpose(1, 2)
    video_lengths = video_mask.sum(-1).tolist() if video_mask is not None else [frames] * batch
    audio_lengths = audio_mask.sum(-1).tolist() if audio_mask is not None else [audio_len] * batch
    aligned = video.new_zeros(batch, audio_len, video.shape[-1])
    for i, (n_video, n_audio) in enumerate(zip(video_lengths, audio_lengths)):
        if n_video == 0 or n_audio == 0:
            continue
        valid = video[i : i + 1, :n_video].transpose(1, 2)
        aligned[i, :n_audio] = F.interpolate(valid, size=n_audio, mode="nearest")[0].transpose(0, 1)
    return aligned


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
        output_hidden_states: bool,
    ):
        audio_output = self.audio_encoder(input_values, padding_mask, output_hidden_states=output_hidden_states)
        video_output = self.video_encoder(
            pixel_values_videos, padding_mask_videos, output_hidden_states=output_hidden_states
        )
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
        input_values: torch.Tensor,
        pixel_values_videos: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        padding_mask_videos: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> PeAudioVideoEncoderOutput:
        """Encode paired audio and video.

        Args:
            input_values: ``(B, 1, L)`` waveforms; ``padding_mask``: ``(B, L)``, 1 = real sample.
            pixel_values_videos: ``(B, F, 3, H, W)`` frames; ``padding_mask_videos``: ``(B, F)``, 1 = real frame.
                Both masks must be right-padded (1s, then 0s; a ``ValueError`` otherwise): each clip's
                valid frames are stretched over its valid audio tokens by count.
            output_hidden_states: also return every layer's hidden states (of all three encoders).

        Returns:
            :class:`PeAudioVideoEncoderOutput`: ``last_hidden_state`` ``(B, T_audio, C)``,
            ``pooler_output`` ``(B, C)``, and the two encoders' outputs.
        """
        if isinstance(input_values, torch.Tensor) and isinstance(pixel_values_videos, torch.Tensor):
            # inputs of a wrong rank get their encoder's own message instead
            ranks_ok = input_values.dim() in (2, 3) and pixel_values_videos.dim() == 5
            if ranks_ok and input_values.shape[0] != pixel_values_videos.shape[0]:
                raise ValueError(
                    f"input_values (batch {input_values.shape[0]}) and pixel_values_videos (batch "
                    f"{pixel_values_videos.shape[0]}) must hold the same clips: the batch sizes differ"
                )
        why = "to align each clip's frames with its audio"
        check_right_padded(padding_mask, "padding_mask", why)
        check_right_padded(padding_mask_videos, "padding_mask_videos", why)
        inputs_embeds, mask, audio_output, video_output = self.embedder(
            input_values, pixel_values_videos, padding_mask, padding_mask_videos, output_hidden_states
        )
        hidden_states, all_hidden = self.encode(inputs_embeds, mask, output_hidden_states)
        return PeAudioVideoEncoderOutput(
            last_hidden_state=hidden_states[:, 1:],
            pooler_output=hidden_states[:, 0],
            hidden_states=all_hidden,
            audio_model_output=audio_output,
            video_model_output=video_output,
        )
