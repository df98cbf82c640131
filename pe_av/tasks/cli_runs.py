"""What ``pe-av classify`` and ``pe-av detect`` run (their arguments: :mod:`pe_av.commands.classify`,
:mod:`pe_av.commands.detect`).

Both check everything they can before the model loads (the files exist, ``--out`` / ``--plot`` would
not replace a file without ``--overwrite``, matplotlib is there for ``--plot``), then compute, then
print the rows or write them atomically (:mod:`.rows_out`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..embed_parts import CliError, check_files
from .rows_out import output_format, write_rows

CLASSIFY_COLUMNS = ["input", "rank", "label", "probability", "logit"]
EVENT_COLUMNS = ["query", "onset_s", "offset_s", "score"]


def _check_new(path: str | None, flag: str, overwrite: bool) -> None:
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise CliError(flag, f"{target} is a directory; give a file name")
    if not target.parent.is_dir():
        raise CliError(flag, f"directory does not exist: {target.parent}")
    if target.exists() and not overwrite:
        raise CliError(target, "already exists; pass --overwrite to replace it")


def _labels(args: argparse.Namespace) -> list[str]:
    labels = list(args.labels or [])
    if args.labels_file:
        try:
            text = Path(args.labels_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(args.labels_file, f"cannot read the labels file: {exc}") from exc
        labels += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not labels:
        raise CliError("--labels-file", f"{args.labels_file} holds no labels (one a line)")
    return labels


def _templates(value: str | None) -> object:
    from .templates import TEMPLATE_SETS, read_templates

    if value is None or value in TEMPLATE_SETS:
        return value
    if not Path(value).is_file():
        raise CliError("--templates", f"{value!r} is neither a built-in set ({', '.join(TEMPLATE_SETS)}) nor a file")
    try:
        return read_templates(value)
    except ValueError as exc:
        raise CliError("--templates", str(exc)) from exc


def _emit(rows, fmt, columns, out, overwrite) -> None:
    text = write_rows(rows, fmt, columns, out, overwrite)
    if out is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {out}", file=sys.stderr)


def run_classify(args: argparse.Namespace) -> int:
    """``pe-av classify``; returns the exit status (1 when a file was skipped)."""
    from ..embed_run import load_model, pick_modality
    from .classify import classify

    fmt = output_format(args.json, args.csv, args.out)
    _check_new(args.out, "--out", args.overwrite)
    check_files(args.files)
    labels, templates = _labels(args), _templates(args.templates)
    model, processor = load_model(args.model, args.attn_impl, args.device, args.dtype, command="pe-av classify")
    target = pick_modality(args.target, model, args.files)
    frames = {"num_frames": args.num_frames, "fps": args.fps, "max_frames": args.max_frames}
    options = {} if target == "audio" else {k: v for k, v in frames.items() if v is not None}
    failures: list = []
    result = classify(model, processor, list(args.files), labels, templates=templates, target=target,
                      multi_label=not args.softmax, batch_size=args.batch_size,
                      progress=False if args.no_progress else None, on_error="skip", failures=failures, **options)
    for failure in failures:
        print(f"pe-av classify: skipped {failure.item}: {failure.reason}", file=sys.stderr)
    _emit(result.rows(args.top_k), fmt, CLASSIFY_COLUMNS, args.out, args.overwrite)
    return 1 if failures else 0


def run_detect(args: argparse.Namespace) -> int:
    """``pe-av detect``; returns the exit status."""
    from ..embed_run import load_model
    from .events import detect_events
    from .plot import _matplotlib, plot_events

    fmt = output_format(args.json, args.csv, args.out)
    if args.plot is not None:
        _matplotlib()  # says how to install it before any work is done
    _check_new(args.out, "--out", args.overwrite)
    _check_new(args.plot, "--plot", args.overwrite)
    check_files([args.file])
    model, processor = load_model(args.model, args.attn_impl, args.device, args.dtype,
                                  architecture="PeAudioFrameLevelModel", command="pe-av detect")
    detection = detect_events(model, processor, args.file, args.queries, threshold=args.threshold,
                              median_filter=args.median_filter, min_duration=args.min_duration,
                              merge_gap=args.merge_gap, window_s=args.window_s, hop_s=args.hop_s,
                              batch_size=args.batch_size, progress=not args.no_progress)
    print(f"{len(detection)} event(s) in {detection.duration:.2f} s of audio "
          f"({detection.scores.shape[1]} frames of {detection.frame_period * 1e3:.0f} ms)", file=sys.stderr)
    _emit(detection.rows(), fmt, EVENT_COLUMNS, args.out, args.overwrite)
    if args.plot is not None:
        plot_events(detection, args.plot, overwrite=args.overwrite)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
