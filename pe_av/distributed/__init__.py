"""Embedding and indexing whole collections on a Ray cluster (``pip install 'pe-av[ray]'``).

- :func:`index_with_ray` (``pe-av index DIR --ray``): the same index as ``pe-av index`` (layout,
  updates, failure records, resume), with decoding in CPU tasks and the model on GPU (or CPU) actors
  that load it once; Ray retries the tasks of workers that die.
- :func:`media_dataset`: a folder, file list or parquet of paths as a Ray dataset of decoded,
  preprocessed files; :func:`decode_files` and :class:`EmbedBatches`: the ``map_batches`` steps, for
  pipelines of your own. :func:`export_parquet`: an index's rows as a parquet file.

Ray is imported when a function here runs, not with ``pe_av``.
"""

from .export import export_parquet
from .pipeline import collect_paths, index_with_ray, media_dataset
from .steps import EmbedBatches, decode_files

__all__ = ["EmbedBatches", "collect_paths", "decode_files", "export_parquet", "index_with_ray", "media_dataset"]
