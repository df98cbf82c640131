"""Fuzzing the decoders: corrupt files must fail cleanly, never take the process down.

Each generated media type (wav, flac, mp4 with audio + video, mp4 video only; made with the
project's writers, tiny) gets seeded mutations: truncation, a header only, bit flips, an overwritten
byte range, a splice with another file. Every mutant goes through ``media_info``, ``load_audio``
(whole and an excerpt) and/or ``load_video`` (every frame and sampled + resized) in a worker
subprocess that runs many cases and reports each as a JSON line. Allowed outcomes: success, or a
``ValueError`` whose message names the file. A worker that dies (a signal) or stops answering (a
hang, per-case timeout) is detected; the case it was on is run again alone to confirm, and the
remaining cases go on in a fresh worker, so the failure names the mutation that crashed.
"""

import collections
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from pe_av.media import write_audio, write_video

ROOT = str(Path(__file__).resolve().parents[1])
CASES_PER_TYPE = 75  # x 4 types = 300 mutants
CASE_TIMEOUT = 60.0  # seconds one case may take before it counts as a hang

WORKER = r"""
import json, os, signal, sys, time

def media():
    import torch

    torch.set_num_threads(1)  # as the tests' conftest: no thread oversubscription on small machines
    from pe_av import media

    return media

CALLS = {
    "info": lambda p: media().media_info(p),
    "audio": lambda p: media().load_audio(p),
    "audio_cut": lambda p: media().load_audio(p, 16_000, offset=0.05, duration=0.1),
    "video": lambda p: media().load_video(p),
    "video_pick": lambda p: media().load_video(p, num_frames=3, size=(16, 16)),
    # for the harness's own test
    "noop": lambda p: None,
    "crash": lambda p: os.kill(os.getpid(), signal.SIGSEGV),
    "hang": lambda p: time.sleep(3600),
}

for line in open(sys.argv[1]):
    case = json.loads(line)
    print(json.dumps({"id": case["id"], "started": True}), flush=True)
    results = {}
    for name in case["calls"]:
        try:
            CALLS[name](case["path"])
            results[name] = "ok"
        except ValueError as exc:
            named = case["path"] in str(exc)
            results[name] = "ValueError" if named else "ValueError without the file name: " + str(exc)[:300]
        except Exception as exc:
            results[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
    print(json.dumps({"id": case["id"], "results": results}), flush=True)
"""


def run_worker(cases, workdir, timeout):
    """Run ``cases`` in one worker; return ({id: results}, failed) where failed is None or
    (id of the case it was on, "signal N" / "exit N" / "hang")."""
    workdir.mkdir(parents=True, exist_ok=True)
    listing = workdir / f"cases-{cases[0]['id']}.jsonl"
    listing.write_text("".join(json.dumps(case) + "\n" for case in cases))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    with open(workdir / "worker.stderr", "ab") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(listing)], stdout=subprocess.PIPE,
                                stderr=stderr, env=env, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                         daemon=True).start()
        done, current = {}, None
        try:
            while True:
                try:
                    line = lines.get(timeout=timeout)
                except queue.Empty:
                    return done, (current, "hang")
                if line is None:
                    break
                message = json.loads(line)
                if "started" in message:
                    current = message["id"]
                else:
                    done[message["id"]], current = message["results"], None
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    if current is not None or len(done) < len(cases):
        status = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        return done, (current if current is not None else cases[len(done)]["id"], status)
    return done, None


def run_cases(cases, workdir, timeout=CASE_TIMEOUT):
    """Every case's results; a crash or hang is isolated (the case re-run alone) and recorded as
    ``{"process": "signal 11" ...}`` with ``"alone"`` the outcome of the re-run."""
    results, pending = {}, list(cases)
    by_id = {case["id"]: case for case in cases}
    while pending:
        done, failed = run_worker(pending, workdir, timeout)
        results.update(done)
        if failed is None:
            break
        case_id, how = failed
        alone, again = run_worker([by_id[case_id]], workdir, timeout)
        results[case_id] = {"process": how, "alone": again[1] if again else alone.get(case_id)}
        pending = [case for case in pending if case["id"] not in results]
    return results


# ---------------------------------------------------------------------- mutations


def originals(root):
    t = np.arange(9600) / 48_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frames = np.zeros((6, 32, 32, 3), np.uint8)
    for i in range(6):
        frames[i, :, :, 0] = 40 * i
        frames[i, 8:24, 4 * i : 4 * i + 8, 1] = 255
    return {
        "wav": (write_audio(root / "orig.wav", np.stack([tone, tone[::-1]]), 48_000), ["info", "audio", "audio_cut"]),
        "flac": (write_audio(root / "orig.flac", tone, 44_100), ["info", "audio", "audio_cut"]),
        "mp4": (write_video(root / "orig.mp4", frames, fps=24, audio=tone), ["info", "audio", "video", "video_pick"]),
        "mp4_video": (write_video(root / "orig_video.mp4", frames, fps=24), ["info", "video", "video_pick"]),
    }


def mutate(data: bytes, other: bytes, kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutant of ``data`` and a description of what was done (enough to reproduce it)."""
    size = len(data)
    if kind == "truncate":
        n = int(rng.integers(1, size))
        return data[:n], f"first {n} of {size} bytes"
    if kind == "header":
        n = int(rng.integers(8, min(size, 1024)))
        return data[:n], f"header only: first {n} bytes"
    if kind == "bitflip":
        out = bytearray(data)
        bits = [int(b) for b in rng.integers(0, size * 8, int(rng.choice([1, 1, 2, 4, 8])))]
        for bit in bits:
            out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out), f"bits flipped at {bits}"
    if kind == "overwrite":
        start, n = int(rng.integers(0, size)), int(rng.integers(1, 257))
        fill = rng.choice(["random", "zeros", "ones"])
        block = {"random": rng.integers(0, 256, n, dtype=np.uint8).tobytes(), "zeros": bytes(n),
                 "ones": b"\xff" * n}[fill]
        return data[:start] + block[: size - start] + data[start + n :], f"{fill} bytes over [{start}, {start + n})"
    if kind == "splice":
        i, j = int(rng.integers(0, size)), int(rng.integers(0, len(other)))
        return data[:i] + other[j:], f"first {i} bytes + the other file from byte {j}"
    raise ValueError(kind)


KINDS = ("truncate", "header", "bitflip", "overwrite", "splice")


def make_cases(root):
    made = originals(root)
    names = sorted(made)
    cases = []
    for t, name in enumerate(names):
        path, calls = made[name]
        data = path.read_bytes()
        for i in range(CASES_PER_TYPE):
            rng = np.random.default_rng([t, i])
            kind = KINDS[i % len(KINDS)]
            other_name = names[int(rng.integers(0, len(names)))]
            mutant, how = mutate(data, made[other_name][0].read_bytes(), kind, rng)
            case_path = root / f"{name}-{i:03d}-{kind}{path.suffix}"
            case_path.write_bytes(mutant)
            detail = f"{name} #{i} {kind}: {how}" + (f" (other: {other_name})" if kind == "splice" else "")
            cases.append({"id": f"{name}-{i:03d}", "path": str(case_path), "calls": calls, "what": detail})
    return cases


def category(value: str) -> str:
    return value if value in ("ok", "ValueError") else "other"


def test_corrupt_media_fail_cleanly(tmp_path):
    start = time.perf_counter()
    cases = make_cases(tmp_path)
    results = run_cases(cases, tmp_path / "work")
    counts, calls, bad = collections.Counter(), collections.Counter(), []
    for case in cases:
        result = results[case["id"]]
        if "process" in result:  # the worker died or hung on this case
            counts[result["process"].split()[0]] += 1
            bad.append(f"{case['what']}: the worker died ({result['process']}); alone: {result['alone']}")
            continue
        for call, value in result.items():
            counts[category(value)] += 1
            calls[f"{call} {category(value)}"] += 1
            if category(value) == "other":
                bad.append(f"{case['what']}: {call} -> {value}")
    summary = ", ".join(f"{key}: {n}" for key, n in sorted(counts.items()))
    detail = ", ".join(f"{key}: {n}" for key, n in sorted(calls.items()))
    print(f"\nfuzz: {len(cases)} mutants, {sum(counts.values())} outcomes in {time.perf_counter() - start:.1f} s: "
          f"{summary} ({detail})")
    assert not bad, f"{len(bad)} bad outcome(s) ({summary}):\n" + "\n".join(bad[:40])


def test_the_harness_isolates_crashes_and_hangs(tmp_path):
    """The worker protocol itself: a case that kills its worker or never returns is found and
    re-run alone, and the cases after it still run."""
    cases = [{"id": f"c{i}", "path": str(tmp_path / "x"), "calls": [call]}
             for i, call in enumerate(["noop", "crash", "noop", "hang", "noop"])]
    results = run_cases(cases, tmp_path / "work", timeout=2.0)
    assert results["c0"] == results["c2"] == results["c4"] == {"noop": "ok"}
    assert results["c1"] == {"process": "signal 11", "alone": "signal 11"}
    assert results["c3"] == {"process": "hang", "alone": "hang"}
