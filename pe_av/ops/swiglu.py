"""SwiGLU activation ``silu(gate) * up`` (the PE transformer's MLP): eager form and the Triton kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..dispatch import Kernel, Op

__all__ = ["swiglu", "swiglu_eager"]


def swiglu_eager(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up``, ``silu`` rounded to the input dtype before the product (PyTorch's numerics)."""
    return F.silu(gate) * up


swiglu = Op("SwiGLU", {"eager": swiglu_eager, "sdpa": swiglu_eager, "triton": Kernel("swiglu")})
