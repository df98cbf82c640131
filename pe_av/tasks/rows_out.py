"""Result rows (lists of flat dicts) as a table, JSON or CSV, on stdout or written atomically to a file.

Shared by ``pe-av classify`` and ``pe-av detect``. A file is written with :func:`pe_av.atomic.atomic_write_bytes`
and never replaces an existing one unless ``overwrite``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import atomic_write_bytes

__all__ = ["FORMATS", "format_rows", "output_format", "write_rows"]

FORMATS = ("table", "json", "csv")


def format_rows(rows: list[dict[str, object]], fmt: str, columns: list[str]) -> str:
    """``rows`` in ``fmt``: ``"json"`` (a list of objects), ``"csv"`` (a header, then one line a row) or
    ``"table"`` (aligned columns, floats with 3 decimals)."""
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt != "table":
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    cells = [[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells]
    return "\n".join(lines) + "\n"


def output_format(json_flag: bool, csv_flag: bool, out: str | None) -> str:
    """The format the flags ask for; with only ``--out``, its extension (``.json`` / ``.csv``) decides."""
    if json_flag:
        return "json"
    if csv_flag:
        return "csv"
    if out is not None:
        suffix = Path(out).suffix.lower()
        if suffix in (".json", ".csv"):
            return suffix[1:]
        raise ValueError(f"--out {out}: give --json or --csv, or a file name ending in .json or .csv")
    return "table"


def write_rows(rows: list[dict[str, object]], fmt: str, columns: list[str], out: str | None, overwrite: bool) -> str:
    """Format the rows; write them to ``out`` (atomically) when given, else return the text to print."""
    text = format_rows(rows, fmt, columns)
    if out is not None:
        atomic_write_bytes(Path(out), text.encode("utf-8"), overwrite=overwrite)
        return ""
    return text
