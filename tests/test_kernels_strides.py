"""Every ``pe_av_kernels`` entry against its eager form on tensors of any strides and on mixed dtypes.

Each tensor a kernel reads (inputs, norm weights, rotary tables, residuals, masks, output gradients) is
given in layouts that a unit-stride reader gets wrong: every other element, a broadcast (stride 0), a
transposed (column-major) copy, a slice of a wider tensor. Mixed dtypes are either refused with an error
naming the arguments or cast as each kernel documents (rotary tables and norm weights to q's dtype).
On CPU the kernels run under triton's interpreter (conftest sets ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import pe_av_kernels as K
from pe_av import BackendFallbackWarning, dispatch
from pe_av.ops import rms_norm as rms_norm_op
from pe_av.ops import rms_norm_eager, rope_attention_eager, rope_cos_sin, swiglu_eager
from pe_av.ops import rope_attention as rope_attention_op
from pe_av.ops import swiglu as swiglu_op

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
NORM_ATOL, ATTENTION_ATOL = 1e-5, 1e-4
EPS = 1e-6


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    return (a.float() - b.float()).abs().max().item()


def layout(t: torch.Tensor, how: str) -> torch.Tensor:
    """The values of ``t`` (rank >= 1) in another memory layout; ``"broadcast"`` repeats ``t``'s first row."""
    if how == "contiguous":
        return t
    if how == "every_other":  # stride 2 in every dim
        wide = torch.zeros([2 * n for n in t.shape], dtype=t.dtype, device=t.device)
        view = wide[tuple(slice(None, None, 2) for _ in t.shape)]
        view.copy_(t)
        return view
    if how == "column_major":  # the last dim is not unit-stride
        return t.transpose(0, -1).contiguous().transpose(0, -1) if t.dim() > 1 else layout(t, "every_other")
    if how == "broadcast":  # stride 0 in the first dim
        return t[:1].expand(t.shape)
    if how == "slice":  # unit last stride, rows further apart, an offset into the storage
        wide = torch.zeros(*t.shape[:-1], t.shape[-1] + 5, dtype=t.dtype, device=t.device)
        view = wide[..., 3 : 3 + t.shape[-1]]
        view.copy_(t)
        return view
    raise ValueError(how)


LAYOUTS = ("every_other", "column_major", "broadcast", "slice")


# --------------------------------------------------------------------------------------------------
# rms_norm


def _rms_eager(x, w, residual=None):
    return rms_norm_eager(x, w, EPS, residual)


RMS_CASES = [(what, how, 8192) for what in ("weight", "x", "residual", "dy") for how in LAYOUTS]
RMS_CASES += [("all", how, 16) for how in LAYOUTS]  # rows of 37 in 3 chunks of 16, every input strided


@pytest.mark.parametrize("what, how, max_block", RMS_CASES, ids=[f"{w}-{h}-{m}" for w, h, m in RMS_CASES])
def test_rms_norm_any_strides(what, how, max_block):
    shape = (2, 3, 37)
    base = {
        "x": torch.randn(shape, device=DEVICE),
        "weight": (1 + 0.3 * torch.randn(shape[-1])).to(DEVICE),
        "residual": torch.randn(shape, device=DEVICE),
        "dy": torch.randn(shape, device=DEVICE),
    }
    for name in base if what == "all" else (what,):
        base[name] = layout(base[name], how)  # a vector: "column_major" is every other element, "slice" an offset
    # leaves keep the layout: the kernel's gradients are compared with eager's for each strided input
    x, w, r = (base[n].detach().requires_grad_() for n in ("x", "weight", "residual"))
    got, got_sum = K.rms_norm(x, w, EPS, residual=r, max_block=max_block)
    expected, expected_sum = _rms_eager(x, w, r)
    assert max_diff(got, expected) <= NORM_ATOL and max_diff(got_sum, expected_sum) == 0
    leaves = [t for t in (x, w, r) if t.requires_grad]
    got_grads = torch.autograd.grad(got, leaves, base["dy"])
    expected_grads = torch.autograd.grad(expected, leaves, base["dy"])
    for g, e in zip(got_grads, expected_grads):
        assert max_diff(g, e) <= NORM_ATOL
    # without a residual too
    assert max_diff(K.rms_norm(x, w, EPS, max_block=max_block), _rms_eager(x, w)) <= NORM_ATOL


def test_rms_norm_strided_weight_was_the_reported_case():
    x, w = torch.randn(4, 7, 16, device=DEVICE), torch.randn(32, device=DEVICE)
    assert max_diff(K.rms_norm(x, w[::2]), _rms_eager(x, w[::2])) <= NORM_ATOL


@pytest.mark.parametrize(
    "x_dtype, w_dtype", [(torch.float32, torch.float16), (torch.float32, torch.bfloat16), (torch.float16, torch.float32)]
)
def test_rms_norm_weight_of_another_dtype_promotes_as_eager(x_dtype, w_dtype):
    x = torch.randn(3, 33, device=DEVICE).to(x_dtype).requires_grad_()
    w = (1 + 0.3 * torch.randn(33, device=DEVICE)).to(w_dtype).requires_grad_()
    got, expected = K.rms_norm(x, w, EPS), _rms_eager(x, w)
    assert got.dtype == expected.dtype == torch.float32
    assert max_diff(got, expected) <= NORM_ATOL
    dy = torch.randn_like(got)
    for g, e in zip(torch.autograd.grad(got, (x, w), dy), torch.autograd.grad(expected, (x, w), dy)):
        assert g.dtype == e.dtype
        assert max_diff(g, e) <= (NORM_ATOL if g.dtype == torch.float32 else 1e-2)


def test_rms_norm_residual_of_another_dtype_is_refused_and_the_op_falls_back():
    x, w = torch.randn(3, 16, device=DEVICE), torch.ones(16, device=DEVICE)
    residual = torch.randn(3, 16, device=DEVICE).half()
    with pytest.raises(ValueError, match=r"x, residual must share one dtype, got x torch.float32, residual torch.float16"):
        K.rms_norm(x, w, EPS, residual=residual)
    assert "residual" in K.problem("rms_norm", x, w, EPS, residual)
    dispatch.reset_warnings()
    with pytest.warns(BackendFallbackWarning, match="residual"):
        got = rms_norm_op("triton", x, w, EPS, residual)
    for g, e in zip(got, _rms_eager(x, w, residual)):
        assert torch.equal(g, e)


# --------------------------------------------------------------------------------------------------
# swiglu


@pytest.mark.parametrize("what", ["gate", "up", "dy"])
@pytest.mark.parametrize("how", LAYOUTS)
def test_swiglu_any_strides(what, how):
    tensors = {n: torch.randn(4, 6, 19, device=DEVICE) for n in ("gate", "up", "dy")}
    tensors[what] = layout(tensors[what], how)
    gate, up = (tensors[n].detach().requires_grad_() for n in ("gate", "up"))
    got, expected = K.swiglu(gate, up), swiglu_eager(gate, up)
    assert max_diff(got, expected) <= NORM_ATOL
    for g, e in zip(torch.autograd.grad(got, (gate, up), tensors["dy"]),
                    torch.autograd.grad(expected, (gate, up), tensors["dy"])):
        assert max_diff(g, e) <= NORM_ATOL


def test_swiglu_mixed_dtypes_are_refused_and_the_op_falls_back():
    gate, up = torch.randn(3, 8, device=DEVICE), torch.randn(3, 8, device=DEVICE).half()
    with pytest.raises(ValueError, match=r"gate, up must share one dtype, got gate torch.float32, up torch.float16"):
        K.swiglu(gate, up)
    dispatch.reset_warnings()
    with pytest.warns(BackendFallbackWarning, match="differ in dtype"):
        got = swiglu_op("triton", gate, up)
    assert torch.equal(got, swiglu_eager(gate, up))


# --------------------------------------------------------------------------------------------------
# rope_attention

B, T, H, HKV, D = 2, 9, 4, 2, 16


def attention_inputs(dtype=torch.float32, kept=(9, 4)):
    q = torch.randn(B, T, H, D, device=DEVICE).to(dtype)
    k, v = (torch.randn(B, T, HKV, D, device=DEVICE).to(dtype) for _ in range(2))
    q_w, k_w = ((1 + 0.3 * torch.randn(D, device=DEVICE)).to(dtype) for _ in range(2))
    cos, sin = rope_cos_sin(T + 3, D, 100.0, torch.device(DEVICE), dtype)  # longer than T: rows past T unused
    mask = torch.arange(T, device=DEVICE)[None, :] < torch.tensor(kept, device=DEVICE)[:, None]
    return dict(q=q, k=k, v=v, q_norm_weight=q_w, k_norm_weight=k_w, cos=cos, sin=sin, key_padding_mask=mask)


ATTENTION_LAYOUTS = {  # tensor → the layouts that apply to it
    "q_norm_weight": ("every_other",),
    "k_norm_weight": ("every_other",),
    "cos": ("every_other", "column_major", "slice"),
    "sin": ("every_other", "column_major", "broadcast"),
    "key_padding_mask": ("every_other", "column_major", "broadcast", "slice"),
    "q": ("every_other", "column_major"),
    "v": ("every_other", "broadcast"),
}


@pytest.mark.parametrize(
    "what, how", [(what, how) for what, hows in ATTENTION_LAYOUTS.items() for how in hows]
)
def test_rope_attention_any_strides(what, how):
    args = attention_inputs()
    args[what] = layout(args[what], how)
    assert args[what].stride(-1) != 1 or not args[what].is_contiguous()
    got = K.rope_attention(**args, eps=EPS)
    assert max_diff(got, rope_attention_eager(**args, eps=EPS)) <= ATTENTION_ATOL


def test_rope_attention_broadcast_norm_weight_and_int_mask_views():
    args = attention_inputs()
    args["q_norm_weight"] = torch.tensor(0.7, device=DEVICE).expand(D)  # stride 0
    args["key_padding_mask"] = layout(args["key_padding_mask"].long() * 3, "every_other")  # nonzero = keep
    got = K.rope_attention(**args, eps=EPS)
    assert max_diff(got, rope_attention_eager(**args, eps=EPS)) <= ATTENTION_ATOL


@pytest.mark.parametrize("aux_dtype", [torch.float16, torch.bfloat16])
def test_rope_attention_fp32_q_with_half_tables_and_weights_equals_eager(aux_dtype):
    """The tables and weights are cast to q's dtype: for fp32 q exactly what eager's promotion computes."""
    args = attention_inputs()
    for name in ("q_norm_weight", "k_norm_weight", "cos", "sin"):
        args[name] = args[name].to(aux_dtype)
    got = K.rope_attention(**args, eps=EPS)
    assert max_diff(got, rope_attention_eager(**args, eps=EPS)) <= ATTENTION_ATOL


def _cast_aux(args, dtype):
    return {n: t.to(dtype) if n in ("q_norm_weight", "k_norm_weight", "cos", "sin") else t for n, t in args.items()}


def test_rope_attention_half_q_with_fp32_tables_equals_eager_in_q_dtype():
    args = _cast_aux(attention_inputs(torch.float16), torch.float32)
    got = K.rope_attention(**args, eps=EPS)
    assert got.dtype == torch.float16
    assert max_diff(got, rope_attention_eager(**_cast_aux(args, torch.float16), eps=EPS)) <= 1e-2


# bf16 runs under the interpreter round differently (and only its dot operands are exact), hence the tolerance
@pytest.mark.parametrize("dtype, tol", [(torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_rope_attention_op_half_qkv_fp32_tables_forward_and_backward(dtype, tol):
    """The reported case: bf16 q/k/v, fp32 cos/sin (and fp32 norm weights), through the op's triton form."""
    args = _cast_aux(attention_inputs(dtype), torch.float32)
    names = ("q", "k", "v", "q_norm_weight", "k_norm_weight", "cos", "sin")
    leaves = {n: args[n].detach().requires_grad_() for n in names}
    got = rope_attention_op("triton", **{**args, **leaves}, eps=EPS)
    assert got.dtype == dtype
    # reference: the eager form on the tables and weights cast to q's dtype, gradients through that cast
    ref_leaves = {n: args[n].detach().requires_grad_() for n in names}
    expected = rope_attention_eager(**_cast_aux({**args, **ref_leaves}, dtype), eps=EPS)
    torch.testing.assert_close(got, expected, atol=tol, rtol=tol)
    dout = torch.randn_like(got)
    got_grads = torch.autograd.grad(got, list(leaves.values()), dout)
    expected_grads = torch.autograd.grad(expected, list(ref_leaves.values()), dout)
    for name, g, e in zip(names, got_grads, expected_grads):
        assert g.dtype == args[name].dtype, name  # fp32 tables get fp32 gradients
        # the flash backward (fp32 accumulation) vs eager autograd in the half dtype
        assert (g.float() - e.float()).abs().max().item() <= 4 * tol * max(1.0, e.abs().max().item()), name


def test_rope_attention_mixed_qkv_dtypes_are_refused_naming_them():
    args = attention_inputs()
    args["v"] = args["v"].half()
    with pytest.raises(ValueError, match=r"q, k, v must share one dtype, got q torch.float32, k torch.float32, v torch.float16"):
        K.rope_attention(**args)


def test_no_fallback_warning_for_strided_or_mixed_aux_tensors():
    """Strides and castable table dtypes are handled by the kernels themselves: nothing falls back."""
    args = attention_inputs()
    args["cos"], args["q_norm_weight"] = layout(args["cos"], "every_other"), args["q_norm_weight"].half()
    dispatch.reset_warnings()
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)
        got = rope_attention_op("triton", **args, eps=EPS)
    assert max_diff(got, rope_attention_eager(**args, eps=EPS)) <= ATTENTION_ATOL
