"""Key mapping from Meta's original checkpoints (``perception_models``, ``core/audio_visual_encoder``) to
pe_av's (= transformers') layout, one function per part.

Every function takes keys out of a :class:`Source` (the original state dict) and puts the tensors under
our names into ``out``; a key a part needs but does not find is recorded as missing, and whatever no
part took is reported as unknown by :func:`map_state_dict`. Keys are taken by exact name, so an
original checkpoint with extra or misspelled weights fails instead of being partly loaded.

The original's names, per part (``P`` = a PE transformer prefix, ``V`` = the PE-Core ViT prefix):

- PE transformer ``P``: ``embeddings.cls_token``, ``embeddings.resnet_block.block{1,2}.*``,
  ``layers.N.*`` (same names as ours), ``norm``, ``output`` → ``patch_embedder.class_embedding``,
  ``patch_embedder.resnet_block.*``, ``layers.N.*``, ``norm``, ``output``.
- DAC: ``dac_vae_encoder.encoder.*`` (transformers' ``DacEncoder`` names, as ours) and
  ``dac_vae_encoder.bottleneck.in_proj`` of which the original uses the first ``codebook_dim`` output
  channels (the VAE mean); the log-variance half and ``bottleneck.out_proj`` are never used.
- PE-Core ViT ``V``: ``conv1``, ``class_embedding``, ``positional_embedding``, ``ln_pre``,
  ``transformer.resblocks.N.{ln_1,attn.in_proj_*,attn.out_proj,ln_2,mlp.c_fc,mlp.c_proj}``, ``ln_post``,
  ``attn_pool.{probe,attn.in_proj_*,attn.out_proj,layernorm,mlp.*}``, ``proj`` (width × output dim) →
  timm's ``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``norm_pre``, ``blocks.N.*``, ``norm``,
  ``attn_pool.{latent,q,kv,proj,norm,mlp}`` (the pool's fused qkv split into q and kv) and ``head`` (the
  projection transposed, with a zero bias).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch

__all__ = ["Source", "map_state_dict"]

Tensors = dict[str, torch.Tensor]


class Source:
    """The original state dict, consumed key by key: what is taken is recorded, what is missing too."""

    def __init__(self, state: Tensors) -> None:
        self.state = dict(state)
        self.taken: set[str] = set()
        self.missing: list[str] = []
        #: original keys (or parts of them) the original never uses, left out
        self.dropped: list[str] = []
        #: our key → the original key it came from (for error messages about shapes)
        self.origin: dict[str, str] = {}

    def take(self, key: str) -> torch.Tensor | None:
        if key not in self.state:
            self.missing.append(key)
            return None
        self.taken.add(key)
        return self.state[key]

    def drop_prefix(self, prefix: str, keep: Iterable[str] = ()) -> list[str]:
        """Mark every key under ``prefix`` as taken (weights the original never uses); returns them."""
        keep = set(keep)
        dropped = [k for k in self.state if k.startswith(prefix) and k not in keep]
        self.taken.update(dropped)
        self.dropped += dropped
        return dropped

    def move(self, out: Tensors, src: str, dst: str) -> None:
        tensor = self.take(src)
        if tensor is not None:
            out[dst] = tensor
            self.origin[dst] = src

    def move_prefix(self, out: Tensors, src: str, dst: str) -> None:
        """Move every key under ``src`` not yet taken to the same suffix under ``dst`` (parts named as ours)."""
        for key in [k for k in self.state if k.startswith(src) and k not in self.taken]:
            self.move(out, key, dst + key[len(src):])

    def untaken(self) -> list[str]:
        return sorted(k for k in self.state if k not in self.taken)


# --------------------------------------------------------------------------------------------------
# Parts


def _layer_indices(src: Source, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in src.state if (m := pattern.match(k))})


def map_pe_transformer(src: Source, out: Tensors, old: str, new: str, num_layers: int, bias: bool) -> None:
    """One PE transformer (audio, video or fusion stack)."""
    src.move(out, old + "embeddings.cls_token", new + "patch_embedder.class_embedding")
    for block in ("block1", "block2"):
        for name in ("groupnorm.weight", "groupnorm.bias", "project.weight", "project.bias"):
            src.move(out, f"{old}embeddings.resnet_block.{block}.{name}", f"{new}patch_embedder.resnet_block.{block}.{name}")
    params = ["input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_norm.weight",
              "self_attn.k_norm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"]
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        params += [f"self_attn.{proj}.weight"] + ([f"self_attn.{proj}.bias"] if bias else [])
    for i in range(num_layers):
        for name in params:
            src.move(out, f"{old}layers.{i}.{name}", f"{new}layers.{i}.{name}")
    src.move(out, old + "norm.weight", new + "norm.weight")
    src.move(out, old + "output.weight", new + "output.weight")


def map_dac(src: Source, out: Tensors, old: str, new: str, codebook_dim: int) -> None:
    """The DAC encoder (names as ours) and the VAE bottleneck's mean half."""
    src.move_prefix(out, old + "encoder.", new + "dac_encoder.")
    for name in ("weight", "bias"):
        full = src.take(f"{old}bottleneck.in_proj.{name}")
        if full is not None:
            if full.shape[0] != 2 * codebook_dim:
                raise ValueError(
                    f"{old}bottleneck.in_proj.{name} has {full.shape[0]} output channels; the VAE bottleneck "
                    f"needs 2 × codebook_dim = {2 * codebook_dim} (mean and log-variance)"
                )
            out[f"{new}bottleneck.{name}"] = full[:codebook_dim]
            note = f"{old}bottleneck.in_proj.{name}[{codebook_dim}:] (the log-variance half)"
            src.dropped.append(note)
            src.origin[f"{new}bottleneck.{name}"] = f"{old}bottleneck.in_proj.{name}"
    src.drop_prefix(old + "bottleneck.out_proj.")  # the decoder side of the VAE: never used


def map_audio_encoder(src: Source, out: Tensors, old: str, new: str, config) -> None:
    """The original ``AudioEncoder`` → our ``PeAudioEncoder``."""
    map_dac(src, out, old + "dac_vae_encoder.", new + "embedder.", config.dac_config.codebook_dim)
    src.move(out, old + "data_proj.weight", new + "embedder.data_proj.weight")
    src.move(out, old + "data_proj.bias", new + "embedder.data_proj.bias")
    map_pe_transformer(src, out, old + "audio_transformer.", new, config.num_hidden_layers, config.attention_bias)


def map_vit(src: Source, out: Tensors, old: str, new: str, depth: int) -> None:
    """The original PE-Core ``VisionTransformer`` → timm's layout (our ``PeVisionModel``)."""
    src.move(out, old + "conv1.weight", new + "patch_embed.proj.weight")
    cls = src.take(old + "class_embedding")
    if cls is not None:
        out[new + "cls_token"] = cls.reshape(1, 1, -1)
        src.origin[new + "cls_token"] = old + "class_embedding"
    pos = src.take(old + "positional_embedding")
    if pos is not None:
        out[new + "pos_embed"] = pos.unsqueeze(0)
        src.origin[new + "pos_embed"] = old + "positional_embedding"
    for a, b in (("ln_pre", "norm_pre"), ("ln_post", "norm")):
        for name in ("weight", "bias"):
            src.move(out, f"{old}{a}.{name}", f"{new}{b}.{name}")
    renames = {"ln_1": "norm1", "ln_2": "norm2", "attn.out_proj": "attn.proj", "mlp.c_fc": "mlp.fc1",
               "mlp.c_proj": "mlp.fc2"}
    for i in range(depth):
        block_old, block_new = f"{old}transformer.resblocks.{i}.", f"{new}blocks.{i}."
        src.move(out, block_old + "attn.in_proj_weight", block_new + "attn.qkv.weight")
        src.move(out, block_old + "attn.in_proj_bias", block_new + "attn.qkv.bias")
        for a, b in renames.items():
            for name in ("weight", "bias"):
                src.move(out, f"{block_old}{a}.{name}", f"{block_new}{b}.{name}")
    pool_old, pool_new = old + "attn_pool.", new + "attn_pool."
    src.move(out, pool_old + "probe", pool_new + "latent")
    for name in ("weight", "bias"):
        fused = src.take(f"{pool_old}attn.in_proj_{name}")
        if fused is not None:
            width = fused.shape[0] // 3
            out[f"{pool_new}q.{name}"], out[f"{pool_new}kv.{name}"] = fused[:width], fused[width:]
            src.origin[f"{pool_new}q.{name}"] = src.origin[f"{pool_new}kv.{name}"] = f"{pool_old}attn.in_proj_{name}"
        for a, b in (("attn.out_proj", "proj"), ("layernorm", "norm"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            src.move(out, f"{pool_old}{a}.{name}", f"{pool_new}{b}.{name}")
    proj = src.take(old + "proj")
    if proj is not None:
        out[new + "head.weight"] = proj.t()
        out[new + "head.bias"] = proj.new_zeros(proj.shape[1])  # the original's projection has no bias
        src.origin[new + "head.weight"] = src.origin[new + "head.bias"] = old + "proj"


def map_video_encoder(src: Source, out: Tensors, old: str, new: str, config) -> None:
    """The original ``VisualEncoder`` → our ``PeVideoEncoder``."""
    depth = _vit_depth(config)
    map_vit(src, out, old + "pe_encoder.", new + "embedder.vision_model.timm_model.", depth)
    src.move(out, old + "proj.weight", new + "embedder.proj.weight")
    src.move(out, old + "data_proj.weight", new + "embedder.data_proj.weight")
    src.move(out, old + "data_proj.bias", new + "embedder.data_proj.bias")
    map_pe_transformer(src, out, old + "visual_transformer.", new, config.num_hidden_layers, config.attention_bias)


def _vit_depth(config) -> int:
    # the models layer, imported only when a ViT is mapped
    from ..models.vision_spec import VisionSpec

    return VisionSpec.from_config(config.vision_config).depth


def map_fusion(src: Source, out: Tensors, old: str, new: str, config) -> None:
    """The original ``AVTransformer`` (its aligner and projections) → our fusion encoder's own weights."""
    for a, b in (("modality_aligner.conv", "video_proj"), ("modality_aligner.layer_norm", "video_norm"),
                 ("concat_modality_proj", "concat_modality_proj"), ("data_proj", "data_proj")):
        for name in ("weight", "bias"):
            src.move(out, f"{old}{a}.{name}", f"{new}embedder.{b}.{name}")
    map_pe_transformer(src, out, old, new, config.num_hidden_layers, config.attention_bias)


def map_text(src: Source, out: Tensors, num_layers: int) -> None:
    """The ModernBERT tower (names as ours); layers past ``num_layers`` are dropped (the original never
    runs them: it takes an earlier layer's output)."""
    for i in _layer_indices(src, "text_model.layers."):
        if i >= num_layers:
            src.drop_prefix(f"text_model.layers.{i}.")
    src.move_prefix(out, "text_model.", "text_model.")


def map_head(src: Source, out: Tensors, old: str, new: str) -> None:
    """A contrastive head (LayerNorm → Linear without bias), names as ours."""
    for name in ("layer_norm.weight", "layer_norm.bias", "proj.weight"):
        src.move(out, f"{old}.{name}", f"{new}.{name}")


#: the original PEAudioVisual's heads → ours
AV_HEADS = {
    "audio_visual_text_head": "text_audio_video_head",
    "audio_text_head": "audio_model.text_audio_head",
    "visual_text_head": "video_model.text_video_head",
    "audio_visual_head": "audio_video_head",
    "audio_head": "audio_model.audio_head",
    "visual_head": "video_model.video_head",
    "visual_plus_text_head": "video_plus_text_head",
    "audio_plus_text_head": "audio_plus_text_head",
}


def map_state_dict(state: Tensors, kind: str, config) -> tuple[Tensors, Source]:
    """Map the whole original state dict of ``kind`` (``"pe_audio_video"`` or ``"pe_audio_frame"``) for our
    ``config``. Returns our tensors and the consumed :class:`Source` (its ``missing``, ``dropped``,
    ``origin`` and :meth:`~Source.untaken` keys)."""
    src, out = Source(state), {}
    map_text(src, out, config.text_config.num_hidden_layers)
    if kind == "pe_audio_video":
        fusion = config.audio_video_config
        base = "audio_visual_model."
        map_audio_encoder(src, out, base + "audio_model.", "audio_model.audio_encoder.", fusion.audio_config)
        map_video_encoder(src, out, base + "visual_model.", "video_model.video_encoder.", fusion.video_config)
        map_fusion(src, out, base + "audio_visual_transformer.", "audio_video_encoder.", fusion)
        for old, new in AV_HEADS.items():
            map_head(src, out, old, new)
    else:
        map_audio_encoder(src, out, "audio_model.", "audio_encoder.", config.audio_config)
        map_head(src, out, "text_head", "text_audio_head")
        map_head(src, out, "audio_head", "audio_head")
        src.move(out, "logit_scale", "text_audio_logit_scale")
        src.move(out, "logit_bias", "text_audio_logit_bias")
    return out, src
