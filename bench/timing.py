"""How the bench suite times things, and what it records beside each time.

- **Ops on CUDA**: ``triton.testing.do_bench`` — CUDA events around each call, the L2 cache flushed
  (a 256 MB buffer zeroed) before every call, after a warm-up; the samples go into pytest-benchmark's
  statistics, so the JSON and its tables read as for any other benchmark. Where the op can be captured,
  ``triton.testing.do_bench_cudagraph`` times it again without launch overhead (and without flush):
  ``extra_info["cudagraph"]``.
- **Ops on CPU** and **model paths everywhere**: pytest-benchmark's wall clock over whole calls, after
  warm-up calls, synchronized on CUDA (a model path's launch overhead is part of what a user waits for).
- **Peaks**: the device's copy bandwidth (a large device-to-device copy, read + write counted) and
  GEMM rate (a large ``torch.mm``, ``2·n³`` FLOPs) per dtype, measured once per run (:func:`measure_peaks`).
- **Roofline**: each op states its minimal HBM traffic and FLOPs (:class:`Work`); its bound is
  ``max(bytes / bandwidth, flops / gemm_rate)``, the time at ``min(bandwidth × intensity, gemm_rate)``,
  and ``fraction_of_roofline`` is that bound over the measured median.

``PE_AV_BENCH_TIMER`` overrides the op timer: ``do_bench`` (CUDA default), ``wall`` (CPU default) or
``emulated`` (do_bench's loop on CPU, so that the smoke run checks how samples are recorded);
``PE_AV_BENCH_DO_BENCH_MS=warmup,rep`` (default 25,100); ``PE_AV_BENCH_CUDAGRAPH=0`` skips graphs;
``PE_AV_BENCH_WARMUP`` model warm-up calls (2 on CUDA, 1 on CPU).
"""

from __future__ import annotations

import ctypes
import dataclasses
import inspect
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
from harness import DEVICE, DEVICE_NAME, DTYPE, ON_GPU, PRESET

OP_TIMER = os.environ.get("PE_AV_BENCH_TIMER") or ("do_bench" if ON_GPU else "wall")
if OP_TIMER == "do_bench":
    try:
        import triton.testing  # noqa: F401
    except Exception:  # noqa: BLE001 - no triton: the wall clock, said in each benchmark's extra_info
        OP_TIMER = "wall"
WARMUP_MS, REP_MS = (float(x) for x in (os.environ.get("PE_AV_BENCH_DO_BENCH_MS") or "25,100").split(","))
CUDAGRAPH = ON_GPU and OP_TIMER == "do_bench" and os.environ.get("PE_AV_BENCH_CUDAGRAPH", "1") != "0"
MODEL_WARMUP = int(os.environ.get("PE_AV_BENCH_WARMUP") or (2 if ON_GPU else 1))
DTYPE_NAME = str(DTYPE).removeprefix("torch.")

#: filled by the session fixture of conftest.py (:func:`measure_peaks`); empty until then
PEAKS: dict[str, Any] = {}


def synchronize() -> None:
    if ON_GPU:
        torch.cuda.synchronize(DEVICE)


@dataclasses.dataclass
class Work:
    """What one call processes, for throughput and roofline in ``extra_info``."""

    tokens: int | None = None  # tokens (or rows) per call
    clips: int | None = None  # clips / videos / captions per call
    bytes: int | None = None  # minimal HBM traffic: each input read once, each output written once
    flops: float | None = None  # minimal math (elementwise ops count one FLOP per operation, exp included)


# --------------------------------------------------------------------------------------------------
# Samplers: each returns the seconds of single calls of fn


def _has_return_mode_all(bench: Callable) -> bool:
    try:  # triton added return_mode="all" after 3.0; older ones give quantiles only
        return '"all"' in inspect.getsource(bench)
    except (OSError, TypeError):
        return False


def do_bench_samples(fn: Callable[[], Any]) -> tuple[list[float], str]:
    """``fn``'s times under ``triton.testing.do_bench`` (or its CPU stand-in), and how they were taken."""
    if OP_TIMER == "emulated":
        return _emulated_do_bench(fn), f"emulated do_bench on CPU (warmup {WARMUP_MS:g} ms, rep {REP_MS:g} ms)"
    from triton.testing import do_bench

    how = f"triton.testing.do_bench (L2 flushed before each call, CUDA events; warmup {WARMUP_MS:g} ms, rep {REP_MS:g} ms)"
    if _has_return_mode_all(do_bench):
        ms = do_bench(fn, warmup=WARMUP_MS, rep=REP_MS, return_mode="all")
    else:
        ms = do_bench(fn, warmup=WARMUP_MS, rep=REP_MS, quantiles=[0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
        how += "; quantiles only (this triton has no return_mode='all')"
    return [m / 1e3 for m in ms], how


def _emulated_do_bench(fn: Callable[[], Any]) -> list[float]:
    """do_bench's loop with a wall clock: estimate, warm up for WARMUP_MS, sample for REP_MS, a cache flush before each."""
    flush = torch.empty(1 << 22, dtype=torch.int8)
    fn()
    start = time.perf_counter()
    for _ in range(5):
        flush.zero_()
        fn()
    estimate_ms = max((time.perf_counter() - start) / 5 * 1e3, 1e-3)
    for _ in range(max(1, int(WARMUP_MS / estimate_ms))):
        fn()
    samples = []
    for _ in range(min(max(1, int(REP_MS / estimate_ms)), 10_000)):
        flush.zero_()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def cudagraph_samples(fn: Callable[[], Any]) -> list[float]:
    """``fn``'s times under ``triton.testing.do_bench_cudagraph`` (no launch overhead, no flush)."""
    from triton.testing import do_bench_cudagraph

    if _has_return_mode_all(do_bench_cudagraph):
        return [m / 1e3 for m in do_bench_cudagraph(fn, return_mode="all")]
    return [do_bench_cudagraph(fn, return_mode="median") / 1e3]


def wall_samples(fn: Callable[[], Any], rounds: int, warmup: int = 1) -> list[float]:
    """Seconds of ``rounds`` calls of ``fn`` (synchronized) after ``warmup`` calls: the peaks' timer on CPU."""
    for _ in range(warmup):
        fn()
    synchronize()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        synchronize()
        samples.append(time.perf_counter() - start)
    return samples


# --------------------------------------------------------------------------------------------------
# Peaks and roofline


def _median_seconds(fn: Callable[[], Any]) -> float:
    samples = do_bench_samples(fn)[0] if ON_GPU else wall_samples(fn, rounds=7, warmup=2)
    return statistics.median(samples)


def _copy_seconds(nbytes: int) -> float:
    src = torch.empty(nbytes, dtype=torch.uint8, device=DEVICE).fill_(1)
    dst = torch.empty_like(src)
    return _median_seconds(lambda: dst.copy_(src))


def _gemm_seconds(n: int, dtype: torch.dtype) -> float:
    a, b = (torch.randn(n, n, device=DEVICE).to(dtype) for _ in range(2))
    out = torch.empty(n, n, device=DEVICE, dtype=dtype)
    return _median_seconds(lambda: torch.mm(a, b, out=out))


def measure_peaks() -> dict[str, Any]:
    """Copy bandwidth and GEMM rates of this device, measured here (median of the samples)."""
    nbytes, n = PRESET.peak_copy_mib << 20, PRESET.peak_gemm
    peaks: dict[str, Any] = dict(
        copy_bytes=2 * nbytes, copy_GBps=_sig(2 * nbytes / _copy_seconds(nbytes) / 1e9), gemm_n=n, gemm_TFLOPs={},
        timer="triton.testing.do_bench" if ON_GPU else "wall clock",
    )
    for dtype in dict.fromkeys([DTYPE, *((torch.bfloat16, torch.float16) if ON_GPU else ())]):
        peaks["gemm_TFLOPs"][str(dtype).removeprefix("torch.")] = _sig(2 * n**3 / _gemm_seconds(n, dtype) / 1e12)
    if ON_GPU:
        torch.cuda.empty_cache()
    compute = peaks["gemm_TFLOPs"][DTYPE_NAME]
    peaks["ridge_flops_per_byte"] = _sig(compute * 1e12 / (peaks["copy_GBps"] * 1e9))
    return peaks


def _sig(value: float) -> float:
    return float(f"{value:.4g}")


def roofline(work: Work, seconds: float) -> dict[str, Any]:
    """Bound and fraction of it for one op against :data:`PEAKS` (empty without peaks or bytes)."""
    if not PEAKS.get("copy_GBps") or not PEAKS["gemm_TFLOPs"].get(DTYPE_NAME) or work.bytes is None:
        return {}
    memory_s = work.bytes / (PEAKS["copy_GBps"] * 1e9)
    math_s = (work.flops or 0.0) / (PEAKS["gemm_TFLOPs"][DTYPE_NAME] * 1e12)
    bound_s = max(memory_s, math_s)
    return dict(
        bound_by="memory" if memory_s >= math_s else "compute",
        arithmetic_intensity=round((work.flops or 0.0) / work.bytes, 2),
        roofline_bound_us=_sig(bound_s * 1e6),
        fraction_of_roofline=_sig(bound_s / seconds),
    )


# --------------------------------------------------------------------------------------------------
# Running one benchmark


def _record(benchmark, samples: list[float]) -> None:
    """Put externally timed samples into pytest-benchmark's statistics, as its own loop would."""
    benchmark._mode = "triton.testing.do_bench"  # the fixture counts as used (no "not used" warning)
    stats = benchmark._make_stats(1)
    for seconds in samples:
        stats.update(seconds)


def _compile_first(backend: str, call: Callable[[], Any]) -> None:
    """Run the first call (which compiles under ``compile``); where compilation fails here, skip saying why."""
    try:
        call()
        synchronize()
    except Exception as error:
        if backend != "compile":
            raise
        pytest.skip(f"torch.compile does not run here: {type(error).__name__}: {str(error).splitlines()[0][:200]}")


def run_op(
    benchmark, fn: Callable[[], Any], *, group: str, backend: str, shapes: dict[str, Any], work: Work,
    grad: bool = False,
) -> None:
    """One op benchmark: do_bench (+ CUDA graph) on CUDA, the wall clock on CPU; fills ``extra_info``.

    ``fn`` runs under ``torch.inference_mode`` unless ``grad`` (a training case: forward + backward,
    timed by do_bench as one call; not captured as a CUDA graph, whose capture of autograd's
    allocations is not what a training step does)."""
    benchmark.group = group
    mode = torch.enable_grad if grad else torch.inference_mode

    def call() -> None:
        with mode():
            fn()

    _compile_first(backend, call)
    info = benchmark.extra_info
    if benchmark.disabled:  # --benchmark-disable: the first call above was the test
        return
    use_do_bench = OP_TIMER in ("do_bench", "emulated") and hasattr(benchmark, "_make_stats")
    if use_do_bench:
        with mode():
            samples, info["timer"] = do_bench_samples(fn)
        _record(benchmark, samples)
    else:
        def timed() -> None:
            call()
            synchronize()

        benchmark.pedantic(timed, rounds=PRESET.kernel_rounds, warmup_rounds=1, iterations=1)
        info["timer"] = "wall clock per call" + (", synchronized" if ON_GPU else "")
    _fill(benchmark, backend, shapes, work)
    if CUDAGRAPH and grad:
        info["cudagraph"] = dict(error="not captured: a forward + backward case")
    elif CUDAGRAPH:
        try:
            with torch.inference_mode():
                graph = cudagraph_samples(fn)
            median = statistics.median(graph)
            info["cudagraph"] = dict(median_us=round(median * 1e6, 3), min_us=round(min(graph) * 1e6, 3), **{
                key: value for key, value in roofline(work, median).items() if key == "fraction_of_roofline"
            })
        except Exception as error:  # noqa: BLE001 - e.g. an op that synchronizes cannot be captured
            info["cudagraph"] = dict(error=f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
            synchronize()
    _append_partial(benchmark)


def run_model(
    benchmark, fn: Callable[[], Any], *, group: str, backend: str, shapes: dict[str, Any], work: Work, rounds: int,
    grad: bool = False,
) -> None:
    """One model-path benchmark: warm-up calls, then wall-clock rounds, each synchronized (``fn`` under
    ``torch.inference_mode`` unless ``grad``: a training step)."""
    benchmark.group = group
    mode = torch.enable_grad if grad else torch.inference_mode

    def call() -> None:
        with mode():
            fn()
        synchronize()

    if ON_GPU:
        synchronize()
        torch.cuda.reset_peak_memory_stats(DEVICE)
        before = torch.cuda.memory_allocated(DEVICE)
    else:
        before = _reset_peak_rss()
    warmup = MODEL_WARMUP + (backend == "compile")  # dynamo compiles some graphs again on the second call
    _compile_first(backend, call)
    for _ in range(warmup - 1):
        call()
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=0, iterations=1)
    info = benchmark.extra_info
    info["timer"] = f"wall clock per call after {warmup} warm-up call(s)" + (", synchronized" if ON_GPU else "")
    if ON_GPU:  # above what was allocated before the first call (the weights): activations, workspaces
        info["peak_memory_GiB"] = round((torch.cuda.max_memory_allocated(DEVICE) - before) / 2**30, 3)
    elif before is not None:  # peak resident set above the one before the first call (Linux only)
        info["peak_memory_GiB"] = round((status_kib("VmHWM") - before) / 2**20, 3)
        info["peak_memory_note"] = (
            "CPU: peak RSS above the RSS before the first call (heap trimmed first); freed memory that malloc keeps "
            "between ops is reused, so this can undercount: bench/cpu_choices.py memory measures fresh processes"
        )
    _fill(benchmark, backend, shapes, work)
    _append_partial(benchmark)


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); OSError off Linux."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _malloc_trim() -> None:
    """Hand glibc's free heap pages back to the OS, so that the next peak counts activations again: a
    process that built a model keeps gigabytes of freed, still-resident heap that a forward reuses without
    raising the resident set (the first real-preset run read 0.00 GiB for every path). No-op off glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> int | None:
    """Trim the heap, reset the peak resident set (``VmHWM``) to the current one and return it in KiB;
    None off Linux."""
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return status_kib("VmRSS")
    except OSError:
        return None


def _fill(benchmark, backend: str, shapes: dict[str, Any], work: Work) -> None:
    info = benchmark.extra_info
    info.update(
        backend=backend, device=DEVICE.type, device_name=DEVICE_NAME, dtype=DTYPE_NAME,
        preset=PRESET.name, size=PRESET.size, shapes=shapes,
    )
    if not ON_GPU:
        info["threads"] = torch.get_num_threads()
    if benchmark.stats is None:
        return
    stats = benchmark.stats.stats
    seconds = stats.median
    if work.tokens is not None:
        info["tokens_per_s"] = round(work.tokens / seconds, 1)
    if work.clips is not None:
        info["clips_per_s"] = round(work.clips / seconds, 3)
    if work.bytes is not None:
        info["bytes"] = work.bytes
        info["achieved_GBps"] = _sig(work.bytes / seconds / 1e9)
    if work.flops is not None:
        info["flops"] = work.flops
        info["achieved_TFLOPs"] = _sig(work.flops / seconds / 1e12)
    info.update(roofline(work, seconds))
    if len(stats.data) > 20:
        info["p10_p90_us"] = [round(q * 1e6, 3) for q in statistics.quantiles(stats.data, n=10)[::8]]


def _append_partial(benchmark) -> None:
    """One line per finished benchmark in ``PE_AV_BENCH_JSONL``: kept even if the run is killed before
    pytest-benchmark writes its JSON (at the end of the session)."""
    path = os.environ.get("PE_AV_BENCH_JSONL")
    if not path or benchmark.stats is None:
        return
    stats = benchmark.stats.stats
    line = dict(
        group=benchmark.group, name=benchmark.name, median_s=stats.median, min_s=stats.min, rounds=stats.rounds,
        extra_info=benchmark.extra_info,
    )
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")
