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

Threads: a module's default backend is shared by all threads (:meth:`BackendModule.set_backend`,
``model.set_attn_impl``); :func:`backend_override` (``model.using_attn_impl``) sets it for the current
thread only, so threads sharing one model can each run their own backend.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
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


# --------------------------------------------------------------------------------------------------
# per-module backends: a default shared by all threads, and per-thread overrides

#: the override of the current thread (and asyncio task): {module: backend} of every open
#: :func:`backend_override`, innermost last; ``None`` outside any
_overrides: ContextVar[dict[BackendModule, str] | None] = ContextVar("pe_av_backend_overrides", default=None)
#: overrides open in any thread; while 0, :attr:`BackendModule.backend` skips the ContextVar lookup
_open_overrides = 0
#: per module, how many overrides (all threads together) cover it; guarded by ``_override_lock``
_open_per_module: dict[BackendModule, int] = {}
_override_lock = threading.Lock()


class BackendModule(nn.Module):
    """Base of every module whose forward runs :class:`Op` tables; holds the backend it runs them on.

    Each module has a default backend, shared by all threads, set by :meth:`set_backend` (or
    :meth:`pe_av.models.base.PePreTrainedModel.set_attn_impl` on every module of a model). A thread can
    override it for itself with :func:`backend_override` (``model.using_attn_impl(...)``);
    :attr:`backend` is then the override in that thread and the default in the others.
    """

    _backend: str = "sdpa"

    @property
    def backend(self) -> str:
        """The backend this module's ops run on in the current thread."""
        if _open_overrides:  # a module global: the common case costs one load and one branch
            overrides = _overrides.get()
            if overrides is not None:
                return overrides.get(self, self._backend)
        return self._backend

    @backend.setter
    def backend(self, backend: str) -> None:
        self.set_backend(backend)

    def set_backend(self, backend: str) -> None:
        """Set the default backend (all threads). Raises ``RuntimeError`` while an override covers this module."""
        set_default_backend([self], backend)

    def run(self, op: Op, *args: Any, **kwargs: Any) -> Any:
        """``op`` on this module's backend; warnings name this module's class."""
        backend = self.backend if _open_overrides else self._backend  # the property's fast path, inlined
        return op(backend, *args, caller=type(self).__name__, **kwargs)

    @property
    def uses_eager_forms(self) -> bool:
        """Whether this module runs the plain reference forms (see :func:`uses_eager_forms`)."""
        return uses_eager_forms(self.backend)


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def backend_modules(root: nn.Module) -> list[BackendModule]:
    """Every :class:`BackendModule` in ``root`` (itself included)."""
    return [module for module in root.modules() if isinstance(module, BackendModule)]


def set_default_backend(modules: Iterable[BackendModule], backend: str) -> None:
    """Set the default backend of ``modules`` for every thread, all or none.

    The default is meant to be set while no other thread runs these modules (a thread running them
    would switch backends between two of its ops). It raises ``RuntimeError`` while any thread holds a
    :func:`backend_override` on one of them, instead of changing what that thread does not use anyway.
    """
    _check_backend(backend)
    modules = list(modules)
    with _override_lock:
        overridden = [m for m in modules if m in _open_per_module]
        if overridden:
            raise RuntimeError(
                f"cannot change the default backend of {type(overridden[0]).__name__} (and {len(overridden) - 1} "
                "more modules) while a thread overrides it (using_attn_impl / backend_override); change the "
                "default when no thread runs the model, or give each thread its own backend with using_attn_impl"
            )
        for module in modules:
            module._backend = backend


@contextlib.contextmanager
def backend_override(modules: Iterable[BackendModule], backend: str) -> Iterator[None]:
    """Run ``modules`` on ``backend`` in the current thread (and asyncio task) only, inside the block.

    Other threads keep their own backend (their override, else the modules' default). Overrides nest:
    the innermost wins. The override lives in a :class:`contextvars.ContextVar`: a thread started inside
    the block does not inherit it (threads start with an empty context), while work handed on with the
    context copied (``asyncio.to_thread``, ``contextvars.copy_context().run``) carries it along.
    """
    global _open_overrides
    _check_backend(backend)
    modules = list(modules)
    current = _overrides.get()
    mapping = dict(current) if current else {}
    mapping.update(dict.fromkeys(modules, backend))
    with _override_lock:
        for module in modules:
            _open_per_module[module] = _open_per_module.get(module, 0) + 1
        _open_overrides += 1
    token = _overrides.set(mapping)
    try:
        yield
    finally:
        _overrides.reset(token)
        with _override_lock:
            _open_overrides -= 1
            for module in modules:
                left = _open_per_module[module] - 1
                if left:
                    _open_per_module[module] = left
                else:
                    del _open_per_module[module]


def warn_once(reason: str) -> None:
    """Emit a :class:`BackendFallbackWarning` for ``reason`` the first time it is seen."""
    if reason in _warned:
        return
    _warned.add(reason)
    warnings.warn(reason, BackendFallbackWarning, stacklevel=4)


def reset_warnings() -> None:
    """Forget which fallbacks already warned (for tests)."""
    _warned.clear()
