"""One-pass Snake on CPU: forward and backward compiled by ``torch.compile`` (inductor's C++ backend).

Eager PyTorch runs Snake as one pass over memory per op (``mul``, ``sin``, square, ``addcmul``), and
at DAC sizes each pass streams the activation from memory again; a compiled loop reads ``x`` once and
writes the result once (measured ~2.5-3.7x faster than :func:`pe_av.ops.snake.snake_fused` on a
streamed chunk, 1×64×16402, max difference ~5e-7).

Compiling costs seconds once per process (~6 s with inductor's on-disk cache warm, ~11 s cold, up to
~25 s on a loaded 2-core machine) and saves ~2 ms per million elements, so it pays off on long runs
only. Policy, ``PE_AV_SNAKE_COMPILE``:

- unset or ``auto`` (default): calls of at least :data:`MIN_ELEMENTS` elements on CPU run the fused
  eager form until :data:`COMPILE_AFTER_ELEMENTS` elements have gone through Snake in this process
  (~40 s of 48 kHz audio at the released width), then compile: one short clip never waits for a
  compile, an embedding run over many clips gets the one-pass form after its first clips;
- ``1``: compile at the first large call (benchmarks, long-running servers);
- ``0``: never.

Never on CUDA tensors nor while ``torch.compile`` traces (inductor fuses the eager form itself there).
When compiling fails (no working C++ compiler, an inductor
error), the failure is logged once at INFO level and every later call runs the eager fused form: the
same numbers up to rounding, only slower — never a different result.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import torch

__all__ = ["COMPILE_AFTER_ELEMENTS", "MIN_ELEMENTS", "compile_enabled", "compiled_forms", "wants_compiled"]

#: smallest input (elements) worth the one-pass form; test-sized models stay below it
MIN_ELEMENTS = 1 << 16
#: under the ``auto`` policy, Snake elements (in calls of at least MIN_ELEMENTS) seen before compiling
COMPILE_AFTER_ELEMENTS = 2_000_000_000

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_compiled: dict[str, Callable | None] = {}
_failure: list[str] = []
_seen = [0]  # elements that went through large Snake calls in this process (the ``auto`` policy)


def _policy() -> str:
    policy = os.environ.get("PE_AV_SNAKE_COMPILE", "auto")
    if policy not in ("auto", "0", "1"):
        raise ValueError(f"PE_AV_SNAKE_COMPILE must be 'auto', '0' or '1', got {policy!r}")
    return policy


def compile_enabled() -> bool:
    """Whether the compiled forms may be used (``PE_AV_SNAKE_COMPILE`` is not ``0``, no earlier failure)."""
    return _policy() != "0" and not _failure


def wants_compiled(numel: int) -> bool:
    """Whether a large CPU call of ``numel`` elements should use the compiled form now (the policy above)."""
    if not compile_enabled():
        return False
    if _policy() == "1":
        return True
    _seen[0] += numel
    return _seen[0] > COMPILE_AFTER_ELEMENTS


def _forward(x: torch.Tensor, alpha: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    return x + inv * torch.sin(alpha * x).pow(2)


def _backward(
    grad: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, inv: torch.Tensor, dims: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    # d/dx = 1 + inv·alpha·sin(2ax); d/dalpha = inv·x·sin(2ax) - inv²·sin²(ax), summed where alpha broadcasts
    ax = alpha * x
    sine = torch.sin(ax)
    double = torch.sin(2 * ax)
    grad_x = grad * (1 + inv * alpha * double)
    grad_alpha = (grad * (inv * x * double - inv * inv * sine * sine)).sum(dim=dims, keepdim=True)
    return grad_x, grad_alpha


def compiled_forms() -> tuple[Callable, Callable] | None:
    """The compiled ``(forward, backward)``, compiled lazily on first use; None when unavailable."""
    if not compile_enabled():
        return None
    with _lock:
        if "forward" not in _compiled:
            _compiled["forward"] = torch.compile(_forward, dynamic=True)
            _compiled["backward"] = torch.compile(_backward, dynamic=True)
    return _compiled["forward"], _compiled["backward"]


def report_failure(error: BaseException) -> None:
    """Stop using the compiled forms for the rest of the process and log why once."""
    if not _failure:
        _failure.append(f"{type(error).__name__}: {error}")
        _log.info("Snake: torch.compile failed (%s); the eager fused form runs instead (same numbers, slower)", _failure[0])
