"""pe_av_kernels: hand-written Triton kernels used by pe_av's ``attn_impl="triton"`` backend.

Each op lives in its own file with its eager reference beside it: :mod:`.rms_norm`, :mod:`.swiglu`,
:mod:`.attention`. Kernels are registered as ``torch.library.triton_op`` (namespace ``pe_av_kernels``)
so ``torch.compile`` traces through them on CUDA. Under triton's CPU interpreter (``TRITON_INTERPRET=1``)
they run eagerly through the same ops, but ``torch.compile`` cannot trace them there: the interpreter
reads tensor data at launch, which fake tensors do not have.
"""

from ._common import INTERPRET, SUPPORTED_DTYPES, launch_problem
from .attention import MAX_HEAD_DIM, rope_attention, rope_attention_reference, supports_head_dim
from .rms_norm import rms_norm, rms_norm_reference
from .swiglu import swiglu, swiglu_reference

__all__ = [
    "INTERPRET",
    "MAX_HEAD_DIM",
    "SUPPORTED_DTYPES",
    "launch_problem",
    "rms_norm",
    "rms_norm_reference",
    "rope_attention",
    "rope_attention_reference",
    "supports_head_dim",
    "swiglu",
    "swiglu_reference",
]
