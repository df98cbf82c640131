"""The hot ops of PE-AV, one module each: its eager form, its fused-PyTorch form and its dispatch table.

============== ======================================= ====================================
module          ops (tables)                            Triton kernel (``pe_av_kernels``)
============== ======================================= ====================================
``linear``      :data:`linear` (+ ``Linear`` module)     none: GEMMs run on cuBLAS / oneDNN
``rms_norm``    :data:`rms_norm` (+ ``RMSNorm``)         ``rms_norm`` (fused residual add)
``layer_norm``  ``layer_norm_op`` (+ ``LayerNorm``)      ``layer_norm`` (fused residual add)
``rope``        rotary tables and rotations (no table)   inside ``rope_attention``
``attention``   :data:`attention`, :data:`rope_attention`  ``rope_attention`` (QK-norm + RoPE + flash)
``swiglu``      :data:`swiglu`                           ``swiglu``
``gelu``        :data:`linear_gelu`, :data:`gated_activation`  ``bias_gelu``, ``geglu``
``snake``       ``snake_op`` (+ ``Snake1d``)             ``snake`` (both layouts; CPU sdpa: compiled one pass)
============== ======================================= ====================================

Model code holds these modules or calls ``self.run(op, ...)`` from a
:class:`pe_av.dispatch.BackendModule`; it never branches on the backend.
"""

from .attention import attention, attention_eager, attention_sdpa, rope_attention, rope_attention_eager
from .gelu import ACTIVATIONS, gated_activation, linear_gelu
from .layer_norm import LayerNorm, layer_norm
from .linear import Linear, linear, linear_fused
from .rms_norm import RMSNorm, rms_norm, rms_norm_eager, rms_norm_fused
from .rope import (
    apply_rope,
    apply_rope_half_split,
    apply_rope_interleaved,
    rope_2d_cos_sin,
    rope_cos_sin,
    rope_interleaved_tables,
    rotate_interleaved,
)
from .snake import Snake1d, snake, snake_fused, snake_one_pass, snake_sdpa
from .swiglu import swiglu, swiglu_eager

__all__ = [
    "ACTIVATIONS",
    "LayerNorm",
    "Linear",
    "RMSNorm",
    "Snake1d",
    "apply_rope",
    "apply_rope_half_split",
    "apply_rope_interleaved",
    "attention",
    "attention_eager",
    "attention_sdpa",
    "gated_activation",
    "layer_norm",
    "linear",
    "linear_gelu",
    "linear_fused",
    "rms_norm",
    "rms_norm_eager",
    "rms_norm_fused",
    "rope_2d_cos_sin",
    "rope_attention",
    "rope_attention_eager",
    "rope_cos_sin",
    "rope_interleaved_tables",
    "rotate_interleaved",
    "snake",
    "snake_fused",
    "snake_one_pass",
    "snake_sdpa",
    "swiglu",
    "swiglu_eager",
]
