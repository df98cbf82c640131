"""sm_90 compile check, on CPU: every kernel at every configuration its launcher can choose compiles for
``GPUTarget("cuda", 90, 32)`` with triton's bundled ptxas, without register spills and within sm_90's
227 KB of shared memory per block.

The compile runs in a subprocess (``python -m pe_av_kernels._compile_check``) with ``TRITON_INTERPRET``
removed from its environment: conftest sets it for this session when there is no GPU, and triton
decides at import whether it compiles or interprets. The check itself can fail: it rejects the
deliberately spilling and oversized cases of ``tests/sm90_bad_cases.py``.

Known findings of the current attention kernel (its fp32 tiles and head_dim 256 spill) are expected
failures until the flash-attention rework of issue 15 replaces its kernel and cases; every other
case must pass.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pe_av_kernels._common import CompileCase

pytestmark = pytest.mark.kernels
ROOT = Path(__file__).resolve().parents[1]
KERNEL_DIR = ROOT / "pe_av_kernels"
#: (case-name prefix, why) of the attention kernel's known spills, reported as xfail (see the docstring)
KNOWN = [
    ("rope_attention_fwd[fp32,", "current attention kernel: fp32 tiles spill (replaced by the flash rework)"),
    ("rope_attention_fwd[bf16,d256", "current attention kernel: head_dim 256 spills 4 B (flash rework)"),
    ("rope_attention_fwd[fp16,d256", "current attention kernel: head_dim 256 spills (flash rework)"),
]


def compile_check(*args: str, timeout: int = 1800) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "pe_av_kernels._compile_check", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def kernel_files() -> list[str]:
    return sorted(p.stem for p in KERNEL_DIR.glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", kernel_files())
def test_every_kernel_file_lists_its_compile_cases(name):
    module = importlib.import_module(f"pe_av_kernels.{name}")
    cases = module.compile_cases()
    assert cases and all(isinstance(c, CompileCase) for c in cases), name
    assert len({c.name for c in cases}) == len(cases), "case names must be unique"
    jitted = {v for v in vars(module).values() if type(v).__name__ == "JITFunction" and v.__name__.endswith("_kernel")}
    assert jitted <= {c.fn for c in cases}, f"kernels without a compile case: {jitted - {c.fn for c in cases}}"


@pytest.fixture(scope="module")
def results():
    return compile_check()


def test_every_case_compiles_for_sm90_without_spills(results):
    expected = sum(len(importlib.import_module(f"pe_av_kernels.{n}").compile_cases()) for n in kernel_files())
    assert len(results) == expected
    bad = {r["name"]: r["problems"] for r in results if not r["ok"]}
    known = {name: why for name in bad for prefix, why in KNOWN if name.startswith(prefix)}
    unexpected = {name: problems for name, problems in bad.items() if name not in known}
    assert not unexpected, json.dumps(unexpected, indent=1)[:6000]
    for r in results:
        if r["ok"]:
            assert 0 < r["registers"] <= 255 and r["shared"] <= 227 * 1024, r
    if known:
        pytest.xfail(f"{len(known)} known attention findings: {sorted(set(known.values()))}")


def test_the_check_fails_on_spilling_and_oversized_cases():
    found = {r["name"]: r for r in compile_check(str(ROOT / "tests" / "sm90_bad_cases.py"), "--workers", "2")}
    assert not found["spills"]["ok"] and any("spills" in p for p in found["spills"]["problems"])
    assert not found["oversized"]["ok"] and any("shared memory" in p for p in found["oversized"]["problems"])
