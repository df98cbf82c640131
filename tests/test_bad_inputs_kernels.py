"""The public kernel entries (``pe_av_kernels.rms_norm``, ``swiglu``, ``rope_attention``) check their inputs
before launching: wrong types, ranks, shapes, dtypes and device mixes get a clear error naming the input.
(Strides and the dtype mixes the kernels accept are tested in tests/test_kernels_strides.py.)

Values are not checked: like torch ops, the kernels propagate NaN/Inf (to the rows that hold them), and
a query whose keys are all masked averages every value row; both are tested as documented behaviour.
On CPU the kernels run under triton's interpreter (conftest sets ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import pytest
import torch

import pe_av_kernels as K
from pe_av.ops import rope_attention_eager

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
B, T, H, HKV, D = 2, 5, 4, 2, 8


def rms_args():
    return dict(x=torch.randn(B, T, D, device=DEVICE), weight=torch.ones(D, device=DEVICE))


def swiglu_args():
    return dict(gate=torch.randn(B, T, D, device=DEVICE), up=torch.randn(B, T, D, device=DEVICE))


def attention_args():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, T, n, D, generator=g).to(DEVICE) for n in (H, HKV, HKV))
    cos, sin = torch.ones(T, D // 2, device=DEVICE), torch.zeros(T, D // 2, device=DEVICE)
    ones = torch.ones(D, device=DEVICE)
    return dict(q=q, k=k, v=v, q_norm_weight=ones, k_norm_weight=ones.clone(), cos=cos, sin=sin)


def on_meta(t):
    return t.to("meta")


# (case id, edit(args) -> None, error type, message regex)
RMS_NORM_CASES = [
    ("x_list", lambda a: a.update(x=a["x"].tolist()), TypeError, "x and weight must be tensors"),
    ("weight_list", lambda a: a.update(weight=[1.0] * D), TypeError, "x and weight must be tensors"),
    ("residual_list", lambda a: a.update(residual=[1.0]), TypeError, "residual must be a tensor or None"),
    ("scalar_x", lambda a: a.update(x=torch.tensor(1.0), weight=torch.ones(1)), ValueError, "at least one dimension"),
    ("weight_shape", lambda a: a.update(weight=torch.ones(D - 1)), ValueError, r"weight must have shape \(8,\), got \(7,\)"),
    ("weight_rank2", lambda a: a.update(weight=torch.ones(1, D)), ValueError, r"weight must have shape \(8,\)"),
    ("empty_columns", lambda a: a.update(x=torch.randn(3, 0), weight=torch.ones(0)), ValueError, "normalized dimension is empty"),
    ("residual_shape", lambda a: a.update(residual=a["x"][:, :1]), ValueError, "residual shape"),
    ("residual_dtype", lambda a: a.update(residual=a["x"].half()), ValueError, "x, residual must share one dtype, got x torch.float32, residual torch.float16"),
    ("int32", lambda a: a.update(x=a["x"].int(), weight=a["weight"].int()), ValueError, "dtype torch.int32 is not supported"),
    ("float64", lambda a: a.update(x=a["x"].double(), weight=a["weight"].double()), ValueError, "dtype torch.float64 is not supported"),
    ("x_on_meta", lambda a: a.update(x=on_meta(a["x"])), ValueError, "x, weight must share one device, got x meta, weight"),
    ("all_on_meta", lambda a: a.update(x=on_meta(a["x"]), weight=on_meta(a["weight"])), ValueError, "tensors on meta are not supported"),
    ("residual_on_meta", lambda a: a.update(residual=on_meta(a["x"])), ValueError, "x, weight, residual must share one device"),
    ("eps_str", lambda a: a.update(eps="1e-6"), TypeError, "eps must be a number"),
    ("eps_negative", lambda a: a.update(eps=-1e-6), ValueError, "eps must be finite and >= 0"),
    ("eps_nan", lambda a: a.update(eps=float("nan")), ValueError, "eps must be finite and >= 0"),
    ("eps_inf", lambda a: a.update(eps=float("inf")), ValueError, "eps must be finite and >= 0"),
]

SWIGLU_CASES = [
    ("gate_list", lambda a: a.update(gate=a["gate"].tolist()), TypeError, "gate and up must be tensors"),
    ("up_numpy", lambda a: a.update(up=a["up"].cpu().numpy()), TypeError, "gate and up must be tensors"),
    ("shape", lambda a: a.update(up=a["up"][:, :4]), ValueError, r"gate shape \(2, 5, 8\) != up shape \(2, 4, 8\)"),
    ("scalars", lambda a: a.update(gate=torch.tensor(1.0), up=torch.tensor(1.0)), ValueError, "at least one dimension"),
    ("dtype_mix", lambda a: a.update(up=a["up"].half()), ValueError, "gate, up must share one dtype, got gate torch.float32, up torch.float16"),
    ("int32", lambda a: a.update(gate=a["gate"].int(), up=a["up"].int()), ValueError, "dtype torch.int32 is not supported"),
    ("float64", lambda a: a.update(gate=a["gate"].double(), up=a["up"].double()), ValueError, "float64 is not supported"),
    ("one_on_meta", lambda a: a.update(gate=on_meta(a["gate"])), ValueError, "gate, up must share one device, got gate meta"),
    ("both_on_meta", lambda a: a.update(gate=on_meta(a["gate"]), up=on_meta(a["up"])), ValueError, "tensors on meta are not supported"),
]


def _replace(**values):
    return lambda a: a.update(values)


ATTENTION_CASES = [
    ("q_list", lambda a: a.update(q=a["q"].tolist()), TypeError, "q must be a tensor"),
    ("cos_numpy", lambda a: a.update(cos=a["cos"].cpu().numpy()), TypeError, "cos must be a tensor"),
    ("rank3", lambda a: a.update(q=a["q"][0], k=a["k"][0], v=a["v"][0]), ValueError, r"must be \(batch, seq, heads, head_dim\)"),
    ("kv_seq", lambda a: a.update(k=a["k"][:, :4], v=a["v"][:, :4]), ValueError, r"k \(2, 4, 2, 8\) and v"),
    ("kv_batch", lambda a: a.update(k=a["k"][:1], v=a["v"][:1]), ValueError, r"k \(1, 5, 2, 8\) and v"),
    ("k_v_differ", lambda a: a.update(v=a["v"][:, :, :1]), ValueError, "k .* and v .* must be"),
    ("heads_not_multiple", lambda a: a.update(q=torch.randn(B, T, 3, D)), ValueError, "3 query heads are not a multiple of 2"),
    ("zero_kv_heads", lambda a: a.update(k=a["k"][:, :, :0], v=a["v"][:, :, :0]), ValueError, "not a multiple of 0 kv heads"),
    ("odd_head_dim", lambda a: a.update(q=a["q"][..., :7], k=a["k"][..., :7], v=a["v"][..., :7]), ValueError, "head_dim 7 unsupported"),
    ("norm_weight_shape", lambda a: a.update(q_norm_weight=torch.ones(4)), ValueError, r"q_norm_weight must have shape \(8,\)"),
    ("cos_short", lambda a: a.update(cos=a["cos"][:3], sin=a["sin"][:3]), ValueError, r"cos must be \(>= 5, 4\)"),
    ("cos_rank3", lambda a: a.update(cos=a["cos"][None]), ValueError, r"cos must be \(>= 5, 4\)"),
    ("sin_width", lambda a: a.update(sin=a["sin"][:, :2]), ValueError, r"sin must be \(>= 5, 4\)"),
    ("kv_dtype", lambda a: a.update(k=a["k"].half(), v=a["v"].half()), ValueError, "q, k, v must share one dtype, got q torch.float32, k torch.float16"),
    ("int32", lambda a: a.update(q=a["q"].int(), k=a["k"].int(), v=a["v"].int()), ValueError, "int32 is not supported"),
    ("float64_tables", lambda a: a.update(cos=a["cos"].double(), sin=a["sin"].double()), ValueError, "float64 is not supported"),
    ("q_on_meta", lambda a: a.update(q=on_meta(a["q"])), ValueError, "q, k, v, .* must share one device, got q meta"),
    ("all_on_meta", lambda a: a.update({k: on_meta(v) for k, v in a.items()}), ValueError, "tensors on meta are not supported"),
    ("mask_list", lambda a: a.update(key_padding_mask=[[True] * T] * B), TypeError, r"key_padding_mask must be a \(2, 5\) tensor"),
    ("mask_shape", lambda a: a.update(key_padding_mask=torch.ones(B, T - 1, dtype=torch.bool)), ValueError, r"key_padding_mask must be \(2, 5\)"),
    ("mask_float", lambda a: a.update(key_padding_mask=torch.ones(B, T)), TypeError, "key_padding_mask must be bool or integer"),
    ("mask_on_meta", lambda a: a.update(key_padding_mask=torch.ones(B, T, dtype=torch.bool, device="meta")), ValueError, "key_padding_mask must share one device, got .* key_padding_mask meta"),
    ("eps_negative", lambda a: a.update(eps=-1.0), ValueError, "eps must be finite and >= 0"),
    ("eps_str", lambda a: a.update(eps="small"), TypeError, "eps must be a number"),
    ("scale_nan", lambda a: a.update(scale=float("nan")), ValueError, "scale must be finite"),
    ("scale_str", lambda a: a.update(scale="0.3"), TypeError, "scale must be a number"),
    ("both_masks", lambda a: a.update(key_padding_mask=torch.ones(B, T, dtype=torch.bool), key_lengths=torch.ones(B, dtype=torch.long)), ValueError, "key_padding_mask or key_lengths"),
    ("one_norm_weight", lambda a: a.update(k_norm_weight=None), ValueError, "both be tensors or both be None"),
]

OPS = {
    "rms_norm": (K.rms_norm, rms_args, RMS_NORM_CASES),
    "swiglu": (K.swiglu, swiglu_args, SWIGLU_CASES),
    "rope_attention": (K.rope_attention, attention_args, ATTENTION_CASES),
}


@pytest.mark.parametrize(
    "op, edit, error, regex",
    [pytest.param(op, edit, error, regex, id=f"{op}-{case}") for op, (_, _, cases) in OPS.items()
     for case, edit, error, regex in cases],
)
def test_bad_kernel_input(op, edit, error, regex):
    fn, make_args, _ = OPS[op]
    args = make_args()
    edit(args)
    with pytest.raises(error, match=regex):
        fn(**args)


def test_empty_batches_are_fine():
    """Zero rows launch nothing and return empty results of the right shape."""
    assert K.rms_norm(torch.randn(0, D, device=DEVICE), torch.ones(D, device=DEVICE)).shape == (0, D)
    assert K.swiglu(torch.randn(0, D, device=DEVICE), torch.randn(0, D, device=DEVICE)).shape == (0, D)
    args = attention_args()
    for name in ("q", "k", "v"):
        args[name] = args[name][:0]
    assert K.rope_attention(**args).shape == (0, T, H, D)


def test_nan_propagates_to_its_own_rows_only():
    """Documented: the kernels do not check values; NaN stays in the rows (tokens) that hold it."""
    x = torch.randn(3, D, device=DEVICE)
    x[1, 2] = float("nan")
    y = K.rms_norm(x, torch.ones(D, device=DEVICE))
    assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2]]).all()
    gate, up = torch.randn(3, D, device=DEVICE), torch.randn(3, D, device=DEVICE)
    up[2, 0] = float("inf")
    out = K.swiglu(gate, up)
    assert not torch.isfinite(out[2, 0]) and torch.isfinite(out[:2]).all()
    args = attention_args()
    args["v"][1, 2, 0, 0] = float("nan")  # one value of sample 1: reaches sample 1's queries only
    out = K.rope_attention(**args)
    assert torch.isfinite(out[0]).all() and torch.isnan(out[1, :, :2, 0]).all()


def test_all_masked_keys_average_every_value():
    """Documented: a query whose keys are all masked gets the mean of all value rows (as the eager form)."""
    args = attention_args()
    mask = torch.ones(B, T, dtype=torch.bool, device=DEVICE)
    mask[1] = False
    out = K.rope_attention(**args, key_padding_mask=mask)
    expected = rope_attention_eager(**args, key_padding_mask=mask)
    assert (out - expected).abs().max().item() <= 1e-5
    mean_v = args["v"][1].mean(dim=0).repeat_interleave(H // HKV, dim=0)  # (H, D)
    assert (out[1] - mean_v[None]).abs().max().item() <= 1e-5
