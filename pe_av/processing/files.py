"""Where processor files come from: local directories or the hub, transformers' loading keywords, config overrides.

``from_pretrained(path, **kwargs)`` of every processor class and part takes transformers' keywords:

- hub keywords — ``revision``, ``cache_dir``, ``local_files_only``, ``token`` (or the older
  ``use_auth_token``), ``force_download``, ``subfolder`` — are passed to ``huggingface_hub.snapshot_download``
  when ``path`` is a hub id (only the processor files are fetched: ``*.json``, ``*.txt``, ``*.model``). For a
  local directory they have nothing to select and are ignored (logged at INFO), except ``subfolder``, which
  is joined to the directory as transformers does;
- ``trust_remote_code``, ``use_fast``, ``_from_auto`` are accepted and ignored: pe_av runs no remote code and
  has one (fast) tokenizer;
- every other keyword that names a setting of a part overrides the saved value (``num_frames=8``,
  ``padding_side="left"``, ``sampling_rate=...``), as transformers does; keywords no part has are ignored
  with a logged warning (transformers ignores them silently).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from ..json_io import read_json_object
from ..loading import resolve_model_dir

PROCESSOR_CONFIG = "processor_config.json"
FEATURE_EXTRACTOR_CONFIG = "preprocessor_config.json"
VIDEO_PROCESSOR_CONFIG = "video_preprocessor_config.json"
#: files a processor may need: configs, tokenizer.json, vocabularies
PROCESSOR_FILE_PATTERNS = ("*.json", "*.txt", "*.model")
HUB_KEYWORDS = ("revision", "cache_dir", "local_files_only", "token", "force_download", "subfolder")
IGNORED_KEYWORDS = ("trust_remote_code", "use_fast", "_from_auto", "_from_pipeline", "resume_download", "proxies",
                    "code_revision", "_commit_hash")

logger = logging.getLogger("pe_av.processing")


def split_loading_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(hub keywords, setting overrides)`` of a ``from_pretrained`` call; ignored keywords are dropped."""
    hub: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "use_auth_token":
            key = "token"
        if key == "return_unused_kwargs":
            if value:
                raise ValueError("return_unused_kwargs=True is not supported: pe_av returns the loaded object alone")
        elif key in HUB_KEYWORDS:
            hub[key] = value
        elif key not in IGNORED_KEYWORDS:
            overrides[key] = value
    return hub, overrides


def _looks_like_repo_id(path: str) -> bool:
    return re.fullmatch(r"[\w.-]+/[\w.-]+", path) is not None


def resolve_processor_dir(path: str | os.PathLike, hub: dict[str, Any]) -> Path:
    """The directory holding the processor files of ``path``: a local directory, or a hub id's snapshot."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"from_pretrained expects a directory path (str or os.PathLike), got {type(path).__name__}")
    hub = {key: value for key, value in hub.items() if value is not None}
    subfolder = hub.pop("subfolder", "") or ""
    text = os.fspath(path)
    if os.path.exists(text) or not _looks_like_repo_id(text):
        directory = Path(resolve_model_dir(text))  # its errors: a file, a missing directory, a bad type
        if hub:
            logger.info("loading from the local directory %s: %s ignored (they select hub files)", text, sorted(hub))
    else:
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:
            raise FileNotFoundError(
                f"{text!r} is not a local directory, and huggingface_hub is not installed to fetch it from the hub"
            ) from exc
        prefix = f"{subfolder.strip('/')}/" if subfolder else ""
        directory = Path(snapshot_download(text, allow_patterns=[prefix + p for p in PROCESSOR_FILE_PATTERNS], **hub))
    if subfolder:
        directory = directory / subfolder
        if not directory.is_dir():
            raise FileNotFoundError(f"no subfolder {subfolder!r} in {text}")
    return directory


def read_if_present(path: Path) -> dict[str, Any]:
    return read_json_object(path, holds="processor settings") if path.is_file() else {}


def part_configs(directory: Path) -> dict[str, dict[str, Any] | None]:
    """The saved ``feature_extractor`` and ``video_processor`` configs of ``directory`` (``None``: absent).

    transformers 5 nests them in ``processor_config.json``; older versions (and the parts' own
    ``save_pretrained``) write ``preprocessor_config.json`` / ``video_preprocessor_config.json``, and some
    put a video config in ``preprocessor_config.json``.
    """
    nested = read_if_present(directory / PROCESSOR_CONFIG)
    legacy = read_if_present(directory / FEATURE_EXTRACTOR_CONFIG)
    audio = nested.get("feature_extractor")
    if audio is None and legacy and "video_processor_type" not in legacy:
        audio = legacy
    video = nested.get("video_processor")
    if video is None:
        video = read_if_present(directory / VIDEO_PROCESSOR_CONFIG) or None
    if video is None and "video_processor_type" in legacy:
        video = legacy
    for name, config in (("feature_extractor", audio), ("video_processor", video)):
        if config is not None and not isinstance(config, dict):
            raise ValueError(f"the {name} config in {directory} must be a JSON object, got {type(config).__name__}")
    return {"feature_extractor": audio, "video_processor": video}


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """``config`` with the overrides that name one of its settings (``known`` or a key it holds)."""
    return {**config, **{key: value for key, value in overrides.items() if key in known or key in config}}


def warn_unused(overrides: dict[str, Any], used: set[str], where: str) -> None:
    unused = sorted(set(overrides) - used)
    if unused:
        logger.warning("%s.from_pretrained: %s name no setting and are ignored", where, ", ".join(unused))
