"""ModernBertModel (text tower) vs transformers' ModernBertModel on the same random weights (fp32, ≤ 1e-4)."""

import json

import pytest
import torch

from oracle import FP32_ATOL, max_abs_diff, perturb_parameters, sharpen, transformers
from pe_av import ModernBertConfig, ModernBertModel

pytestmark = pytest.mark.oracle

VOCAB = 61
CONFIGS = {
    "alternating": dict(  # default pattern (global every 3rd layer), window 8 → 4 each side
        hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4, local_attention=8,
    ),
    "odd-biases": dict(  # odd intermediate, 3 heads of 10, odd total window (5 → 2 each side), all biases
        hidden_size=30, intermediate_size=23, num_hidden_layers=3, num_attention_heads=3, local_attention=5,
        norm_bias=True, attention_bias=True, mlp_bias=True, hidden_activation="gelu_pytorch_tanh",
    ),
    "custom-pattern": dict(  # explicit layer types and RoPE thetas, sliding first
        hidden_size=16, intermediate_size=20, num_hidden_layers=3, num_attention_heads=2, local_attention=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 500.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 77.0},
        },
    ),
}


def build_text_reference(config, directory):
    torch.manual_seed(0)
    model = sharpen(perturb_parameters(transformers.ModernBertModel(config).eval()))
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, tmp_path_factory):
    config = transformers.ModernBertConfig(vocab_size=VOCAB, pad_token_id=0, **CONFIGS[request.param])
    return build_text_reference(config, tmp_path_factory.mktemp(request.param))


def text_batch(lengths, total):
    """Right-padded ids (pad id 0) and mask; lengths well past the sliding window."""
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(1, VOCAB, (len(lengths), total), generator=gen)
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        ids[i, n:] = 0
    return ids, mask


def run_both(ref, ours, attn_impl, ids, mask, **kwargs):
    ref.set_attn_implementation(attn_impl)
    with torch.no_grad():
        return ref(ids, attention_mask=mask, **kwargs), ours(ids, attention_mask=mask, **kwargs)


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_unpadded(pair, attn_impl):
    ref, directory = pair
    ours = ModernBertModel.from_pretrained(directory, attn_impl=attn_impl)
    ids, _ = text_batch([19, 19], 19)
    expected, got = run_both(ref, ours, attn_impl, ids, None)
    assert max_abs_diff(expected.last_hidden_state, got.last_hidden_state) <= FP32_ATOL
    assert torch.equal(got.pooler_output, got.last_hidden_state[:, 0])


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_padded_longer_than_window(pair, attn_impl):
    """Mixed lengths; the last sample is so short that padded queries far from it see no valid key in
    sliding layers (the reference's eager and sdpa paths then differ, so each is compared with its own)."""
    ref, directory = pair
    ours = ModernBertModel.from_pretrained(directory, attn_impl=attn_impl)
    ids, mask = text_batch([23, 9, 2], 23)
    expected, got = run_both(ref, ours, attn_impl, ids, mask)
    assert max_abs_diff(expected.last_hidden_state, got.last_hidden_state) <= FP32_ATOL
    # bool and float masks mean the same
    with torch.no_grad():
        as_bool = ours(ids, attention_mask=mask.bool()).last_hidden_state
        as_float = ours(ids, attention_mask=mask.float()).last_hidden_state
    assert torch.equal(as_bool, got.last_hidden_state) and torch.equal(as_float, got.last_hidden_state)


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_hidden_states(pair, attn_impl):
    ref, directory = pair
    ours = ModernBertModel.from_pretrained(directory, attn_impl=attn_impl)
    ids, mask = text_batch([17, 6], 17)
    expected, got = run_both(ref, ours, attn_impl, ids, mask, output_hidden_states=True)
    assert len(got.hidden_states) == len(expected.hidden_states) == ref.config.num_hidden_layers + 1
    for e, g in zip(expected.hidden_states, got.hidden_states):
        assert max_abs_diff(e, g) <= FP32_ATOL
    assert got.hidden_states[-1] is got.last_hidden_state  # the final-normed state, as transformers


def test_text_embedding_layer_option(pair):
    """``text_embedding_layer = n``: token 0 of layer n's output without the final norm, i.e. the
    reference's ``hidden_states[n][:, 0]`` for n < layers; for n = layers, the last layer's raw output
    (the reference's ``hidden_states[-1]`` is the normed one, so we capture it with a hook)."""
    ref, directory = pair
    ids, mask = text_batch([15, 8, 3], 15)
    captured = {}
    hook = ref.layers[-1].register_forward_hook(lambda mod, args, out: captured.update(last=out))
    try:
        expected, _ = run_both(ref, ModernBertModel.from_pretrained(directory), "sdpa", ids, mask, output_hidden_states=True)
    finally:
        hook.remove()
    layers = ref.config.num_hidden_layers
    for n in range(1, layers + 1):
        config = ModernBertConfig.from_dict({**json.loads((directory / "config.json").read_text()), "text_embedding_layer": n})
        ours = ModernBertModel.from_pretrained(directory, config=config)
        want = (expected.hidden_states[n] if n < layers else captured["last"])[:, 0]
        with torch.no_grad():
            out = ours(ids, attention_mask=mask)
            direct = ours.text_embedding(ids, attention_mask=mask)
        assert max_abs_diff(want, out.pooler_output) <= FP32_ATOL
        assert max_abs_diff(out.pooler_output, direct) <= 1e-6  # the short path runs n layers only
        # the option changes only the pooled vector
        assert max_abs_diff(expected.last_hidden_state, out.last_hidden_state) <= FP32_ATOL


def test_default_embedding_is_cls_after_final_norm(pair):
    ref, directory = pair
    ours = ModernBertModel.from_pretrained(directory)
    ids, mask = text_batch([12, 5], 12)
    expected, _ = run_both(ref, ours, "sdpa", ids, mask)
    with torch.no_grad():
        got = ours.text_embedding(ids, mask)
    assert max_abs_diff(expected.last_hidden_state[:, 0], got) <= FP32_ATOL


def test_keys_and_roundtrip(pair, tmp_path):
    ref, directory = pair
    ours = ModernBertModel.from_pretrained(directory)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.save_pretrained(tmp_path)
    reloaded = transformers.ModernBertModel.from_pretrained(tmp_path)
    for key, value in ref.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key]), key


def test_rejects_other_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "pe_audio"}))
    with pytest.raises(ValueError, match="modernbert"):
        ModernBertModel.from_pretrained(tmp_path)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return ModernBertModel(ModernBertConfig(vocab_size=VOCAB, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                            num_attention_heads=2, pad_token_id=0)).eval()


@pytest.mark.parametrize(
    "ids, mask, error, match",
    [
        ([[1, 2]], None, TypeError, "torch.Tensor"),
        (torch.ones(2, 3), None, TypeError, "integer"),
        (torch.ones(2, 3, dtype=torch.bool), None, TypeError, "integer"),
        (torch.ones(3, dtype=torch.long), None, ValueError, r"\(batch, seq_len\)"),
        (torch.ones(1, 2, 3, dtype=torch.long), None, ValueError, r"\(batch, seq_len\)"),
        (torch.ones(0, 3, dtype=torch.long), None, ValueError, "empty"),
        (torch.full((1, 3), VOCAB), None, ValueError, "vocabulary"),
        (torch.full((1, 3), -1), None, ValueError, "vocabulary"),
        (torch.ones(2, 3, dtype=torch.long), torch.ones(2, 4), ValueError, "attention_mask"),
        (torch.ones(2, 3, dtype=torch.long), torch.ones(3, 3), ValueError, "attention_mask"),
        (torch.ones(2, 3, dtype=torch.long), torch.full((2, 3), 2), ValueError, "attention_mask"),
        (torch.ones(2, 3, dtype=torch.long), [[1, 1, 1]], TypeError, "attention_mask"),
    ],
)
def test_bad_inputs(small_model, ids, mask, error, match):
    with pytest.raises(error, match=match):
        small_model(ids, attention_mask=mask)
    with pytest.raises(error, match=match):
        small_model.text_embedding(ids, mask)


def test_int32_ids_accepted(small_model):
    ids = torch.randint(0, VOCAB, (2, 5))
    with torch.no_grad():
        assert torch.equal(small_model(ids.int()).last_hidden_state, small_model(ids).last_hidden_state)


def test_triton_backend_falls_back_to_sdpa(small_model):
    """No Triton kernel covers ModernBERT attention yet: with ``attn_impl="triton"`` it runs through
    sdpa and says so once; its LayerNorms and GeGLU run their kernels, hence a tolerance."""
    from pe_av.dispatch import BackendFallbackWarning, reset_warnings

    ids = torch.randint(0, VOCAB, (2, 5))
    reset_warnings()
    try:
        small_model.set_attn_impl("triton")
        with pytest.warns(BackendFallbackWarning, match="ModernBertAttention: attn_impl=.triton. has no Triton kernel"), torch.no_grad():
            got = small_model(ids).last_hidden_state
    finally:
        small_model.set_attn_impl("sdpa")
    with torch.no_grad():
        torch.testing.assert_close(got, small_model(ids).last_hidden_state, atol=1e-4, rtol=0)
