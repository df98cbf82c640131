"""The PE-Core ViT of Meta's original code (``core/vision_encoder/pe.py``, ``rope.py``) re-implemented for the
converter's tests, with the original's module names (see :mod:`original_model`). Nothing here imports pe_av."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------------
# PE-Core ViT (core/vision_encoder/pe.py, rope.py)


def _rotate_pairs(x):
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rope2d_freqs(head_dim, grid):
    """``Rope2D`` with a class token: the class token at angle 0, patch (y, x) at positions (y+1, x+1)."""
    dim = head_dim // 2
    inv = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    pos = torch.arange(grid).float() + 1
    f = torch.repeat_interleave(torch.outer(pos, inv), 2, dim=-1)  # (grid, dim), each angle twice
    fy, fx = f[:, None].expand(grid, grid, -1), f[None, :].expand(grid, grid, -1)
    freq = torch.cat([fx, fy], dim=-1).reshape(grid * grid, -1)
    return torch.cat([torch.zeros(1, freq.shape[-1]), freq])


class SelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * width, width) * width**-0.5)
        self.in_proj_bias = nn.Parameter(0.02 * torch.randn(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x, freqs):
        b, s, w = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).unflatten(-1, (3, w)).unbind(-2)
        q, k, v = (t.reshape(b, s, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        q = q * freqs.cos() + _rotate_pairs(q) * freqs.sin()
        k = k * freqs.cos() + _rotate_pairs(k) * freqs.sin()
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, s, w))


def _mlp(width, hidden):
    return nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", nn.GELU()),
                                      ("c_proj", nn.Linear(hidden, width))]))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, mlp_ratio):
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mlp = _mlp(width, int(width * mlp_ratio))

    def forward(self, x, freqs):
        x = x + self.attn(self.ln_1(x), freqs)
        return x + self.mlp(self.ln_2(x))


class ViTTransformer(nn.Module):
    def __init__(self, width, layers, heads, mlp_ratio):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers))


class AttentionPooling(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, width))
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.layernorm = nn.LayerNorm(width)
        self.mlp = _mlp(width, 4 * width)

    def forward(self, x):
        q = self.probe.repeat(x.shape[0], 1, 1)
        x = self.attn(q, x, x, need_weights=False)[0]
        return x + self.mlp(self.layernorm(x))


#: the PE-Core variants the tests use (``PE_VISION_CONFIG``): width, layers, heads, patch, image, output dim
PE_CORE = {"PE-Core-T16-384": (192, 12, 3, 16, 384, 512), "PE-Core-S16-384": (384, 12, 6, 16, 384, 512)}


class VisionTransformer(nn.Module):
    def __init__(self, name):
        super().__init__()
        width, layers, heads, self.patch, image, out = PE_CORE[name]
        self.grid, self.head_dim = image // self.patch, width // heads
        self.conv1 = nn.Conv2d(3, width, kernel_size=self.patch, stride=self.patch, bias=False)
        self.class_embedding = nn.Parameter(width**-0.5 * torch.randn(width))
        self.positional_embedding = nn.Parameter(width**-0.5 * torch.randn(1 + self.grid**2, width))
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.transformer = ViTTransformer(width, layers, heads, 4.0)
        self.attn_pool = AttentionPooling(width, 8)
        self.proj = nn.Parameter(width**-0.5 * torch.randn(width, out))
        self.output_dim = out

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1), x], dim=1)
        x = self.ln_pre(x + self.positional_embedding[None])
        freqs = rope2d_freqs(self.head_dim, self.grid)[None, None]
        for block in self.transformer.resblocks:
            x = block(x, freqs)
        return self.attn_pool(self.ln_post(x)).squeeze(1) @ self.proj
