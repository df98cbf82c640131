"""Prompt templates for zero-shot classification: built-in sets for sounds and actions, or your own.

A template is a caption with one ``{}`` where the label goes (``"the sound of {}"``). Averaging the
text embeddings of several phrasings of the same label (a template *ensemble*) gives a steadier
label embedding than any single caption, which is how zero-shot audio and video numbers are
usually reported. The lists below were written for pe-av: short, plain phrasings of how sounds are
heard and how actions are filmed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TEMPLATE_SETS", "check_templates", "read_templates"]

#: captions for what is heard (audio targets)
SOUND_TEMPLATES = (
    "{}",
    "the sound of {}",
    "a recording of {}",
    "the noise of {}",
    "you can hear {}",
    "an audio clip of {}",
    "{} can be heard",
    "a loud sound of {}",
    "a quiet sound of {}",
    "{} in the background",
    "a short recording of {}",
    "the distant sound of {}",
    "a close-up recording of {}",
    "{} recorded outdoors",
    "{} recorded indoors",
    "a noisy recording of {}",
)

#: captions for what is seen being done (video and audio+video targets)
ACTION_TEMPLATES = (
    "{}",
    "a video of {}",
    "a person {}",
    "someone is {}",
    "a clip of people {}",
    "footage of {}",
    "a video showing {}",
    "a short video of {}",
    "a blurry video of {}",
    "a close-up video of {}",
    "an amateur video of {}",
    "a person is shown {}",
    "a group of people {}",
    "a recording of someone {}",
    "{} filmed outdoors",
    "{} filmed indoors",
)

#: the built-in sets by name (``templates="sounds"``); ``"none"`` is the bare label
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"sounds": SOUND_TEMPLATES, "actions": ACTION_TEMPLATES, "none": ("{}",)}


def check_templates(templates: object) -> list[str]:
    """The templates as a list: a built-in set's name, or a non-empty sequence of strings with one ``{}``."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ValueError(f"templates must be one of {sorted(TEMPLATE_SETS)} or a list of strings with one '{{}}', "
                             f"got {templates!r}")
        return list(TEMPLATE_SETS[templates])
    if not isinstance(templates, Sequence) or not templates:
        raise ValueError(f"templates must be a set name or a non-empty list of strings, got {templates!r}")
    checked = []
    for i, template in enumerate(templates):
        if not isinstance(template, str) or template.count("{}") != 1 or not template.strip():
            raise ValueError(f"templates[{i}] must be a string with exactly one '{{}}' for the label, got {template!r}")
        checked.append(template)
    return checked


def read_templates(path: str | os.PathLike) -> list[str]:
    """Templates from a text file, one a line (blank lines and lines starting with ``#`` skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the templates file {path}: {exc}") from exc
    lines = [line.strip() for line in text.splitlines()]
    templates = [line for line in lines if line and not line.startswith("#")]
    if not templates:
        raise ValueError(f"{path} holds no templates (one a line, each with one '{{}}')")
    try:
        return check_templates(templates)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
