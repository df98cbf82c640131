"""PE-Core vision transformer: the per-frame image encoder of PE-AV (timm's ``vit_pe_core_*``).

The checkpoint describes it as transformers' ``timm_wrapper`` does: an ``architecture`` name, a
``model_args`` dict of overrides and a number of classes. :class:`VisionSpec` resolves those into
hyper-parameters from a table of the known PE-Core variants; any ``model_args`` key we do not
implement is an error rather than being silently ignored.

Layout (attribute names equal the checkpoint's keys under ``timm_model.``): ``patch_embed.proj``
(Conv2d, no bias) → prepend ``cls_token`` → add ``pos_embed`` → ``norm_pre`` → ``blocks`` (pre-norm
LayerNorm, attention with 2D RoPE on the patch tokens, GELU MLP) → ``norm`` → ``attn_pool`` (one
learned latent query attends over all tokens, then a residual MLP) → ``head``.

Head size: transformers builds the classifier with ``num_labels`` outputs, which it reads from a
``num_labels``/``id2label`` entry and otherwise leaves at 2; ``num_classes`` is ignored (so the
reference's default config, ``num_classes=1024``, gets a 1024→2 head). When it saves, it writes
``label_names`` with one entry per built output. :func:`vision_num_classes` therefore reads, in order,
``num_labels``, ``id2label``, ``label_names`` and only then ``num_classes``: every config.json the
reference writes gives the shapes it built, and a config naming only ``num_classes`` gets the intended
head instead of the 2-way one. When such a config is saved we add ``num_labels`` so that transformers
builds the same head. The config's top-level ``global_pool``/``do_pooling`` are not passed to timm by
transformers' classifier wrapper, so only ``model_args.global_pool`` (default ``'map'``) counts here too.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TimmVisionConfig
from ..dispatch import warn_once
from ..loading import resolve_model_dir
from .base import PePreTrainedModel
from .inputs import check_finite, describe_type
from .layers import BackendOp, Linear, apply_rope_interleaved, attention_eager, attention_sdpa
from .outputs import ImageClassifierOutput

__all__ = [
    "PE_CORE_ARCHITECTURES",
    "VisionSpec",
    "vision_num_classes",
    "rope_2d_cos_sin",
    "PeCoreVisionTransformer",
    "PeVisionModel",
    "check_pixel_values",
]

# --------------------------------------------------------------------------------------------------
# Architecture table and config resolution

_PE_CORE_COMMON: dict[str, Any] = dict(
    mlp_ratio=4.0,
    global_pool="map",
    class_token=True,
    use_pre_transformer_norm=True,
    rope_grid_offset=1.0,
    rope_grid_indexing="xy",
    attn_pool_num_heads=8,
    attn_pool_mlp_ratio=4.0,
)

#: Defaults of the PE-Core variants timm registers (image size from their pretrained configs).
PE_CORE_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "vit_pe_core_tiny_patch16_384": dict(
        _PE_CORE_COMMON, img_size=384, patch_size=16, embed_dim=192, depth=12, num_heads=3, ref_feat_shape=24
    ),
    "vit_pe_core_small_patch16_384": dict(
        _PE_CORE_COMMON, img_size=384, patch_size=16, embed_dim=384, depth=12, num_heads=6, ref_feat_shape=24
    ),
    "vit_pe_core_base_patch16_224": dict(
        _PE_CORE_COMMON, img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, ref_feat_shape=14
    ),
    "vit_pe_core_large_patch14_336": dict(
        _PE_CORE_COMMON, img_size=336, patch_size=14, embed_dim=1024, depth=24, num_heads=16, ref_feat_shape=24
    ),
    "vit_pe_core_gigantic_patch14_448": dict(
        _PE_CORE_COMMON, img_size=448, patch_size=14, embed_dim=1536, depth=50, num_heads=16,
        mlp_ratio=8960 / 1536, class_token=False, ref_feat_shape=32, rope_grid_offset=0.0,
    ),
}

# timm arguments whose other settings select code paths PE-Core does not use: accepted only at these values
_FIXED_ARGS: dict[str, Any] = {
    "attn_type": "rope",
    "use_rot_pos_emb": True,
    "rope_type": "cat",
    "rope_rotate_half": False,
    "use_abs_pos_emb": True,
    "no_embed_class": False,
    "num_reg_tokens": 0,
    "qkv_fused": True,
    "qk_norm": False,
    "swiglu_mlp": False,
    "scale_mlp": False,
    "scale_attn_inner": False,
    "use_post_norm": False,
    "dynamic_img_size": False,
    "dynamic_img_pad": False,
    "drop_rate": 0.0,
    "pos_drop_rate": 0.0,
    "patch_drop_rate": 0.0,
    "proj_drop_rate": 0.0,
    "attn_drop_rate": 0.0,
    "drop_path_rate": 0.0,
}

_POOLS = ("map", "token", "avg")


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        pair = tuple(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    else:
        raise ValueError(f"vision_config.model_args.{name} must be an int or a pair of ints, got {value!r}")
    if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in pair):
        raise ValueError(f"vision_config.model_args.{name} must hold positive integers, got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class VisionSpec:
    """Resolved hyper-parameters of a PE-Core ViT (timm ``Eva`` argument names)."""

    img_size: tuple[int, int]
    patch_size: tuple[int, int]
    embed_dim: int
    depth: int
    num_heads: int
    num_classes: int
    in_chans: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    global_pool: str = "map"
    use_pre_transformer_norm: bool = False
    use_post_transformer_norm: bool | None = None
    use_fc_norm: bool | None = None
    attn_pool_num_heads: int | None = None
    attn_pool_mlp_ratio: float | None = None
    ref_feat_shape: tuple[int, int] | None = None
    rope_grid_offset: float = 0.0
    rope_grid_indexing: str = "ij"
    rope_temperature: float = 10000.0
    init_values: float | None = None
    norm_eps: float = 1e-5

    @classmethod
    def from_config(cls, config: TimmVisionConfig) -> VisionSpec:
        """Defaults of ``config.architecture`` overridden by ``config.model_args``; errors name the bad key."""
        if config.architecture not in PE_CORE_ARCHITECTURES:
            raise ValueError(
                f"vision_config.architecture {config.architecture!r} is not supported; pe_av implements "
                f"{sorted(PE_CORE_ARCHITECTURES)}"
            )
        args = dict(PE_CORE_ARCHITECTURES[config.architecture])
        known = {f.name for f in fields(cls)} - {"num_classes", "norm_eps"}
        for key, value in (config.model_args or {}).items():
            if key in _FIXED_ARGS:
                if value != _FIXED_ARGS[key]:
                    raise ValueError(
                        f"vision_config.model_args.{key}={value!r} is not supported by pe_av's PE-Core ViT "
                        f"(only {_FIXED_ARGS[key]!r})"
                    )
            elif key == "num_classes":
                raise ValueError("vision_config.model_args must not set num_classes; set vision_config.num_classes")
            elif key not in known:
                raise ValueError(f"vision_config.model_args.{key} is not supported by pe_av's PE-Core ViT")
            else:
                args[key] = value
        args["img_size"] = _pair(args["img_size"], "img_size")
        args["patch_size"] = _pair(args["patch_size"], "patch_size")
        if args.get("ref_feat_shape") is not None:
            args["ref_feat_shape"] = _pair(args["ref_feat_shape"], "ref_feat_shape")
        spec = cls(num_classes=vision_num_classes(config), **args)
        spec._validate()
        return spec

    def _validate(self) -> None:
        for name in ("embed_dim", "depth", "num_heads", "in_chans"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"vision_config.model_args.{name} must be a positive integer, got {value!r}")
        if self.global_pool not in _POOLS:
            raise ValueError(f"vision_config.model_args.global_pool must be one of {_POOLS}, got {self.global_pool!r}")
        if self.global_pool == "token" and not self.class_token:
            raise ValueError("vision_config.model_args: global_pool='token' needs class_token=True")
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError(
                f"vision_config.model_args: embed_dim ({self.embed_dim}) / num_heads ({self.num_heads}) must be an "
                "integer head size divisible by 4 (2D RoPE rotates x and y pairs)"
            )
        if self.global_pool == "map" and self.embed_dim % self.pool_heads:
            raise ValueError(
                f"vision_config.model_args: embed_dim ({self.embed_dim}) must be divisible by "
                f"attn_pool_num_heads ({self.pool_heads})"
            )
        if self.rope_grid_indexing not in ("ij", "xy"):
            raise ValueError(
                f"vision_config.model_args.rope_grid_indexing must be 'ij' or 'xy', got {self.rope_grid_indexing!r}"
            )
        if any(i < p for i, p in zip(self.img_size, self.patch_size)):
            raise ValueError(
                f"vision_config.model_args: img_size {self.img_size} is smaller than patch_size {self.patch_size}"
            )

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patches per column and per row (timm floors a remainder away)."""
        return (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.class_token else 0

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def pool_heads(self) -> int:
        return self.attn_pool_num_heads or self.num_heads

    @property
    def fc_norm(self) -> bool:
        return self.use_fc_norm if self.use_fc_norm is not None else self.global_pool == "avg"

    @property
    def post_norm(self) -> bool:
        return self.use_post_transformer_norm if self.use_post_transformer_norm is not None else not self.fc_norm


def vision_num_classes(config: TimmVisionConfig) -> int:
    """Classifier outputs for ``config`` (see the module docstring for why ``label_names`` comes first)."""
    extra = config.extra
    if "num_labels" in extra:
        value = extra["num_labels"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"vision_config.num_labels must be a non-negative integer, got {value!r}")
        return value
    for key in ("id2label", "label_names"):
        labels = extra.get(key)
        if isinstance(labels, (Mapping, list)):
            return len(labels)
    return config.num_classes


def record_num_labels(config: TimmVisionConfig) -> None:
    """Write ``num_labels`` into ``config`` when ``num_classes`` or ``label_names`` sized the head.

    transformers reads neither when it loads a file back, so without this a checkpoint we save with a
    head other than 2-way would not load there.
    """
    extra = config.extra
    if not any(key in extra for key in ("num_labels", "id2label")):
        extra["num_labels"] = vision_num_classes(config)


# --------------------------------------------------------------------------------------------------
# 2D rotary embedding


def rope_2d_cos_sin(spec: VisionSpec, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos``/``sin`` tables ``(num_patches, head_dim // 2)`` of timm's axial RoPE, patches row-major.

    Pair ``i < head_dim // 4`` rotates by the first grid coordinate times frequency ``i``; the next
    ``head_dim // 4`` pairs use the second coordinate. With ``'xy'`` indexing the first coordinate is the
    column. Coordinates are ``index + offset``, rescaled to ``ref_feat_shape`` when one is set.
    Computed in fp32 (as timm caches them) and cast to ``dtype`` last.
    """
    rows_n, cols_n = spec.grid_size
    bands_n = spec.head_dim // 4
    exponents = torch.arange(bands_n, device=device, dtype=torch.float32) / bands_n
    bands = 1.0 / (spec.rope_temperature**exponents)
    rows = torch.arange(rows_n, device=device, dtype=torch.float32) + spec.rope_grid_offset
    cols = torch.arange(cols_n, device=device, dtype=torch.float32) + spec.rope_grid_offset
    if spec.ref_feat_shape is not None:
        rows = rows / rows_n * spec.ref_feat_shape[0]
        cols = cols / cols_n * spec.ref_feat_shape[1]
    row_grid, col_grid = torch.meshgrid(rows, cols, indexing="ij")
    first, second = (col_grid, row_grid) if spec.rope_grid_indexing == "xy" else (row_grid, col_grid)
    coords = torch.stack((first, second), dim=-1).reshape(rows_n * cols_n, 2)
    angles = (coords[:, :, None] * bands).reshape(rows_n * cols_n, 2 * bands_n)
    return angles.cos().to(dtype), angles.sin().to(dtype)


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


class VisionMlp(nn.Module):
    """``fc2(gelu(fc1(x)))`` with biases, exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _attend(op: str, backend: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    if backend == "eager":
        return attention_eager(q, k, v, None, scale)
    if backend == "triton":
        # No ViT kernel yet. Fall back to the fused form rather than eager: hundreds of frames of
        # 577 tokens would make eager attention the slowest part of the whole model.
        warn_once(f"{op}: attn_impl='triton' has no Triton kernel for the ViT yet; it runs PyTorch's fused sdpa")
    return attention_sdpa(q, k, v, None, scale)


class VisionAttention(BackendOp):
    """Fused-qkv multi-head self-attention; RoPE rotates patch tokens only, never the class token."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        self.num_heads = spec.num_heads
        self.head_dim = spec.head_dim
        self.num_prefix_tokens = spec.num_prefix_tokens
        self.scale = self.head_dim**-0.5
        self.qkv = Linear(spec.embed_dim, 3 * spec.embed_dim, bias=spec.qkv_bias)
        self.proj = Linear(spec.embed_dim, spec.embed_dim)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        npt = self.num_prefix_tokens
        if npt == 0:
            return apply_rope_interleaved(x, cos, sin)
        return torch.cat((x[:, :, :npt], apply_rope_interleaved(x[:, :, npt:], cos, sin)), dim=2)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
        out = _attend("VisionAttention", self.backend, q, k, v, self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, seq, dim))


class VisionBlock(nn.Module):
    """Pre-norm block: x + [γ₁·] attn(norm1(x)); x + [γ₂·] mlp(norm2(x)) (γ = LayerScale if configured)."""

    def __init__(self, spec: VisionSpec) -> None:
        super().__init__()
        dim = spec.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=spec.norm_eps)
        self.attn = VisionAttention(spec)
        self.norm2 = nn.LayerNorm(dim, eps=spec.norm_eps)
        self.mlp = VisionMlp(dim, int(dim * spec.mlp_ratio))
        if spec.init_values is not None:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(spec.init_values)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(spec.init_values)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        attn = self.attn(self.norm1(x), cos, sin)
        x = x + (attn if self.gamma_1 is None else self.gamma_1 * attn)
        mlp = self.mlp(self.norm2(x))
        return x + (mlp if self.gamma_2 is None else self.gamma_2 * mlp)


class AttentionPool(BackendOp):
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
        self.norm = nn.LayerNorm(dim, eps=spec.norm_eps)
        self.mlp = VisionMlp(dim, int(dim * (spec.attn_pool_mlp_ratio or spec.mlp_ratio)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q = self.q(self.latent).view(1, 1, self.num_heads, self.head_dim).transpose(1, 2).expand(batch, -1, -1, -1)
        k, v = self.kv(x).view(batch, seq, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        pooled = _attend("AttentionPool", self.backend, q, k, v, self.head_dim**-0.5)
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
        self.norm_pre = nn.LayerNorm(dim, eps=spec.norm_eps) if spec.use_pre_transformer_norm else nn.Identity()
        self.blocks = nn.ModuleList(VisionBlock(spec) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(dim, eps=spec.norm_eps) if spec.post_norm else nn.Identity()
        self.attn_pool = AttentionPool(spec) if spec.global_pool == "map" else None
        self.fc_norm = nn.LayerNorm(dim, eps=spec.norm_eps) if spec.fc_norm else nn.Identity()
        self.head = Linear(dim, spec.num_classes) if spec.num_classes > 0 else nn.Identity()

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` → final token states ``(N, prefix + patches, dim)`` (after ``norm``)."""
        x = self.patch_embed(pixel_values)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.norm_pre(x + self.pos_embed)
        cos, sin = rope_2d_cos_sin(self.spec, x.device, x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
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

    def __init__(self, config: TimmVisionConfig) -> None:
        super().__init__(config)
        self.spec = VisionSpec.from_config(config)
        record_num_labels(config)
        self.timm_model = PeCoreVisionTransformer(self.spec)
        self._maybe_init_weights()

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
            config_path = os.path.join(path, "config.json")
            if not os.path.isfile(config_path):
                raise FileNotFoundError(f"no config.json in {path!r}")
            with open(config_path, encoding="utf-8") as fh:
                config = TimmVisionConfig.from_dict(json.load(fh))
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

    def forward(self, pixel_values: torch.Tensor) -> ImageClassifierOutput:
        """Classify ``(N, in_chans, H, W)`` finite float images of the configured size (NaN/Inf is a
        ``ValueError``); returns ``logits`` ``(N, classes)``."""
        pixel_values = check_pixel_values(pixel_values, "pixel_values", self.spec, 4, self.dtype, self.device)
        return ImageClassifierOutput(logits=self.timm_model(pixel_values))
