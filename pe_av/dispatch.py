"""Backend selection (``attn_impl``) shared by every op module.

Each op module (norms, attention, MLP activation, ...) owns its eager form and asks this module which
backend to run. Backends:

- ``"eager"``: plain PyTorch math, the readable reference.
- ``"sdpa"``: PyTorch's fused ops (``scaled_dot_product_attention``, ``F.rms_norm``, ...).
- ``"triton"``: the hand-written kernels of ``pe_av_kernels``. Where a kernel cannot run, the op falls
  back to eager PyTorch and warns once, saying why.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType

import torch

BACKENDS = ("eager", "sdpa", "triton")

_warned: set[str] = set()


class BackendFallbackWarning(UserWarning):
    """Warned (once per reason) when an op cannot run on the requested backend and falls back."""


class BackendNotAvailableError(NotImplementedError):
    """The requested backend cannot run here (e.g. attn_impl="triton" without triton installed)."""


def resolve_backend(attn_impl: str | None, device: torch.device | str | None = None) -> str:
    """Validate ``attn_impl`` and return the backend to use; ``None`` picks the default.

    The default is ``"triton"`` on a CUDA device when triton is installed, else ``"sdpa"``.
    ``"triton"`` is always accepted: where a kernel cannot run (no triton, CPU tensors without
    ``TRITON_INTERPRET=1``, unsupported dtype or shape) its op runs eagerly and warns once, saying why.
    """
    if attn_impl is None:
        return default_backend(device)
    if not isinstance(attn_impl, str):
        raise TypeError(f"attn_impl must be a string, one of {BACKENDS}, got {type(attn_impl).__name__}")
    if attn_impl not in BACKENDS:
        raise ValueError(f"attn_impl must be one of {BACKENDS}, got {attn_impl!r}")
    return attn_impl


def triton_backend_implemented() -> bool:
    """Whether the model code can route ops to ``pe_av_kernels`` (the kernels import)."""
    return triton_available()


# --------------------------------------------------------------------------------------------------
# Triton availability, asked by the op modules before each kernel call

TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=None)
def _import_kernels() -> tuple[ModuleType | None, str | None]:
    try:
        import pe_av_kernels
    except Exception as error:  # noqa: BLE001 - any import failure means "no kernels", reported as text
        return None, f"{type(error).__name__}: {error}"
    return pe_av_kernels, None


def triton_available() -> bool:
    """Whether triton and ``pe_av_kernels`` import in this process (imported on first call)."""
    return _import_kernels()[0] is not None


def triton_kernels() -> ModuleType:
    """The ``pe_av_kernels`` module; raises :class:`BackendNotAvailableError` when it cannot import."""
    module, error = _import_kernels()
    if module is None:
        raise BackendNotAvailableError(f"pe_av_kernels cannot be imported: {error}")
    return module


def triton_interpreter_enabled() -> bool:
    """Whether the kernels were built for triton's CPU interpreter (``TRITON_INTERPRET=1`` at import)."""
    return triton_available() and bool(triton_kernels().INTERPRET)


def triton_fallback_reason(op: str, *tensors: torch.Tensor) -> str | None:
    """Why ``op`` cannot run its Triton kernel on ``tensors`` (a message for :func:`warn_once`), or None."""
    prefix = f"{op}: attn_impl='triton' falls back to eager PyTorch because"
    if not triton_available():
        error = _import_kernels()[1]
        return f"{prefix} triton/pe_av_kernels cannot be imported" + (f" ({error})" if error else "")
    for tensor in tensors:
        device = tensor.device.type
        if device == "cpu" and not triton_interpreter_enabled():
            return f"{prefix} CPU tensors need triton's interpreter (set TRITON_INTERPRET=1 before importing triton)"
        if device not in ("cpu", "cuda"):
            return f"{prefix} tensors on {device} are not supported (CUDA, or CPU under TRITON_INTERPRET=1)"
        if tensor.dtype not in TRITON_DTYPES:
            return f"{prefix} dtype {tensor.dtype} is not supported (float32, float16, bfloat16)"
    return None


def default_backend(device: torch.device | str | None = None) -> str:
    """``"triton"`` for a CUDA device when the kernels import, else ``"sdpa"``."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda" and triton_backend_implemented():
        return "triton"
    return "sdpa"


def warn_once(reason: str) -> None:
    """Emit a :class:`BackendFallbackWarning` for ``reason`` the first time it is seen."""
    if reason in _warned:
        return
    _warned.add(reason)
    warnings.warn(reason, BackendFallbackWarning, stacklevel=3)


def reset_warnings() -> None:
    """Forget which fallbacks already warned (for tests)."""
    _warned.clear()
