"""PE-Core ViT (PeVisionModel) vs timm's ``vit_pe_core_*`` built by transformers' TimmWrapper (fp32, ≤ 1e-4)."""

import json

import pytest
import timm
import torch

from oracle import FP32_ATOL, max_abs_diff, perturb_parameters, sharpen, transformers
from pe_av import PeVisionModel, TimmVisionConfig

pytestmark = pytest.mark.oracle

NUM_LABELS = 5
CONFIGS = {  # architecture, model_args overrides
    "large-square": ("vit_pe_core_large_patch14_336", dict(img_size=28, patch_size=14, embed_dim=32, depth=2, num_heads=2)),
    # non-square grid (2×3) and a non-square RoPE reference shape: catches swapped x/y
    "large-nonsquare": (
        "vit_pe_core_large_patch14_336",
        dict(img_size=[28, 42], patch_size=14, embed_dim=32, depth=2, num_heads=2, ref_feat_shape=[3, 5]),
    ),
    # no class token (every token rotated), grid offset 0, LayerScale, 3 heads of 16
    "gigantic-layerscale": (
        "vit_pe_core_gigantic_patch14_448",
        dict(img_size=[42, 28], patch_size=14, embed_dim=48, depth=2, num_heads=3, init_values=0.5),
    ),
    "base-token-ij": (
        "vit_pe_core_base_patch16_224",
        dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, global_pool="token", rope_grid_indexing="ij"),
    ),
    "base-avg": (
        "vit_pe_core_base_patch16_224",
        dict(img_size=[32, 48], patch_size=16, embed_dim=32, depth=1, num_heads=2, global_pool="avg"),
    ),
}


def build(name, directory, **config_kwargs):
    arch, model_args = CONFIGS[name]
    torch.manual_seed(0)
    config = transformers.TimmWrapperConfig(architecture=arch, model_args=model_args, **config_kwargs)
    model = sharpen(perturb_parameters(transformers.TimmWrapperForImageClassification(config).eval()),
                    {"attn.qkv.weight": 8.0, "head.weight": 300.0})
    model.save_pretrained(directory)
    return model, directory


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, tmp_path_factory):
    return build(request.param, tmp_path_factory.mktemp(request.param), num_labels=NUM_LABELS)


def images(ref, n=3):
    height, width = ref.timm_model.patch_embed.img_size
    return torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_logits_features_and_pool(pair, attn_impl):
    ref, directory = pair
    ours = PeVisionModel.from_pretrained(directory, attn_impl=attn_impl)
    x = images(ref)
    with torch.no_grad():
        want_logits = ref(x).logits
        want_features = ref.timm_model.forward_features(x)
        want_pooled = ref.timm_model.forward_head(want_features, pre_logits=True)
        got_logits = ours(x).logits
        got_features = ours.timm_model.forward_features(x)
        got_pooled = ours.timm_model.forward_head(got_features, pre_logits=True)
    assert got_logits.shape == (3, NUM_LABELS)
    assert want_logits.abs().max() > 0.1  # the head is not negligible
    assert max_abs_diff(want_logits, got_logits) <= FP32_ATOL
    assert max_abs_diff(want_features, got_features) <= FP32_ATOL
    assert max_abs_diff(want_pooled, got_pooled) <= FP32_ATOL


def test_reference_default_head_is_two_way(tmp_path):
    """Without num_labels transformers builds a 2-way head whatever num_classes says, and records it in
    ``label_names``; we read the same file into the same shapes (strict loading)."""
    ref, directory = build("large-square", tmp_path, num_classes=1024)
    saved = json.loads((directory / "config.json").read_text())
    assert saved["num_classes"] == 1024 and len(saved["label_names"]) == 2
    assert tuple(ref.timm_model.head.weight.shape) == (2, 32)
    ours = PeVisionModel.from_pretrained(directory)
    x = images(ref)
    with torch.no_grad():
        assert max_abs_diff(ref(x).logits, ours(x).logits) <= FP32_ATOL


def test_num_classes_only_config_round_trips_to_transformers(tmp_path):
    """A config naming only ``num_classes`` gets that head (the intended one); what we save loads in
    transformers, which otherwise ignores num_classes, with the same logits."""
    arch, model_args = CONFIGS["large-nonsquare"]
    ours = PeVisionModel(TimmVisionConfig(architecture=arch, model_args=model_args, num_classes=7)).eval()
    assert ours.num_classes == 7
    ours.save_pretrained(tmp_path)
    ref = transformers.TimmWrapperForImageClassification.from_pretrained(tmp_path).eval()
    x = images(ref)
    with torch.no_grad():
        assert max_abs_diff(ref(x).logits, ours(x).logits) <= FP32_ATOL


@pytest.mark.parametrize(
    "arch",
    ["vit_pe_core_tiny_patch16_384", "vit_pe_core_small_patch16_384", "vit_pe_core_base_patch16_224",
     "vit_pe_core_large_patch14_336", "vit_pe_core_gigantic_patch14_448"],
)
def test_architecture_table_matches_timm(arch):
    """Full-size variants, built on the meta device: same keys and shapes as timm's."""
    with torch.device("meta"):
        want = timm.create_model(arch, pretrained=False, num_classes=1024).state_dict()
        got = PeVisionModel(TimmVisionConfig(architecture=arch, num_classes=1024)).timm_model.state_dict()
    assert {k: tuple(v.shape) for k, v in got.items()} == {k: tuple(v.shape) for k, v in want.items()}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(architecture="vit_base_patch16_224"), "architecture 'vit_base_patch16_224' is not supported"),
        (dict(model_args=dict(qk_norm=True)), "qk_norm=True is not supported"),
        (dict(model_args=dict(mystery=1)), "model_args.mystery is not supported"),
        (dict(model_args=dict(num_classes=3)), "must not set num_classes"),
        (dict(model_args=dict(embed_dim=48, num_heads=8)), "divisible by 4"),
        (dict(model_args=dict(embed_dim=36, num_heads=3)), "divisible by attn_pool_num_heads"),
        (dict(model_args=dict(global_pool="max")), "global_pool must be one of"),
        (dict(model_args=dict(img_size=[28])), "img_size must be an int or a pair"),
    ],
)
def test_bad_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        with torch.device("meta"):
            PeVisionModel(TimmVisionConfig(**kwargs))


def test_bad_inputs(pair):
    ref, directory = pair
    ours = PeVisionModel.from_pretrained(directory)
    x = images(ref, 2)
    with pytest.raises(TypeError, match="pixel_values must be a torch.Tensor"):
        ours(x.numpy())
    with pytest.raises(TypeError, match="floating point pixels"):
        ours((x * 100).to(torch.uint8))
    with pytest.raises(ValueError, match="must have 4 dims"):
        ours(x[0])
    with pytest.raises(ValueError, match="must have 3 channels"):
        ours(x[:, :2])
    with pytest.raises(ValueError, match="configured for"):
        ours(x[..., :-1])
    with pytest.raises(ValueError, match="is empty"):
        ours(x[:0])


def test_triton_backend_falls_back_to_sdpa_and_warns(pair):
    """No ViT attention kernel yet: with attn_impl='triton' the ViT's attention warns once and runs sdpa;
    its LayerNorms and MLP run their kernels, hence a tolerance instead of equality."""
    from pe_av import BackendFallbackWarning
    from pe_av.dispatch import reset_warnings
    from pe_av.dispatch import BackendModule

    ref, directory = pair
    ours = PeVisionModel.from_pretrained(directory, attn_impl="sdpa")
    x = images(ref)
    with torch.no_grad():
        want = ours(x).logits
        for module in ours.modules():  # set directly: the fallback must not depend on triton importing
            if isinstance(module, BackendModule):
                module.set_backend("triton")
        reset_warnings()
        with pytest.warns(BackendFallbackWarning, match="VisionAttention: attn_impl=.triton. has no Triton kernel"):
            got = ours(x).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
