"""An index's rows as one parquet table: ``path``, ``modality``, ``embedding`` (list of float32)."""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_path

__all__ = ["export_parquet"]


def export_parquet(index_dir: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write every live row of the index at ``index_dir`` to the parquet file ``out`` (atomically; an
    existing ``out`` is replaced only with ``overwrite``); return ``out``. Needs pyarrow (``pe-av[ray]``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..index import MediaIndex

    index = MediaIndex.load(index_dir)
    paths, modalities, rows = [], [], []
    for modality in index.modalities:
        names, embeddings = index.embeddings(modality)
        paths += names
        modalities += [modality] * len(names)
        rows += embeddings.numpy().tolist()
    table = pa.table({"path": paths, "modality": modalities,
                      "embedding": pa.array(rows, type=pa.list_(pa.float32()))})
    with atomic_path(out, overwrite=overwrite) as tmp:
        pq.write_table(table, tmp)
    return Path(out)
