"""Indexing throughput (files/s): ``pe-av index`` with decoding worker processes against the serial paths.

    pytest bench/bench_index.py --benchmark-only          # pytest-benchmark table (one group)
    python bench/bench_index.py [--files N] [--workers 0,1,2,4]   # files/s side by side, one run

Cases, each embedding every modality a file allows (audio; video and audio+video for videos) with the
demo's tiny model and the same generated media (half 2 s 240×320 videos with sound, half 1 s audio clips; 8 frames per video):

- ``serial_embed``: what ``pe-av embed`` does, one run per modality — ``encode_audio`` over every
  file, ``encode_video`` and ``encode_audio_video`` over the videos — decoding in the main process
  (so a video's audio and frames are decoded twice);
- ``index_workers_0``: ``build_index(workers=0)``: each file decoded once, in the main process;
- ``index_workers_N``: decoding in N DataLoader processes while the main process runs the model.

The model runs with one torch thread in every case (the main process's compute is the same); set
``OMP_WAIT_POLICY=PASSIVE``. With the tiny model decoding dominates, which is what the workers
overlap; with a real model on a GPU the model's share grows and so does the value of overlapping.
On a shared machine quote the ratios of one run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pe_av import PeAudioVideoModel, PeAudioVideoProcessor, encode_audio, encode_audio_video, encode_video  # noqa: E402
from pe_av.demo import demo_model, demo_processor  # noqa: E402
from pe_av.index import build_index  # noqa: E402
from pe_av.media import write_audio, write_video  # noqa: E402

N_FILES = 24
BATCH = 4
NUM_FRAMES = 8


def write_media(folder: Path, n: int) -> list[Path]:
    """``n`` files: every other one a 2 s 240×320 video at 24 fps with a 1 s sound track, the others 1 s
    wavs (decoding a frame costs what its size costs; the model sees 8 frames resized to 28×28)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        if i % 2 == 0:
            frames = rng.integers(0, 255, (48, 240, 320, 3), dtype=np.uint8)
            audio = rng.uniform(-0.3, 0.3, 48_000).astype(np.float32)
            files.append(write_video(folder / f"clip_{i:03d}.mp4", frames, fps=24, audio=audio))
        else:
            files.append(write_audio(folder / f"sound_{i:03d}.wav", rng.uniform(-0.3, 0.3, 48_000)
                                     .astype(np.float32), 48_000))
    return files


def make_setup(root: Path, n: int) -> dict:
    model_dir = root / "model"
    demo_model().save_pretrained(model_dir)
    demo_processor().save_pretrained(model_dir)
    files = write_media(root / "media", n)
    return {"root": root, "model_dir": model_dir, "files": files,
            "model": PeAudioVideoModel.from_pretrained(model_dir),
            "processor": PeAudioVideoProcessor.from_pretrained(model_dir)}


def serial_embed(setup: dict) -> int:
    model, processor = setup["model"], setup["processor"]
    everything = [str(f) for f in setup["files"]]
    videos = [f for f in everything if f.endswith(".mp4")]
    encode_audio(model, processor, everything, batch_size=BATCH, progress=False)
    encode_video(model, processor, videos, batch_size=BATCH, num_frames=NUM_FRAMES, progress=False)
    encode_audio_video(model, processor, videos, batch_size=BATCH, num_frames=NUM_FRAMES, progress=False)
    return len(everything)


def index_build(setup: dict, workers: int) -> int:
    out = setup["root"] / f"index-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    report = build_index(setup["root"] / "media", out, setup["model_dir"], workers=workers, batch_size=BATCH,
                         num_frames=NUM_FRAMES, progress=False, loaded=(setup["model"], setup["processor"]))
    assert not report.failed
    return report.embedded


def cases(workers: list[int]) -> dict:
    named = {"serial_embed": serial_embed}
    for n in workers:
        named[f"index_workers_{n}"] = lambda setup, n=n: index_build(setup, n)
    return named


# ---------------------------------------------------------------------- pytest-benchmark


@pytest.fixture(scope="module")
def bench_setup(tmp_path_factory):
    return make_setup(tmp_path_factory.mktemp("bench_index"), N_FILES)


@pytest.mark.parametrize("case", list(cases([0, 2])))
def test_index_files_per_second(benchmark, bench_setup, case):
    benchmark.group = f"index: {N_FILES} files, files/s = {N_FILES} / time"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        files = benchmark.pedantic(cases([0, 2])[case], args=(bench_setup,), rounds=3, iterations=1,
                                   warmup_rounds=1)
    finally:
        torch.set_num_threads(threads)
    benchmark.extra_info["files"] = files
    benchmark.extra_info["files_per_s"] = files / benchmark.stats.stats.median


# ---------------------------------------------------------------------- script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=N_FILES)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        setup = make_setup(Path(scratch), args.files)
        named = cases([int(w) for w in args.workers.split(",")])
        for fn in named.values():
            fn(setup)  # warm-up
        times = {name: [] for name in named}
        for _ in range(args.rounds):  # interleaved, so a busy spell hits every case alike
            for name, fn in named.items():
                start = time.perf_counter()
                files = fn(setup)
                times[name].append(time.perf_counter() - start)
        base = args.files / float(np.median(times["serial_embed"]))
        print(f"{'case':<18} {'median s':>9} {'files/s':>8} {'vs serial':>9}   ({args.files} files, "
              f"{args.rounds} rounds, 1 torch thread)")
        for name, spent in times.items():
            rate = files / float(np.median(spent)) if name != "serial_embed" else base
            print(f"{name:<18} {np.median(spent):9.3f} {rate:8.1f} {rate / base:8.2f}x")


if __name__ == "__main__":
    main()
