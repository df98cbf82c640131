"""PeVideoEncoder / PeVideoModel vs transformers on the same random weights (fp32, ≤ 1e-4).

Two things differ on purpose and are compared with the reference's intended semantics:
- padded frames are not run through the ViT; they are encoded as an all-zero ViT output. Valid
  positions and ``pooler_output`` match the plain reference; padded positions match the reference
  with its ViT logits zeroed on padded frames (a forward hook).
- the loss is SigLIP with labels 2·I − 1, computed here from the reference's logits.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from oracle import FP32_ATOL, max_abs_diff, perturb_parameters, sharpen, transformers
from pe_av import PeVideoConfig, PeVideoEncoder, PeVideoEncoderConfig, PeVideoModel

pytestmark = pytest.mark.oracle

VIT = dict(
    architecture="vit_pe_core_large_patch14_336",
    model_args=dict(img_size=28, patch_size=14, embed_dim=32, depth=2, num_heads=2),
)
VIT_NONSQUARE = dict(
    architecture="vit_pe_core_large_patch14_336",
    model_args=dict(img_size=[28, 42], patch_size=14, embed_dim=32, depth=2, num_heads=2),
)
ENCODERS = {
    "mha-16-labels": dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, head_dim=8,
        vision_config=dict(VIT, num_labels=16),
    ),
    # GQA 6 → 2, head_dim ≠ hidden/heads, odd MLP, non-square frames, the reference's default 2-way head
    "gqa-nonsquare-default-head": dict(
        hidden_size=40, intermediate_size=37, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
        head_dim=12, attention_bias=True, vision_config=VIT_NONSQUARE,
    ),
}
VOCAB = 47
TEXT = dict(
    vocab_size=VOCAB, pad_token_id=0, hidden_size=24, intermediate_size=19, num_hidden_layers=3,
    num_attention_heads=3, local_attention=6,
)


def build(ref_cls, config, directory):
    torch.manual_seed(0)
    model = sharpen(perturb_parameters(ref_cls(config).eval()))
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture(scope="module", params=sorted(ENCODERS))
def encoder_pair(request, tmp_path_factory):
    config = transformers.PeVideoEncoderConfig(**ENCODERS[request.param])
    return build(transformers.PeVideoEncoder, config, tmp_path_factory.mktemp(request.param))


def video_batch(vision_model, lengths, frames):
    """Frames of unit scale; padded frames hold noise too, so skipping them is tested, not assumed."""
    vit = vision_model.timm_model
    height, width = vit.spec.img_size if hasattr(vit, "spec") else vit.patch_embed.img_size
    pixels = torch.randn(len(lengths), frames, 3, height, width, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(len(lengths), frames, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return pixels, mask


def zero_padded_logits(vision_model, mask):
    """Forward hook making the reference's ViT output 0 on padded frames (our documented encoding)."""
    valid = mask.reshape(-1, 1).to(torch.float32)

    def hook(module, args, output):
        output.logits = output.logits * valid
        return output

    return vision_model.register_forward_hook(hook)


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_encoder_padded_batch(encoder_pair, attn_impl):
    ref, directory = encoder_pair
    ours = PeVideoEncoder.from_pretrained(directory, attn_impl=attn_impl)
    pixels, mask = video_batch(ref.embedder.vision_model, [5, 3, 1], 5)
    ref.set_attn_implementation(attn_impl)
    with torch.no_grad():
        plain = ref(pixels, padding_mask_videos=mask)
        handle = zero_padded_logits(ref.embedder.vision_model, mask)
        intended = ref(pixels, padding_mask_videos=mask)
        handle.remove()
        got = ours(pixels, padding_mask_videos=mask, vision_chunk_size=2)
    valid = mask.bool()
    assert max_abs_diff(plain.pooler_output, got.pooler_output) <= FP32_ATOL
    assert max_abs_diff(plain.last_hidden_state[valid], got.last_hidden_state[valid]) <= FP32_ATOL
    assert max_abs_diff(intended.last_hidden_state, got.last_hidden_state) <= FP32_ATOL
    assert max_abs_diff(intended.pooler_output, plain.pooler_output) <= 1e-6  # padding cannot reach valid outputs


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_encoder_unpadded(encoder_pair, attn_impl):
    ref, directory = encoder_pair
    ours = PeVideoEncoder.from_pretrained(directory, attn_impl=attn_impl)
    pixels, _ = video_batch(ref.embedder.vision_model, [4, 4], 4)
    ref.set_attn_implementation(attn_impl)
    with torch.no_grad():
        expected, got = ref(pixels), ours(pixels)
    assert max_abs_diff(expected.last_hidden_state, got.last_hidden_state) <= FP32_ATOL
    assert max_abs_diff(expected.pooler_output, got.pooler_output) <= FP32_ATOL


def test_encoder_hidden_states(encoder_pair):
    ref, directory = encoder_pair
    ours = PeVideoEncoder.from_pretrained(directory)
    pixels, mask = video_batch(ref.embedder.vision_model, [3, 2], 3)
    with torch.no_grad():
        expected = ref(pixels, padding_mask_videos=mask, output_hidden_states=True)
        got = ours(pixels, padding_mask_videos=mask, output_hidden_states=True)
    assert len(got.hidden_states) == len(expected.hidden_states)
    valid = torch.cat([mask[:, :1], mask], dim=1).bool()  # class token first
    for index, (e, g) in enumerate(zip(expected.hidden_states, got.hidden_states)):
        rows = valid[:, 1:] if e.shape[1] == mask.shape[1] else valid
        assert max_abs_diff(e[rows], g[rows]) <= FP32_ATOL, index


def test_chunked_vit_equals_unchunked(encoder_pair):
    _, directory = encoder_pair
    ours = PeVideoEncoder.from_pretrained(directory)
    pixels, mask = video_batch(ours.embedder.vision_model, [7, 4, 6], 7)
    with torch.no_grad():
        whole = ours(pixels, padding_mask_videos=mask, vision_chunk_size=1000)
        for chunk in (1, 3, 16):
            ours.vision_chunk_size = chunk
            got = ours(pixels, padding_mask_videos=mask)
            assert max_abs_diff(whole.last_hidden_state, got.last_hidden_state) <= 1e-6, chunk
            assert max_abs_diff(whole.pooler_output, got.pooler_output) <= 1e-6, chunk


def test_padded_frames_are_not_computed(encoder_pair):
    _, directory = encoder_pair
    ours = PeVideoEncoder.from_pretrained(directory)
    pixels, mask = video_batch(ours.embedder.vision_model, [6, 2, 1], 6)
    seen = []
    handle = ours.embedder.vision_model.timm_model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    with torch.no_grad():
        ours(pixels, padding_mask_videos=mask, vision_chunk_size=4)
    handle.remove()
    assert seen == [4, 4, 1]  # 9 real frames of 18


def test_num_classes_only_config_round_trips_to_transformers(tmp_path):
    """Our own config naming only ``num_classes`` builds that head (the reference would build 2-way
    and ignore it); the checkpoint we save loads in transformers with identical outputs."""
    config = PeVideoEncoderConfig.from_dict(dict(ENCODERS["mha-16-labels"], vision_config=dict(VIT, num_classes=12)))
    torch.manual_seed(0)
    ours = PeVideoEncoder(config).eval()
    assert tuple(ours.embedder.proj.weight.shape) == (32, 12)
    ours.save_pretrained(tmp_path)
    ref = transformers.PeVideoEncoder.from_pretrained(tmp_path).eval()
    pixels, mask = video_batch(ref.embedder.vision_model, [3, 2], 3)
    with torch.no_grad():
        expected, got = ref(pixels, padding_mask_videos=mask), ours(pixels, padding_mask_videos=mask)
    assert max_abs_diff(expected.pooler_output, got.pooler_output) <= FP32_ATOL


def test_encoder_bad_inputs(encoder_pair):
    _, directory = encoder_pair
    ours = PeVideoEncoder.from_pretrained(directory)
    pixels, mask = video_batch(ours.embedder.vision_model, [2, 1], 2)
    with pytest.raises(TypeError, match="pixel_values_videos must be a torch.Tensor"):
        ours(pixels.tolist())
    with pytest.raises(TypeError, match="floating point pixels"):
        ours(pixels.to(torch.uint8))
    with pytest.raises(ValueError, match=r"must have 5 dims \(batch, frames, channels, height, width\)"):
        ours(pixels[0])
    with pytest.raises(ValueError, match="must have 3 channels"):
        ours(pixels[:, :, :1])
    with pytest.raises(ValueError, match="configured for"):
        ours(pixels[..., :-2, :])
    with pytest.raises(ValueError, match="padding_mask_videos must have shape"):
        ours(pixels, padding_mask_videos=mask[:, :1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        ours(pixels, padding_mask_videos=mask * 2)
    with pytest.raises(ValueError, match=r"every frame of video\(s\) \[1\]"):
        ours(pixels, padding_mask_videos=torch.tensor([[1, 0], [0, 0]]))
    with pytest.raises(ValueError, match="vision_chunk_size must be a positive integer"):
        ours(pixels, vision_chunk_size=0)


# --------------------------------------------------------------------------------------------------
# PeVideoModel


@pytest.fixture(scope="module")
def model_pair(tmp_path_factory):
    config = transformers.PeVideoConfig(text_config=TEXT, video_config=ENCODERS["mha-16-labels"])
    return build(transformers.PeVideoModel, config, tmp_path_factory.mktemp("pe_video"))


def text_batch(lengths):
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(1, VOCAB, (len(lengths), max(lengths)), generator=gen)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        ids[i, n:] = 0
    return ids, mask


def siglip_reference(logits):
    signs = torch.where(torch.eye(logits.shape[0], dtype=torch.bool), 1.0, -1.0)
    return F.softplus(-signs * logits).sum() / logits.shape[0]


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_model_every_output(model_pair, attn_impl):
    ref, directory = model_pair
    ours = PeVideoModel.from_pretrained(directory, attn_impl=attn_impl)
    ids, attention_mask = text_batch([13, 8, 2])
    pixels, mask = video_batch(ref.video_encoder.embedder.vision_model, [4, 2, 3], 4)
    ref.set_attn_implementation(attn_impl)
    with torch.no_grad():
        expected = ref(input_ids=ids, pixel_values_videos=pixels, attention_mask=attention_mask, padding_mask_videos=mask)
        got = ours(ids, pixels, attention_mask=attention_mask, padding_mask_videos=mask, return_loss=True)
    for name in ("logits_video_text", "text_video_embeds", "video_embeds"):
        assert max_abs_diff(getattr(expected, name), getattr(got, name)) <= FP32_ATOL, name
    assert (expected.video_embeds[0] - expected.video_embeds[1]).abs().max() > 1e-3  # videos tell apart
    assert max_abs_diff(expected.video_outputs.pooler_output, got.video_outputs.pooler_output) <= FP32_ATOL
    valid = mask.bool()
    want, have = expected.video_outputs.last_hidden_state, got.video_outputs.last_hidden_state
    assert max_abs_diff(want[valid], have[valid]) <= FP32_ATOL
    assert max_abs_diff(expected.text_outputs.last_hidden_state, got.text_outputs.last_hidden_state) <= FP32_ATOL
    assert abs(siglip_reference(expected.logits_video_text).item() - got.loss.item()) <= FP32_ATOL


def test_model_unequal_batches_and_helpers(model_pair):
    """2 videos against 3 captions (retrieval); the helpers return what forward returns (the
    reference defines its helpers inside ``__init__``, so it has none)."""
    ref, directory = model_pair
    ours = PeVideoModel.from_pretrained(directory)
    ids, attention_mask = text_batch([9, 9, 4])
    pixels, _ = video_batch(ref.video_encoder.embedder.vision_model, [3, 3], 3)
    with torch.no_grad():
        expected = ref(input_ids=ids, pixel_values_videos=pixels, attention_mask=attention_mask)
        got = ours(ids, pixels, attention_mask=attention_mask)
        video = ours.get_video_embeds(pixels)
        text = ours.get_text_video_embeds(ids, attention_mask)
    assert got.logits_video_text.shape == (2, 3) and got.loss is None
    assert max_abs_diff(expected.logits_video_text, got.logits_video_text) <= FP32_ATOL
    assert torch.equal(video, got.video_embeds)
    assert torch.equal(text, got.text_video_embeds)
    assert torch.equal(ours.get_text_embeds(ids, attention_mask), text)


def test_model_loss_gradient_reaches_negatives(model_pair):
    _, directory = model_pair
    ours = PeVideoModel.from_pretrained(directory)
    ids, attention_mask = text_batch([6, 5, 3])
    pixels, mask = video_batch(ours.video_encoder.embedder.vision_model, [2, 2, 1], 2)
    out = ours(ids, pixels, attention_mask=attention_mask, padding_mask_videos=mask, return_loss=True)
    logits = out.logits_video_text
    logits.retain_grad()
    out.loss.backward()
    assert (logits.grad[~torch.eye(3, dtype=torch.bool)] != 0).all()
    assert ours.video_encoder.embedder.vision_model.timm_model.blocks[0].attn.qkv.weight.grad is not None


def test_model_bad_inputs(model_pair):
    _, directory = model_pair
    ours = PeVideoModel.from_pretrained(directory)
    ids, attention_mask = text_batch([4, 4])
    pixels, mask = video_batch(ours.video_encoder.embedder.vision_model, [2, 2], 2)
    with pytest.raises(ValueError, match="return_loss=True needs one caption per video"):
        ours(ids[:1], pixels, return_loss=True)
    with pytest.raises(ValueError, match="padding_mask_videos"):
        ours(ids, pixels, padding_mask_videos=mask[:1])
    with pytest.raises(TypeError, match="input_ids"):
        ours(ids.float(), pixels)


def test_model_text_embedding_layer_option(model_pair):
    ref, directory = model_pair
    data = json.loads((directory / "config.json").read_text())
    data["text_config"]["text_embedding_layer"] = 2
    ours = PeVideoModel.from_pretrained(directory, config=PeVideoConfig.from_dict(data))
    ids, attention_mask = text_batch([11, 5])
    with torch.no_grad():
        hidden = ref.text_model(ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
        want = ref.text_video_head(hidden[2][:, 0])
        got = ours.get_text_video_embeds(ids, attention_mask)
    assert max_abs_diff(want, got) <= FP32_ATOL
