"""What a checkpoint's safetensors header must show for a config, checked before any model is built.

A config with 10⁴ layers or a 10⁹-wide hidden size would take minutes (or overflow) to build before
the strict key comparison could say that the checkpoint does not match it. So ``from_pretrained``
first compares the config with the checkpoint's header (names and shapes only, no tensor data) using
a small description per config class, :data:`LAYOUTS`:

- :class:`Stack`: a numbered stack of modules (``layers.0.`` …) and the setting that counts it; the
  header must hold exactly that many distinct indices under the stack's prefix;
- :class:`Shape`: a key whose shape the config's sizes fix (``norm.weight`` is ``(hidden_size,)``);
- :class:`Child`: where a sub-config's modules sit (``text_config`` → ``text_model.``).

Keys are relative to the module the config builds; :func:`header_mismatches` walks the config tree,
joining prefixes, and returns one sentence per mismatch naming the config field by its path
(``audio_video_config.num_hidden_layers = 3 but the checkpoint has 2 layers (…)``). A key the header
lacks is not reported here: the strict comparison after the (now bounded) build on the meta device
names every missing key. Keys of tied sub-models may be stored under either name (``tied_prefixes``
of the model class, copy → original), so each prefix is looked up under all its aliases.

The descriptions cover what sizes a model: every stack (layers, ViT blocks, DAC blocks) and the widths
(hidden, intermediate, heads × head_dim, vocabulary, DAC channels and strides, ViT width, patch grid,
MLP and classifier). A config class without an entry is not checked here (only strictly, after the build).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from .base import ConfigBase
from .encoders import (
    DacConfig,
    PeAudioEncoderConfig,
    PeAudioVideoEncoderConfig,
    PeTransformerConfig,
    PeVideoEncoderConfig,
    TimmVisionConfig,
)
from .models import PeAudioConfig, PeAudioVideoConfig, PeVideoConfig
from .text import ModernBertConfig

__all__ = ["LAYOUTS", "Child", "Shape", "Stack", "header_mismatches"]


@dataclass(frozen=True)
class Stack:
    """``count`` modules numbered from 0 under ``prefix`` (``layers.``); ``setting`` says what sets the count."""

    setting: str
    count: int
    prefix: str
    unit: str = "layers"


@dataclass(frozen=True)
class Shape:
    """Key ``key`` has shape ``shape``, fixed by ``setting`` (e.g. ``"hidden_size = 24"``)."""

    setting: str
    key: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Child:
    """The sub-config in attribute ``field`` builds the modules under ``prefix``."""

    field: str
    prefix: str


Item = Union[Stack, Shape, Child]

# --------------------------------------------------------------------------------------------------
# The descriptions, one per config class


def _transformer(c: PeTransformerConfig) -> list[Item]:
    hidden, heads, kv, hd = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim
    items: list[Item] = [
        Stack(f"num_hidden_layers = {c.num_hidden_layers}", c.num_hidden_layers, "layers."),
        Shape(f"hidden_size = {hidden}", "norm.weight", (hidden,)),
    ]
    if c.num_hidden_layers:
        attn = "layers.0.self_attn."
        items += [
            Shape(f"intermediate_size = {c.intermediate_size}", "layers.0.mlp.gate_proj.weight", (c.intermediate_size, hidden)),
            Shape(f"num_attention_heads × head_dim = {heads} × {hd}", attn + "q_proj.weight", (heads * hd, hidden)),
            Shape(f"num_key_value_heads × head_dim = {kv} × {hd}", attn + "k_proj.weight", (kv * hd, hidden)),
            Shape(f"head_dim = {hd}", attn + "q_norm.weight", (hd,)),
        ]
    return items


def _dac(c: DacConfig) -> list[Item]:
    ratios, width = c.downsampling_ratios, c.encoder_hidden_size
    items: list[Item] = [
        Stack(f"downsampling_ratios = {ratios}", len(ratios), "block.", unit="blocks"),
        Shape(f"encoder_hidden_size = {width}", "conv1.weight", (width, 1, 7)),
        Shape(f"encoder_hidden_size = {width} doubled {len(ratios)} times", "conv2.weight", (c.hidden_size, c.hidden_size, 3)),
    ]
    for i, stride in enumerate(ratios):  # the strided conv of block i: kernel 2 × stride, width doubles
        items.append(Shape(f"downsampling_ratios[{i}] = {stride}", f"block.{i}.conv1.weight",
                           (width * 2 ** (i + 1), width * 2**i, 2 * stride)))
    return items


def _audio_encoder(c: PeAudioEncoderConfig) -> list[Item]:
    code = c.dac_config.codebook_dim
    return _transformer(c) + [
        Child("dac_config", "embedder.dac_encoder."),
        Shape(f"dac_config.codebook_dim = {code}", "embedder.bottleneck.weight", (code, c.dac_config.hidden_size, 1)),
        Shape(f"hidden_size = {c.hidden_size}", "embedder.data_proj.weight", (c.hidden_size, code)),
    ]


def _vision(c: TimmVisionConfig) -> list[Item]:
    from ..models.vision_spec import VisionSpec, vision_num_classes  # models import config: load lazily

    spec = VisionSpec.from_config(c)
    args = c.model_args or {}

    def setting(*names: str) -> str:
        return ", ".join(
            f"model_args.{n} = {args[n]!r}" if n in args else f"architecture = {c.architecture!r} ({n} {getattr(spec, n)!r})"
            for n in names
        )

    dim, vit = spec.embed_dim, "timm_model."
    tokens = spec.grid_size[0] * spec.grid_size[1] + spec.num_prefix_tokens
    items: list[Item] = [
        Stack(setting("depth"), spec.depth, vit + "blocks.", unit="blocks"),
        Shape(setting("embed_dim", "patch_size"), vit + "patch_embed.proj.weight", (dim, spec.in_chans, *spec.patch_size)),
        Shape(setting("img_size", "patch_size"), vit + "pos_embed", (1, tokens, dim)),
    ]
    if spec.depth:
        items.append(Shape(setting("mlp_ratio"), vit + "blocks.0.mlp.fc1.weight", (int(dim * spec.mlp_ratio), dim)))
    classes = vision_num_classes(c)
    if classes:
        which = next((k for k in ("num_labels", "id2label", "label_names") if k in c.extra), "num_classes")
        items.append(Shape(f"{which} ({classes} classifier outputs)", vit + "head.weight", (classes, dim)))
    return items


def _text(c: ModernBertConfig) -> list[Item]:
    hidden = c.hidden_size
    items: list[Item] = [
        Stack(f"num_hidden_layers = {c.num_hidden_layers}", c.num_hidden_layers, "layers."),
        Shape(f"vocab_size = {c.vocab_size}", "embeddings.tok_embeddings.weight", (c.vocab_size, hidden)),
        Shape(f"hidden_size = {hidden}", "final_norm.weight", (hidden,)),
    ]
    if c.num_hidden_layers:
        items.append(Shape(f"intermediate_size = {c.intermediate_size}", "layers.0.mlp.Wi.weight", (2 * c.intermediate_size, hidden)))
    return items


#: config class → its description (looked up by exact class, then along the class's bases)
LAYOUTS: dict[type[ConfigBase], Callable[[Any], list[Item]]] = {
    PeTransformerConfig: _transformer,
    DacConfig: _dac,
    PeAudioEncoderConfig: _audio_encoder,
    TimmVisionConfig: _vision,
    PeVideoEncoderConfig: lambda c: _transformer(c) + [Child("vision_config", "embedder.vision_model.")],
    PeAudioVideoEncoderConfig: lambda c: _transformer(c) + [
        Child("audio_config", "embedder.audio_encoder."), Child("video_config", "embedder.video_encoder.")
    ],
    ModernBertConfig: _text,
    PeAudioConfig: lambda c: [Child("text_config", "text_model."), Child("audio_config", "audio_encoder.")],
    PeVideoConfig: lambda c: [Child("text_config", "text_model."), Child("video_config", "video_encoder.")],
    PeAudioVideoConfig: lambda c: [Child("text_config", "text_model."), Child("audio_video_config", "audio_video_encoder.")],
}

# --------------------------------------------------------------------------------------------------
# Comparing with a header


def _layout_of(config: ConfigBase) -> Callable[[Any], list[Item]] | None:
    return next((LAYOUTS[cls] for cls in type(config).__mro__ if cls in LAYOUTS), None)


def expectations(config: ConfigBase, prefix: str = "", path: str = "") -> Iterator[tuple[str, Stack | Shape]]:
    """Every :class:`Stack` and :class:`Shape` of ``config``'s tree with absolute keys, and the config
    path of the node it comes from (``"audio_video_config.audio_config."``)."""
    layout = _layout_of(config)
    for item in layout(config) if layout else ():
        if isinstance(item, Child):
            sub = getattr(config, item.field)
            if isinstance(sub, ConfigBase):
                yield from expectations(sub, prefix + item.prefix, f"{path}{item.field}.")
        elif isinstance(item, Stack):
            yield path, Stack(item.setting, item.count, prefix + item.prefix, item.unit)
        else:
            yield path, Shape(item.setting, prefix + item.key, item.shape)


def _aliases(name: str, tied_prefixes: Mapping[str, str]) -> list[str]:
    """``name`` and the same key or prefix under the other names of a tied sub-model."""
    names = [name]
    for copy, original in tied_prefixes.items():
        for a, b in ((copy, original), (original, copy)):
            if name.startswith(a) and b + name[len(a):] not in names:
                names.append(b + name[len(a):])
    return names


def _stack_mismatch(stack: Stack, keys: Sequence[str], tied_prefixes: Mapping[str, str]) -> str | None:
    found: dict[str, str] = {}  # index → the prefix (alias) it was found under
    for prefix in _aliases(stack.prefix, tied_prefixes):
        for key in keys:
            if key.startswith(prefix):
                index = key[len(prefix):].partition(".")[0]
                if index.isascii() and index.isdigit():
                    found.setdefault(index, prefix)
    if len(found) == stack.count:
        return None
    if not found:
        return f"{stack.setting} but the checkpoint has no {stack.unit} (no key starts with {stack.prefix!r})"
    first, last = (f"{found[i]}{i}.*" for i in (min(found, key=_as_number), max(found, key=_as_number)))
    unit = stack.unit if len(found) > 1 else stack.unit.rstrip("s")
    return f"{stack.setting} but the checkpoint has {len(found)} {unit} ({first}" + (
        f" to {last})" if len(found) > 1 else ")"
    )


def _as_number(index: str) -> tuple[int, str]:
    return len(index.lstrip("0")), index.lstrip("0")


def header_mismatches(
    config: ConfigBase, shapes: Mapping[str, Sequence[int]], tied_prefixes: Mapping[str, str] | None = None,
    compare_shapes: bool = True,
) -> list[str]:
    """How ``config`` disagrees with a checkpoint whose header maps keys to ``shapes`` (empty: it agrees
    as far as the layouts tell). Stacks are compared first: they are what makes a wrong config slow to build.
    ``compare_shapes=False`` compares the stacks only (for ``ignore_mismatched_sizes``)."""
    tied = tied_prefixes or {}
    keys = list(shapes)
    problems: list[str] = []
    shape_items: list[tuple[str, Shape]] = []
    for path, item in expectations(config):
        if isinstance(item, Stack):
            problem = _stack_mismatch(item, keys, tied)
            if problem:
                problems.append(path + problem)
        elif compare_shapes:
            shape_items.append((path, item))
    for path, item in shape_items:
        key = next((k for k in _aliases(item.key, tied) if k in shapes), None)
        if key is not None and tuple(shapes[key]) != item.shape:
            problems.append(
                f"{path}{item.setting} does not match the checkpoint (shape mismatch for {key!r}: "
                f"checkpoint has {tuple(shapes[key])}, the config gives {item.shape})"
            )
    return problems
