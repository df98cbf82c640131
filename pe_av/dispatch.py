"""Backends (``attn_impl``) and the one machine that runs an op's dispatch table.

Every hot op lives in one module of :mod:`pe_av.ops` that owns its forms and a table
``{"eager": ..., "sdpa": ..., "triton": ...}`` wrapped in an :class:`Op`. Backends:

- ``"eager"``: plain PyTorch math, the readable reference.
- ``"sdpa"``: PyTorch's fused ops (``scaled_dot_product_attention``, ``F.rms_norm``, oneDNN GEMMs, ...).
- ``"triton"``: the hand-written kernels of :mod:`pe_av_kernels`. A table's ``triton`` entry is a
  :class:`Kernel` (a ``pe_av_kernels`` function), :data:`NO_KERNEL_YET` (runs the ``sdpa`` form and says so
  once), or a plain function where a Triton kernel is not the plan (GEMMs stay on cuBLAS).

Where a kernel cannot run on the given tensors, ``pe_av_kernels.problem`` says why (CPU tensors without
``TRITON_INTERPRET=1``, an unsupported dtype or head size); triton failing to import is found here. The op
then runs its eager form and :func:`warn_once` emits one :class:`BackendFallbackWarning` per reason.
Model code never compares backend strings: its modules derive from :class:`BackendModule` and call
``self.run(op, ...)``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
import torch.nn as nn

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


def default_backend(device: torch.device | str | None = None) -> str:
    """``"triton"`` for a CUDA device when the kernels import, else ``"sdpa"``."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda" and triton_backend_implemented():
        return "triton"
    return "sdpa"


def uses_eager_forms(backend: str) -> bool:
    """Whether ``backend`` asks for the plain reference forms (no streaming, no fused rewrites)."""
    return backend == "eager"


# --------------------------------------------------------------------------------------------------
# the kernels package, imported on first use


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


def triton_backend_implemented() -> bool:
    """Whether the model code can route ops to ``pe_av_kernels`` (the kernels import)."""
    return triton_available()


def triton_kernels() -> ModuleType:
    """The ``pe_av_kernels`` module; raises :class:`BackendNotAvailableError` when it cannot import."""
    module, error = _import_kernels()
    if module is None:
        raise BackendNotAvailableError(f"pe_av_kernels cannot be imported: {error}")
    return module


def triton_interpreter_enabled() -> bool:
    """Whether the kernels were built for triton's CPU interpreter (``TRITON_INTERPRET=1`` at import)."""
    return triton_available() and bool(triton_kernels().INTERPRET)


def kernel_problem(kernel: str, *args: Any, **kwargs: Any) -> str | None:
    """Why ``pe_av_kernels.<kernel>`` cannot run on these arguments here, or ``None`` when it can."""
    if not triton_available():
        error = _import_kernels()[1]
        return "triton/pe_av_kernels cannot be imported" + (f" ({error})" if error else "")
    return triton_kernels().problem(kernel, *args, **kwargs)


# --------------------------------------------------------------------------------------------------
# dispatch tables


@dataclass(frozen=True)
class Kernel:
    """The ``triton`` entry of a table: the ``pe_av_kernels`` function ``name``.

    ``call(kernel_function, *args, **kwargs)`` adapts the op's arguments when they differ from the
    kernel's (default: passed through). Whether the kernel can run is asked with the op's arguments.
    """

    name: str
    call: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        function = getattr(triton_kernels(), self.name)
        return function(*args, **kwargs) if self.call is None else self.call(function, *args, **kwargs)


class _NoKernelYet:
    """The ``triton`` entry of an op that should have a kernel and has none yet: runs ``sdpa``, says so once."""

    def __repr__(self) -> str:
        return "NO_KERNEL_YET"


NO_KERNEL_YET = _NoKernelYet()


class Op:
    """One op's dispatch table, and the fallback and warn-once around its kernel.

    ``forms`` maps each backend to a callable (see the module docstring for what ``triton`` may hold);
    every form takes the same arguments and returns the same result up to rounding.
    """

    def __init__(self, name: str, forms: Mapping[str, Any]) -> None:
        if set(forms) != set(BACKENDS):
            raise ValueError(f"op {name!r}: a table needs exactly the backends {BACKENDS}, got {sorted(forms)}")
        self.name = name
        self.forms = dict(forms)

    def __call__(self, backend: str, *args: Any, caller: str | None = None, **kwargs: Any) -> Any:
        """Run the form of ``backend``; ``caller`` names the module in warnings (default: the op's name)."""
        form = self.forms.get(backend)
        if form is None:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        who = caller or self.name
        if isinstance(form, Kernel):
            problem = kernel_problem(form.name, *args, **kwargs)
            if problem is None:
                return form(*args, **kwargs)
            warn_once(f"{who}: attn_impl='triton' falls back to eager PyTorch because {problem}")
            return self.forms["eager"](*args, **kwargs)
        if form is NO_KERNEL_YET:
            warn_once(
                f"{who}: attn_impl='triton' has no Triton kernel for {self.name} yet; "
                "it runs PyTorch's fused form (as attn_impl='sdpa')"
            )
            return self.forms["sdpa"](*args, **kwargs)
        return form(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Op({self.name!r})"


class BackendModule(nn.Module):
    """Base of every module whose forward runs :class:`Op` tables; holds the backend it runs them on.

    :meth:`pe_av.models.base.PePreTrainedModel.set_attn_impl` sets it on every such module of a model.
    """

    backend: str = "sdpa"

    def set_backend(self, backend: str) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend

    def run(self, op: Op, *args: Any, **kwargs: Any) -> Any:
        """``op`` on this module's backend; warnings name this module's class."""
        return op(self.backend, *args, caller=type(self).__name__, **kwargs)

    @property
    def uses_eager_forms(self) -> bool:
        """Whether this module runs the plain reference forms (see :func:`uses_eager_forms`)."""
        return uses_eager_forms(self.backend)


def warn_once(reason: str) -> None:
    """Emit a :class:`BackendFallbackWarning` for ``reason`` the first time it is seen."""
    if reason in _warned:
        return
    _warned.add(reason)
    warnings.warn(reason, BackendFallbackWarning, stacklevel=4)


def reset_warnings() -> None:
    """Forget which fallbacks already warned (for tests)."""
    _warned.clear()
