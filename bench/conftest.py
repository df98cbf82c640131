"""pytest-benchmark suite: pe-av's backends against transformers on the same weights.

    pytest bench/ --benchmark-only [--benchmark-json=out.json]     # then: python bench/report.py out.json

Every benchmark is parametrized by backend — ``hf`` (transformers, attn_implementation="sdpa"),
``eager``, ``sdpa``, ``triton`` and ``compile`` (``torch.compile`` of our sdpa form) — and put in one
group per op or model path, so each group's table reads as ratios against ``hf``. ``compile`` cases
run last, so that a run cut short loses them first.

Device and sizes: on CUDA the released shapes in bf16; ops timed with ``triton.testing.do_bench``
(L2 flushed) and as CUDA graphs, model paths warmed up and synchronized, each op reported against
its roofline from the copy bandwidth and GEMM rate measured at the start of the run (``timing.py``).
On a CPU-only machine a shrunk preset in fp32, wall-clock timing, and ``triton`` cases skip (the
Triton interpreter is a correctness tool, not a speed path). The JSON's ``machine_info.pe_av_bench``
holds the device, the clocks (start, after the peak measurements, end), the peaks and the versions.

Environment: ``OMP_WAIT_POLICY`` (set to ``PASSIVE`` here unless given: spin-waiting threads made CPU
timings swing up to 8x on shared machines), ``PE_AV_BENCH_DEVICE`` (cpu/cuda), ``PE_AV_BENCH_PRESET``
(full/cpu/real/smoke; ``real``: released PE-S shapes on CPU, see ``bench/real_cpu.sh``),
``PE_AV_BENCH_SIZE`` (S/B/L), ``PE_AV_BENCH_COMPILE=0`` (no torch.compile cases),
``PE_AV_BENCH_COMPILE_PATHS`` (model paths to compile), ``PE_AV_BENCH_COMPILE_BACKEND``, and the
timer options of ``timing.py``.

Only ``pytest bench/`` collects these files (``bench_*.py``, see :func:`pytest_collect_file`): the main
suite's ``testpaths`` is ``tests``, so ``python -m pytest`` never runs a benchmark.
"""

from __future__ import annotations

import os

# OpenMP's default spin-wait made the same CPU call swing up to 8x on shared machines; passive waiting
# must be set before torch loads its OpenMP runtime (the user's own setting wins)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dataclasses  # noqa: E402 - after the OpenMP setting on purpose
import shutil
import tempfile
import time
import warnings

import device_info
import pytest
import timing
import torch
from harness import (
    BACKENDS,
    DEVICE,
    DEVICE_NAME,
    DTYPE,
    ON_GPU,
    PRESET,
    SKIP_REASONS,
    Preset,
    hf_missing,
    hf_skip_reason,
    pe_av_config,
    timm_skip_reason,
    transformers_config,
)


def pytest_collect_file(file_path, parent):
    # a file named on the command line is collected by pytest itself, whatever its name
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(session, config, items):
    """``compile`` cases last (stable otherwise): their compilation is the slowest and least needed part."""
    items.sort(key=lambda item: getattr(item, "callspec", None) is not None and item.callspec.params.get("backend") == "compile")


# --------------------------------------------------------------------------------------------------
# Backends, peaks and machine info


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    reason = SKIP_REASONS.get(request.param, lambda: None)()
    if reason is not None:
        pytest.skip(reason)
    return request.param


_RUN: dict = {}


@pytest.fixture(scope="session", autouse=True)
def peaks() -> dict:
    """The device's copy bandwidth and GEMM rates, measured once before the first benchmark."""
    _RUN["clocks_start"] = device_info.clocks()
    start = time.perf_counter()
    try:
        timing.PEAKS.update(timing.measure_peaks())
    except Exception as error:  # noqa: BLE001 - benchmarks still run, without roofline fractions
        timing.PEAKS["error"] = f"{type(error).__name__}: {error}"
    timing.PEAKS["measured_in_s"] = round(time.perf_counter() - start, 2)
    _RUN["clocks_after_peaks"] = device_info.clocks()
    return timing.PEAKS


@pytest.fixture(scope="session", autouse=True)
def snake_compiled(peaks) -> None:
    """With ``PE_AV_SNAKE_COMPILE=1`` on CPU, compile the one-pass Snake once before any benchmark, so that
    neither its time nor its memory lands in the first model path that runs the DAC."""
    if ON_GPU or os.environ.get("PE_AV_SNAKE_COMPILE") != "1":
        return
    from pe_av.ops import snake_one_pass

    x = torch.zeros(1, 64, 1, 4096).contiguous(memory_format=torch.channels_last)
    snake_one_pass(x, torch.ones(1, 64, 1, 1))


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["pe_av_bench"] = dict(
        versions=device_info.versions(),
        device=DEVICE.type,
        device_name=DEVICE_NAME,
        cuda_devices=device_info.cuda_devices() if ON_GPU else [],
        dtype=str(DTYPE).removeprefix("torch."),
        preset=dataclasses.asdict(PRESET),
        torch_threads=torch.get_num_threads(),
        cuda=torch.version.cuda if ON_GPU else None,
        op_timer=timing.OP_TIMER,
        peaks=dict(timing.PEAKS),
        clocks=dict({k: v for k, v in _RUN.items() if k.startswith("clocks")}, end=device_info.clocks()),
        compile_backend=os.environ.get("PE_AV_BENCH_COMPILE_BACKEND") or "inductor",
        skip_reasons=dict(
            {name: reason() for name, reason in SKIP_REASONS.items()},
            **({"hf model paths": _RUN["hf_models"]} if _RUN.get("hf_models") else {}),
        ),
        # CPU timings of allocation-heavy code depend on the allocator (glibc returns large blocks to
        # the OS, so reallocating them page-faults): record how it was configured
        allocator_env={
            key: value for key, value in os.environ.items()
            if key.startswith("MALLOC_") or key in ("GLIBC_TUNABLES", "LD_PRELOAD", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")
        },
        snake_compile=os.environ.get("PE_AV_SNAKE_COMPILE", "auto"),
    )


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """do_bench gives thousands of samples per op: keep their statistics, not every sample."""
    for bench in output_json.get("benchmarks", []):
        stats = bench.get("stats", {})
        if len(stats.get("data") or []) > 64:
            stats["data"] = []


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """pytest-benchmark's tables rank against the fastest; add one table of speedups against ``hf``."""
    session = getattr(config, "_benchmarksession", None)
    benchmarks = [bench.as_dict(include_data=False) for bench in getattr(session, "benchmarks", []) or []]
    benchmarks = [bench for bench in benchmarks if bench.get("stats")]
    if not benchmarks:
        return
    from report import summary_table

    terminalreporter.write_sep("-", "speedup = baseline time / backend time, baseline hf (else sdpa) (median [min])")
    for line in summary_table(benchmarks):
        terminalreporter.write_line(line)


# --------------------------------------------------------------------------------------------------
# Models: one random PeAudioVideoModel, saved once by transformers and loaded by both libraries


@dataclasses.dataclass
class ModelPair:
    hf: torch.nn.Module | None  # transformers.PeAudioVideoModel, attn_implementation="sdpa"; None: see hf_reason
    ours: torch.nn.Module  # pe_av.PeAudioVideoModel; benchmarks switch its backend with set_attn_impl
    directory: str | None
    hf_reason: str | None = None  # why there is no hf model


def _hf_model_reason() -> str | None:
    return hf_skip_reason() or hf_missing(":PeAudioVideoModel", ":PeAudioVideoConfig") or timm_skip_reason()


@pytest.fixture(scope="session")
def model_pair():
    """Both models on the same weights when transformers (>= 5.17) and timm are here; otherwise ours
    alone, randomly initialised from the same config, and the ``hf`` cases skip saying why."""
    from pe_av import PeAudioVideoModel

    reason = _RUN["hf_models"] = _hf_model_reason()
    if reason is not None:
        torch.manual_seed(0)
        ours = PeAudioVideoModel(pe_av_config(PRESET)).to(DEVICE, DTYPE).eval()
        yield ModelPair(hf=None, ours=ours, directory=None, hf_reason=reason)
        return
    import transformers

    transformers.utils.logging.set_verbosity_error()
    directory = tempfile.mkdtemp(prefix="pe-av-bench-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        with torch.device(DEVICE):
            hf = transformers.PeAudioVideoModel(transformers_config(PRESET))
        hf = hf.to(DTYPE).eval()
        hf.set_attn_implementation("sdpa")
        hf.save_pretrained(directory)
        ours = PeAudioVideoModel.from_pretrained(directory, attn_impl="sdpa", dtype=DTYPE, device=DEVICE)
    yield ModelPair(hf=hf, ours=ours, directory=directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def model_inputs() -> dict[str, torch.Tensor]:
    """One batch of every modality at the preset's shapes, all valid (as the processors give equal-length clips)."""
    p = PRESET
    gen = torch.Generator().manual_seed(0)
    samples = p.audio_tokens * p.hop
    tensors = dict(
        input_values=0.1 * torch.randn(p.batch, 1, samples, generator=gen),
        padding_mask=torch.ones(p.batch, samples, dtype=torch.long),
        pixel_values_videos=torch.randn(p.batch, p.frames, 3, p.image_size, p.image_size, generator=gen),
        padding_mask_videos=torch.ones(p.batch, p.frames, dtype=torch.long),
        input_ids=torch.randint(1, min(50000, p.vocab), (p.batch, p.text_len), generator=gen),
        attention_mask=torch.ones(p.batch, p.text_len, dtype=torch.long),
    )
    return {
        name: t.to(DEVICE, DTYPE) if t.is_floating_point() else t.to(DEVICE) for name, t in tensors.items()
    }


@pytest.fixture(scope="session")
def preset() -> Preset:
    return PRESET
