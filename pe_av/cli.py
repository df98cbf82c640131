"""The ``pe-av`` command line.

- ``pe-av demo``: the whole pipeline on a tiny random PE-AV model built on the spot (no network, no
  checkpoint): save and reload model + processor, write synthetic audio/video files, decode and
  process them, embed with every backend, print text↔media similarities and per-backend timings
  (see :mod:`pe_av.demo`).
- ``pe-av embed --model DIR FILES... [--text ...]``: embed media files (and captions) with a
  checkpoint, print text↔media cosine similarities, optionally write the embeddings
  (``.npy`` or ``.safetensors``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .demo import print_table, run_demo
from .dispatch import BACKENDS, BackendNotAvailableError

MODALITIES = ("auto", "audio", "video", "audio_video")
OUT_FORMATS = (".npy", ".safetensors")


# ---------------------------------------------------------------------- arguments


def _parse_backends(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"backends must be a comma-separated subset of {BACKENDS}, got {value!r}")
    return names


# ---------------------------------------------------------------------- embed


def _model_and_processor(model_dir: str, attn_impl: str | None, device: str | None, dtype: str | None):
    """The checkpoint's model and processor, both chosen by its ``model_type`` (see :mod:`pe_av.registry`);
    only types with a processor (whole models, not encoders or towers) can embed."""
    from .config import load_config
    from .registry import model_class_for, processor_class_for, supported_model_types

    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"model directory not found: {model_dir}")
    config = load_config(model_dir)
    processor_cls = processor_class_for(config.model_type)
    if processor_cls is None:
        raise ValueError(f"{model_dir} holds a {config.model_type!r} model; pe-av embed handles "
                         f"{supported_model_types(with_processor=True)}")
    model_cls = model_class_for(config)
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
        print_table(f"text ↔ {modality} (cosine similarity)", args.text, [Path(f).name for f in args.files],
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
