"""pe_av.distributed on a local Ray cluster started here (2 CPUs): ``pe-av index --ray`` writes the index
the local build writes (same manifest, rows within 1e-6); a corrupt file becomes a failure record; a model
actor killed mid-run is restarted and the index is complete; a run that died part way, resumed, embeds
only the missing files. Ray comes with the test extra, so these run in CI."""

from __future__ import annotations

import os

import pytest
import ray
import torch
from cli_helpers import make_checkpoint, run, write_clips

from pe_av.demo import write_demo_media
from pe_av.distributed import EmbedBatches, export_parquet, index_with_ray
from pe_av.index import MediaIndex, build_index
from pe_av.index.manifest import read_manifest

BATCH = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    model_dir = make_checkpoint(root / "model")
    media = root / "media"
    write_demo_media(media / "demo")
    write_clips(media / "clips", 2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}})
    local = root / "local.index"
    build_index(media, local, model_dir, workers=0, batch_size=BATCH, progress=False, say=lambda message: None)
    yield {"root": root, "model_dir": model_dir, "media": media, "local": MediaIndex.load(local)}
    ray.shutdown()


def assert_same_rows(index: MediaIndex, reference: MediaIndex) -> None:
    for modality in reference.modalities:
        ref_paths, ref_rows = reference.embeddings(modality)
        paths, rows = index.embeddings(modality)
        assert sorted(paths) == sorted(ref_paths)
        order = [paths.index(p) for p in ref_paths]
        torch.testing.assert_close(rows[order], ref_rows, atol=1e-6, rtol=0)


def quiet(message: str) -> None:
    pass


def test_ray_index_equals_the_local_index(cluster, tmp_path):
    out = tmp_path / "ray.index"
    status, stdout, stderr = run(["index", cluster["media"], "--model", cluster["model_dir"], "--out", out, "--ray",
                                  "--batch-size", BATCH, "--no-progress"])
    assert status == 0, stderr
    assert f"{len(cluster['local'].files)} new" in stdout
    header, records = read_manifest(out)
    local_header, local_records = read_manifest(cluster["local"].path)
    assert header.config_hash == local_header.config_hash and header.root == local_header.root
    assert {p: (r.size, r.mtime_ns, r.modalities, r.duration) for p, r in records.items()} == \
           {p: (r.size, r.mtime_ns, r.modalities, r.duration) for p, r in local_records.items()}
    index = MediaIndex.load(out)
    assert_same_rows(index, cluster["local"])
    assert index.search("a pure tone", k=3) == cluster["local"].search("a pure tone", k=3)
    table = export_parquet(out, tmp_path / "rows.parquet")
    import pyarrow.parquet as pq

    rows = pq.read_table(table).to_pylist()
    assert len(rows) == sum(len(r.modalities) for r in records.values())


def test_corrupt_file_becomes_a_failure_record(cluster, tmp_path):
    media = tmp_path / "media"
    write_clips(media, 2)
    (media / "corrupt.mp4").write_bytes(os.urandom(512))
    report = index_with_ray(media, tmp_path / "idx", cluster["model_dir"], batch_size=BATCH, say=quiet)
    assert [f.path for f in report.failed] == ["corrupt.mp4"] and report.embedded == 2
    index = MediaIndex.load(tmp_path / "idx")
    assert [r.path for r in index.failures] == ["corrupt.mp4"] and "corrupt.mp4" in index.failures[0].error
    assert len(index) == 2


def test_a_killed_actor_is_restarted_and_the_index_is_complete(cluster, tmp_path):
    marker = tmp_path / "killed-once"

    class KillOnce(EmbedBatches):
        """Dies (the whole worker process) at its second batch, the first time only."""

        calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 2 and not marker.exists():
                marker.write_text("killed")
                os._exit(1)
            return super().__call__(batch)

    report = index_with_ray(cluster["media"], tmp_path / "idx", cluster["model_dir"], batch_size=BATCH,
                            embed_cls=KillOnce, say=quiet)
    assert marker.exists()  # it did die
    assert report.embedded == len(cluster["local"])
    assert_same_rows(MediaIndex.load(tmp_path / "idx"), cluster["local"])


def test_a_run_that_died_resumed_embeds_only_the_missing_files(cluster, tmp_path):
    class FailsAtThird(EmbedBatches):
        calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("the job dies here")
            return super().__call__(batch)

    out = tmp_path / "idx"
    with pytest.raises(Exception, match="the job dies here"):
        index_with_ray(cluster["media"], out, cluster["model_dir"], batch_size=BATCH, embed_cls=FailsAtThird,
                       commit_every=1, say=quiet)
    _, kept = read_manifest(out)
    assert len(kept) < len(cluster["local"].records)
    report = index_with_ray(cluster["media"], out, cluster["model_dir"], batch_size=BATCH, say=quiet)
    assert sorted(report.added) == sorted(set(cluster["local"].records) - set(kept))
    assert sorted(report.unchanged) == sorted(kept)
    assert_same_rows(MediaIndex.load(out), cluster["local"])
