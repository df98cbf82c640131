"""PE-Core ViT hyper-parameters: the table of timm's ``vit_pe_core_*`` variants and :class:`VisionSpec`.

The checkpoint describes the ViT as transformers' ``timm_wrapper`` does: an ``architecture`` name, a
``model_args`` dict of overrides and a number of classes. :meth:`VisionSpec.from_config` resolves those
into hyper-parameters; any ``model_args`` key we do not implement is an error rather than being
silently ignored.

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

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..config import TimmVisionConfig

__all__ = ["PE_CORE_ARCHITECTURES", "VisionSpec", "vision_num_classes", "record_num_labels"]

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
