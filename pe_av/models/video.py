"""``PeVideoEncoder``: frames → ViT per frame → PE transformer (the video-text model is in ``pe_video.py``).

Differences from transformers (each documented where it lives):

- Frames run through the ViT in chunks of ``vision_chunk_size`` so hundreds of frames fit in memory,
  and padded frames (``padding_mask_videos == 0``) are not computed. Padded frames cannot change any
  valid output: the masked GroupNorms exclude them from their statistics and zero them before each
  convolution, and attention masks them as keys. They only reach the outputs *at padded positions*
  (through the ResNet block's residual). We encode a padded frame as an all-zero ViT output, so its
  ``inputs_embeds`` row is ``data_proj.bias``; ``last_hidden_state`` at padded positions therefore
  differs from the reference's (which encodes the padding pixels), every valid position and
  ``pooler_output`` are the same.
- A video without any valid frame is an error (the reference returns NaNs).
- The ViT head size follows :func:`pe_av.models.vision_spec.vision_num_classes` (the reference ignores
  ``num_classes``; see :mod:`pe_av.models.vision_spec`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PeVideoEncoderConfig
from ..ops import Linear
from .features import check_features, one_input
from .inputs import check_each_has_valid, check_padding_mask, tracing
from .outputs import BaseModelOutputWithPooling, call_option, finish
from .pe_transformer import PeTransformerEncoder
from .vision import PeVisionModel, check_pixel_values

__all__ = ["CPU_VISION_CHUNK_SIZE", "CUDA_VISION_CHUNK_SIZE", "PeVideoEncoder", "default_vision_chunk_size"]

#: Frames per ViT call on CPU, chosen by measurement (``bench/cpu_choices.py vision-chunk``, ViT-L/14 at
#: 336 px, fp32, 2 threads): extra memory is ~27 MB per frame of the chunk; 1 frame per call is ~1.37x
#: slower (oneDNN's GEMMs run below peak on 577 rows), 2, 4 and 8 frames are within 3% of each other.
#: 4 frames: ~110 MB of activations, at the fastest sizes' speed.
CPU_VISION_CHUNK_SIZE = 4
#: Frames per ViT call on CUDA (reasoned, not measured on this project's machines): 32 frames are
#: ~18k tokens, enough rows to fill a large GPU's GEMMs and amortize launches, for ~0.45 GB of bf16
#: activations (half of fp32's ~27 MB per frame).
CUDA_VISION_CHUNK_SIZE = 32


def default_vision_chunk_size(device: torch.device) -> int:
    """:data:`CPU_VISION_CHUNK_SIZE` on CPU, :data:`CUDA_VISION_CHUNK_SIZE` on other devices."""
    return CPU_VISION_CHUNK_SIZE if device.type == "cpu" else CUDA_VISION_CHUNK_SIZE


def _check_chunk_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"vision_chunk_size must be a positive integer, got {value!r}")
    return value


class PeVideoEncoderEmbedder(nn.Module):
    """ViT logits per frame → L2 normalize → ``proj`` (no bias) → ``data_proj``."""

    def __init__(self, config: PeVideoEncoderConfig) -> None:
        super().__init__()
        self.vision_model = PeVisionModel(config.vision_config)
        if self.vision_model.spec.num_classes == 0:
            raise ValueError("vision_config must have a classifier head (num_classes > 0) for the video encoder")
        self.proj = Linear(self.vision_model.num_classes, config.hidden_size, bias=False)
        self.data_proj = Linear(config.hidden_size, config.hidden_size)

    def frame_logits(self, frames: torch.Tensor, valid: torch.Tensor | None, chunk_size: int) -> torch.Tensor:
        """ViT logits ``(N, classes)`` of ``frames`` ``(N, 3, H, W)``; rows where ``valid`` is False are 0.

        Eagerly only valid frames run through the ViT; while tracing (no values to select by) every
        frame does and the padded rows are zeroed, which gives the same result.
        """
        vit = self.vision_model.timm_model
        total = frames.shape[0]
        if valid is not None and tracing():
            logits = torch.cat([vit(frames[start : start + chunk_size]) for start in range(0, total, chunk_size)])
            return torch.where(valid[:, None], logits, 0.0)
        index = None if valid is None or bool(valid.all()) else valid.nonzero().squeeze(1)
        count = total if index is None else index.numel()
        chunks = []
        for start in range(0, count, chunk_size):
            if index is None:
                chunk = frames[start : start + chunk_size]
            else:
                chunk = frames.index_select(0, index[start : start + chunk_size])
            chunks.append(vit(chunk))
        logits = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
        if index is None:
            return logits
        return logits.new_zeros(total, logits.shape[1]).index_copy(0, index, logits)

    def frame_features(
        self, pixel_values_videos: torch.Tensor, padding_mask: torch.Tensor | None, chunk_size: int
    ) -> torch.Tensor:
        """``(B, F, classes)`` L2-normalised ViT logits per frame (padded frames: 0)."""
        batch, frames = pixel_values_videos.shape[:2]
        valid = None if padding_mask is None else padding_mask.reshape(-1)
        logits = self.frame_logits(pixel_values_videos.flatten(0, 1), valid, chunk_size)
        # in fp32: F.normalize's eps underflows in fp16, turning the all-zero rows of padded frames into NaN
        return F.normalize(logits.view(batch, frames, -1).float(), dim=-1).to(logits.dtype)

    def forward(
        self, pixel_values_videos: torch.Tensor, padding_mask: torch.Tensor | None, chunk_size: int
    ) -> torch.Tensor:
        return self.data_proj(self.proj(self.frame_features(pixel_values_videos, padding_mask, chunk_size)))


class PeVideoEncoder(PeTransformerEncoder):
    """Video encoder of PE-AV: ``(B, F, 3, H, W)`` frames → one token per frame.

    Load with :meth:`from_pretrained`; call with ``pixel_values_videos`` and optionally
    ``padding_mask_videos``. ``vision_chunk_size`` (attribute, or per call) bounds how many frames
    the ViT sees at once; None (the default) picks :func:`default_vision_chunk_size` for the model's
    device (4 on CPU, 32 on CUDA; see the constants for the measurements).
    """

    config_class = PeVideoEncoderConfig
    main_input_name = "pixel_values_videos"

    def __init__(self, config: PeVideoEncoderConfig) -> None:
        super().__init__(config)
        self.embedder = PeVideoEncoderEmbedder(config)
        self.vision_chunk_size: int | None = None
        self._maybe_init_weights()

    def _chunk_size(self, vision_chunk_size: int | None) -> int:
        """Frames per ViT call: the argument, else ``self.vision_chunk_size``, else the device's default."""
        chunk_size = self.vision_chunk_size if vision_chunk_size is None else vision_chunk_size
        return _check_chunk_size(default_vision_chunk_size(self.device) if chunk_size is None else chunk_size)

    def forward(
        self,
        pixel_values_videos: torch.Tensor | None = None,
        padding_mask_videos: torch.Tensor | None = None,
        *,
        pe_features: torch.Tensor | None = None,
        output_hidden_states: bool | int | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        vision_chunk_size: int | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encode a batch of videos.

        Args:
            pixel_values_videos: ``(B, F, 3, H, W)`` normalized float frames of the configured size; they must
                be finite, padded frames included (NaN/Inf is a ``ValueError``).
            padding_mask_videos: ``(B, F)`` with 1/True for real frames and 0/False for padding; every
                video needs at least one real frame. Padded frames are not run through the ViT.
            pe_features: instead of ``pixel_values_videos``, ``(B, F, classes)`` per-frame features from
                :meth:`get_frame_features` (see :mod:`pe_av.models.features`).
            output_hidden_states: also return the input of the first layer and every layer's output (True),
                or those of the given indices; None: ``config.output_hidden_states``.
            output_attentions: also return each layer's attention probabilities ``(B, heads, F + 1, F + 1)``
                (computed eagerly; the ViT's are not returned, as in transformers); None: ``config.output_attentions``.
            return_dict: False returns ``output.to_tuple()``; None: ``config.return_dict``.
            vision_chunk_size: frames per ViT call (default ``self.vision_chunk_size``; when that is None,
                :func:`default_vision_chunk_size` of the model's device).

        Returns:
            :class:`BaseModelOutputWithPooling` with ``last_hidden_state`` ``(B, F, C)`` (padded positions
            hold the documented padding encoding, see the module docstring) and ``pooler_output`` ``(B, C)``.
        """
        recorder = self.recorder(
            call_option(output_hidden_states, self.config, "output_hidden_states"),
            call_option(output_attentions, self.config, "output_attentions"),
        )
        chunk_size = self._chunk_size(vision_chunk_size)
        one_input(pixel_values_videos, "pixel_values_videos", pe_features, "pe_features")
        if pe_features is not None:
            features = check_features(pe_features, "pe_features", self.embedder.vision_model.num_classes,
                                      self.dtype, self.device)
            mask = self._frame_mask(padding_mask_videos, features)
            inputs_embeds = self.embedder.data_proj(self.embedder.proj(features))
        else:
            pixel_values_videos = self._check_frames(pixel_values_videos)
            mask = self._frame_mask(padding_mask_videos, pixel_values_videos)
            inputs_embeds = self.embedder(pixel_values_videos, mask, chunk_size)
        hidden_states = self.encode(inputs_embeds, mask, recorder)
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden_states[:, 1:],
            pooler_output=hidden_states[:, 0],
        )
        recorder.attach(output, hidden_states[:, 1:])
        return finish(output, call_option(return_dict, self.config, "return_dict"))

    def _check_frames(self, pixel_values_videos: object) -> torch.Tensor:
        spec = self.embedder.vision_model.spec
        return check_pixel_values(pixel_values_videos, "pixel_values_videos", spec, 5, self.dtype, self.device)

    def _frame_mask(self, padding_mask_videos: object, per_frame: torch.Tensor) -> torch.Tensor | None:
        mask = check_padding_mask(padding_mask_videos, "padding_mask_videos", *per_frame.shape[:2], self.device)
        check_each_has_valid(mask, "padding_mask_videos", "video", "frame")
        return mask

    @torch.no_grad()
    def get_frame_features(
        self, pixel_values_videos: torch.Tensor, padding_mask_videos: torch.Tensor | None = None,
        vision_chunk_size: int | None = None,
    ) -> torch.Tensor:
        """``(B, F, classes)`` L2-normalised per-frame ViT features (what ``pe_features=`` takes); padded
        frames are 0."""
        chunk_size = self._chunk_size(vision_chunk_size)
        pixel_values_videos = self._check_frames(pixel_values_videos)
        mask = self._frame_mask(padding_mask_videos, pixel_values_videos)
        return self.embedder.frame_features(pixel_values_videos, mask, chunk_size)
