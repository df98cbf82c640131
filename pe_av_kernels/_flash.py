"""Flash attention forward and backward on ready (normalised, rotated) q and k.

``softmax(q kᵀ · scale) v`` with grouped key/value heads, never forming the ``Tq × Tk`` matrix:

- forward: one program per (query block, batch, head) runs the online softmax over key blocks and saves
  two fp32 numbers per query row (the row max ``m`` and ``1 / l``, log2 units): O(T) memory;
- backward: ``delta = rowsum(dO · O)`` and ``dq`` in one kernel (a program per query block), ``dk``/``dv``
  in another (a program per key block and key/value head, looping over the query blocks of every query
  head of its group): no atomics, deterministic.

Masking, per sample ``b``: ``kv_len[b]`` (optional) keeps keys ``< kv_len[b]`` and lets every program stop
at the last block holding one (fully padded key blocks are skipped); ``mask`` (optional, uint8, strided
``(B, H, Tq, Tk)``, broadcast dims at stride 0) keeps the pairs where it is nonzero; a mask whose head
and query strides are 0 (a key padding mask) is read as one byte per key tile (``MASK_KIND`` 1), any
other mask tile by tile (``MASK_KIND`` 2; ModernBERT's window, with its own smaller tiles). With both,
a query row must keep no key only where ``kv_len[b] == 0`` (true when ``kv_len`` is the mask's last kept
key + 1, as ``pe_av_kernels.attention`` derives it). A dropped key gets
the score ``_MASKED`` (finite, below every real score), never ``-inf``: a query row that keeps no key
therefore averages all ``Tk`` value rows uniformly, as the eager form (which adds the dtype's most negative
value) does; with ``kv_len[b] == 0`` every key block is visited for that reason. Saving ``m`` and ``1/l``
separately (not ``m + log2 l``, which rounds to ``m`` at ``m = _MASKED``) keeps that row's backward exact.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._common import INTERPRET
from ._rounding import dot, round_to

_MASKED = tl.constexpr(-1.0e30)  # score (log2 units) of a dropped key
LOG2E = 1.4426950408889634


@triton.jit
def _masked(s, qi, kj, n_end, kv_len, MASK_BH, stride_mq, stride_mk, seq_q, HAS_LENS: tl.constexpr, MASK_KIND: tl.constexpr):
    """Scores ``s`` (log2 units) at query rows ``qi`` × keys ``kj`` (a (1, N) and (M, 1) index tile, or the
    transposes) with dropped keys at ``_MASKED`` and keys past ``n_end`` (the visited range) at ``-inf``
    (weight exactly 0). ``MASK_KIND``: 0 no mask, 1 a key mask (one byte per key, read once per key tile),
    2 a full mask (a pointer per element: its tiles are smaller, see ``TILES``)."""
    if HAS_LENS:
        s = tl.where(kj < kv_len, s, _MASKED)
    if MASK_KIND == 1:
        keep = tl.load(MASK_BH + kj * stride_mk, mask=kj < n_end, other=0)
        s = tl.where(keep != 0, s, _MASKED)
    elif MASK_KIND == 2:
        keep = tl.load(MASK_BH + qi * stride_mq + kj * stride_mk, mask=(qi < seq_q) & (kj < n_end), other=0)
        s = tl.where(keep != 0, s, _MASKED)
    return tl.where(kj < n_end, s, float("-inf"))


@triton.jit
def _key_range(KV_LEN, batch, seq_k, HAS_LENS: tl.constexpr):
    """(kv_len, n_end): keys kept by the lengths, and the keys to visit (all of them when none is kept)."""
    if HAS_LENS:
        kv_len = tl.load(KV_LEN + batch)
        n_end = tl.where(kv_len > 0, tl.minimum(kv_len, seq_k), seq_k)
    else:
        kv_len = seq_k
        n_end = seq_k
    return kv_len, n_end


@triton.jit
def _flash_fwd_kernel(
    Q, K, V, O, STATS, KV_LEN, MASK,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_kt, stride_kh, stride_vb, stride_vt, stride_vh,
    stride_ob, stride_ot, stride_oh, stride_mb, stride_mh, stride_mq, stride_mk,
    seq_q, seq_k, heads, groups, num_m_blocks, qk_scale,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_LENS: tl.constexpr, MASK_KIND: tl.constexpr, PRECISION: tl.constexpr, FIX_BF16: tl.constexpr,
):
    pid = tl.program_id(0)  # flat grid (no 65535 limit); a head's query blocks are neighbours, sharing its keys
    pid_m = pid % num_m_blocks
    pid_bh = pid // num_m_blocks
    batch = (pid_bh // heads).to(tl.int64)
    head = pid_bh % heads
    kv_head = head // groups
    dtype = Q.dtype.element_ty
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D_PAD)
    d_valid = offs_d < HEAD_DIM
    m_valid = offs_m < seq_q
    q = tl.load(
        Q + batch * stride_qb + head * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :],
        mask=m_valid[:, None] & d_valid[None, :], other=0.0,
    )
    k_base = K + batch * stride_kb + kv_head * stride_kh + offs_d[None, :]
    v_base = V + batch * stride_vb + kv_head * stride_vh + offs_d[None, :]
    mask_bh = MASK + batch * stride_mb + head * stride_mh
    kv_len, n_end = _key_range(KV_LEN, batch, seq_k, HAS_LENS)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D_PAD], dtype=tl.float32)
    for start in range(0, n_end, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        kv_mask = (offs_n < n_end)[:, None] & d_valid[None, :]
        k = tl.load(k_base + offs_n[:, None] * stride_kt, mask=kv_mask, other=0.0)
        s = dot(q, tl.trans(k), tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32), PRECISION, FIX_BF16) * qk_scale
        s = _masked(s, offs_m[:, None], offs_n[None, :], n_end, kv_len, mask_bh, stride_mq, stride_mk, seq_q, HAS_LENS, MASK_KIND)
        m_new = tl.maximum(m_i, tl.max(s, axis=1))  # finite: every visited block has a key < n_end
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + offs_n[:, None] * stride_vt, mask=kv_mask, other=0.0)
        acc = dot(round_to(p, dtype, FIX_BF16), v, acc * alpha[:, None], PRECISION, FIX_BF16)
        m_i = m_new

    inv_l = 1.0 / l_i
    o_ptrs = O + batch * stride_ob + head * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :]
    tl.store(o_ptrs, round_to(acc * inv_l[:, None], dtype, FIX_BF16), mask=m_valid[:, None] & d_valid[None, :])
    stats = STATS + pid_bh.to(tl.int64) * (2 * seq_q) + offs_m
    tl.store(stats, m_i, mask=m_valid)
    tl.store(stats + seq_q, inv_l, mask=m_valid)


@triton.jit
def _flash_bwd_dq_kernel(
    Q, K, V, O, DO, DQ, STATS, DELTA, KV_LEN, MASK,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_kt, stride_kh, stride_vb, stride_vt, stride_vh,
    stride_ob, stride_ot, stride_oh, stride_db, stride_dt, stride_dh, stride_mb, stride_mh, stride_mq, stride_mk,
    seq_q, seq_k, heads, groups, num_m_blocks, qk_scale, scale,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_LENS: tl.constexpr, MASK_KIND: tl.constexpr, PRECISION: tl.constexpr, FIX_BF16: tl.constexpr,
):
    """delta = rowsum(dO·O) (saved for the dk/dv kernel) and dq of one query block. DQ is contiguous like O."""
    pid = tl.program_id(0)
    pid_m = pid % num_m_blocks
    pid_bh = pid // num_m_blocks
    batch = (pid_bh // heads).to(tl.int64)
    head = pid_bh % heads
    kv_head = head // groups
    dtype = Q.dtype.element_ty
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D_PAD)
    m_valid = offs_m < seq_q
    tile = m_valid[:, None] & (offs_d < HEAD_DIM)[None, :]
    rows = offs_m[:, None]
    q = tl.load(Q + batch * stride_qb + head * stride_qh + rows * stride_qt + offs_d[None, :], mask=tile, other=0.0)
    o = tl.load(O + batch * stride_ob + head * stride_oh + rows * stride_ot + offs_d[None, :], mask=tile, other=0.0)
    do = tl.load(DO + batch * stride_db + head * stride_dh + rows * stride_dt + offs_d[None, :], mask=tile, other=0.0)
    delta = tl.sum(do.to(tl.float32) * o.to(tl.float32), axis=1)
    stats = STATS + pid_bh.to(tl.int64) * (2 * seq_q) + offs_m
    m_i = tl.load(stats, mask=m_valid, other=0.0)
    inv_l = tl.load(stats + seq_q, mask=m_valid, other=0.0)
    tl.store(DELTA + pid_bh.to(tl.int64) * seq_q + offs_m, delta, mask=m_valid)
    k_base = K + batch * stride_kb + kv_head * stride_kh + offs_d[None, :]
    v_base = V + batch * stride_vb + kv_head * stride_vh + offs_d[None, :]
    mask_bh = MASK + batch * stride_mb + head * stride_mh
    kv_len, n_end = _key_range(KV_LEN, batch, seq_k, HAS_LENS)

    dq = tl.zeros([BLOCK_M, D_PAD], dtype=tl.float32)
    for start in range(0, n_end, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        kv_mask = (offs_n < n_end)[:, None] & (offs_d < HEAD_DIM)[None, :]
        k = tl.load(k_base + offs_n[:, None] * stride_kt, mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * stride_vt, mask=kv_mask, other=0.0)
        s = dot(q, tl.trans(k), tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32), PRECISION, FIX_BF16) * qk_scale
        s = _masked(s, rows, offs_n[None, :], n_end, kv_len, mask_bh, stride_mq, stride_mk, seq_q, HAS_LENS, MASK_KIND)
        p = tl.exp2(s - m_i[:, None]) * inv_l[:, None]
        dp = dot(do, tl.trans(v), tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32), PRECISION, FIX_BF16)
        # no zeroing at dropped keys: p is 0 there unless the row keeps no key, where the eager form's autograd
        # passes the gradient through its constant bias (uniform p) too
        ds = p * (dp - delta[:, None])
        dq = dot(round_to(ds, dtype, FIX_BF16), k, dq, PRECISION, FIX_BF16)
    dq_ptrs = DQ + batch * stride_ob + head * stride_oh + rows * stride_ot + offs_d[None, :]
    tl.store(dq_ptrs, round_to(dq * scale, dtype, FIX_BF16), mask=tile)


@triton.jit
def _flash_bwd_dkdv_kernel(
    Q, K, V, DO, DK, DV, STATS, DELTA, KV_LEN, MASK,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_kt, stride_kh, stride_vb, stride_vt, stride_vh,
    stride_db, stride_dt, stride_dh, stride_gb, stride_gt, stride_gh, stride_mb, stride_mh, stride_mq, stride_mk,
    seq_q, seq_k, heads, kv_heads, groups, num_n_blocks, qk_scale, scale,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_LENS: tl.constexpr, MASK_KIND: tl.constexpr, PRECISION: tl.constexpr, FIX_BF16: tl.constexpr,
):
    """dk, dv of one key block of one key/value head, summed over its group's query heads. DK/DV contiguous."""
    pid = tl.program_id(0)
    pid_n = pid % num_n_blocks
    pid_bh = pid // num_n_blocks
    batch = (pid_bh // kv_heads).to(tl.int64)
    kv_head = pid_bh % kv_heads
    dtype = K.dtype.element_ty
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D_PAD)
    d_valid = offs_d < HEAD_DIM
    kv_len, n_end = _key_range(KV_LEN, batch, seq_k, HAS_LENS)
    keys = offs_n[:, None]
    kv_tile = (offs_n < n_end)[:, None] & d_valid[None, :]
    dk = tl.zeros([BLOCK_N, D_PAD], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, D_PAD], dtype=tl.float32)
    if pid_n * BLOCK_N < n_end:  # a block past every visited key has zero gradients
        k = tl.load(K + batch * stride_kb + kv_head * stride_kh + keys * stride_kt + offs_d[None, :], mask=kv_tile, other=0.0)
        v = tl.load(V + batch * stride_vb + kv_head * stride_vh + keys * stride_vt + offs_d[None, :], mask=kv_tile, other=0.0)
        for g in range(groups):
            head = kv_head * groups + g
            bh = batch * heads + head
            q_base = Q + batch * stride_qb + head * stride_qh + offs_d[None, :]
            do_base = DO + batch * stride_db + head * stride_dh + offs_d[None, :]
            mask_bh = MASK + batch * stride_mb + head * stride_mh
            for start in range(0, seq_q, BLOCK_M):
                offs_m = start + tl.arange(0, BLOCK_M)
                m_valid = offs_m < seq_q
                q_tile = m_valid[:, None] & d_valid[None, :]
                q = tl.load(q_base + offs_m[:, None] * stride_qt, mask=q_tile, other=0.0)
                do = tl.load(do_base + offs_m[:, None] * stride_dt, mask=q_tile, other=0.0)
                stats = STATS + bh * (2 * seq_q) + offs_m
                m_i = tl.load(stats, mask=m_valid, other=0.0)
                inv_l = tl.load(stats + seq_q, mask=m_valid, other=0.0)  # 0: rows past the end weigh nothing
                delta = tl.load(DELTA + bh * seq_q + offs_m, mask=m_valid, other=0.0)
                s_t = dot(k, tl.trans(q), tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32), PRECISION, FIX_BF16) * qk_scale
                s_t = _masked(s_t, offs_m[None, :], keys, n_end, kv_len, mask_bh, stride_mq, stride_mk, seq_q, HAS_LENS, MASK_KIND)
                p_t = tl.exp2(s_t - m_i[None, :]) * inv_l[None, :]
                dv = dot(round_to(p_t, dtype, FIX_BF16), do, dv, PRECISION, FIX_BF16)
                dp_t = dot(v, tl.trans(do), tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32), PRECISION, FIX_BF16)
                ds_t = p_t * (dp_t - delta[None, :])
                dk = dot(round_to(ds_t, dtype, FIX_BF16), q, dk, PRECISION, FIX_BF16)
    grads = batch * stride_gb + kv_head * stride_gh + keys * stride_gt + offs_d[None, :]
    out_tile = (offs_n < seq_k)[:, None] & d_valid[None, :]
    tl.store(DK + grads, round_to(dk * scale, dtype, FIX_BF16), mask=out_tile)
    tl.store(DV + grads, round_to(dv, dtype, FIX_BF16), mask=out_tile)


# --------------------------------------------------------------------------------------------------
# tiles: (BLOCK_M, BLOCK_N, warps, stages) per padded head dim on CUDA, checked for sm_90 by compile_cases()
# (no register spills, shared memory within 227 KB); under the interpreter 16 × 16 tiles, so that tests with
# a few dozen tokens still cross block boundaries

TILES = {
    ("fwd", "half"): {16: (128, 64, 8, 3), 32: (128, 64, 8, 3), 64: (128, 64, 8, 3), 128: (128, 64, 8, 3), 256: (128, 32, 8, 2)},
    ("fwd", "half-mask"): {16: (64, 64, 8, 2), 32: (64, 64, 8, 2), 64: (64, 64, 8, 2), 128: (64, 64, 8, 2), 256: (64, 32, 8, 2)},
    ("fwd", "fp32"): {16: (64, 32, 4, 2), 32: (64, 32, 4, 2), 64: (64, 32, 4, 2), 128: (16, 16, 4, 1)},
    ("dq", "half"): {16: (128, 64, 8, 2), 32: (128, 64, 8, 2), 64: (128, 64, 8, 2), 128: (128, 64, 8, 2), 256: (32, 32, 4, 1)},
    ("dq", "half-mask"): {16: (64, 32, 4, 1), 32: (64, 32, 4, 1), 64: (64, 32, 4, 1), 128: (64, 32, 4, 1), 256: (32, 32, 4, 1)},
    ("dq", "fp32"): {16: (16, 16, 4, 1), 32: (16, 16, 4, 1), 64: (16, 16, 4, 1), 128: (16, 16, 4, 1)},
    ("dkdv", "half"): {16: (64, 128, 8, 2), 32: (64, 128, 8, 2), 64: (64, 128, 8, 2), 128: (32, 128, 8, 2), 256: (32, 32, 8, 1)},
    ("dkdv", "half-mask"): {16: (32, 64, 4, 1), 32: (32, 64, 4, 1), 64: (32, 64, 4, 1), 128: (32, 64, 8, 1), 256: (16, 32, 4, 1)},
    ("dkdv", "fp32"): {16: (16, 16, 4, 1), 32: (16, 16, 4, 1), 64: (16, 16, 4, 1), 128: (16, 16, 4, 1)},
}
FP32_MAX_HEAD_DIM = 128  # fp32 dots keep more in registers: at 256 every tile spilled (see pe_av_kernels.attention)
INTERPRETER_TILE = 32
SHORT_QUERY = 16  # at most this many queries (the ViT's attention pool: 1): BLOCK_M 16 and 4 warps


def d_pad_of(head_dim: int) -> int:
    return max(16, triton.next_power_of_2(head_dim))


def fp32_precision() -> str:
    """fp32 dots: three tf32 tensor-core products on a GPU (fp32-grade accuracy; exact "ieee" FMA dots kept
    whole tiles in registers and spilled at head_dim 128+), exact numpy dots under the interpreter."""
    return "ieee" if INTERPRET else "tf32x3"


def mask_kind(mask: Optional[torch.Tensor]) -> int:
    """0: no mask; 1: a key mask (head and query dims broadcast); 2: any other mask."""
    if mask is None:
        return 0
    broadcast = all(mask.shape[dim] == 1 or mask.stride(dim) == 0 for dim in (1, 2))
    return 1 if broadcast else 2


def tile_class(dtype: torch.dtype, kind_of_mask: int) -> str:
    """Which tile table a launch uses: fp32, half precision, or half precision with a full mask."""
    if dtype == torch.float32:
        return "fp32"
    return "half-mask" if kind_of_mask == 2 else "half"


def tiles(kind: str, seq_q: int, d_pad: int, dtype: torch.dtype, device: torch.device, kind_of_mask: int = 0):
    """The (BLOCK_M, BLOCK_N, warps, stages) a launcher uses for ``kind`` ('fwd', 'dq', 'dkdv')."""
    if device.type != "cuda":
        return INTERPRETER_TILE, INTERPRETER_TILE, 4, 1
    block_m, block_n, warps, stages = TILES[(kind, tile_class(dtype, kind_of_mask))][d_pad]
    if seq_q <= SHORT_QUERY:
        block_m, warps = 16, 4
    return block_m, block_n, warps, stages


def _common_constexprs(q: torch.Tensor, kv_len, mask) -> dict:
    return dict(
        HEAD_DIM=q.shape[-1], D_PAD=d_pad_of(q.shape[-1]), HAS_LENS=kv_len is not None, MASK_KIND=mask_kind(mask),
        PRECISION=fp32_precision() if q.dtype == torch.float32 else "tf32", FIX_BF16=INTERPRET and q.dtype == torch.bfloat16,
    )


def _mask_strides(mask: Optional[torch.Tensor]) -> tuple[int, int, int, int]:
    return mask.stride() if mask is not None else (0, 0, 0, 0)


def _strides3(t: torch.Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


@triton_op("pe_av_kernels::flash_attention", mutates_args={})
def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_len: Optional[torch.Tensor], mask: Optional[torch.Tensor],
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``q`` (B, Tq, H, D), ``k``/``v`` (B, Tk, Hkv, D), unit last stride; ``kv_len`` (B,) int32 or None; ``mask``
    uint8 of shape (B, H, Tq, Tk) (broadcast dims at stride 0) or None → (out (B, Tq, H, D) contiguous,
    stats (B, H, 2, Tq) fp32: row max and 1/row sum, log2 units)."""
    batch, seq_q, heads, head_dim = q.shape
    seq_k, kv_heads = k.shape[1], k.shape[2]
    out = torch.empty((batch, seq_q, heads, head_dim), dtype=q.dtype, device=q.device)
    stats = torch.empty((batch, heads, 2, seq_q), dtype=torch.float32, device=q.device)
    if out.numel() == 0:
        return out, stats
    block_m, block_n, warps, stages = tiles("fwd", seq_q, d_pad_of(head_dim), q.dtype, q.device, mask_kind(mask))
    num_m_blocks = triton.cdiv(seq_q, block_m)
    wrap_triton(_flash_fwd_kernel)[(num_m_blocks * batch * heads,)](
        q, k, v, out, stats, kv_len if kv_len is not None else q, mask if mask is not None else q,
        *_strides3(q), *_strides3(k), *_strides3(v), *_strides3(out), *_mask_strides(mask),
        seq_q, seq_k, heads, heads // kv_heads, num_m_blocks, scale * LOG2E,
        BLOCK_M=block_m, BLOCK_N=block_n, **_common_constexprs(q, kv_len, mask), num_warps=warps, num_stages=stages,
    )
    return out, stats


@triton_op("pe_av_kernels::flash_attention_bwd", mutates_args={})
def flash_attention_bwd(
    dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, stats: torch.Tensor,
    kv_len: Optional[torch.Tensor], mask: Optional[torch.Tensor], scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv), contiguous, in the inputs' dtype."""
    batch, seq_q, heads, _ = q.shape
    seq_k, kv_heads = k.shape[1], k.shape[2]
    if dout.stride(-1) != 1:
        dout = dout.contiguous()
    dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
    if dq.numel() == 0 or dk.numel() == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    delta = torch.empty((batch, heads, seq_q), dtype=torch.float32, device=q.device)
    constexprs = _common_constexprs(q, kv_len, mask)
    lens, masks = (kv_len if kv_len is not None else q), (mask if mask is not None else q)
    block_m, block_n, warps, stages = tiles("dq", seq_q, constexprs["D_PAD"], q.dtype, q.device, constexprs["MASK_KIND"])
    num_m_blocks = triton.cdiv(seq_q, block_m)
    wrap_triton(_flash_bwd_dq_kernel)[(num_m_blocks * batch * heads,)](
        q, k, v, out, dout, dq, stats, delta, lens, masks,
        *_strides3(q), *_strides3(k), *_strides3(v), *_strides3(out), *_strides3(dout), *_mask_strides(mask),
        seq_q, seq_k, heads, heads // kv_heads, num_m_blocks, scale * LOG2E, scale,
        BLOCK_M=block_m, BLOCK_N=block_n, **constexprs, num_warps=warps, num_stages=stages,
    )
    block_m, block_n, warps, stages = tiles("dkdv", seq_q, constexprs["D_PAD"], q.dtype, q.device, constexprs["MASK_KIND"])
    num_n_blocks = triton.cdiv(seq_k, block_n)
    wrap_triton(_flash_bwd_dkdv_kernel)[(num_n_blocks * batch * kv_heads,)](
        q, k, v, dout, dk, dv, stats, delta, lens, masks,
        *_strides3(q), *_strides3(k), *_strides3(v), *_strides3(dout), *_strides3(dk), *_mask_strides(mask),
        seq_q, seq_k, heads, kv_heads, heads // kv_heads, num_n_blocks, scale * LOG2E, scale,
        BLOCK_M=block_m, BLOCK_N=block_n, **constexprs, num_warps=warps, num_stages=stages,
    )
    return dq, dk, dv


def _setup_context(ctx, inputs, output):
    q, k, v, kv_len, mask, scale = inputs
    ctx.save_for_backward(q, k, v, output[0], output[1], kv_len, mask)
    ctx.scale = scale


def _backward(ctx, dout, _dstats):
    q, k, v, out, stats, kv_len, mask = ctx.saved_tensors
    dq, dk, dv = torch.ops.pe_av_kernels.flash_attention_bwd(dout, q, k, v, out, stats, kv_len, mask, ctx.scale)
    return dq, dk, dv, None, None, None


flash_attention.register_autograd(_backward, setup_context=_setup_context)
