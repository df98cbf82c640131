"""sm_90 compile cases of the flash kernels (:mod:`._flash`): every tile configuration its launchers pick.

Per kernel (forward, dq, dk/dv), dtype and padded head dim: the table's tiles and, for the forward and
dq kernels, the short-query tiles (BLOCK_M 16, 4 warps; the dk/dv kernel gets BLOCK_M 16 as well), each
with the masking the launchers combine with that tile class: none, or key lengths plus a key mask (the
PE transformer) on the main tables, a full mask on the ``half-mask`` table (ModernBERT), all three at fp32.
(Key lengths without a mask compile the key-mask loop minus its one load.)
"""

from __future__ import annotations

from ._common import CompileCase
from ._flash import (
    SHORT_QUERY,
    TILES,
    _flash_bwd_dkdv_kernel,
    _flash_bwd_dq_kernel,
    _flash_fwd_kernel,
)

_TYPES = ("fp32", "fp16", "bf16")
_STRIDES = ("q", "k", "v")


def _signature(kind: str, dtype: str, has_lens: bool, has_mask: bool) -> tuple[dict, tuple]:
    t = f"*{dtype}"
    lens = "*i32" if has_lens else t
    mask = "*u8" if has_mask else t
    if kind == "fwd":
        pointers = dict(Q=t, K=t, V=t, O=t, STATS="*fp32", KV_LEN=lens, MASK=mask)
        strided = ("q", "k", "v", "o")
        scalars = ("seq_q", "seq_k", "heads", "groups", "num_m_blocks")
    elif kind == "dq":
        pointers = dict(Q=t, K=t, V=t, O=t, DO=t, DQ=t, STATS="*fp32", DELTA="*fp32", KV_LEN=lens, MASK=mask)
        strided = ("q", "k", "v", "o", "d")
        scalars = ("seq_q", "seq_k", "heads", "groups", "num_m_blocks")
    else:
        pointers = dict(Q=t, K=t, V=t, DO=t, DK=t, DV=t, STATS="*fp32", DELTA="*fp32", KV_LEN=lens, MASK=mask)
        strided = ("q", "k", "v", "d", "g")
        scalars = ("seq_q", "seq_k", "heads", "kv_heads", "groups", "num_n_blocks")
    signature = dict(pointers)
    strides = [f"stride_{x}{axis}" for x in strided for axis in "bth"]
    for name in strides + [f"stride_m{axis}" for axis in "bhqk"] + list(scalars):
        signature[name] = "i32"
    signature["qk_scale"] = "fp32"
    if kind != "fwd":
        signature["scale"] = "fp32"
    # the allocator aligns every buffer; (B, T, H, D) strides are multiples of 16 elements when D is
    divisible = tuple(n for n in pointers if n not in ("KV_LEN", "MASK")) + tuple(strides)
    return signature, divisible


def compile_cases() -> list[CompileCase]:
    kernels = {"fwd": _flash_fwd_kernel, "dq": _flash_bwd_dq_kernel, "dkdv": _flash_bwd_dkdv_kernel}
    # masking per tile class: (key lengths, mask kind) the launchers combine with its tiles
    maskings = {"fp32": ((False, 0), (True, 1), (False, 2)), "half": ((False, 0), (True, 1)), "half-mask": ((False, 2),)}
    cases = []
    for (kind, tile_class), table in TILES.items():
        for dtype in ("fp32",) if tile_class == "fp32" else ("fp16", "bf16"):
            for d_pad, (block_m, block_n, warps, stages) in table.items():
                configs = {(block_m, block_n, warps, stages), (SHORT_QUERY, block_n, 4 if kind != "dkdv" else warps, stages)}
                for bm, bn, w, st in sorted(configs):
                    for has_lens, kind_of_mask in maskings[tile_class]:
                        signature, divisible = _signature(kind, dtype, has_lens, kind_of_mask > 0)
                        constexprs = dict(
                            HEAD_DIM=d_pad, D_PAD=d_pad, BLOCK_M=bm, BLOCK_N=bn, HAS_LENS=has_lens, MASK_KIND=kind_of_mask,
                            PRECISION="tf32x3" if tile_class == "fp32" else "tf32", FIX_BF16=False,
                        )
                        masking = ("lens+" if has_lens else "") + ("plain", "keymask", "mask")[kind_of_mask]
                        name = f"flash_{kind}-{dtype}-d{d_pad}-{bm}x{bn}-w{w}-s{st}-{masking}"
                        cases.append(CompileCase(name, kernels[kind], signature, constexprs, w, st, divisible))
    return cases
