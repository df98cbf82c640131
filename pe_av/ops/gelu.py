"""GELU-family activations: the ViT's ``gelu(fc1(x))`` and ModernBERT's gated ``act(value) * gate`` (GeGLU).

- :data:`linear_gelu` ``gelu(x @ weight.T + bias)`` (exact erf GELU, timm's ``nn.GELU``): eager and sdpa
  run the linear layer with its bias and then ``F.gelu``; the ``triton`` form runs the GEMM without
  the bias and :func:`pe_av_kernels.bias_gelu` (bias add + GELU, and their backward, in one pass).
- :data:`gated_activation` ``ACTIVATIONS[activation](value) * gate``: the ``triton`` form is
  :func:`pe_av_kernels.geglu` for the GELU activations (erf and tanh forms); other activations run
  the eager form (the kernel reports them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..dispatch import Kernel, Op
from .linear import linear_fused

__all__ = ["ACTIVATIONS", "gated_activation", "gated_activation_eager", "linear_gelu", "linear_gelu_eager"]

#: activations ModernBERT configs name (``hidden_activation``), as transformers maps them
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_python": F.gelu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "swish": F.silu,
    "relu": F.relu,
}


def linear_gelu_eager(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``gelu(F.linear(x, weight, bias))`` with the exact (erf) GELU."""
    return F.gelu(F.linear(x, weight, bias))


def _linear_gelu_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.gelu(linear_fused(x, weight, bias))


def _linear_then_bias_gelu(kernel: Callable, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return kernel(F.linear(x, weight), bias)


def gated_activation_eager(value: torch.Tensor, gate: torch.Tensor, activation: str) -> torch.Tensor:
    """``ACTIVATIONS[activation](value) * gate``."""
    return ACTIVATIONS[activation](value) * gate


linear_gelu = Op(
    "LinearGELU",
    {"eager": linear_gelu_eager, "sdpa": _linear_gelu_fused, "triton": Kernel("bias_gelu", call=_linear_then_bias_gelu)},
)
gated_activation = Op(
    "GeGLU", {"eager": gated_activation_eager, "sdpa": gated_activation_eager, "triton": Kernel("geglu")}
)
