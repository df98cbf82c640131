"""Where a checkpoint is: a local directory, or a Hugging Face hub id fetched through ``huggingface_hub``.

:func:`resolve_model_dir` takes transformers' hub keywords (``revision``, ``cache_dir``,
``local_files_only``, ``token``, ``force_download``, ``subfolder``) and passes them on to
``huggingface_hub.snapshot_download``. Offline (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``) only the
local cache is read; a checkpoint not there is an ``OSError`` naming the id and saying why nothing was
downloaded.
"""

from __future__ import annotations

import os
import re

__all__ = ["hub_offline", "resolve_model_dir"]

#: the files a checkpoint directory needs (configs, weights, tokenizer): never pickles
_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model")
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or the older ``TRANSFORMERS_OFFLINE``) is set, now or when ``huggingface_hub`` was imported."""
    if any(os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _looks_like_repo_id(path: str) -> bool:
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", path) is not None and ".." not in path and not path.startswith(".")


def resolve_model_dir(
    path: str | os.PathLike,
    *,
    subfolder: str = "",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> str:
    """The directory holding the checkpoint ``path`` names (``subfolder`` inside it, when given).

    A local directory is used as it is (the hub keywords are then ignored, as transformers ignores them);
    anything else that looks like a hub id (``"facebook/pe-av-large"``) is fetched, or read from the cache.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"from_pretrained expects a directory path (str or os.PathLike), got {type(path).__name__}")
    if not isinstance(subfolder, str) or os.path.isabs(subfolder) or ".." in re.split(r"[\\/]", subfolder):
        raise ValueError(f"subfolder must be a relative path inside the checkpoint, got {subfolder!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        directory = os.path.join(path, subfolder) if subfolder else path
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{path!r} has no subfolder {subfolder!r}")
        return directory
    if os.path.exists(path):
        raise NotADirectoryError(f"{path!r} is a file; from_pretrained expects a directory holding config.json")
    if not _looks_like_repo_id(path) or path.count("/") != 1:
        raise FileNotFoundError(f"model directory {path!r} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise FileNotFoundError(
            f"{path!r} is not a local directory, and huggingface_hub is not installed to fetch it from the hub"
        ) from exc
    env_offline = hub_offline()
    offline = bool(local_files_only) or env_offline
    prefix = subfolder.strip("/") + "/" if subfolder else ""
    try:
        root = snapshot_download(
            path, revision=revision, cache_dir=cache_dir, local_files_only=offline, token=token,
            force_download=force_download, allow_patterns=[prefix + p for p in _PATTERNS],
        )
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one OSError naming the id
        where = f"revision {revision!r} of " if revision not in (None, "main") else ""
        if offline:
            why = "HF_HUB_OFFLINE=1 is set" if env_offline else "local_files_only=True was passed"
            raise OSError(
                f"{where}{path!r} is not a local directory and is not in the hub cache"
                f"{f' ({os.fspath(cache_dir)})' if cache_dir else ''}, and nothing was downloaded because {why}. "
                "Run once with network access (unset HF_HUB_OFFLINE, local_files_only=False), or pass a local directory."
            ) from exc
        raise OSError(f"could not fetch {where}{path!r} from the Hugging Face hub: {type(exc).__name__}: {exc}") from exc
    directory = os.path.join(root, subfolder) if subfolder else root
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path!r} has no subfolder {subfolder!r}")
    return directory
