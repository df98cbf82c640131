"""PeAudioModel / PeAudioFrameLevelModel vs transformers on the same random weights (fp32, ≤ 1e-4).

The loss is the one number we change on purpose: the reference's ``-logsigmoid(I * logits)`` gives
off-diagonal pairs zero gradient (and its frame-level loss fails to broadcast), so our loss is
compared with the intended SigLIP formula (labels 2·I − 1) applied to the reference's logits.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from oracle import FP32_ATOL, max_abs_diff, perturb_parameters, transformers, reference_padding
from pe_av import ModernBertModel, PeAudioConfig, PeAudioFrameLevelModel, PeAudioModel

pytestmark = pytest.mark.oracle

VOCAB = 53
HOP = 6
TEXT = dict(  # window 6 → 3 each side; odd intermediate size
    vocab_size=VOCAB, pad_token_id=0, hidden_size=24, intermediate_size=19, num_hidden_layers=3,
    num_attention_heads=3, local_attention=6,
)
AUDIO = dict(  # GQA 4 → 2, head_dim ≠ hidden / heads
    hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=12, dac_config=dict(encoder_hidden_size=4, downsampling_ratios=[2, 3], codebook_dim=8),
)
MODELS = {"clip": (transformers.PeAudioModel, PeAudioModel), "frame": (transformers.PeAudioFrameLevelModel, PeAudioFrameLevelModel)}


def build(ref_cls, directory):
    torch.manual_seed(0)
    model = ref_cls(transformers.PeAudioConfig(text_config=TEXT, audio_config=AUDIO)).eval()
    perturb_parameters(model)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("Wqkv.weight"):  # peaked text attention, so RoPE/window errors show
                param.mul_(10.0)
            elif name.endswith("logit_scale"):  # logits of order 1, not 0.1
                param.fill_(3.0)
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture(scope="module", params=sorted(MODELS))
def trio(request, tmp_path_factory):
    ref_cls, ours_cls = MODELS[request.param]
    ref, directory = build(ref_cls, tmp_path_factory.mktemp(request.param))
    return ref, ours_cls, directory


def batch(text_lengths, audio_tokens):
    """Right-padded text (longer than the window) and zero-padded audio with masks."""
    gen = torch.Generator().manual_seed(5)
    total = max(text_lengths)
    ids = torch.randint(1, VOCAB, (len(text_lengths), total), generator=gen)
    attention_mask = torch.zeros(len(text_lengths), total, dtype=torch.long)
    for i, n in enumerate(text_lengths):
        attention_mask[i, :n] = 1
        ids[i, n:] = 0
    samples = max(audio_tokens) * HOP
    values = torch.randn(len(audio_tokens), 1, samples, generator=gen)
    padding_mask = torch.zeros(len(audio_tokens), samples, dtype=torch.long)
    for i, n in enumerate(audio_tokens):
        padding_mask[i, : n * HOP] = 1
        values[i, :, n * HOP :] = 0
    return ids, attention_mask, values, padding_mask


def run_both(ref, ours, attn_impl, inputs, return_loss=False, **kwargs):
    """The reference never gets ``return_loss`` (its frame-level loss crashes; its clip-level loss is
    not what we compare with)."""
    ids, attention_mask, values, padding_mask = inputs
    ref.set_attn_implementation(attn_impl)
    with torch.no_grad():
        expected = ref(input_ids=ids, input_values=values, attention_mask=attention_mask, padding_mask=padding_mask, **kwargs)
        got = ours(ids, values, attention_mask=attention_mask, padding_mask=padding_mask, return_loss=return_loss, **kwargs)
    return expected, got


def siglip_reference(logits, frame_mask=None):
    """Intended loss from the reference's logits: per pair ``log(1 + exp(-y z))``, y = ±1; frames of a
    clip averaged over its valid ones; rows summed and divided by N."""
    n = logits.shape[0]
    signs = torch.where(torch.eye(n, dtype=torch.bool), 1.0, -1.0)
    if logits.dim() == 2:
        return F.softplus(-signs * logits).sum() / n
    per = F.softplus(-signs[:, :, None] * logits)
    valid = torch.ones(n, logits.shape[2]) if frame_mask is None else frame_mask.float()
    return sum((per[i] * valid[i]).sum() / valid[i].sum() for i in range(n)) / n


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_every_output_padded(trio, attn_impl):
    ref, ours_cls, directory = trio
    ours = reference_padding(ours_cls.from_pretrained(directory, attn_impl=attn_impl))
    inputs = batch([17, 9, 2], [11, 7, 3])
    expected, got = run_both(ref, ours, attn_impl, inputs, return_loss=True)
    for name in ("logits_audio_text", "text_audio_embeds", "audio_embeds"):
        assert max_abs_diff(getattr(expected, name), getattr(got, name)) <= FP32_ATOL, name
    assert max_abs_diff(expected.text_outputs.last_hidden_state, got.text_outputs.last_hidden_state) <= FP32_ATOL
    for name in ("last_hidden_state", "pooler_output"):
        assert max_abs_diff(getattr(expected.audio_outputs, name), getattr(got.audio_outputs, name)) <= FP32_ATOL
    assert torch.equal(expected.audio_outputs.output_mask, got.audio_outputs.output_mask)
    frame_mask = got.audio_outputs.output_mask.bool() if got.logits_audio_text.dim() == 3 else None
    assert abs(siglip_reference(expected.logits_audio_text, frame_mask).item() - got.loss.item()) <= FP32_ATOL


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_unpadded_and_unequal_batches(trio, attn_impl):
    """Without masks; 2 clips scored against 3 captions (retrieval), as the reference allows."""
    ref, ours_cls, directory = trio
    ours = reference_padding(ours_cls.from_pretrained(directory, attn_impl=attn_impl))
    ids, _, values, _ = batch([13, 13, 13], [8, 8])
    expected, got = run_both(ref, ours, attn_impl, (ids, None, values, None))
    assert got.logits_audio_text.shape[:2] == (2, 3)
    for name in ("logits_audio_text", "text_audio_embeds", "audio_embeds"):
        assert max_abs_diff(getattr(expected, name), getattr(got, name)) <= FP32_ATOL, name
    assert got.loss is None and got.audio_outputs.output_mask is None


def test_hidden_states(trio):
    ref, ours_cls, directory = trio
    ours = reference_padding(ours_cls.from_pretrained(directory))
    expected, got = run_both(ref, ours, "sdpa", batch([12, 4], [6, 2]), output_hidden_states=True)
    for tower in ("text_outputs", "audio_outputs"):
        want, have = getattr(expected, tower).hidden_states, getattr(got, tower).hidden_states
        assert len(want) == len(have)
        for e, g in zip(want, have):
            assert max_abs_diff(e, g) <= FP32_ATOL, tower


def test_get_embeds_match_forward(trio):
    """The reference's ``get_text_audio_embeds`` fails (it reads hidden states it never requested);
    ours returns exactly what ``forward`` returns."""
    _, ours_cls, directory = trio
    ours = reference_padding(ours_cls.from_pretrained(directory))
    ids, attention_mask, values, padding_mask = batch([10, 3], [5, 4])
    with torch.no_grad():
        out = ours(ids, values, attention_mask=attention_mask, padding_mask=padding_mask)
        text = ours.get_text_audio_embeds(ids, attention_mask)
        audio = ours.get_audio_embeds(values, padding_mask)
    assert torch.equal(text, out.text_audio_embeds)
    assert torch.equal(audio, out.audio_embeds)


def test_text_embedding_layer_option(trio):
    """Meta's original text embedding (layer n without the final norm) on the reference's weights:
    the intended value is the reference's text head applied to its ``hidden_states[n][:, 0]``."""
    ref, ours_cls, directory = trio
    data = json.loads((directory / "config.json").read_text())
    data["text_config"]["text_embedding_layer"] = 2
    ours = reference_padding(ours_cls.from_pretrained(directory, config=PeAudioConfig.from_dict(data)))
    ids, attention_mask, values, padding_mask = batch([14, 5], [4, 4])
    ref.set_attn_implementation("sdpa")
    with torch.no_grad():
        hidden = ref.text_model(ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
        want = ref.text_audio_head(hidden[2][:, 0])
        got = ours(ids, values, attention_mask=attention_mask, padding_mask=padding_mask)
        short = ours.get_text_audio_embeds(ids, attention_mask)
    assert max_abs_diff(want, got.text_audio_embeds) <= FP32_ATOL
    assert max_abs_diff(got.text_audio_embeds, short) <= 1e-6


def test_loss_gradient_reaches_negatives(trio):
    _, ours_cls, directory = trio
    ours = reference_padding(ours_cls.from_pretrained(directory))
    ids, attention_mask, values, padding_mask = batch([9, 6, 4], [5, 5, 3])
    out = ours(ids, values, attention_mask=attention_mask, padding_mask=padding_mask, return_loss=True)
    logits = out.logits_audio_text
    logits.retain_grad()
    out.loss.backward()
    off_diagonal = ~torch.eye(3, dtype=torch.bool)
    assert (logits.grad[off_diagonal].abs().sum(-1) > 0).all() if logits.dim() == 3 else (logits.grad[off_diagonal] != 0).all()
    assert ours.text_audio_logit_bias.grad is not None and ours.text_audio_logit_bias.grad.abs() > 0


def test_bad_inputs(trio):
    _, ours_cls, directory = trio
    ours = reference_padding(ours_cls.from_pretrained(directory))
    ids, attention_mask, values, padding_mask = batch([5, 5], [3, 3])
    with pytest.raises(ValueError, match="return_loss=True needs one caption per clip"):
        ours(ids[:1], values, return_loss=True)
    with pytest.raises(ValueError, match="attention_mask"):
        ours(ids, values, attention_mask=attention_mask[:1])
    with pytest.raises(ValueError, match="padding_mask"):
        ours(ids, values, padding_mask=padding_mask[:, :-1])
    with pytest.raises(TypeError, match="input_ids"):
        ours(ids.float(), values)
    with pytest.raises(ValueError, match="input_ids"):
        ours(ids[0], values)
    with pytest.raises(TypeError, match="input_values"):
        ours(ids, values.long())


def test_model_type_checked(trio, tmp_path):
    _, ours_cls, _ = trio
    torch.manual_seed(0)
    transformers.ModernBertModel(transformers.ModernBertConfig(**TEXT)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="pe_audio"):
        ours_cls.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="PeAudioConfig"):
        ours_cls(ModernBertModel.from_pretrained(tmp_path).config)


@pytest.mark.parametrize("ours_cls", [PeAudioModel, PeAudioFrameLevelModel])
def test_built_from_config(ours_cls):
    """A model built from a config (bias-free text LayerNorms) initialises and runs."""
    model = ours_cls(PeAudioConfig.from_dict({"text_config": TEXT, "audio_config": AUDIO})).eval()
    assert model.text_audio_logit_scale.item() == 0 and model.text_model.final_norm.bias is None
    ids, attention_mask, values, padding_mask = batch([6, 3], [4, 2])
    with torch.no_grad():
        out = model(ids, values, attention_mask=attention_mask, padding_mask=padding_mask, return_loss=True)
    assert torch.isfinite(out.loss) and torch.isfinite(out.logits_audio_text).all()
