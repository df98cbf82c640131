"""sm_90 compile check, on CPU: every kernel at every configuration its launcher can choose compiles for
``GPUTarget("cuda", 90, 32)`` with triton's bundled ptxas, without register spills and within sm_90's
227 KB of shared memory per block.

The compile runs in a subprocess (``python -m pe_av_kernels._compile_check``) with ``TRITON_INTERPRET``
removed from its environment: conftest sets it for this session when there is no GPU, and triton
decides at import whether it compiles or interprets. The check itself can fail: it rejects the
deliberately spilling and oversized cases of ``tests/sm90_bad_cases.py``.

Every case must pass (the full sweep, ~620 cases, takes ~5.5 minutes on 2 quiet cores).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from pe_av_kernels._common import CompileCase

pytestmark = pytest.mark.kernels
ROOT = Path(__file__).resolve().parents[1]
KERNEL_DIR = ROOT / "pe_av_kernels"


def compile_check(*args: str, timeout: int = 1800) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "pe_av_kernels._compile_check", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def launchable_kernels(module) -> dict:
    """The module's ``@triton.jit`` functions named ``*_kernel`` (compiled or, under the interpreter,
    interpreted: both wrap the Python function as ``.fn``)."""
    found = {}
    for value in vars(module).values():
        if isinstance(value, (JITFunction, InterpretedFunction)) and value.fn.__name__.endswith("_kernel"):
            found[value.fn.__name__] = value
    return found


def kernel_files() -> list[str]:
    return sorted(p.stem for p in KERNEL_DIR.glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", kernel_files())
def test_every_kernel_file_lists_its_compile_cases(name):
    module = importlib.import_module(f"pe_av_kernels.{name}")
    cases = module.compile_cases()
    assert cases and all(isinstance(c, CompileCase) for c in cases), name
    assert len({c.name for c in cases}) == len(cases), "case names must be unique"
    listed = {c.fn for c in cases}
    missing = sorted(name for name, fn in launchable_kernels(module).items() if fn not in listed)
    assert not missing, f"kernels without a compile case: {missing}"


def test_every_kernel_of_the_package_has_a_compile_case():
    """Kernels in private files (the attention's pre-pass and flash kernels) are listed by the kernel file
    that launches them; none may be left out."""
    import pkgutil

    import pe_av_kernels

    listed = {c.fn for name in kernel_files() for c in importlib.import_module(f"pe_av_kernels.{name}").compile_cases()}
    jitted = {}
    for info in pkgutil.iter_modules(pe_av_kernels.__path__):
        module = importlib.import_module(f"pe_av_kernels.{info.name}")
        jitted.update({f"{info.name}.{name}": fn for name, fn in launchable_kernels(module).items()})
    missing = sorted(name for name, fn in jitted.items() if fn not in listed)
    assert jitted and not missing, missing


@pytest.fixture(scope="module")
def results():
    return compile_check()


def test_every_case_compiles_for_sm90_without_spills(results):
    expected = sum(len(importlib.import_module(f"pe_av_kernels.{n}").compile_cases()) for n in kernel_files())
    assert len(results) == expected
    bad = {r["name"]: r["problems"] for r in results if not r["ok"]}
    assert not bad, json.dumps(bad, indent=1)[:6000]
    for r in results:
        assert 0 < r["registers"] <= 255 and r["shared"] <= 227 * 1024, r


def test_the_check_fails_on_spilling_and_oversized_cases():
    found = {r["name"]: r for r in compile_check(str(ROOT / "tests" / "sm90_bad_cases.py"), "--workers", "2")}
    assert not found["spills"]["ok"] and any("spills" in p for p in found["spills"]["problems"])
    assert not found["oversized"]["ok"] and any("shared memory" in p for p in found["oversized"]["problems"])
