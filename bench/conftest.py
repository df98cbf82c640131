"""pytest-benchmark suite: pe-av's backends against transformers on the same weights.

    pytest bench/ --benchmark-only [--benchmark-json=out.json]     # then: python bench/report.py out.json

Every benchmark is parametrized by backend — ``hf`` (transformers, attn_implementation="sdpa"),
``eager``, ``sdpa``, ``triton`` and ``compile`` (``torch.compile`` of our sdpa form) — and put in one
group per op or model path, so each group's table reads as ratios against ``hf``.

Device and sizes: on CUDA the released shapes in bf16, timings synchronized; on a CPU-only machine a
shrunk preset in fp32 (fewer layers, frames and tokens, smaller frames) so the whole suite runs in a
few minutes, and ``triton`` cases skip (the Triton interpreter is a correctness tool, not a speed path).
Environment overrides: ``PE_AV_BENCH_DEVICE`` (cpu/cuda), ``PE_AV_BENCH_PRESET`` (cpu/full),
``PE_AV_BENCH_SIZE`` (S/B/L), ``PE_AV_BENCH_COMPILE=0`` (skip torch.compile cases).

Only ``pytest bench/`` collects these files (``bench_*.py``, see :func:`pytest_collect_file`): the main
suite's ``testpaths`` is ``tests``, so ``python -m pytest`` never runs a benchmark.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import warnings

import pytest
import torch
from harness import (
    BACKENDS, DEVICE, DEVICE_NAME, DTYPE, HOP, ON_GPU, PRESET, SKIP_REASONS, Preset, hf_skip_reason, transformers_config,
)


def pytest_collect_file(file_path, parent):
    # a file named on the command line is collected by pytest itself, whatever its name
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


# --------------------------------------------------------------------------------------------------
# Backends and machine info


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    reason = SKIP_REASONS.get(request.param, lambda: None)()
    if reason is not None:
        pytest.skip(reason)
    return request.param


def pytest_benchmark_update_machine_info(config, machine_info):
    import importlib.metadata as metadata

    versions = {}
    for package in ("torch", "transformers", "timm", "triton", "pytest-benchmark", "pe-av"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    machine_info["pe_av_bench"] = dict(
        versions=versions,
        device=DEVICE.type,
        device_name=DEVICE_NAME,
        dtype=str(DTYPE).removeprefix("torch."),
        preset=dataclasses.asdict(PRESET),
        torch_threads=torch.get_num_threads(),
        cuda=torch.version.cuda if ON_GPU else None,
        skip_reasons={name: reason() for name, reason in SKIP_REASONS.items()},
        # CPU timings of allocation-heavy code depend on the allocator (glibc returns large blocks to
        # the OS, so reallocating them page-faults): record how it was configured
        allocator_env={
            key: value for key, value in os.environ.items()
            if key.startswith("MALLOC_") or key in ("GLIBC_TUNABLES", "LD_PRELOAD", "OMP_NUM_THREADS")
        },
    )


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """pytest-benchmark's tables rank against the fastest; add one table of speedups against ``hf``."""
    session = getattr(config, "_benchmarksession", None)
    benchmarks = [bench.as_dict(include_data=False) for bench in getattr(session, "benchmarks", []) or []]
    benchmarks = [bench for bench in benchmarks if bench.get("stats")]
    if not benchmarks:
        return
    from report import summary_table

    terminalreporter.write_sep("-", "speedup against hf = hf time / backend time (median [min])")
    for line in summary_table(benchmarks):
        terminalreporter.write_line(line)


# --------------------------------------------------------------------------------------------------
# Models: one random transformers PeAudioVideoModel, saved once, loaded by transformers and by us


@dataclasses.dataclass
class ModelPair:
    hf: torch.nn.Module  # transformers.PeAudioVideoModel, attn_implementation="sdpa"
    ours: torch.nn.Module  # pe_av.PeAudioVideoModel; benchmarks switch its backend with set_attn_impl
    directory: str


@pytest.fixture(scope="session")
def model_pair():
    if hf_skip_reason() is not None:
        pytest.skip(hf_skip_reason())
    import transformers

    from pe_av import PeAudioVideoModel

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
    samples = p.audio_tokens * HOP
    tensors = dict(
        input_values=0.1 * torch.randn(p.batch, 1, samples, generator=gen),
        padding_mask=torch.ones(p.batch, samples, dtype=torch.long),
        pixel_values_videos=torch.randn(p.batch, p.frames, 3, p.image_size, p.image_size, generator=gen),
        padding_mask_videos=torch.ones(p.batch, p.frames, dtype=torch.long),
        input_ids=torch.randint(1, 50000, (p.batch, p.text_len), generator=gen),
        attention_mask=torch.ones(p.batch, p.text_len, dtype=torch.long),
    )
    return {
        name: t.to(DEVICE, DTYPE) if t.is_floating_point() else t.to(DEVICE) for name, t in tensors.items()
    }


@pytest.fixture(scope="session")
def preset() -> Preset:
    return PRESET
