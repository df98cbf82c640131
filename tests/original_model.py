"""A small re-implementation of Meta's original PE-AV code (facebookresearch/perception_models,
``core/audio_visual_encoder`` + the PE-Core ViT of ``core/vision_encoder``), written from reading it,
for the converter's tests: module and attribute names are the original's, so ``state_dict()`` gives the
original checkpoint's keys and shapes, and ``forward`` computes the original's embeddings. The text
tower and the DAC encoder are transformers' classes, which the original instantiates itself.

Nothing here imports pe_av: it is the independent reference the converted models are compared with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from original_vit import VisionTransformer
from transformers import DacConfig, ModernBertConfig, ModernBertModel
from transformers.models.dac.modeling_dac import DacEncoder

# --------------------------------------------------------------------------------------------------
# PE transformer (core/audio_visual_encoder/transformer.py, patcher.py; RoPE of core/transformer.py)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_freqs_cis(head_dim, end, theta):
    """``(end, head_dim/2, 2, 2)`` rotation matrices, as ``RotaryEmbedding.precompute_freqs_cis``."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(end).float(), freqs)
    cos, sin = angles.cos(), angles.sin()
    return torch.stack((cos, -sin, sin, cos), dim=-1).view(end, head_dim // 2, 2, 2)


def apply_rope(x, freqs_cis):
    """x ``(B, H, S, D)``: each pair (x[2i], x[2i+1]) rotated by its matrix (``apply_rotary_emb``)."""
    pairs = x.reshape(*x.shape[:-1], -1, 1, 2)
    return (pairs * freqs_cis[None, None]).sum(-1).flatten(3)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.head_dim = c["hidden_size"] // c["num_attention_heads"]
        heads, bias = c["num_attention_heads"], c.get("attention_bias", False)
        self.q_proj = nn.Linear(c["hidden_size"], heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(c["hidden_size"], heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(c["hidden_size"], heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(heads * self.head_dim, c["hidden_size"], bias=bias)
        self.q_norm = RMSNorm(self.head_dim, c.get("rms_norm_eps", 1e-5))
        self.k_norm = RMSNorm(self.head_dim, c.get("rms_norm_eps", 1e-5))

    def forward(self, x, freqs_cis, mask):
        shape = (*x.shape[:-1], -1, self.head_dim)
        q = self.q_norm(self.q_proj(x).view(shape)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(shape)).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        q, k = apply_rope(q, freqs_cis), apply_rope(k, freqs_cis)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(*x.shape[:-1], -1))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn, self.mlp = Attention(c), MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c.get("rms_norm_eps", 1e-5))
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c.get("rms_norm_eps", 1e-5))

    def forward(self, x, freqs_cis, mask):
        x = x + self.self_attn(self.input_layernorm(x), freqs_cis, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class MaskedGroupNorm(nn.GroupNorm):
    def forward(self, x, mask=None):
        if mask is None:
            return super().forward(x)
        m = mask.bool()
        count = m.sum(dim=(1, 2), keepdim=True)
        mean = (x * m).sum(dim=(1, 2), keepdim=True) / count
        var = (((x - mean) * m) ** 2).sum(dim=(1, 2), keepdim=True) / count
        y = (x - mean) / torch.sqrt(var + self.eps)
        return (y * self.weight.view(1, -1, 1) + self.bias.view(1, -1, 1)) * mask


class ConvBlock1d(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.groupnorm = MaskedGroupNorm(num_groups=1, num_channels=width)
        self.project = nn.Conv1d(width, width, kernel_size=3, padding="same")

    def forward(self, x, mask):
        return self.project(F.silu(self.groupnorm(x, mask)))


class ResnetBlock1d(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.block1, self.block2 = ConvBlock1d(width), ConvBlock1d(width)

    def forward(self, x, mask):
        mask = None if mask is None else mask.unsqueeze(1).expand_as(x)
        return self.block2(self.block1(x, mask), mask) + x


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.resnet_block = ResnetBlock1d(c["hidden_size"])
        self.cls_token = nn.Parameter(torch.randn(1, 1, c["hidden_size"]))

    def forward(self, x, mask):
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if mask is not None:
            mask = F.pad(mask, (1, 0), value=True)
        return self.resnet_block(x.transpose(1, 2), mask).transpose(1, 2), mask


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embeddings = Embeddings(c)
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c.get("rms_norm_eps", 1e-5))
        self.output = nn.Linear(c["hidden_size"], c["hidden_size"], bias=False)

    def forward(self, x, mask=None):
        x, mask = self.embeddings(x, mask)
        max_pos = self.c.get("max_position_embeddings", 10_000)
        freqs = rope_freqs_cis(self.c["hidden_size"] // self.c["num_attention_heads"], max_pos,
                               max(10_000, 2 * max_pos))[: x.shape[1]]
        attn_mask = None if mask is None else mask[:, None, None].bool()
        for layer in self.layers:
            x = layer(x, freqs, attn_mask)
        x = self.output(self.norm(x))
        return x[:, 1:], x[:, 0], mask


# --------------------------------------------------------------------------------------------------
# Encoders and whole models (core/audio_visual_encoder/pe.py, audio_codec.py, aligner.py)


class VAEBottleneck(nn.Module):
    def __init__(self, input_dim, bottleneck_dim):
        super().__init__()
        self.in_proj = nn.Conv1d(input_dim, 2 * bottleneck_dim, kernel_size=1)
        self.out_proj = nn.Conv1d(bottleneck_dim, input_dim, kernel_size=1)

    def forward(self, z):
        return self.in_proj(z).chunk(2, dim=1)[0]


class DacEncoderVAE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = DacConfig(**c)
        self.encoder = DacEncoder(self.config)
        self.bottleneck = VAEBottleneck(self.config.codebook_size, self.config.codebook_dim)

    def forward(self, wav):
        return self.bottleneck(self.encoder(wav))


class AudioEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dac_vae_encoder = DacEncoderVAE(c["dac_vae_encoder"])
        self.data_proj = nn.Linear(c["dac_vae_encoder"]["codebook_dim"], c["audio_transformer"]["hidden_size"])
        self.audio_transformer = Transformer(c["audio_transformer"])

    def forward(self, wav, mask=None):
        codec = self.dac_vae_encoder(wav).transpose(1, 2)
        mask = None if mask is None else mask[:, :: self.dac_vae_encoder.config.hop_length]
        last, pooled, _ = self.audio_transformer(self.data_proj(codec), mask)
        return last, pooled, mask


class VisualEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pe_encoder = VisionTransformer(c["pe_encoder"])
        hidden = c["visual_transformer"]["hidden_size"]
        self.proj = nn.Linear(self.pe_encoder.output_dim, hidden, bias=False)
        self.data_proj = nn.Linear(hidden, hidden)
        self.visual_transformer = Transformer(c["visual_transformer"])

    def forward(self, frames, mask=None):
        b, n = frames.shape[:2]
        features = F.normalize(self.pe_encoder(frames.flatten(0, 1)).view(b, n, -1), dim=-1)
        last, pooled, _ = self.visual_transformer(self.data_proj(self.proj(features)), mask)
        return last, pooled


class AlignModalities(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv, self.layer_norm = nn.Conv1d(width, width, kernel_size=1), nn.LayerNorm(width)

    def forward(self, src, src_mask, tgt, tgt_mask):
        tgt = self.conv(tgt.transpose(1, 2))
        def sizes(x, m):
            return torch.full((x.shape[0],), x.shape[-1]) if m is None else m.sum(-1).long()
        src_sizes, tgt_sizes = sizes(src.transpose(1, 2), src_mask), sizes(tgt, tgt_mask)
        if not bool((src_sizes == tgt_sizes).all()):
            out = torch.zeros(tgt.shape[0], tgt.shape[1], int(src_sizes.max()))
            for i in range(tgt.shape[0]):
                row = tgt[i : i + 1, :, : int(tgt_sizes[i])]
                out[i, :, : int(src_sizes[i])] = F.interpolate(row, size=int(src_sizes[i]), mode="nearest")[0]
            tgt = out
        return self.layer_norm(tgt.transpose(1, 2)), src_mask


class AVTransformer(Transformer):
    def __init__(self, c):
        super().__init__(c)
        self.modality_aligner = AlignModalities(c["hidden_size"])
        self.concat_modality_proj = nn.Linear(2 * c["hidden_size"], c["hidden_size"])
        self.data_proj = nn.Linear(c["hidden_size"], c["hidden_size"])

    def forward(self, audio, video, audio_mask=None, video_mask=None):
        video, mask = self.modality_aligner(audio, audio_mask, video, video_mask)
        return super().forward(self.data_proj(self.concat_modality_proj(torch.cat([audio, video], -1))), mask)


class ContrastiveHead(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.layer_norm, self.proj = nn.LayerNorm(in_dim, eps=1e-6), nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x):
        return self.proj(self.layer_norm(x))


class AudioVisualEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.audio_model = AudioEncoder(c["audio_model"])
        self.visual_model = VisualEncoder(c["visual_model"])
        self.audio_visual_transformer = AVTransformer(c["audio_visual_transformer"])


def text_embedding(text_model, nth, input_ids, attention_mask):
    out = text_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return out.hidden_states[nth][:, 0]


class PEAudioVisual(nn.Module):
    """The original ``PEAudioVisual`` (config: the original config.json dict, every section given)."""

    def __init__(self, c):
        super().__init__()
        self.nth = c["nth_text_layer"]
        av, out = c["audio_visual_model"], c["output_dim"]
        self.audio_visual_model = AudioVisualEncoder(av)
        self.text_model = ModernBertModel(ModernBertConfig(**c["text_model"]))
        text, audio = c["text_model"]["hidden_size"], av["audio_model"]["audio_transformer"]["hidden_size"]
        video, fused = av["visual_model"]["visual_transformer"]["hidden_size"], av["audio_visual_transformer"]["hidden_size"]
        for name, width in (("audio_visual_text_head", text), ("audio_text_head", text), ("visual_text_head", text),
                            ("audio_visual_head", fused), ("audio_head", audio), ("visual_head", video),
                            ("visual_plus_text_head", video + text), ("audio_plus_text_head", audio + text)):
            setattr(self, name, ContrastiveHead(width, out))

    def forward(self, input_ids, attention_mask, input_values, padding_mask, pixel_values_videos, padding_mask_videos):
        """Every embedding the original computes, under pe_av's output names."""
        m = self.audio_visual_model
        text = text_embedding(self.text_model, self.nth, input_ids, attention_mask)
        audio_last, audio_pooled, audio_mask = m.audio_model(input_values, padding_mask)
        video_last, video_pooled = m.visual_model(pixel_values_videos, padding_mask_videos)
        _, fused, _ = m.audio_visual_transformer(audio_last, video_last, audio_mask, padding_mask_videos)
        return {
            "audio_embeds": self.audio_head(audio_pooled), "video_embeds": self.visual_head(video_pooled),
            "audio_video_embeds": self.audio_visual_head(fused), "text_audio_embeds": self.audio_text_head(text),
            "text_video_embeds": self.visual_text_head(text),
            "text_audio_video_embeds": self.audio_visual_text_head(text),
            "audio_plus_text_embeds": self.audio_plus_text_head(torch.cat([audio_pooled, text], -1)),
            "video_plus_text_embeds": self.visual_plus_text_head(torch.cat([video_pooled, text], -1)),
        }


class PEAudioFrame(nn.Module):
    """The original ``PEAudioFrame``."""

    def __init__(self, c):
        super().__init__()
        self.nth = c["nth_text_layer"]
        self.text_model = ModernBertModel(ModernBertConfig(**c["text_model"]))
        self.audio_model = AudioEncoder(c["audio_model"])
        self.text_head = ContrastiveHead(c["text_model"]["hidden_size"], c["output_dim"])
        self.audio_head = ContrastiveHead(c["audio_model"]["audio_transformer"]["hidden_size"], c["output_dim"])
        self.logit_scale = nn.Parameter(torch.tensor([0.0]))
        self.logit_bias = nn.Parameter(torch.tensor([0.0]))

    def forward(self, input_ids, attention_mask, input_values, padding_mask):
        text = self.text_head(text_embedding(self.text_model, self.nth, input_ids, attention_mask))
        audio = self.audio_head(self.audio_model(input_values, padding_mask)[0])  # per frame
        logits = (audio @ text.unsqueeze(1).transpose(-1, -2)).squeeze(-1) * self.logit_scale + self.logit_bias
        return {"text_audio_embeds": text, "audio_embeds": audio, "logits": logits}
