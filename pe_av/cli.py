"""The ``pe-av`` command line.

- ``pe-av demo``: the whole pipeline on a tiny random PE-AV model built on the spot (no network, no
  checkpoint): save and reload model + processor, write synthetic audio/video files, decode and
  process them, embed with every backend, print text↔media similarities and per-backend timings.
- ``pe-av embed --model DIR FILES... [--text ...]``: embed media files (and captions) with a
  checkpoint, print text↔media cosine similarities, optionally write the embeddings
  (``.npy`` or ``.safetensors``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from . import dispatch
from .dispatch import BACKENDS, BackendFallbackWarning, BackendNotAvailableError

MODALITIES = ("auto", "audio", "video", "audio_video")
OUT_FORMATS = (".npy", ".safetensors")


# ---------------------------------------------------------------------- printing


def _print_table(title: str, rows: list[str], columns: list[str], values: torch.Tensor) -> None:
    print(f"\n{title}")
    row_width = max(len(r) for r in rows)
    widths = [max(len(c), 6) for c in columns]
    print(" " * row_width + "  " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
    for row, line in zip(rows, values.tolist()):
        print(f"{row:>{row_width}}  " + "  ".join(f"{v:>{w}.3f}" for v, w in zip(line, widths)))


def _parse_backends(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"backends must be a comma-separated subset of {BACKENDS}, got {value!r}")
    return names


# ---------------------------------------------------------------------- demo


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
    from .demo import TEXTS, demo_model, demo_processor, write_demo_media
    from .encode import encode_audio, encode_audio_video, encode_text
    from .models import PeAudioVideoModel
    from .processing import PeAudioVideoProcessor

    backends = backends or list(BACKENDS)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(keep) if keep else Path(scratch)
        model_dir = root / "tiny-pe-av"
        model = demo_model(seed=0)
        model.save_pretrained(model_dir)
        demo_processor().save_pretrained(model_dir)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"pe-av demo: tiny random PeAudioVideoModel ({params:.2f} M parameters, seed 0) + processor saved "
              f"to {model_dir}")
        print("random weights: the similarities below show the pipeline runs, not what a trained model knows\n")

        media = write_demo_media(root / "media")
        for path in media["audio"] + media["videos"]:
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
        _print_table("text ↔ audio files (cosine similarity, text-audio space)", TEXTS,
                     [Path(p).name for p in audio_files], text_audio @ audio.T)
        _print_table("text ↔ video files (cosine similarity, text-audio+video space)", TEXTS,
                     [Path(p).name for p in video_files], text_av @ audio_video.T)


# ---------------------------------------------------------------------- embed


def _model_and_processor(model_dir: str, attn_impl: str | None, device: str | None, dtype: str | None):
    from .config import load_config
    from .models import PeAudioModel, PeAudioVideoModel, PeVideoModel
    from .processing import PeAudioProcessor, PeAudioVideoProcessor, PeVideoProcessor

    classes = {
        "pe_audio_video": (PeAudioVideoModel, PeAudioVideoProcessor),
        "pe_audio": (PeAudioModel, PeAudioProcessor),
        "pe_video": (PeVideoModel, PeVideoProcessor),
    }
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"model directory not found: {model_dir}")
    model_type = load_config(model_dir).model_type
    if model_type not in classes:
        raise ValueError(f"{model_dir} holds a {model_type!r} model; pe-av embed handles {sorted(classes)}")
    model_cls, processor_cls = classes[model_type]
    model = model_cls.from_pretrained(model_dir, attn_impl=attn_impl, device=device, dtype=dtype)
    return model, processor_cls.from_pretrained(model_dir)


def _pick_modality(requested: str, model, files: list[str]) -> str:
    from .media import media_info
    from .models import PeAudioModel, PeVideoModel

    supported = ("audio",) if isinstance(model, PeAudioModel) else ("video",) if isinstance(model, PeVideoModel) \
        else ("audio", "video", "audio_video")
    if requested != "auto":
        if requested not in supported:
            raise ValueError(f"{type(model).__name__} cannot embed {requested}; it handles {', '.join(supported)}")
        return requested
    if not files:
        return supported[-1]
    infos = [media_info(f) for f in files]
    has = {
        "audio_video": all(i.has_audio and i.has_video for i in infos),
        "video": all(i.has_video for i in infos),
        "audio": all(i.has_audio for i in infos),
    }
    for modality in ("audio_video", "video", "audio"):
        if modality in supported and has[modality]:
            return modality
    raise ValueError(
        f"cannot pick one modality for all files with {type(model).__name__} (it handles {', '.join(supported)}): "
        + "; ".join(f"{i.path}: audio={i.has_audio}, video={i.has_video}" for i in infos)
        + " — embed them in separate runs or pass --modality"
    )


def _write_embeddings(out: Path, media_key: str, media: torch.Tensor | None, text: torch.Tensor | None,
                      files: list[str], texts: list[str], model_dir: str) -> list[Path]:
    written = []
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        tensors = {}
        if media is not None:
            tensors[f"{media_key}_embeds"] = media.float().contiguous()
        if text is not None:
            tensors["text_embeds"] = text.float().contiguous()
        metadata = {"files": json.dumps(files), "texts": json.dumps(texts), "modality": media_key, "model": model_dir}
        save_file(tensors, str(out), metadata=metadata)
        return [out]
    if media is not None:
        np.save(out, media.float().numpy())
        written.append(out)
    if text is not None:
        text_out = out if media is None else out.with_name(out.stem + ".text.npy")
        np.save(text_out, text.float().numpy())
        written.append(text_out)
    return written


def run_embed(args: argparse.Namespace) -> None:
    """``pe-av embed``: see :func:`main`'s help."""
    from .encode import encode_audio, encode_audio_video, encode_text, encode_video

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in OUT_FORMATS:
        raise ValueError(f"--out must end in {' or '.join(OUT_FORMATS)}, got {out.name!r}")
    if out is not None and not out.parent.is_dir():
        raise FileNotFoundError(f"--out directory does not exist: {out.parent}")
    for path in args.files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"media file not found: {path}")
    model, processor = _model_and_processor(args.model, args.attn_impl, args.device, args.dtype)
    modality = _pick_modality(args.modality, model, args.files)
    options = {"batch_size": args.batch_size, "normalize": not args.no_normalize, "progress": not args.no_progress}
    start = time.perf_counter()
    media = None
    if args.files:
        if modality == "audio":
            media = encode_audio(model, processor, args.files, **options)
        elif modality == "video":
            media = encode_video(model, processor, args.files, num_frames=args.num_frames, **options)
        else:
            media = encode_audio_video(model, processor, args.files, num_frames=args.num_frames, **options)
        print(f"embedded {len(args.files)} file(s) as {modality}: {tuple(media.shape)}")
    text = None
    if args.text:
        text = encode_text(model, processor, args.text, target=modality, **options)
        print(f"embedded {len(args.text)} text(s) in the text-{modality} space: {tuple(text.shape)}")
    print(f"({time.perf_counter() - start:.2f} s on {model.device}, attn_impl={model.attn_impl})")
    if media is not None and text is not None:
        unit_text = torch.nn.functional.normalize(text.float(), dim=-1)
        unit_media = torch.nn.functional.normalize(media.float(), dim=-1)
        _print_table(f"text ↔ {modality} (cosine similarity)", args.text, [Path(f).name for f in args.files],
                     unit_text @ unit_media.T)
    if out is not None:
        for path in _write_embeddings(out, modality, media, text, args.files, args.text or [], args.model):
            print(f"wrote {path}")


# ---------------------------------------------------------------------- entry point


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pe-av", description="PE-AV encoders: fast, faithful, drop-in.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline on a tiny random model and generated media")
    demo.add_argument("--repeats", type=int, default=5, help="timed passes per backend; the median is shown (default 5)")
    demo.add_argument("--backends", type=_parse_backends, default=list(BACKENDS),
                      help=f"comma-separated subset of {','.join(BACKENDS)} (default: all)")
    demo.add_argument("--keep", metavar="DIR", help="write the model and media files to DIR and keep them")

    embed = sub.add_parser("embed", help="embed media files and/or texts with a checkpoint")
    embed.add_argument("files", nargs="*", help="audio or video files")
    embed.add_argument("--model", required=True, help="checkpoint directory (config.json, model.safetensors, "
                       "processor files)")
    embed.add_argument("--text", nargs="+", help="captions to embed and compare with the files")
    embed.add_argument("--out", help="write embeddings to .npy (media; texts go to <stem>.text.npy) or "
                       ".safetensors (both, with file names in the metadata)")
    embed.add_argument("--modality", choices=MODALITIES, default="auto",
                       help="what to embed from the files (auto: audio+video when every file has both "
                       "and the model can, else video, else audio)")
    embed.add_argument("--batch-size", type=int, default=8)
    embed.add_argument("--num-frames", type=int, help="sample this many evenly spaced frames per video")
    embed.add_argument("--attn-impl", choices=BACKENDS, help="backend (default: the device's)")
    embed.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default cpu)")
    embed.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="weights dtype (default float32)")
    embed.add_argument("--no-normalize", action="store_true", help="keep raw (not L2-normalized) embeddings")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``pe-av`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        run_demo(args.repeats, args.backends, args.keep)
        return 0
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.num_frames is not None and args.num_frames < 1:
        parser.error("--num-frames must be at least 1")
    if not args.files and not args.text:
        parser.error("give media files, --text, or both")
    try:
        run_embed(args)
    except (FileNotFoundError, ValueError, TypeError, BackendNotAvailableError) as exc:
        print(f"pe-av embed: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
