"""``pe-av embed``: a resumable run that saves as it goes (layout: :mod:`pe_av.embed_parts`).

Order of work: check ``--out`` and the media files (before the model loads), load the model, pick the
modality, embed files then captions batch by batch (each finished batch saved in ``OUT.parts/``; a bad
input is skipped and reported), then write the outputs atomically, in input order, and remove the
parts folder.

Exit status: 0 all embedded; 1 some inputs failed (the outputs hold the others; they are listed in
``OUT.failures.jsonl``), ``--fail-fast`` stopped at one, or an error; 130 / 143 stopped by SIGINT /
SIGTERM (the finished batches are kept: rerun with ``--resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from .atomic import atomic_path, atomic_write_bytes, remove_temp_files
from .embed_parts import (
    OUT_FORMATS,
    CliError,
    Outputs,
    Parts,
    check_files,
    check_out,
    describe_positions,
)

__all__ = ["OUT_FORMATS", "run_embed"]


class Interrupted(BaseException):
    """A second SIGINT/SIGTERM: drop the batch in flight (a BaseException, so no bad-input handler
    takes it for a bad file)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopOnSignal:
    """While active (main thread only), the first SIGINT/SIGTERM sets :attr:`signum` so the run stops
    after the batch in flight; a second one raises :class:`Interrupted` at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        message = (f"\npe-av embed: {signal.Signals(signum).name}: finishing the batch in flight, then stopping "
                   "(send it again to stop at once)\n")
        with contextlib.suppress(OSError, ValueError):
            os.write(2, message.encode())  # not print: the signal may have come in the middle of one

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _say(message: str) -> None:
    """A line on stderr that does not break a progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


# ---------------------------------------------------------------------- model and modality


def load_model(model_dir: str, attn_impl: str | None, device: str | None, dtype: str | None,
               architecture: str | None = None, command: str = "pe-av embed"):
    """The checkpoint's model and processor, both chosen by its ``model_type`` (see :mod:`pe_av.registry`;
    ``architecture`` names a variant class, e.g. ``"PeAudioFrameLevelModel"``); only types with a
    processor (whole models, not encoders or towers) can embed. Any failure is a :class:`CliError`
    naming the checkpoint."""
    from .config import load_config
    from .encode import describe_error
    from .registry import model_class_for, processor_class_for, supported_model_types

    if not Path(model_dir).is_dir():
        raise CliError(None, f"model directory not found: {model_dir}")
    try:
        config = load_config(model_dir)
        processor_cls = processor_class_for(config.model_type)
        if processor_cls is None:
            raise CliError(None, f"{model_dir} holds a {config.model_type!r} model; {command} handles "
                           f"{supported_model_types(with_processor=True)}")
        model = model_class_for(config, architecture).from_pretrained(model_dir, attn_impl=attn_impl, device=device, dtype=dtype)
        return model, processor_cls.from_pretrained(model_dir)
    except CliError:
        raise
    except Exception as exc:
        message = describe_error(exc)
        if isinstance(exc, RecursionError):
            message += " (a JSON file nested too deeply?)"
        raise CliError(None if str(model_dir) in message else model_dir,
                       message if str(model_dir) in message else f"cannot load the checkpoint: {message}") from exc


def pick_modality(requested: str, model, files: list[str]) -> str:
    """The modality to embed the files in (``auto``: the richest one every readable file has)."""
    from .media import media_info
    from .models import PeAudioModel, PeVideoModel

    supported = ("audio",) if isinstance(model, PeAudioModel) else ("video",) if isinstance(model, PeVideoModel) \
        else ("audio", "video", "audio_video")
    if requested != "auto":
        if requested not in supported:
            raise CliError(None, f"{type(model).__name__} cannot embed {requested}; it handles {', '.join(supported)}")
        return requested
    infos = []
    for path in files:
        try:
            infos.append(media_info(path))
        except Exception:  # unreadable: it fails, named, when it is embedded
            continue
    if not infos:
        return supported[-1]
    has = {
        "audio_video": all(i.has_audio and i.has_video for i in infos),
        "video": all(i.has_video for i in infos),
        "audio": all(i.has_audio for i in infos),
    }
    for modality in ("audio_video", "video", "audio"):
        if modality in supported and has[modality]:
            return modality
    raise CliError(None,
        f"cannot pick one modality for all files with {type(model).__name__} (it handles {', '.join(supported)}): "
        + "; ".join(f"{i.path}: audio={i.has_audio}, video={i.has_video}" for i in infos)
        + " — embed them in separate runs or pass --modality"
    )


# ---------------------------------------------------------------------- the run


def _embed_kind(kind, inputs, keys, parts, model, processor, modality, args, stop) -> bool:
    """Embed the inputs of one kind that ``parts`` does not hold yet; False when the run must stop."""
    from .encode import iter_encode

    todo = [i for i, key in enumerate(keys) if key not in parts.rows[kind]]
    if not todo:
        return True
    encode_kind = "text" if kind == "text" else modality
    frames = {"num_frames": args.num_frames, "fps": args.fps, "max_frames": args.max_frames}
    options = {"target": modality} if kind == "text" else {} if modality == "audio" else frames
    batches = iter_encode(model, processor, encode_kind, [inputs[i] for i in todo], batch_size=args.batch_size,
                          normalize=not args.no_normalize, progress=False if args.no_progress else None,
                          on_error="skip", **options)
    try:
        for batch in batches:
            positions = [todo[j] for j in batch.indices]
            if positions:
                parts.add(kind, [inputs[p] for p in positions], [keys[p] for p in positions], batch.embeddings)
            for failure in batch.failures:
                item = inputs[todo[failure.index]]
                parts.fail(kind, item, failure.reason)
                _say(f"pe-av embed: skipped {item if kind == 'media' else repr(item)}: {failure.reason}")
            if stop.signum is not None or (args.fail_fast and batch.failures):
                return False
    finally:
        batches.close()
    return True


def _resume_command(argv: list[str], overwrite: bool = False) -> str:
    """How to continue: the same command with --resume (and --overwrite), spelt out when short."""
    extra = [flag for flag, wanted in (("--resume", True), ("--overwrite", overwrite)) if wanted and flag not in argv]
    command = shlex.join(["pe-av", *argv, *extra])
    if len(command) <= 400:
        return command
    return f"the same command{' plus ' + ' '.join(extra) if extra else ''}"


def _report_reuse(parts: Parts, kinds: dict[str, list[str]]) -> None:
    for name in parts.ignored_shards:
        print(f"resume: ignoring {name}")
    for kind, keys in kinds.items():
        reused = [i for i, key in enumerate(keys) if key in parts.rows[kind]]
        if keys:
            what = "file(s)" if kind == "media" else "text(s)"
            where = f" (inputs {describe_positions(reused)})" if reused else ""
            print(f"resume: reusing {len(reused)} of {len(keys)} {what}{where} from {parts.folder}")


def _rows(parts: Parts, kind: str, inputs: list[str], keys: list[str]) -> tuple[list[str], torch.Tensor | None]:
    done = [(item, parts.rows[kind][key]) for item, key in zip(inputs, keys) if key in parts.rows[kind]]
    if not done:
        return [], None
    return [item for item, _ in done], torch.stack([row for _, row in done])


def _write_outputs(outputs: Outputs, modality: str, media, text, failures: list[dict], model_dir: str,
                   overwrite: bool) -> list[Path]:
    """Write the final files atomically (see :mod:`pe_av.atomic`); return what was written."""
    import numpy as np

    (files, media_rows), (texts, text_rows) = media, text
    written = []
    if outputs.out.suffix == ".safetensors":
        from safetensors.torch import save

        tensors = {}
        if media_rows is not None:
            tensors[f"{modality}_embeds"] = media_rows.contiguous()
        if text_rows is not None:
            tensors["text_embeds"] = text_rows.contiguous()
        metadata = {"files": json.dumps(files), "texts": json.dumps(texts), "modality": modality, "model": model_dir}
        if tensors:
            with _writing(outputs.out):
                atomic_write_bytes(outputs.out, save(tensors, metadata), overwrite=overwrite)
            written.append(outputs.out)
    else:
        for path, rows in ((outputs.media, media_rows), (outputs.text, text_rows)):
            if path is not None and rows is not None:
                with _writing(path), atomic_path(path, overwrite=overwrite) as tmp:
                    np.save(tmp, rows.numpy())
                written.append(path)
    with _writing(outputs.failures):
        if failures:
            data = "".join(json.dumps(entry) + "\n" for entry in failures).encode()
            written.append(atomic_write_bytes(outputs.failures, data, overwrite=overwrite))
        elif overwrite and outputs.failures.is_file():
            outputs.failures.unlink()  # a previous run's list: nothing failed this time
    return written


class _WriteError(Exception):
    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(f"{path}: {exc}")
        self.path, self.reason = path, (exc.strerror or str(exc)) if not isinstance(exc, FileExistsError) \
            else "appeared while the run was going; pass --overwrite to replace it"


@contextlib.contextmanager
def _writing(path: Path):
    try:
        yield
    except OSError as exc:
        raise _WriteError(path, exc) from exc


def run_embed(args: argparse.Namespace, argv: list[str]) -> int:
    """``pe-av embed``: see the module docstring and ``pe-av embed --help``; returns the exit status."""
    from .demo import print_table

    files, texts = list(args.files), list(args.text or [])
    outputs = check_out(args.out, bool(files), bool(texts), args.overwrite, args.resume) if args.out else None
    keys = {"media": check_files(files), "text": texts}
    with StopOnSignal() as stop:
        try:
            return _run(args, argv, files, texts, keys, outputs, stop, print_table)
        except Interrupted as exc:
            stop.signum = exc.signum
            return _interrupted(stop.signum, outputs, argv, " (the batch in flight was dropped)")
        except KeyboardInterrupt:
            return _interrupted(signal.SIGINT, outputs, argv, "")


def _interrupted(signum: int, outputs: Outputs | None, argv: list[str], note: str) -> int:
    name = signal.Signals(signum).name
    if outputs is None or not outputs.parts.is_dir():
        _say(f"pe-av embed: stopped by {name}{note}; nothing was saved (no --out)" if outputs is None else
             f"pe-av embed: stopped by {name}{note} before any batch was saved")
    else:
        _say(f"pe-av embed: stopped by {name}{note}; the finished batches are kept in {outputs.parts}\n"
             f"continue with: {_resume_command(argv)}")
    return 128 + signum


def _run(args, argv, files, texts, keys, outputs, stop, print_table) -> int:
    model, processor = load_model(args.model, args.attn_impl, args.device, args.dtype)
    modality = pick_modality(args.modality, model, files)
    settings = {"model": os.path.abspath(args.model), "modality": modality, "normalize": not args.no_normalize,
                "num_frames": args.num_frames, "fps": args.fps, "max_frames": args.max_frames, "dtype": str(model.dtype).removeprefix("torch.")}
    for path in outputs.finals if outputs is not None else []:
        remove_temp_files(path.parent, name=path.name)  # of final writes a killed run left behind
    resuming = outputs is not None and args.resume and outputs.parts.is_dir()
    if outputs is not None and args.resume and not resuming:
        print(f"resume: no {outputs.parts}; starting from the beginning")
    parts = Parts.start(outputs.parts if outputs else None, settings, keys, resume=resuming)
    if resuming:
        _report_reuse(parts, {"media": keys["media"], "text": keys["text"]})
    start = time.perf_counter()
    finished = stop.signum is None
    for kind, inputs in (("media", files), ("text", texts)):
        if finished:
            finished = _embed_kind(kind, inputs, keys[kind], parts, model, processor, modality, args, stop)
    if stop.signum is not None:
        return _interrupted(stop.signum, outputs, argv, " after the batch in flight")
    if not finished:  # --fail-fast
        saved = f"the finished batches are kept in {outputs.parts}; fix or remove the file, then continue with: " \
                f"{_resume_command(argv)}" if outputs else "nothing was saved (no --out)"
        _say(f"pe-av embed: stopped at the first failure (--fail-fast); {saved}")
        return 1
    media, text = _rows(parts, "media", files, keys["media"]), _rows(parts, "text", texts, keys["text"])
    if files:
        shape = tuple(media[1].shape) if media[1] is not None else (0,)
        print(f"embedded {len(media[0])} file(s) as {modality}: {shape}")
    if texts:
        shape = tuple(text[1].shape) if text[1] is not None else (0,)
        print(f"embedded {len(text[0])} text(s) in the text-{modality} space: {shape}")
    print(f"({time.perf_counter() - start:.2f} s on {model.device}, attn_impl={model.attn_impl})")
    if media[1] is not None and text[1] is not None:
        unit_text = torch.nn.functional.normalize(text[1].float(), dim=-1)
        unit_media = torch.nn.functional.normalize(media[1].float(), dim=-1)
        print_table(f"text ↔ {modality} (cosine similarity)", text[0], [Path(f).name for f in media[0]],
                    unit_text @ unit_media.T)
    if outputs is not None:
        written = []
        try:
            written = _write_outputs(outputs, modality, media, text, parts.failures, args.model, args.overwrite)
        except _WriteError as exc:
            again = _resume_command(argv, overwrite=args.overwrite or any(p.exists() for p in outputs.finals))
            raise CliError(exc.path, f"cannot write it: {exc.reason}; the finished batches are kept in "
                           f"{outputs.parts}: continue with {again}") from exc
        parts.remove()
        for path in written:
            print(f"wrote {path}")
    if parts.failures:
        total = len(files) + len(texts)
        listed = f"; listed in {outputs.failures}" if outputs is not None else ""
        _say(f"pe-av embed: {len(parts.failures)} of {total} input(s) failed and were left out{listed}")
        return 1
    return 0
