"""The one place pe_av reads JSON files (configs, processor and tokenizer settings, safetensors indexes).

Every reader goes through :func:`read_json_object`, so a missing, unreadable, non-UTF-8, malformed,
oversized, too deeply nested or wrongly-shaped file gives the same kind of error, naming the file,
wherever it is read.

Bounds: a file over :data:`MAX_JSON_BYTES` is refused before it is read, and one nested deeper than
:data:`MAX_JSON_DEPTH` before it is parsed (``json.loads`` recurses once per level, so a deep file
would otherwise end in ``RecursionError``). The depth is counted without recursion: string literals
are cut out, then the running count of brackets is summed with numpy.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "json_depth", "read_json_object"]

#: largest JSON file read (bytes); real configs and indexes are kilobytes
MAX_JSON_BYTES = 64 * 2**20
#: deepest nesting of arrays/objects accepted; real configs nest 3 or 4 levels
MAX_JSON_DEPTH = 100

# a JSON string literal (escapes included); UTF-8 continuation bytes never equal '"' or '\'
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = np.zeros(256, dtype=np.int8)
_DELTA[list(b"[{")] = 1
_DELTA[list(b"]}")] = -1
_CHUNK = 1 << 22


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in the JSON text ``data``, brackets inside strings not counted.

    Linear time and no recursion. For malformed text the result is only an estimate (the parser
    reports such text itself).
    """
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _CHUNK):  # chunks bound the int32 temporaries
        running = np.cumsum(_DELTA[np.frombuffer(brackets, np.uint8, min(_CHUNK, len(brackets) - start), start)],
                            dtype=np.int32) + depth
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
    return deepest


def read_json_object(path: str | os.PathLike, holds: str = "settings") -> dict[str, Any]:
    """Parse ``path``, which must hold a JSON object (``holds`` says what it describes, for errors).

    Raises ``FileNotFoundError`` when the file is absent and ``ValueError`` when it cannot be read, is
    larger than :data:`MAX_JSON_BYTES`, nests deeper than :data:`MAX_JSON_DEPTH`, is not UTF-8 JSON,
    or holds something other than an object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {os.fspath(path.parent)!r}")
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(
                f"{path} is {size:,} bytes, over the {MAX_JSON_BYTES:,} bytes pe_av reads as {holds} "
                "(pe_av.json_io.MAX_JSON_BYTES)"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path} is not valid JSON (cannot read it: {exc})") from exc
    if len(raw) > MAX_JSON_BYTES:  # grew since stat
        raise ValueError(f"{path} is over the {MAX_JSON_BYTES:,} bytes pe_av reads as {holds}")
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(
            f"{path} nests arrays/objects {depth} levels deep, deeper than the {MAX_JSON_DEPTH} pe_av reads "
            "(pe_av.json_io.MAX_JSON_DEPTH)"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError, int digit limit
        raise ValueError(f"{path} is not valid JSON (cannot read it: {exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object ({holds}), got {type(data).__name__}")
    return data
