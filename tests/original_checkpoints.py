"""Tiny checkpoints in the format of Meta's original code (config.json + model.safetensors + tokenizer
files), built from the test-side re-implementation in :mod:`original_model`, and fixed inputs for them."""

from __future__ import annotations

import copy
import json

import torch
from oracle import perturb_parameters
from original_model import PEAudioFrame, PEAudioVisual
from safetensors.torch import save_file
from tokenizers import Tokenizer, pre_tokenizers, processors
from tokenizers.models import WordLevel

HOP = 6  # DAC strides 2 · 3
VOCAB = 53
#: the original's ModernBERT dict (with its legacy key names); the original reads layer 2 of 3
TEXT = dict(vocab_size=VOCAB, pad_token_id=0, hidden_size=24, intermediate_size=19, num_hidden_layers=3,
            num_attention_heads=3, local_attention=4, global_attn_every_n_layers=2, global_rope_theta=1000.0,
            local_rope_theta=300.0, classifier_pooling="mean", model_type="modernbert")
DAC = dict(encoder_hidden_size=2, downsampling_ratios=[2, 3], codebook_dim=4, codebook_size=8, sampling_rate=48000,
           decoder_hidden_size=16, n_codebooks=2)
# the original needs audio, video and fusion widths equal (its aligner and concat projection use one width)
AUDIO_T = dict(hidden_size=24, intermediate_size=30, num_hidden_layers=1, num_attention_heads=2,
               max_position_embeddings=8000)  # RoPE theta 16000
VIDEO_T = dict(hidden_size=24, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)  # theta 20000
FUSION_T = dict(hidden_size=24, intermediate_size=40, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=3000, rms_norm_eps=1e-6)  # theta 10000 (the floor)
VISION = "PE-Core-T16-384"
IMAGE = 384


def av_config(fixed_len_video: bool = True) -> dict:
    """An original ``PEAudioVisual`` config.json."""
    return copy.deepcopy(dict(
        audio_visual_model=dict(
            audio_model=dict(dac_vae_encoder=DAC, audio_transformer=AUDIO_T),
            visual_model=dict(pe_encoder=VISION, visual_transformer=VIDEO_T, fixed_len_video=fixed_len_video),
            audio_visual_transformer=FUSION_T,
        ),
        text_model=TEXT, output_dim=24, nth_text_layer=2,
    ))


def frame_config() -> dict:
    """An original ``PEAudioFrame`` config.json."""
    return copy.deepcopy(dict(audio_model=dict(dac_vae_encoder=DAC, audio_transformer=AUDIO_T), text_model=TEXT,
                              output_dim=24, nth_text_layer=2))


def build_original(kind: str, config: dict | None = None, seed: int = 0) -> torch.nn.Module:
    """The re-implemented original model of ``kind`` ("av" or "frame"), random, norms and biases moved off
    their constant init."""
    torch.manual_seed(seed)
    config = config or (av_config() if kind == "av" else frame_config())
    model = (PEAudioVisual if kind == "av" else PEAudioFrame)(config).eval()
    with torch.no_grad():
        perturb_parameters(model, seed)
        for name, param in model.named_parameters():
            if name.endswith("logit_scale"):
                param.fill_(3.5)
    return model


def tokenizer_files(directory) -> None:
    """A small word-level tokenizer saved as transformers saves one (tokenizer.json + tokenizer_config.json)."""
    import transformers

    words = "a dog barks the cat sings loud music".split()
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", cls_token="[CLS]",
                                         sep_token="[SEP]", unk_token="[UNK]", mask_token="[MASK]").save_pretrained(directory)


def write_original(model: torch.nn.Module, config: dict, directory, state: dict | None = None, tokenizer: bool = True):
    """Save ``model`` (or ``state``) as the original code's checkpoint folder; returns the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in (state if state is not None else model.state_dict()).items()}
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    if tokenizer:
        tokenizer_files(directory)
    return directory


def inputs(kind: str, seed: int = 0, padded: bool = True) -> dict:
    """Fixed inputs: 2 captions, 2 clips of 4 audio tokens (the second 3 valid) and, for "av", 2 videos of 2
    frames (the second 1 valid), so the fusion interpolates video to audio lengths per sample."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (2, 7), generator=gen)
    text_mask = torch.ones_like(ids)
    audio_mask = torch.ones(2, 4 * HOP, dtype=torch.long)
    if padded:
        text_mask[1, 5:] = 0
        audio_mask[1, 3 * HOP:] = 0
    out = {"input_ids": ids, "attention_mask": text_mask, "input_values": torch.randn(2, 1, 4 * HOP, generator=gen),
           "padding_mask": audio_mask}
    if kind == "av":
        out["pixel_values_videos"] = torch.rand(2, 2, 3, IMAGE, IMAGE, generator=gen) * 2 - 1
        out["padding_mask_videos"] = torch.tensor([[1, 1], [1, 0]]) if padded else torch.ones(2, 2, dtype=torch.long)
    return out
