"""pe_av_kernels: hand-written Triton kernels behind pe_av's ``attn_impl="triton"`` backend.

One file per op, each corresponding to the op module of the same name in ``pe_av/ops`` (which owns the
eager form the kernel is tested against): :mod:`.rms_norm`, :mod:`.layer_norm`, :mod:`.swiglu`,
:mod:`.gelu` (bias + GELU, GeGLU), :mod:`.snake`, :mod:`.attention` (whose kernels live in the private
:mod:`._qk_prepass` and :mod:`._flash`). Each also lists the configurations its launcher can choose
(``compile_cases()``) for the sm_90 compile check (:mod:`._compile_check`). This
package imports nothing from ``pe_av``. Kernels are registered as ``torch.library.triton_op``
(namespace ``pe_av_kernels``) so ``torch.compile`` traces through them on CUDA. Under triton's CPU
interpreter (``TRITON_INTERPRET=1``) they run eagerly through the same ops, but ``torch.compile``
cannot trace them there: the interpreter reads tensor data at launch, which fake tensors do not have.

:func:`problem` says whether a kernel can run on given arguments in this process (device, dtype,
shape limits), so that callers can fall back before launching.
"""

from __future__ import annotations

from typing import Any

from . import attention as _attention
from . import gelu as _gelu
from . import layer_norm as _layer_norm
from . import rms_norm as _rms_norm
from . import snake as _snake
from . import swiglu as _swiglu
from ._common import INTERPRET, SUPPORTED_DTYPES, launch_problem
from .attention import MAX_HEAD_DIM, attention, rope_attention, supports_head_dim
from .gelu import bias_gelu, geglu
from .layer_norm import layer_norm
from .rms_norm import rms_norm
from .snake import snake
from .swiglu import swiglu

#: public kernel name → the module that owns it (its ``<name>_problem`` function answers for it, else its
#: ``problem``: a module owning several kernels has one per kernel)
KERNELS = {
    "rms_norm": _rms_norm,
    "layer_norm": _layer_norm,
    "swiglu": _swiglu,
    "bias_gelu": _gelu,
    "geglu": _gelu,
    "snake": _snake,
    "rope_attention": _attention,
    "attention": _attention,
}


def problem(kernel: str, *args: Any, **kwargs: Any) -> str | None:
    """Why ``kernel`` (a name in :data:`KERNELS`) cannot run on these arguments here, or ``None`` if it can.

    Arguments are the kernel's own. The answer covers where it may launch (CUDA, or CPU under the
    interpreter), the dtypes it supports (:data:`SUPPORTED_DTYPES`) and per-kernel limits (head size).
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; pe_av_kernels has {sorted(KERNELS)}")
    owner = KERNELS[kernel]
    check = getattr(owner, f"{kernel}_problem", None) or owner.problem
    return check(*args, **kwargs)


__all__ = [
    "INTERPRET",
    "KERNELS",
    "MAX_HEAD_DIM",
    "SUPPORTED_DTYPES",
    "attention",
    "bias_gelu",
    "geglu",
    "launch_problem",
    "layer_norm",
    "problem",
    "rms_norm",
    "rope_attention",
    "snake",
    "supports_head_dim",
    "swiglu",
]
