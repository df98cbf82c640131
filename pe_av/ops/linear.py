"""Linear layers: ``F.linear`` (eager) or oneDNN's matmul for fp32 CPU inference (sdpa, triton).

GEMMs are not a Triton kernel's job here: on CUDA every backend runs cuBLAS through ``F.linear``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..dispatch import BackendModule, Op

__all__ = ["linear", "linear_fused", "Linear"]


def _onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


_ONEDNN_LINEAR = _onednn_linear_available()


def linear_fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` that runs fp32 CPU inference on oneDNN's matmul instead of the BLAS ``addmm``.

    On CPUs where the BLAS is not tuned (MKL on AMD EPYC) oneDNN is about twice as fast at PE-AV's
    shapes; results differ only by summation order. oneDNN's op has no autograd formula, so it is used
    only when no gradient is needed, and not under ``torch.compile`` (inductor picks its own GEMMs).
    """
    if (
        _ONEDNN_LINEAR
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.numel() > 0
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.compiler.is_compiling()
    ):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


linear = Op("Linear", {"eager": F.linear, "sdpa": linear_fused, "triton": linear_fused})


class Linear(BackendModule, nn.Linear):
    """``nn.Linear`` (same parameters and keys) dispatched through :data:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(linear, x, self.weight, self.bias)
