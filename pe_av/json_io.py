"""The one place pe_av reads JSON files (configs, processor and tokenizer settings).

Every reader goes through :func:`read_json_object`, so a missing, unreadable, non-UTF-8, malformed or
wrongly-shaped file gives the same kind of error, naming the file, wherever it is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["read_json_object"]


def read_json_object(path: str | os.PathLike, holds: str = "settings") -> dict[str, Any]:
    """Parse ``path``, which must hold a JSON object (``holds`` says what it describes, for errors).

    Raises ``FileNotFoundError`` when the file is absent and ``ValueError`` when it cannot be read, is
    not UTF-8 JSON, or holds something other than an object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {os.fspath(path.parent)!r}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON (cannot read it: {exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object ({holds}), got {type(data).__name__}")
    return data
