"""``pe-av demo``: a tiny random PE-AV model with its processor, synthetic media, and the demo run.

Everything is built in code from fixed seeds — no network, no checkpoint — so the demo exercises the
real pipeline in seconds on a CPU. :func:`run_demo` saves and reloads model + processor, writes
synthetic audio/video files, decodes and processes them, embeds with every backend, and prints
text↔media similarities and per-backend timings.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel

from . import dispatch
from .config import PeAudioConfig, PeAudioVideoConfig
from .dispatch import BACKENDS, BackendFallbackWarning, BackendNotAvailableError
from .encode import encode_audio, encode_audio_video, encode_text
from .media import write_audio, write_video
from .models import PeAudioFrameLevelModel, PeAudioVideoModel
from .processing import (
    PeAudioFeatureExtractor,
    PeAudioProcessor,
    PeAudioVideoProcessor,
    PeTokenizer,
    PeVideoVideoProcessor,
)

SAMPLE_RATE = 48_000
IMAGE_SIZE = 28
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "a an the of and with in on high low pitched pure tone beep static noise hiss red blue green square "
    "stripes moving video sound dog barking rain music quiet loud"
).split()
TEXTS = ["a pure tone", "a high pitched beep", "static noise", "a red square moving", "blue stripes with hiss"]

_DAC = {"encoder_hidden_size": 2, "downsampling_ratios": [2, 8, 10, 12], "codebook_dim": 8}  # hop 1920
_VISION = {
    "architecture": "vit_pe_core_large_patch14_336",
    "model_args": {"img_size": IMAGE_SIZE, "patch_size": 14, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "num_labels": 16,
}
_BLOCK = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
          "num_key_value_heads": 1, "head_dim": 16}


_TEXT = {"vocab_size": len(SPECIAL_TOKENS) + len(WORDS), "pad_token_id": 0, "hidden_size": 32,
         "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2, "local_attention": 4}


def demo_config() -> PeAudioVideoConfig:
    """A PeAudioVideoConfig with every part shrunk (hop 1920 at 48 kHz as the real models, 28 px frames)."""
    text = dict(_TEXT)
    audio, video = {**_BLOCK, "dac_config": _DAC}, {**_BLOCK, "vision_config": _VISION}
    fusion = {**_BLOCK, "audio_config": audio, "video_config": video}
    return PeAudioVideoConfig(text_config=text, audio_video_config=fusion)


def demo_model(seed: int = 0, spread: float = 10.0) -> PeAudioVideoModel:
    """The tiny model with the reference's random init under ``seed``, every weight matrix scaled by
    ``spread`` and logit scales set to 1. (At the reference's init, std 0.02, all inputs map to nearly
    the same embedding; the spread makes the similarity tables show distinct rows.)"""
    torch.manual_seed(seed)
    model = PeAudioVideoModel(demo_config()).eval()
    _spread(model, spread)
    return model


def _spread(model: torch.nn.Module, spread: float) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.mul_(spread)
            elif name.endswith("logit_scale"):
                param.fill_(1.0)


def demo_frame_model(seed: int = 0, spread: float = 10.0) -> PeAudioFrameLevelModel:
    """A tiny PE-A-Frame (``PeAudioFrameLevelModel``, one score per 40 ms frame) with the demo's text and
    audio sizes, built as :func:`demo_model` is; for ``pe-av detect``."""
    torch.manual_seed(seed)
    model = PeAudioFrameLevelModel(PeAudioConfig(text_config=dict(_TEXT), audio_config={**_BLOCK, "dac_config": _DAC}))
    _spread(model.eval(), spread)
    return model


def demo_tokenizer() -> PeTokenizer:
    """A lowercase word-level tokenizer over :data:`WORDS` with ModernBERT's ``[CLS] … [SEP]`` framing."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + WORDS)}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    backend.add_special_tokens(SPECIAL_TOKENS)
    return PeTokenizer(backend, pad_token="[PAD]", model_max_length=512,
                       extra={"cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "mask_token": "[MASK]"})


def demo_processor() -> PeAudioVideoProcessor:
    """Processor matching :func:`demo_config`: 48 kHz audio, 28×28 frames, the demo tokenizer."""
    return PeAudioVideoProcessor(
        feature_extractor=PeAudioFeatureExtractor(),
        video_processor=PeVideoVideoProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=demo_tokenizer(),
    )


def _tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def _moving_square(frames: int, size: int = 32, color: int = 0) -> np.ndarray:
    video = np.full((frames, size, size, 3), 16, dtype=np.uint8)
    for i in range(frames):
        left = (i * 2) % (size - 8)
        video[i, 12:20, left : left + 8, color] = 230
    return video


def _stripes(frames: int, size: int = 32) -> np.ndarray:
    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        columns = (np.arange(size) + i) % 8 < 4
        video[i, :, columns, 2] = 220
    return video


def write_demo_media(directory: str | Path, seed: int = 0) -> dict[str, list[Path]]:
    """Write 3 audio clips (wav at 48 kHz, flac at 44.1 kHz, mp3; ≤ 0.5 s), 2 videos with sound (mp4,
    webm; 0.5 s, 12 frames of 32×32) and, in ``scenes/``, a 4 s scene for event detection (quiet, a tone,
    noise, quiet)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.3, 0.3, SAMPLE_RATE // 2).astype(np.float32)
    audio = [
        write_audio(directory / "tone_440hz.wav", _tone(440, 0.5, SAMPLE_RATE), SAMPLE_RATE),
        write_audio(directory / "beep_1760hz.flac", _tone(1760, 0.4, 44_100), 44_100),
        write_audio(directory / "static.mp3", noise, SAMPLE_RATE),
    ]
    videos = [
        write_video(directory / "red_square.mp4", _moving_square(12), fps=24, audio=_tone(440, 0.5, SAMPLE_RATE)),
        write_video(directory / "blue_stripes.webm", _stripes(12), fps=24, audio=noise),
    ]
    scene = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), _tone(880, 1.0, SAMPLE_RATE),
                            np.random.default_rng(seed + 1).uniform(-0.3, 0.3, SAMPLE_RATE).astype(np.float32),
                            np.zeros(SAMPLE_RATE, np.float32)])
    (directory / "scenes").mkdir(exist_ok=True)  # apart from the clips, which the demo embeds together
    return {"audio": audio, "videos": videos,
            "scene": [write_audio(directory / "scenes" / "scene.wav", scene, SAMPLE_RATE)]}


# ---------------------------------------------------------------------- the demo run


def print_table(title: str, rows: list[str], columns: list[str], values: torch.Tensor) -> None:
    """Print ``values`` (rows × columns) under ``title``, with row and column labels, 3 decimals."""
    print(f"\n{title}")
    row_width = max(len(r) for r in rows)
    widths = [max(len(c), 6) for c in columns]
    print(" " * row_width + "  " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
    for row, line in zip(rows, values.tolist()):
        print(f"{row:>{row_width}}  " + "  ".join(f"{v:>{w}.3f}" for v, w in zip(line, widths)))


def _op_name(message: str) -> str:
    """The op a BackendFallbackWarning is about (its text before the first colon or 'has no')."""
    head = message.split(":")[0] if ":" in message[:40] else message.split(" has no")[0]
    return head.strip()


def _demo_embeddings(model, batches: dict) -> dict[str, torch.Tensor]:
    """Every embedding the demo shows, computed straight from the processed batches."""
    text, audio, av = batches["text"], batches["audio"], batches["audio_video"]
    return {
        "text_audio": model.get_text_audio_embeds(text["input_ids"], text["attention_mask"]),
        "audio": model.get_audio_embeds(audio["input_values"], audio["padding_mask"]),
        "text_audio_video": model.get_text_audio_video_embeds(text["input_ids"], text["attention_mask"]),
        "audio_video": model.get_audio_video_embeds(
            av["input_values"], av["pixel_values_videos"], av["padding_mask"], av["padding_mask_videos"]
        ).audio_video_embeds,
    }


def run_demo(repeats: int = 5, backends: list[str] | None = None, keep: str | None = None) -> None:
    """Run the demo (see the module docstring); ``keep`` writes its files there instead of a temp dir."""
    backends = backends or list(BACKENDS)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(keep) if keep else Path(scratch)
        model_dir = root / "tiny-pe-av"
        model = demo_model(seed=0)
        model.save_pretrained(model_dir)
        demo_processor().save_pretrained(model_dir)
        frame_dir = root / "tiny-pe-a-frame"
        demo_frame_model(seed=0).save_pretrained(frame_dir)
        PeAudioProcessor(feature_extractor=PeAudioFeatureExtractor(), tokenizer=demo_tokenizer()).save_pretrained(frame_dir)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"pe-av demo: tiny random PeAudioVideoModel ({params:.2f} M parameters, seed 0) + processor saved "
              f"to {model_dir}")
        print(f"and a tiny random PeAudioFrameLevelModel (for pe-av detect) to {frame_dir}")
        print("random weights: the similarities below show the pipeline runs, not what a trained model knows\n")

        media = write_demo_media(root / "media")
        for path in media["audio"] + media["videos"] + media["scene"]:
            print(f"  wrote {path.name:<18} ({path.stat().st_size / 1024:.1f} KiB)")

        processor = PeAudioVideoProcessor.from_pretrained(model_dir)
        audio_files, video_files = [str(p) for p in media["audio"]], [str(p) for p in media["videos"]]
        batches = {
            "text": processor(text=TEXTS),
            "audio": processor(audio=audio_files),
            "audio_video": processor(audio=video_files, videos=video_files),
        }
        av = batches["audio_video"]
        print(f"\nprocessed: input_ids {tuple(batches['text']['input_ids'].shape)}, audio input_values "
              f"{tuple(batches['audio']['input_values'].shape)}, video pixel_values_videos "
              f"{tuple(av['pixel_values_videos'].shape)} + input_values {tuple(av['input_values'].shape)}")

        print(f"\none pass = {len(TEXTS)} captions in 2 spaces + {len(audio_files)} audio clips + "
              f"{len(video_files)} audio+video clips (model time only; media decoded once above)")
        print(f"{'backend':>8}  {'ms / pass':>9}  {'max |diff| vs first':>19}   (median of {repeats})")
        reference = None
        for backend in backends:
            try:
                loaded = PeAudioVideoModel.from_pretrained(model_dir, attn_impl=backend)
            except BackendNotAvailableError as exc:
                print(f"{backend:>8}  unavailable ({exc})")
                continue
            dispatch.reset_warnings()
            with torch.inference_mode(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", BackendFallbackWarning)
                embeds = _demo_embeddings(loaded, batches)  # warm-up
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    _demo_embeddings(loaded, batches)
                    times.append(time.perf_counter() - start)
                elapsed = statistics.median(times)  # robust to a busy machine's spikes
            fallbacks = [_op_name(str(w.message)) for w in caught if issubclass(w.category, BackendFallbackWarning)]
            if reference is None:
                reference, diff = embeds, "—"
            else:
                diff = f"{max((embeds[k] - reference[k]).abs().max().item() for k in embeds):.1e}"
            print(f"{backend:>8}  {elapsed * 1e3:9.1f}  {diff:>19}")
            if fallbacks:
                print(f"{'':>8}  without a {backend} kernel here: {', '.join(dict.fromkeys(fallbacks))}")
            last = (loaded, embeds)
        if reference is None:
            raise RuntimeError("no backend could run")
        loaded, embeds = last

        # the same pipeline through the high-level helpers, straight from the files (last backend)
        text_audio = encode_text(loaded, processor, TEXTS, target="audio", progress=False)
        audio = encode_audio(loaded, processor, audio_files, progress=False)
        text_av = encode_text(loaded, processor, TEXTS, target="audio_video", progress=False)
        audio_video = encode_audio_video(loaded, processor, video_files, progress=False)
        unit = {k: torch.nn.functional.normalize(v, dim=-1) for k, v in embeds.items()}
        agree = max((a - unit[k]).abs().max().item() for a, k in ((text_audio, "text_audio"), (audio, "audio"),
                    (text_av, "text_audio_video"), (audio_video, "audio_video")))
        print(f"\nencode_text/encode_audio/encode_audio_video on the files agree with the direct calls: "
              f"max |diff| {agree:.1e}")
        print_table("text ↔ audio files (cosine similarity, text-audio space)", TEXTS,
                    [Path(p).name for p in audio_files], text_audio @ audio.T)
        print_table("text ↔ video files (cosine similarity, text-audio+video space)", TEXTS,
                    [Path(p).name for p in video_files], text_av @ audio_video.T)
