"""pe_av's config from the ``config.json`` of one of Meta's original checkpoints, derived as the original
code (``core/audio_visual_encoder/config.py``, ``transformer.py``, ``core/vision_encoder/config.py``)
computes its model from it.

What the original computes, and what we write:

- PE transformers: ``head_dim = hidden_size // num_attention_heads`` and RoPE theta
  ``max(10000, 2 · max_position_embeddings)`` (the config's ``rope_theta`` is ignored there); the MLP is
  always SiLU-gated (``hidden_act`` ignored).
- DAC: transformers' ``DacConfig`` of the given dict (the original's defaults when absent).
- ViT: the PE-Core encoder name → timm's architecture, ``num_classes`` = the encoder's output dim.
- Text: the tower truncated to ``nth_text_layer`` layers with ``tie_last_hidden_states: false``, so the
  text embedding is that layer's output without the final norm, as the original takes it.
- ``fixed_len_video`` → the processor samples 16 evenly spaced frames.
"""

from __future__ import annotations

from typing import Any

from ..config import (
    DacConfig,
    ModernBertConfig,
    PeAudioConfig,
    PeAudioEncoderConfig,
    PeAudioVideoConfig,
    PeAudioVideoEncoderConfig,
    PeVideoEncoderConfig,
)

__all__ = ["ORIGINAL_VISION_ENCODERS", "OriginalConfigError", "derive_config", "detect_kind"]


class OriginalConfigError(ValueError):
    """An original config.json holds an option the converter cannot reproduce (named in the message)."""


#: the original's text tower when config.json has none (``DFLT_TEXT_ENCODER_CONFIG``)
ORIGINAL_TEXT_DEFAULTS: dict[str, Any] = {
    "classifier_pooling": "mean", "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0,
    "hidden_size": 1024, "intermediate_size": 2624, "layer_norm_eps": 1e-5, "local_rope_theta": 10000.0,
    "model_type": "modernbert", "num_attention_heads": 16, "num_hidden_layers": 28,
    "position_embedding_type": "absolute", "tie_word_embeddings": True, "torch_dtype": "float32",
}
#: the original's codec when config.json has none (``DFLT_DACVAE_CONFIG``)
ORIGINAL_DAC_DEFAULTS: dict[str, Any] = {
    "encoder_hidden_size": 64, "downsampling_ratios": [2, 8, 10, 12], "decoder_hidden_size": 1536,
    "n_codebooks": 16, "codebook_size": 1024, "codebook_dim": 128, "quantizer_dropout": 0, "sampling_rate": 48000,
}
#: PE-Core encoder names the original's video model may use → (timm architecture, output dim); the
#: Lang and Spatial encoders have no pooled projection, which the video model needs
ORIGINAL_VISION_ENCODERS: dict[str, tuple[str, int]] = {
    "PE-Core-G14-448": ("vit_pe_core_gigantic_patch14_448", 1280),
    "PE-Core-L14-336": ("vit_pe_core_large_patch14_336", 1024),
    "PE-Core-B16-224": ("vit_pe_core_base_patch16_224", 1024),
    "PE-Core-S16-384": ("vit_pe_core_small_patch16_384", 512),
    "PE-Core-T16-384": ("vit_pe_core_tiny_patch16_384", 512),
}
#: frames the original's processor samples for ``fixed_len_video``
FIXED_VIDEO_FRAMES = 16

# keys the original reads from a transformer dict, and those it accepts and ignores
_TRANSFORMER_KEYS = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
                     "rope_scaling", "attention_bias", "attention_dropout", "head_dim"}
_TRANSFORMER_DEFAULTS: dict[str, Any] = {"hidden_size": 1024, "intermediate_size": 2752, "num_hidden_layers": 16,
                                         "num_attention_heads": 8, "num_key_value_heads": None,
                                         "max_position_embeddings": 10_000, "rms_norm_eps": 1e-5,
                                         "attention_bias": False, "attention_dropout": 0.0}
# bookkeeping keys a config.json may carry at any level without meaning anything to the model
_BOOKKEEPING = {"architectures", "model_type", "torch_dtype", "dtype", "transformers_version", "_name_or_path"}


def _check_keys(where: str, data: Any, known: set[str]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OriginalConfigError(f"{where} must be an object in the original config.json, got {type(data).__name__}")
    unknown = sorted(set(data) - known - _BOOKKEEPING)
    if unknown:
        raise OriginalConfigError(f"{where}: unsupported option(s) {unknown} in the original config.json")
    return data


def detect_kind(config: dict[str, Any], keys: set[str]) -> str:
    """``"pe_audio_video"`` (the original ``PEAudioVisual``) or ``"pe_audio_frame"`` (``PEAudioFrame``),
    from the checkpoint's keys (its config.json may hold defaults only), else from the config's keys."""
    if any(k.startswith("audio_visual_model.") for k in keys) or "audio_visual_model" in config:
        return "pe_audio_video"
    if any(k.startswith("audio_model.") for k in keys) or "audio_model" in config:
        return "pe_audio_frame"
    raise OriginalConfigError(
        "not an original PE-AV checkpoint: neither audio_visual_model.* (PEAudioVisual) nor audio_model.* "
        "(PEAudioFrame) weights"
    )


def transformer_config(where: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """Our PE transformer fields for the original ``TransformerConfig`` dict at ``where``."""
    data = {**_TRANSFORMER_DEFAULTS, **_check_keys(where, data, _TRANSFORMER_KEYS)}
    hidden, heads = data["hidden_size"], data["num_attention_heads"]
    if not isinstance(hidden, int) or not isinstance(heads, int) or heads <= 0 or hidden % heads:
        raise OriginalConfigError(f"{where}: hidden_size ({hidden!r}) must be a multiple of num_attention_heads ({heads!r})")
    head_dim = hidden // heads  # the original ignores a head_dim of its own
    if data.get("head_dim") not in (None, head_dim):
        raise OriginalConfigError(f"{where}.head_dim={data['head_dim']!r}: the original always uses hidden_size // "
                                  f"num_attention_heads = {head_dim}")
    if data["num_key_value_heads"] not in (None, heads):
        # the original repeats no kv heads: its attention only runs with as many kv heads as query heads
        raise OriginalConfigError(f"{where}.num_key_value_heads={data['num_key_value_heads']!r} is not supported: the "
                                  f"original's attention needs num_key_value_heads = num_attention_heads ({heads})")
    if data.get("rope_scaling") is not None:
        raise OriginalConfigError(f"{where}.rope_scaling={data['rope_scaling']!r} is not supported")
    max_pos = data["max_position_embeddings"]
    return {
        "hidden_size": hidden, "intermediate_size": data["intermediate_size"],
        "num_hidden_layers": data["num_hidden_layers"], "num_attention_heads": heads,
        "num_key_value_heads": data["num_key_value_heads"] or heads, "head_dim": head_dim, "hidden_act": "silu",
        "max_position_embeddings": max_pos, "rms_norm_eps": data["rms_norm_eps"],
        "rope_parameters": {"rope_type": "default", "rope_theta": float(max(10_000, 2 * max_pos))},
        "attention_bias": data["attention_bias"], "attention_dropout": data["attention_dropout"],
    }


def audio_encoder_config(where: str, data: dict[str, Any] | None) -> PeAudioEncoderConfig:
    """Our audio encoder config for the original ``AudioEncoderConfig`` dict."""
    data = _check_keys(where, data, {"dac_vae_encoder", "audio_transformer"})
    dac = DacConfig(**(data.get("dac_vae_encoder") or ORIGINAL_DAC_DEFAULTS))
    if dac.codebook_size != dac.hidden_size:
        raise OriginalConfigError(
            f"{where}.dac_vae_encoder: the original's bottleneck reads codebook_size ({dac.codebook_size}) channels but "
            f"its encoder gives encoder_hidden_size · 2^{len(dac.downsampling_ratios)} = {dac.hidden_size}"
        )
    fields = transformer_config(f"{where}.audio_transformer", data.get("audio_transformer"))
    return PeAudioEncoderConfig(**fields, dac_config=dac.to_dict())


def video_encoder_config(where: str, data: dict[str, Any] | None) -> tuple[PeVideoEncoderConfig, bool]:
    """Our video encoder config for the original ``VisualEncoderConfig`` dict, and its ``fixed_len_video``."""
    data = _check_keys(where, data, {"pe_encoder", "visual_transformer", "fixed_len_video"})
    name = data.get("pe_encoder", "PE-Core-L14-336")
    if name not in ORIGINAL_VISION_ENCODERS:
        raise OriginalConfigError(f"{where}.pe_encoder={name!r} is not supported; the converter knows "
                                  f"{sorted(ORIGINAL_VISION_ENCODERS)}")
    architecture, output_dim = ORIGINAL_VISION_ENCODERS[name]
    vision = {"architecture": architecture, "num_classes": output_dim, "num_labels": output_dim,
              "do_pooling": True, "global_pool": "map", "model_args": {}}
    fields = transformer_config(f"{where}.visual_transformer", data.get("visual_transformer"))
    fixed = data.get("fixed_len_video", False)
    if not isinstance(fixed, bool):
        raise OriginalConfigError(f"{where}.fixed_len_video must be true or false, got {fixed!r}")
    return PeVideoEncoderConfig(**fields, vision_config=vision), fixed


def text_config(data: dict[str, Any] | None, nth_text_layer: Any) -> ModernBertConfig:
    """Our text tower: the original's ModernBERT dict, truncated to ``nth_text_layer`` layers."""
    data = dict(data or ORIGINAL_TEXT_DEFAULTS)
    layers = ModernBertConfig(**data).num_hidden_layers
    if nth_text_layer is None:
        return ModernBertConfig(**data)  # the last hidden state, after the final norm
    if isinstance(nth_text_layer, bool) or not isinstance(nth_text_layer, int):
        raise OriginalConfigError(f"nth_text_layer must be an integer or null, got {nth_text_layer!r}")
    # the original indexes hidden_states, which holds the embeddings and then each of `layers` layers' outputs
    index = nth_text_layer if nth_text_layer >= 0 else layers + 1 + nth_text_layer
    if not 1 <= index <= layers:
        raise OriginalConfigError(f"nth_text_layer={nth_text_layer} is not supported: it must pick a layer's output "
                                  f"(1..{layers}) of the {layers}-layer text tower")
    if index == layers:
        return ModernBertConfig(**data)
    data["num_hidden_layers"] = index
    if data.get("layer_types") is not None:
        data["layer_types"] = list(data["layer_types"])[:index]
    data["tie_last_hidden_states"] = False  # the layer's output without the final norm
    return ModernBertConfig(**data)


_TOP_KEYS = {"pe_audio_video": {"audio_visual_model", "text_model", "output_dim", "nth_text_layer"},
             "pe_audio_frame": {"audio_model", "text_model", "output_dim", "nth_text_layer"}}


def derive_config(original: dict[str, Any], kind: str) -> tuple[PeAudioVideoConfig | PeAudioConfig, dict[str, Any]]:
    """Our config for an original config.json of ``kind``, and the processor settings it implies
    (``sampling_rate``, ``hop_length``, ``image_size`` as a size dict or None, ``num_frames`` or None for every
    frame)."""
    original = _check_keys("config.json", original, _TOP_KEYS[kind])
    text = text_config(original.get("text_model"), original.get("nth_text_layer", 22))
    output_dim = original.get("output_dim", 1024)
    if kind == "pe_audio_video":
        av = _check_keys("audio_visual_model", original.get("audio_visual_model"),
                         {"audio_visual_transformer", "visual_model", "audio_model"})
        audio = audio_encoder_config("audio_visual_model.audio_model", av.get("audio_model"))
        video, fixed = video_encoder_config("audio_visual_model.visual_model", av.get("visual_model"))
        fusion = transformer_config("audio_visual_model.audio_visual_transformer", av.get("audio_visual_transformer"))
        fusion_config = PeAudioVideoEncoderConfig(**fusion, audio_config=audio.to_dict(), video_config=video.to_dict())
        config = PeAudioVideoConfig(text_config=text.to_dict(), audio_video_config=fusion_config.to_dict())
        image = _image_size(video)
    else:
        audio = audio_encoder_config("audio_model", original.get("audio_model"))
        config = PeAudioConfig(text_config=text.to_dict(), audio_config=audio.to_dict())
        fixed, image = False, None
    _check_output_dim(output_dim, text.hidden_size)
    processor = {"sampling_rate": audio.dac_config.sampling_rate, "hop_length": audio.dac_config.hop_length,
                 "image_size": image, "num_frames": FIXED_VIDEO_FRAMES if fixed else None}
    return config, processor


def _check_output_dim(value: Any, text_width: int) -> None:
    # our heads (as transformers') project into the text tower's width
    if value != text_width:
        raise OriginalConfigError(f"output_dim={value!r} is not supported: pe_av's (and transformers') heads "
                                  f"project to the text tower's hidden_size ({text_width})")


def _image_size(video: PeVideoEncoderConfig) -> dict[str, int]:
    from ..models.vision_spec import VisionSpec

    height, width = VisionSpec.from_config(video.vision_config).img_size
    return {"height": height, "width": width}
