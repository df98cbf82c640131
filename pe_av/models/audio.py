"""``PeAudioEncoder``: waveform → DAC codec features → PE transformer.

Differences from transformers (documented in the README):

- Raw lengths need not be multiples of the hop length. Each sample's valid region (up to its last
  valid sample) is reflect-padded to a whole number of hops, exactly as the feature extractor pads
  each clip, and the padded tail counts as valid. The reference crashes here when a ``padding_mask``
  is given (and silently drops the partial hop when none is).
- In a padded batch each clip's DAC activations stop at its valid length, so a clip gets the numbers
  it gets alone (the reference lets the batch's zero padding leak into the last tokens of shorter
  clips). ``embedder.isolate_samples = False`` restores the reference's behaviour.
- The DAC runs without gradient, as in the reference (it is frozen), but with cuDNN enabled.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import PeAudioEncoderConfig
from ..ops import Linear
from .dac import DacEncoder
from .features import check_features, one_input
from .inputs import check_each_has_valid, check_padding_mask, check_waveform, tracing
from .outputs import PeAudioEncoderOutput, call_option, finish
from .pe_transformer import PeTransformerEncoder


def reflect_index(positions: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Index that ``numpy.pad(mode="reflect")`` reads for ``positions`` past ``length`` valid samples.

    Reflection repeats with period ``2 * (length - 1)``, so pads longer than the signal work too.
    """
    period = (2 * (length - 1)).clamp(min=1)
    folded = positions % period
    return torch.where(folded < length, folded, period - folded).clamp(min=0)


def pad_to_hop(
    waveform: torch.Tensor, padding_mask: torch.Tensor | None, hop: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Reflect-pad each sample's valid region to a multiple of ``hop`` and extend the mask to match.

    ``waveform``: ``(B, 1, L)``; ``padding_mask``: ``(B, L)`` bool or None. The valid region of a sample
    ends at its last valid position. Samples already ending on a hop boundary are left untouched.
    """
    batch, _, length = waveform.shape
    padded_len = -(-length // hop) * hop
    ends = valid_ends(padding_mask, batch, length, waveform.device)
    targets = -(-ends // hop) * hop
    if padded_len == length and not tracing() and bool((targets == ends).all()):
        return waveform, padding_mask
    positions = torch.arange(padded_len, device=waveform.device)
    waveform = nn.functional.pad(waveform, (0, padded_len - length))
    in_tail = (positions[None, :] >= ends[:, None]) & (positions[None, :] < targets[:, None])
    source = torch.where(in_tail, reflect_index(positions[None, :], ends[:, None]), positions[None, :])
    waveform = torch.where(in_tail[:, None, :], waveform.gather(2, source[:, None, :]), waveform)
    if padding_mask is not None:
        padding_mask = nn.functional.pad(padding_mask, (0, padded_len - length)) | in_tail
    return waveform, padding_mask


def valid_ends(padding_mask: torch.Tensor | None, batch: int, length: int, device: torch.device) -> torch.Tensor:
    """``(B,)`` one past each sample's last valid position (0 if none), ``length`` without a mask."""
    lengths = valid_lengths(padding_mask)
    return torch.full((batch,), length, device=device, dtype=torch.long) if lengths is None else lengths


def valid_lengths(padding_mask: torch.Tensor | None) -> torch.Tensor | None:
    """One past each sample's last valid position (0 if none), or None when every sample fills the batch.

    Memory: a full-length int64 weighting (8 bytes per sample, ~23 MB per minute of 48 kHz audio, three
    of them) made the encoder's extra memory grow with the clip; now a batch whose samples all end valid
    reads only the last column, and the general path uses one byte per sample.
    """
    if padding_mask is None or (not tracing() and bool(padding_mask[:, -1].all())):
        return None
    valid = padding_mask.bool()
    last_from_end = valid.flip(-1).view(torch.uint8).argmax(dim=-1)  # first valid position from the end
    return torch.where(valid.any(dim=-1), padding_mask.shape[-1] - last_from_end, 0).long()


class PeAudioEncoderEmbedder(nn.Module):
    """DAC encoder → bottleneck Conv1d(k1) → Linear to the transformer width.

    ``isolate_samples`` (default True) zeroes each clip's DAC activations past its valid length, so
    that a clip's result does not depend on the zero padding of its batch (see :mod:`pe_av.models.dac`).
    Set it to False to reproduce the reference's numbers on padded batches exactly.
    """

    def __init__(self, config: PeAudioEncoderConfig) -> None:
        super().__init__()
        dac = config.dac_config
        self.dac_encoder = DacEncoder(dac)
        self.bottleneck = nn.Conv1d(dac.hidden_size, dac.codebook_dim, kernel_size=1)
        self.data_proj = Linear(dac.codebook_dim, config.hidden_size)
        self.hop_length = dac.hop_length
        self.isolate_samples = True

    def codec_features(
        self, input_values: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, T, codebook_dim)`` codec features of the waveforms and the ``(B, T)`` token mask."""
        input_values, padding_mask = pad_to_hop(input_values, padding_mask, self.hop_length)
        lengths = valid_lengths(padding_mask) if self.isolate_samples else None
        with torch.no_grad():
            codec = self.bottleneck(self.dac_encoder(input_values, lengths)).transpose(1, 2)
        if padding_mask is not None:
            padding_mask = padding_mask[:, :: self.hop_length]
            if padding_mask.shape[1] != codec.shape[1]:
                raise ValueError(
                    f"the DAC produced {codec.shape[1]} tokens but the padding mask gives "
                    f"{padding_mask.shape[1]}: dac_config.downsampling_ratios must all be >= 2"
                )
        return codec, padding_mask

    def forward(
        self, input_values: torch.Tensor, padding_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        codec, padding_mask = self.codec_features(input_values, padding_mask)
        return self.data_proj(codec), padding_mask


class PeAudioEncoder(PeTransformerEncoder):
    """Audio encoder of PE-AV: ``(B, 1, L)`` 48 kHz waveforms → one token per hop (1920 samples).

    Load with :meth:`from_pretrained`; call with ``input_values`` and optionally ``padding_mask``.
    """

    config_class = PeAudioEncoderConfig
    main_input_name = "input_values"

    def __init__(self, config: PeAudioEncoderConfig) -> None:
        super().__init__(config)
        self.embedder = PeAudioEncoderEmbedder(config)
        self._maybe_init_weights()

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        *,
        input_features: torch.Tensor | None = None,
        output_hidden_states: bool | int | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> PeAudioEncoderOutput | tuple:
        """Encode a batch of waveforms.

        Args:
            input_values: ``(B, 1, L)`` (or ``(B, L)``) float waveforms; cast to the model's dtype. Must be
                finite (NaN/Inf, padding included, is a ``ValueError``); what padding holds does not matter.
            padding_mask: ``(B, L)`` with 1/True for real samples and 0/False for padding; each clip needs
                at least one real sample (an all-padding clip is a ``ValueError``). ``(B, T)`` over tokens
                with ``input_features``.
            input_features: instead of ``input_values``, ``(B, T, codebook_dim)`` codec features from
                :meth:`get_codec_features` (see :mod:`pe_av.models.features`).
            output_hidden_states: also return the input of the first layer and every layer's output (True),
                or those of the given indices; None: ``config.output_hidden_states``.
            output_attentions: also return each layer's attention probabilities ``(B, heads, T + 1, T + 1)``
                (computed eagerly); None: ``config.output_attentions``.
            return_dict: False returns ``output.to_tuple()``; None: ``config.return_dict``.

        Returns:
            :class:`PeAudioEncoderOutput` with ``last_hidden_state`` ``(B, T, C)``, ``pooler_output``
            ``(B, C)`` and ``output_mask`` ``(B, T)`` (same dtype as ``padding_mask``).
        """
        recorder = self.recorder(
            call_option(output_hidden_states, self.config, "output_hidden_states"),
            call_option(output_attentions, self.config, "output_attentions"),
        )
        one_input(input_values, "input_values", input_features, "input_features")
        if input_features is not None:
            features = check_features(input_features, "input_features", self.config.dac_config.codebook_dim,
                                      self.dtype, self.device)
            token_mask = check_padding_mask(padding_mask, "padding_mask", *features.shape[:2], self.device)
            check_each_has_valid(token_mask, "padding_mask", "clip", "token")
            inputs_embeds = self.embedder.data_proj(features)
        else:
            input_values = check_waveform(input_values, self.dtype, self.device)
            mask = check_padding_mask(padding_mask, "padding_mask", input_values.shape[0], input_values.shape[-1], self.device)
            check_each_has_valid(mask, "padding_mask", "clip", "sample")
            inputs_embeds, token_mask = self.embedder(input_values, mask)
        hidden_states = self.encode(inputs_embeds, token_mask, recorder)
        output = PeAudioEncoderOutput(
            last_hidden_state=hidden_states[:, 1:],
            pooler_output=hidden_states[:, 0],
            output_mask=None if token_mask is None else token_mask.to(padding_mask.dtype),
        )
        recorder.attach(output, hidden_states[:, 1:])
        return finish(output, call_option(return_dict, self.config, "return_dict"))

    @torch.no_grad()
    def get_codec_features(
        self, input_values: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, T, codebook_dim)`` DAC codec features of the waveforms (what ``input_features=`` takes) and
        their ``(B, T)`` token mask (None without ``padding_mask``)."""
        input_values = check_waveform(input_values, self.dtype, self.device)
        mask = check_padding_mask(padding_mask, "padding_mask", input_values.shape[0], input_values.shape[-1], self.device)
        check_each_has_valid(mask, "padding_mask", "clip", "sample")
        return self.embedder.codec_features(input_values, mask)
