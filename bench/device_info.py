"""What a run ran on: device, clocks, versions. Also the preflight step of ``bench/gpu_check.sh``.

    python bench/device_info.py OUT.json [--check-imports [--probe=torch,pytest,...]]

writes :func:`describe` as JSON and prints a summary. ``--check-imports`` first checks that ``import
pe_av`` works without PyAV, tokenizers and tqdm (blocked in ``sys.modules`` while pe_av imports), then
that torch, pytest and pytest-benchmark import and whether triton, transformers and timm are installed
(``--probe`` names the modules; the steps report why one of those cannot be used). The exit status is 2 when torch, pytest or pytest-benchmark is missing, 1 when
only the optional-packages check failed, else 0.
"""

from __future__ import annotations

import csv
import importlib
import importlib.metadata
import io
import json
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

PACKAGES = (
    "torch", "triton", "transformers", "timm", "torchvision", "huggingface_hub", "safetensors", "numpy",
    "pytest", "pytest-benchmark", "tokenizers", "av", "tqdm", "pe-av",
)
#: what the issue asks to log; queried alone so that a field another driver lacks cannot hide them
CLOCK_FIELDS = "clocks.sm,clocks.mem,clocks.max.sm"
EXTRA_FIELDS = "index,name,driver_version,pstate,clocks.max.mem,temperature.gpu,power.draw,power.limit,memory.total"
REQUIRED = ("torch", "pytest", "pytest_benchmark")
OPTIONAL_FOR_RUNS = ("triton", "transformers", "timm")
NOT_NEEDED = ("av", "tokenizers", "tqdm")

def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    if found["pe-av"] is None:  # the source tree on PYTHONPATH, not an installed distribution
        try:
            found["pe-av"] = importlib.import_module("pe_av").__version__ + " (source tree)"
        except Exception:  # noqa: BLE001
            pass
    found["pe-av commit"] = os.environ.get("PE_AV_COMMIT") or _git_commit()
    return found


def _git_commit() -> str | None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def nvidia_smi(fields: str) -> list[dict[str, str]] | str:
    """Rows of ``nvidia-smi --query-gpu=FIELDS --format=csv``, or why there are none."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"nvidia-smi failed: {error}"
    if out.returncode != 0:
        return f"nvidia-smi exited {out.returncode}: {(out.stdout + out.stderr).strip()[:300]}"
    return [{key.strip(): value.strip() for key, value in row.items()} for row in csv.DictReader(io.StringIO(out.stdout))]


def cuda_devices() -> list[dict[str, Any]]:
    """Every public field of ``torch.cuda.get_device_properties`` of each visible device."""
    import torch

    if not torch.cuda.is_available():
        return []
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        fields = {}
        for name in dir(props):
            if not name.startswith("_"):
                value = getattr(props, name)
                if not callable(value):
                    fields[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
        devices.append(fields)
    return devices


def clocks() -> dict[str, Any]:
    """Current and maximum clocks: from nvidia-smi, else from torch.cuda's properties, else why none."""
    rows = nvidia_smi(CLOCK_FIELDS)
    if isinstance(rows, list):
        return {"source": "nvidia-smi --query-gpu=" + CLOCK_FIELDS, "gpus": rows}
    import torch

    if not torch.cuda.is_available():
        return {"source": None, "reason": f"no CUDA device ({rows})"}
    fallback: dict[str, Any] = {"source": "torch.cuda", "nvidia_smi": rows}
    for index, props in enumerate(cuda_devices()):
        entry = {key: props[key] for key in ("name", "clock_rate", "memory_clock_rate") if key in props}
        try:
            entry["clock_rate_now_MHz"] = torch.cuda.clock_rate(index)  # needs pynvml
        except Exception as error:  # noqa: BLE001
            entry["clock_rate_now"] = f"unavailable: {type(error).__name__}"
        fallback.setdefault("gpus", []).append(entry)
    return fallback


def describe() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = dict(
        python=sys.version.split()[0], platform=platform.platform(), machine=platform.machine(),
        cpu_count=os.cpu_count(), versions=versions(),
        torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        cuda_devices=cuda_devices(), clocks=clocks(),
    )
    extra = nvidia_smi(EXTRA_FIELDS)
    info["nvidia_smi"] = extra
    return info


def check_without_optional() -> str:
    """Import pe_av with PyAV, tokenizers and tqdm blocked, as if not installed; then unblock them.

    Must run before anything imports pe_av (or those packages) in this process: main() does it first.
    """
    blocked = {name: sys.modules.get(name) for name in NOT_NEEDED}
    for name in NOT_NEEDED:
        sys.modules[name] = None  # `import name` now raises ImportError
    try:
        import pe_av

        pe_av.PeAudioVideoModel, pe_av.PeAudioVideoConfig, pe_av.PeAudioVideoProcessor  # noqa: B018
        return "ok"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {error}"
    finally:
        for name, module in blocked.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def check_imports(names: tuple[str, ...]) -> dict[str, str]:
    """Import the required modules; of the others only look them up (``importlib.util.find_spec``):
    importing transformers or timm costs seconds, and the steps that use them report why they cannot."""
    import importlib.util

    found = {}
    for name in names:
        try:
            if name in REQUIRED:
                importlib.import_module(name)
                found[name] = "ok"
            else:
                found[name] = "found (imported by the steps that use it)" if importlib.util.find_spec(name) else "not found"
        except Exception as error:  # noqa: BLE001
            found[name] = f"{type(error).__name__}: {str(error)[:300]}"
    return found


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    checks = {}
    if "--check-imports" in argv:
        if any(name in sys.modules for name in ("pe_av", *NOT_NEEDED)):
            checks["pe_av_without_" + "_".join(NOT_NEEDED)] = "not checked: already imported in this process"
        else:
            checks["pe_av_without_" + "_".join(NOT_NEEDED)] = check_without_optional()
    info = describe()
    status = 0
    if "--check-imports" in argv:
        probe = next((arg.split("=", 1)[1].split(",") for arg in argv if arg.startswith("--probe=")), None)
        info["imports"] = dict(check_imports(tuple(probe) if probe else REQUIRED + OPTIONAL_FOR_RUNS), **checks)
        if any(info["imports"].get(name) != "ok" for name in REQUIRED):
            status = 2
        elif any(value != "ok" for key, value in info["imports"].items() if key.startswith("pe_av_without")):
            status = 1
    with open(argv[0], "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, default=str)
    versions_line = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    print(f"versions: {versions_line}")
    for device in info["cuda_devices"]:
        print(f"cuda device: {device.get('name')} ({device.get('total_memory', 0) / 2**30:.0f} GiB, "
              f"{device.get('multi_processor_count')} SMs, sm_{device.get('major')}{device.get('minor')})")
    print(f"clocks: {json.dumps(info['clocks'])}")
    for key, value in info.get("imports", {}).items():
        print(f"import {key}: {value}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
