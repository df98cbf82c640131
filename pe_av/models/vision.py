"""PE-Core vision transformer: the per-frame image encoder of PE-AV (timm's ``vit_pe_core_*``).

Hyper-parameters come from :class:`pe_av.models.vision_spec.VisionSpec` (the architecture table and
the head-size rule live there). Layout (attribute names equal the checkpoint's keys under
``timm_model.``): ``patch_embed.proj`` (Conv2d, no bias) → prepend ``cls_token`` → add ``pos_embed`` →
``norm_pre`` → ``blocks`` (pre-norm LayerNorm, attention with 2D RoPE on the patch tokens, GELU MLP) →
``norm`` → ``attn_pool`` (one learned latent query attends over all tokens, then a residual MLP) →
``head``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config import TimmVisionConfig
from ..dispatch import BackendModule
from ..json_io import read_json_object
from ..loading import resolve_model_dir
from ..ops import LayerNorm, Linear, attention, linear_gelu, rope_2d_cos_sin, rope_attention
from .base import PePreTrainedModel
from .checkpointing import CheckpointedLayer
from .inputs import check_finite, describe_type
from .outputs import ImageClassifierOutput, call_option, finish
from .vision_spec import VisionSpec, record_num_labels

__all__ = ["PeCoreVisionTransformer", "PeVisionModel", "check_pixel_values", "vision_rope_tables"]


def vision_rope_tables(spec: VisionSpec, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos``/``sin`` ``(num_patches, head_dim // 2)`` of the ViT's 2D RoPE (see :func:`pe_av.ops.rope_2d_cos_sin`);
    computed in fp32 (as timm caches them) and cast to ``dtype`` last."""
    return rope_2d_cos_sin(
        spec.grid_size, spec.head_dim, temperature=spec.rope_temperature, offset=spec.rope_grid_offset,
        indexing=spec.rope_grid_indexing, ref_feat_shape=spec.ref_feat_shape, device=device, dtype=dtype,
    )


# --------------------------------------------------------------------------------------------------
# Modules


class PatchEmbed(nn.Module):
    """Non-overlapping patches → tokens ``(B, num_patches, C)`` (row-major)."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        # bias-free because norm_pre follows (as in timm when use_pre_transformer_norm is set)
        self.proj = nn.Conv2d(
            spec.in_chans, spec.embed_dim, spec.patch_size, stride=spec.patch_size,
            bias=not spec.use_pre_transformer_norm,
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values).flatten(2).transpose(1, 2)


class VisionMlp(BackendModule):
    """``fc2(gelu(fc1(x)))`` with biases, exact (erf) GELU; ``fc1`` and the GELU are one op
    (:data:`pe_av.ops.linear_gelu`: under ``triton`` the bias add and GELU are one kernel)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.run(linear_gelu, x, self.fc1.weight, self.fc1.bias))


class VisionAttention(BackendModule):
    """Fused-qkv multi-head self-attention; RoPE rotates patch tokens only, never the class token."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        self.num_heads = spec.num_heads
        self.head_dim = spec.head_dim
        self.num_prefix_tokens = spec.num_prefix_tokens
        self.scale = self.head_dim**-0.5
        self.qkv = Linear(spec.embed_dim, 3 * spec.embed_dim, bias=spec.qkv_bias)
        self.proj = Linear(spec.embed_dim, spec.embed_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.num_heads, self.head_dim).unbind(2)
        # rotation (interleaved pairs, prefix tokens left alone) and attention in one op: no norm weights
        out = self.run(
            rope_attention, q, k, v, None, None, cos, sin, None, scale=self.scale, unrotated_prefix=self.num_prefix_tokens
        )
        return self.proj(out.reshape(batch, seq, dim))


class VisionBlock(CheckpointedLayer):
    """Pre-norm block: x + [γ₁·] attn(norm1(x)); x + [γ₂·] mlp(norm2(x)) (γ = LayerScale if configured).
    The first residual add is left to ``norm2`` (one fused kernel under ``triton``). Checkpointable (see
    :mod:`pe_av.models.checkpointing`)."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        dim = spec.embed_dim
        self.norm1 = LayerNorm(dim, eps=spec.norm_eps)
        self.attn = VisionAttention(spec)
        self.norm2 = LayerNorm(dim, eps=spec.norm_eps)
        self.mlp = VisionMlp(dim, int(dim * spec.mlp_ratio))
        if spec.init_values is not None:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(spec.init_values)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(spec.init_values)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def layer_forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, attentions: None = None) -> torch.Tensor:
        attn = self.attn(self.norm1(x), cos, sin)
        normed, x = self.norm2(attn if self.gamma_1 is None else self.gamma_1 * attn, x)
        mlp = self.mlp(normed)
        return x + (mlp if self.gamma_2 is None else self.gamma_2 * mlp)


class AttentionPool(BackendModule):
    """timm's 'map' head: one learned latent query attends over all tokens, then x + mlp(norm(x))."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        dim = spec.embed_dim
        self.num_heads = spec.pool_heads
        self.head_dim = dim // self.num_heads
        self.latent = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.q = Linear(dim, dim)
        self.kv = Linear(dim, 2 * dim)
        self.proj = Linear(dim, dim)
        self.norm = LayerNorm(dim, eps=spec.norm_eps)
        self.mlp = VisionMlp(dim, int(dim * (spec.attn_pool_mlp_ratio or spec.mlp_ratio)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q = self.q(self.latent).view(1, 1, self.num_heads, self.head_dim).transpose(1, 2).expand(batch, -1, -1, -1)
        k, v = self.kv(x).view(batch, seq, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        pooled = self.run(attention, q, k, v, None, self.head_dim**-0.5)
        pooled = pooled.transpose(1, 2).reshape(batch, dim)
        pooled = self.proj(pooled)
        return pooled + self.mlp(self.norm(pooled))


class PeCoreVisionTransformer(nn.Module):
    """The ViT itself (timm's ``Eva`` as configured by ``vit_pe_core_*``): images → class logits."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        self.spec = spec
        dim = spec.embed_dim
        num_patches = spec.grid_size[0] * spec.grid_size[1]
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if spec.class_token else None
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + spec.num_prefix_tokens, dim) * 0.02)
        self.patch_embed = PatchEmbed(spec)
        self.norm_pre = LayerNorm(dim, eps=spec.norm_eps) if spec.use_pre_transformer_norm else nn.Identity()
        self.blocks = nn.ModuleList(VisionBlock(spec) for _ in range(spec.depth))
        self.norm = LayerNorm(dim, eps=spec.norm_eps) if spec.post_norm else nn.Identity()
        self.attn_pool = AttentionPool(spec) if spec.global_pool == "map" else None
        self.fc_norm = LayerNorm(dim, eps=spec.norm_eps) if spec.fc_norm else nn.Identity()
        self.head = Linear(dim, spec.num_classes) if spec.num_classes > 0 else nn.Identity()

    def forward_features(self, pixel_values: torch.Tensor, intermediates: list | None = None) -> torch.Tensor:
        """``(N, C, H, W)`` → final token states ``(N, prefix + patches, dim)`` (after ``norm``); with an
        ``intermediates`` list, each block's output is appended to it."""
        x = self.patch_embed(pixel_values)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.norm_pre(x + self.pos_embed)
        cos, sin = vision_rope_tables(self.spec, x.device, x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
            if intermediates is not None:
                intermediates.append(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the token states to ``(N, dim)`` and, unless ``pre_logits``, apply the classifier."""
        if self.attn_pool is not None:
            pooled = self.attn_pool(x)
        elif self.spec.global_pool == "token":
            pooled = x[:, 0]
        else:
            pooled = x[:, self.spec.num_prefix_tokens :].mean(dim=1)
        pooled = self.fc_norm(pooled)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(pixel_values))


# --------------------------------------------------------------------------------------------------
# Input checks and the loadable model


def check_pixel_values(
    pixel_values: object, name: str, spec: VisionSpec, rank: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Validate finite float pixels of shape ``(..., in_chans, H, W)`` with ``rank`` dims and the configured
    size; NaN/Inf (also after the cast to ``dtype``) is a ``ValueError``."""
    layout = "(batch, channels, height, width)" if rank == 4 else "(batch, frames, channels, height, width)"
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {describe_type(pixel_values)}")
    if not pixel_values.is_floating_point():
        raise TypeError(
            f"{name} must hold normalized floating point pixels (as the processor produces), got dtype "
            f"{pixel_values.dtype}; convert integer frames with the processor or scale them yourself"
        )
    if pixel_values.dim() != rank:
        raise ValueError(f"{name} must have {rank} dims {layout}, got shape {tuple(pixel_values.shape)}")
    if pixel_values.shape[-3] != spec.in_chans:
        raise ValueError(
            f"{name} must have {spec.in_chans} channels at dim {rank - 3}, got shape {tuple(pixel_values.shape)}"
        )
    if tuple(pixel_values.shape[-2:]) != spec.img_size:
        raise ValueError(
            f"{name} has frames of {tuple(pixel_values.shape[-2:])} pixels but the vision tower is configured for "
            f"{spec.img_size} (height, width); resize frames to that size"
        )
    if any(n == 0 for n in pixel_values.shape[: rank - 3]):
        raise ValueError(f"{name} is empty: shape {tuple(pixel_values.shape)}")
    if pixel_values.device != device:
        raise ValueError(f"{name} is on {pixel_values.device} but the model is on {device}")
    return check_finite(pixel_values.to(dtype), name)


class PeVisionModel(PePreTrainedModel):
    """A PE-Core ViT classifier loadable from a transformers ``timm_wrapper`` checkpoint.

    Same keys as ``TimmWrapperForImageClassification`` (``timm_model.*``) and same logits; transformers'
    ``PeVideoEncoder`` holds one as ``embedder.vision_model``.
    """

    config_class = TimmVisionConfig
    main_input_name = "pixel_values"
    model_tags = ["timm"]  # transformers' TimmWrapper tags its pushed models so

    def __init__(self, config: TimmVisionConfig) -> None:
        super().__init__(config)
        self.spec = VisionSpec.from_config(config)
        record_num_labels(config)
        self.timm_model = PeCoreVisionTransformer(self.spec)
        self._maybe_init_weights()

    def get_input_embeddings(self) -> None:
        """None: a ViT has no token embedding (as transformers' TimmWrapper)."""
        return None

    def set_input_embeddings(self, value: object) -> None:
        raise NotImplementedError("TimmWrapper models do not own token embeddings and cannot set them.")

    @property
    def num_classes(self) -> int:
        """Width of the logits (``embed_dim`` when the config asks for no classifier)."""
        return self.spec.num_classes or self.spec.embed_dim

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, *, config: TimmVisionConfig | None = None, **kwargs: Any
    ) -> PeVisionModel:
        """Load a ``timm_wrapper`` checkpoint directory; see :meth:`PePreTrainedModel.from_pretrained`."""
        if config is None:
            path = resolve_model_dir(path)
            config = TimmVisionConfig.from_dict(
                read_json_object(Path(path) / "config.json", "the model's configuration")
            )
        return super().from_pretrained(path, config=config, **kwargs)  # type: ignore[return-value]

    @torch.no_grad()
    def init_weights(self) -> None:
        """Random init for models built from a config: normal Linear weights, residual projections scaled
        down with depth as timm does; class token, positions and pool latent keep their constructor init."""
        super().init_weights()
        vit = self.timm_model
        for layer_id, block in enumerate(vit.blocks):
            block.attn.proj.weight.div_(math.sqrt(2.0 * (layer_id + 1)))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * (layer_id + 1)))

    def forward(
        self,
        pixel_values: torch.Tensor,
        *,
        output_attentions: bool | None = None,
        output_hidden_states: bool | list[int] | None = None,
        return_dict: bool | None = None,
    ) -> ImageClassifierOutput | tuple:
        """Classify ``(N, in_chans, H, W)`` finite float images of the configured size (NaN/Inf is a
        ``ValueError``); returns ``logits`` ``(N, classes)``.

        As transformers' ``TimmWrapperForImageClassification`` (each option None: the config's):
        ``output_hidden_states`` True returns every block's output, a list of ints those blocks
        (negative from the end), as a list of ``(N, dim, H / patch, W / patch)`` patch-token maps;
        ``output_attentions`` is refused (``ValueError``); ``return_dict=False`` returns
        ``(logits, hidden_states)`` without the Nones.
        """
        if call_option(output_attentions, self.config, "output_attentions"):
            raise ValueError("Cannot set `output_attentions` for timm models.")
        selected = self._selected_blocks(call_option(output_hidden_states, self.config, "output_hidden_states"))
        pixel_values = check_pixel_values(pixel_values, "pixel_values", self.spec, 4, self.dtype, self.device)
        vit = self.timm_model
        blocks: list[torch.Tensor] | None = None if selected is None else []
        logits = vit.forward_head(vit.forward_features(pixel_values, blocks))
        hidden_states = None if blocks is None else [self._patch_map(blocks[i]) for i in selected]
        output = ImageClassifierOutput(logits=logits, hidden_states=hidden_states)
        return finish(output, call_option(return_dict, self.config, "return_dict"))

    def _selected_blocks(self, output_hidden_states: object) -> list[int] | None:
        """Block indices ``output_hidden_states`` asks for (timm's ``feature_take_indices``), None for none."""
        if not output_hidden_states:
            return None
        depth = self.spec.depth
        if not isinstance(output_hidden_states, (list, tuple)):
            return list(range(depth))
        selected = []
        for index in output_hidden_states:
            absolute = depth + index if index < 0 else index
            if not 0 <= absolute < depth:
                raise ValueError(f"output_hidden_states: block index {index} is out of range for {depth} blocks")
            selected.append(absolute)
        return sorted(set(selected))  # timm walks the blocks once: each chosen block once, in order

    def _patch_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(N, prefix + patches, dim)`` block output → ``(N, dim, grid_h, grid_w)`` (prefix tokens dropped)."""
        height, width = self.spec.grid_size
        patches = tokens[:, self.spec.num_prefix_tokens :]
        return patches.reshape(tokens.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous()
