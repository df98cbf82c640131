"""Shared pieces of the per-op benchmark files (``bench_kernels.py``, ``bench_kernels_encoders.py``):
random inputs on the bench device, a backend's call of an op's dispatch table, group names, and the
forward + backward call of the training cases."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch
from harness import DEVICE, DTYPE, compiled

from pe_av import dispatch
from pe_av.dispatch import NO_KERNEL_YET, Kernel

#: the backends of the groups without a transformers row: pe-av's forms; ``sdpa`` (PyTorch's fused
#: attention and ops, separate norm and RoPE) is the baseline the Triton kernels are compared with
OURS_ONLY = ("eager", "sdpa", "triton")


def element_size() -> int:
    return torch.empty((), dtype=DTYPE).element_size()


def randn(*shape: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, device=DEVICE, dtype=DTYPE).requires_grad_(grad)


def only_ours(backend: str) -> None:
    """Skip ``hf`` and ``compile`` in groups that time pe-av's forms only, saying why."""
    if backend not in OURS_ONLY:
        pytest.skip(
            f"{backend}: this group times pe-av's forms only (eager / sdpa / triton); sdpa is the PyTorch baseline, "
            "and transformers' forms of these ops are the same PyTorch calls"
        )


def ours(op, backend: str, *args, **kwargs) -> Callable[[], object]:
    """A call of ``op``'s form for ``backend`` on these arguments (``compile``: our sdpa form compiled)."""
    if backend == "triton":
        form = op.forms["triton"]
        if form is NO_KERNEL_YET:
            pytest.skip(f"no Triton kernel for {op.name} yet")
        if isinstance(form, Kernel):
            problem = dispatch.kernel_problem(form.name, *args, **kwargs)
            if problem is not None:
                pytest.skip(f"the {form.name} kernel would fall back to eager here: {problem}")
    if backend == "compile":
        run = compiled(lambda *a, **k: op("sdpa", *a, **k))
        return lambda: run(*args, **kwargs)
    return lambda: op(backend, *args, **kwargs)


def with_backward(forward: Callable[[], torch.Tensor], inputs: Sequence[torch.Tensor]) -> Callable[[], object]:
    """A training call: ``forward()`` then the gradients of its output (against a fixed random upstream
    gradient) with respect to ``inputs``, returned rather than accumulated into ``.grad``."""
    upstream: list[torch.Tensor] = []

    def step():
        out = forward()
        if not upstream:
            upstream.append(torch.randn_like(out))
        return torch.autograd.grad(out, inputs, upstream[0])

    return step


def group(op: str, **sizes: object) -> str:
    return f"op:{op} " + " ".join(f"{name}={value}" for name, value in sizes.items())
