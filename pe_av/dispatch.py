"""Backend selection (``attn_impl``) shared by every op module.

Each op module (norms, attention, MLP activation, ...) owns its eager form and asks this module which
backend to run. Backends:

- ``"eager"``: plain PyTorch math, the readable reference.
- ``"sdpa"``: PyTorch's fused ops (``scaled_dot_product_attention``, ``F.rms_norm``, ...).
- ``"triton"``: the hand-written kernels of ``pe_av_kernels``. Where a kernel cannot run, the op falls
  back to eager PyTorch and warns once, saying why.
"""

from __future__ import annotations

import warnings

import torch

BACKENDS = ("eager", "sdpa", "triton")

_warned: set[str] = set()


class BackendFallbackWarning(UserWarning):
    """Warned (once per reason) when an op cannot run on the requested backend and falls back."""


class BackendNotAvailableError(NotImplementedError):
    """The requested backend is not implemented (yet) in this version of pe_av."""


def resolve_backend(attn_impl: str | None, device: torch.device | str | None = None) -> str:
    """Validate ``attn_impl`` and return the backend to use; ``None`` picks the default.

    The default is ``"triton"`` on a CUDA device when triton is installed, else ``"sdpa"``.
    """
    if attn_impl is None:
        return default_backend(device)
    if not isinstance(attn_impl, str):
        raise TypeError(f"attn_impl must be a string, one of {BACKENDS}, got {type(attn_impl).__name__}")
    if attn_impl not in BACKENDS:
        raise ValueError(f"attn_impl must be one of {BACKENDS}, got {attn_impl!r}")
    if attn_impl == "triton" and not triton_backend_implemented():
        raise BackendNotAvailableError(
            "attn_impl='triton' is not available in this version of pe_av: the Triton kernels are not "
            "wired into the models yet. Use 'sdpa' (fused PyTorch ops) or 'eager'."
        )
    return attn_impl


def triton_backend_implemented() -> bool:
    """Whether the model code can route ops to ``pe_av_kernels``."""
    return False


def default_backend(device: torch.device | str | None = None) -> str:
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
