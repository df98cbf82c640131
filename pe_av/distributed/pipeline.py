"""Indexing a collection with Ray Data: read → decode (CPU actors) → embed (model actors) → write.

The driver plans like the local build (:func:`pe_av.index.build.plan_update`: paths already in the index
and unchanged are skipped, so an interrupted run resumed embeds only what is missing), streams the rest
through the two steps of :mod:`pe_av.distributed.steps`, and writes every ``batch_size`` files that
come back as one shard with the local build's writer (:class:`pe_av.index.writer.IndexWriter`): the
same layout, the same crash safety, and a manifest ``pe-av index`` / ``pe-av search`` read as theirs.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

from ..index.build import (
    AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    BuildReport,
    add_shard,
    check_extensions,
    index_header,
    plan_update,
    resolve_modalities,
    walk_media,
)
from ..index.writer import IndexWriter
from .steps import EmbedBatches, decode_files, join_rows

__all__ = ["collect_paths", "index_with_ray", "media_dataset", "ray_module"]


def ray_module():
    """``ray`` (with Ray Data), or an ``ImportError`` saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError(f"pe_av.distributed needs Ray Data, which cannot be imported ({exc}): "
                          "pip install 'pe-av[ray]'") from exc
    return ray


def collect_paths(source, extensions: tuple[str, ...], skip: Path | None = None, root=None):
    """``(root, {relative path: (size, mtime_ns)})`` for a folder (walked), a list of file paths or a
    parquet file with a ``path`` column (``root``: their common folder unless given)."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        root = Path(root or source)
        return root, walk_media(root, extensions, skip=skip)
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(source, columns=["path"])
        paths = [str(p) for p in table.column("path").to_pylist()]
    elif isinstance(source, (list, tuple)):
        paths = [os.fspath(p) for p in source]
    else:
        raise ValueError(f"source must be a folder, a list of paths or a .parquet file, got {source!r}")
    if not paths:
        raise ValueError("source names no files")
    full = [os.path.abspath(p) for p in paths]
    root = Path(root or os.path.commonpath([os.path.dirname(p) for p in full]))
    found = {}
    for path in full:
        rel = Path(os.path.relpath(path, root)).as_posix()
        try:
            info = os.stat(path)
            found[rel] = (info.st_size, info.st_mtime_ns)
        except OSError:
            found[rel] = (0, 0)  # becomes a failure record
    return root, found


def media_dataset(paths: list[str], root: str, model_dir: str, modalities, num_frames=None, *, decoders: int | None = None,
                  cpus_per_decoder: float = 1.0, batch_size: int = 8):
    """The Ray dataset of ``paths`` (relative to ``root``) decoded and preprocessed by at most ``decoders``
    concurrent CPU tasks (None: as many as the free CPUs allow): rows ``{"path", "blob"}`` (see
    :mod:`pe_av.distributed.steps`)."""
    ray = ray_module()
    items = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=max(1, -(-len(paths) // batch_size)))
    return items.map_batches(decode_files, fn_kwargs={"model_dir": str(model_dir), "root": str(root),
                                                      "modalities": tuple(modalities), "num_frames": num_frames},
                             batch_size=batch_size, batch_format="numpy",
                             compute=ray.data.TaskPoolStrategy(size=decoders), num_cpus=cpus_per_decoder)


def index_with_ray(source, index_dir, model_dir, *, root=None, extensions=None, modalities=None,
                   batch_size: int = 8, num_frames: int | None = None, normalize: bool = True, attn_impl=None,
                   device=None, dtype=None, actors: int = 1, gpus_per_actor: float = 0.0,
                   cpus_per_actor: float = 1.0, decoders: int | None = None,
                   cpus_per_decoder: float = 1.0, overwrite: bool = False, retry_failed: bool = False,
                   address: str | None = None, embed_cls: type = EmbedBatches, commit_every: int = 64,
                   progress: bool = False, say=print) -> BuildReport:
    """Build or update the index of ``source`` (a folder, a list of paths, a parquet of paths) in
    ``index_dir`` on a Ray cluster (``address``: ``"auto"``, ``"ray://host:port"``; None: the running
    one, or a local one started here). ``actors`` model actors with ``gpus_per_actor`` GPUs (and ``cpus_per_actor`` CPUs) each embed
    ``batch_size`` files at a time; decoding runs in CPU tasks of ``cpus_per_decoder`` CPUs, at most
    ``decoders`` at once (None: as many as the free CPUs allow).
    ``embed_cls``: the model step (a subclass of :class:`~pe_av.distributed.steps.EmbedBatches`).
    Returns the same :class:`~pe_av.index.build.BuildReport` as the local build."""
    from ..embed_run import load_model
    from ..index.prepare import model_modalities

    ray = ray_module()
    for name, value in (("batch_size", batch_size), ("actors", actors), ("decoders", decoders or 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    # the header needs the model's type and dtype: the driver loads the checkpoint once, on its CPU
    model, _ = load_model(str(model_dir), attn_impl, None, dtype)
    modalities = resolve_modalities(modalities, model_modalities(model), type(model).__name__)
    extensions = check_extensions(extensions or VIDEO_EXTENSIONS + (AUDIO_EXTENSIONS if "audio" in modalities else ()))
    root, found = collect_paths(source, extensions, skip=Path(index_dir), root=root)
    header = index_header(root, str(model_dir), model, modalities, extensions, num_frames, normalize)
    del model
    writer = IndexWriter.open(index_dir, header, overwrite=overwrite, say=say)
    report = BuildReport(Path(index_dir))
    todo = plan_update(writer.records, found, retry_failed, report)
    writer.drop(report.removed)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    start = time.perf_counter()
    try:
        if todo:
            decoded = media_dataset(todo, str(root), str(model_dir), modalities, num_frames, decoders=decoders,
                                    cpus_per_decoder=cpus_per_decoder, batch_size=batch_size)
            embedded = decoded.map_batches(
                embed_cls, fn_constructor_kwargs={"model_dir": str(model_dir), "modalities": modalities,
                                                  "normalize": normalize, "attn_impl": attn_impl,
                                                  "device": device, "dtype": dtype},
                batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                num_gpus=gpus_per_actor, num_cpus=cpus_per_actor)  # Ray Data restarts dead actors, retries their tasks
            for batch in embedded.iter_batches(batch_size=batch_size, batch_format="numpy"):
                add_shard(writer, join_rows([pickle.loads(blob) for blob in batch["blob"]]), report, say, commit_every)
    finally:
        report.seconds = time.perf_counter() - start
        writer.commit()
    return report

