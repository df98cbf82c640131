"""Argument types shared by several ``pe-av`` subcommands."""

from __future__ import annotations

import argparse

from ..dispatch import BACKENDS

#: What ``--modality`` accepts where a command embeds media.
MODALITIES = ("auto", "audio", "video", "audio_video")
#: What ``--dtype`` accepts.
DTYPES = ("float32", "bfloat16", "float16")


def parse_backends(value: str) -> list[str]:
    """``"eager,sdpa"`` → ``["eager", "sdpa"]``; an argparse type that names the allowed backends."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"backends must be a comma-separated subset of {BACKENDS}, got {value!r}")
    return names


def positive_int(flag: str, value: int | None, usage: argparse.ArgumentParser) -> None:
    """Usage error unless ``value`` is None or at least 1."""
    if value is not None and value < 1:
        usage.error(f"{flag} must be at least 1")
