"""GELU-family activations: the ViT's ``gelu(x)`` and ModernBERT's gated ``act(value) * gate`` (GeGLU).

No Triton kernels yet (bias+GELU and GeGLU come with the kernel work); each table's ``triton`` entry is
the PyTorch form, so a kernel is one entry away.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..dispatch import Op

__all__ = ["ACTIVATIONS", "gelu", "gated_activation", "gated_activation_eager"]

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


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU."""
    return F.gelu(x)


def gated_activation_eager(value: torch.Tensor, gate: torch.Tensor, activation: str) -> torch.Tensor:
    """``ACTIVATIONS[activation](value) * gate``."""
    return ACTIVATIONS[activation](value) * gate


gelu = Op("GELU", {"eager": _gelu, "sdpa": _gelu, "triton": _gelu})
gated_activation = Op(
    "GeGLU", {"eager": gated_activation_eager, "sdpa": gated_activation_eager, "triton": gated_activation_eager}
)
