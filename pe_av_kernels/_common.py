"""Pieces shared by the kernel files: where a kernel can launch, dtype support, block-size helpers."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction


@triton.jit
def _probe():
    pass


# triton decides at decoration time whether a @triton.jit function is compiled or interpreted (from
# TRITON_INTERPRET), so ask a decorated function rather than the environment, which may have changed.
INTERPRET: bool = isinstance(_probe, InterpretedFunction)

SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)


def launch_problem(*tensors: torch.Tensor) -> str | None:
    """Why these tensors cannot go to a Triton kernel in this process, or ``None`` if they can."""
    for tensor in tensors:
        device = tensor.device.type
        if device == "cpu" and not INTERPRET:
            return (
                "CPU tensors need triton's interpreter (TRITON_INTERPRET=1 set before triton is imported)"
            )
        if device not in ("cpu", "cuda"):
            return f"tensors on {device} are not supported (CUDA, or CPU under TRITON_INTERPRET=1)"
        if tensor.dtype not in SUPPORTED_DTYPES:
            return f"dtype {tensor.dtype} is not supported (float32, float16, bfloat16)"
    return None


def check_launchable(*tensors: torch.Tensor) -> None:
    """Raise a clear error when :func:`launch_problem` finds one."""
    problem = launch_problem(*tensors)
    if problem is not None:
        raise ValueError(problem)


def check_same(name: str, attr: str, **tensors: torch.Tensor) -> None:
    """Raise when the named ``tensors`` disagree on ``attr`` (``"device"`` or ``"dtype"``); the message
    names each argument with its value, e.g. ``"swiglu: gate, up must share one dtype, got gate
    torch.float32, up torch.float16"``."""
    values = {str(getattr(t, attr)) for t in tensors.values()}
    if len(values) > 1:
        got = ", ".join(f"{arg} {getattr(t, attr)}" for arg, t in tensors.items())
        raise ValueError(f"{name}: {', '.join(tensors)} must share one {attr}, got {got}")


@functools.lru_cache(maxsize=None)
def sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def parallel_programs(device: torch.device, per_sm: int = 4, interpreted: int = 4) -> int:
    """How many persistent programs fill the device (a handful under the interpreter, which is serial)."""
    if device.type != "cuda":
        return interpreted
    index = device.index if device.index is not None else torch.cuda.current_device()
    return sm_count(index) * per_sm


# --------------------------------------------------------------------------------------------------
# sm_90 compile cases: what a kernel file offers the CPU-side compile check (tests/test_sm90_compile.py)


@dataclasses.dataclass(frozen=True)
class CompileCase:
    """One kernel at one configuration its launcher can choose, compilable for sm_90 without a GPU.

    ``signature`` maps every non-constexpr argument to a triton type string (``"*fp16"``, ``"i32"``,
    ``"fp32"``); ``constexprs`` gives every ``tl.constexpr`` argument its value; ``divisible`` names the
    pointer / integer arguments the launcher guarantees 16-byte divisible (triton's specialization hint).
    Every kernel file defines ``compile_cases() -> list[CompileCase]`` covering each configuration
    (tile sizes, warps, stages, dtypes, head dims) its launcher can pick.
    """

    name: str
    fn: Any
    signature: dict
    constexprs: dict
    num_warps: int = 4
    num_stages: int = 3
    divisible: tuple = ()


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` view of ``t`` with unit column stride (copies only when no such view exists)."""
    if t.dim() == 0 or t.stride(-1) != 1:
        t = t.contiguous()
    return t.reshape(-1, t.shape[-1])


def row_warps(block: int) -> int:
    """Warps of a program that holds one row of ``block`` columns (8 to 32 fp32 values a thread).

    Not 16 at 8192 columns: ptxas then caps registers low enough to spill (found by the sm_90 check)."""
    return 4 if block <= 1024 else 8


#: the dtypes a kernel is compiled for, as triton names them in a signature
TRITON_DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
