"""transformers' documented usage, run with the import swapped: the pe_video quickstart, the config
docstring examples and the call patterns of transformers' own pe_* model tests. Each snippet runs through
transformers and through pe_av on the same tiny checkpoint, and what comes back is compared."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracle import FP32_ATOL, max_abs_diff, perturb_parameters, transformers
from test_processing import reference_tokenizer

import pe_av
from tiny_configs import AUDIO, DAC, FUSION, TEXT

pytestmark = pytest.mark.oracle

# a 2-way ViT head: transformers cannot reload its own checkpoints with any other (a known reference
# defect), and the quickstart reloads through from_pretrained on both sides
VIT2 = dict(
    architecture="vit_pe_core_large_patch14_336",
    model_args=dict(img_size=28, patch_size=14, embed_dim=32, depth=1, num_heads=2),
)
VIDEO2 = dict(hidden_size=24, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
              num_key_value_heads=2, head_dim=8, vision_config=VIT2)


@pytest.fixture(scope="module")
def video_checkpoint(tmp_path_factory):
    """A transformers PeVideoModel and its processor, saved into one directory (as the hub repos are)."""
    directory = tmp_path_factory.mktemp("pe-video")
    torch.manual_seed(0)
    config = transformers.PeVideoConfig(text_config=TEXT, video_config=VIDEO2)
    perturb_parameters(transformers.PeVideoModel(config).eval()).save_pretrained(directory)
    video_processor = transformers.PeVideoVideoProcessor(
        do_resize=True, size={"height": 28, "width": 28}, do_rescale=True, do_normalize=True, do_sample_frames=True,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    transformers.PeVideoProcessor(video_processor=video_processor, tokenizer=reference_tokenizer()).save_pretrained(
        directory
    )
    return directory


def quickstart(library, directory, video, labels):
    """The pe_video quickstart of transformers' docs, for ``library`` (the module the names come from)."""
    processor = library.AutoProcessor.from_pretrained(directory)
    model = library.PeVideoModel.from_pretrained(directory)
    video_inputs = processor.video_processor(video, num_frames=4, return_tensors="pt").to(model.device)
    text_inputs = processor.tokenizer(labels, padding=True, return_tensors="pt").to(model.device)
    inputs = {**video_inputs, **text_inputs}
    with torch.no_grad():
        outputs = model(**inputs)
    probs = outputs.logits_video_text.sigmoid()
    return {label: p.item() for label, p in zip(labels, probs[0])}, outputs


def test_pe_video_quickstart(video_checkpoint):
    video = np.random.default_rng(0).integers(0, 256, (9, 40, 36, 3), dtype=np.uint8)
    labels = ["a dog barks", "the cat sings", "rain"]
    theirs, their_out = quickstart(transformers, video_checkpoint, video, labels)
    ours, our_out = quickstart(pe_av, video_checkpoint, video, labels)
    assert theirs.keys() == ours.keys()
    assert max(abs(theirs[k] - ours[k]) for k in labels) <= FP32_ATOL
    assert list(their_out.keys()) == list(our_out.keys())
    assert max_abs_diff(our_out.video_embeds, their_out.video_embeds) <= FP32_ATOL


CONFIG_EXAMPLES = [  # (config class, model class) of each configuration docstring's example
    ("PeAudioEncoderConfig", "PeAudioEncoder"),
    ("PeAudioConfig", "PeAudioModel"),
    ("PeVideoConfig", "PeVideoModel"),
    ("PeAudioVideoEncoderConfig", "PeAudioVideoEncoder"),
    ("PeAudioVideoConfig", "PeAudioVideoModel"),
]


@pytest.mark.parametrize("config_name, model_name", CONFIG_EXAMPLES)
def test_config_docstring_examples(config_name, model_name):
    """``configuration = XConfig(); model = XModel(configuration); configuration = model.config`` — at the
    default (released) sizes, built on the meta device on both sides: the same parameters, names and shapes."""
    shapes = {}
    for library in (transformers, pe_av):
        with torch.device("meta"):
            configuration = getattr(library, config_name)()
            model = getattr(library, model_name)(configuration)
            configuration = model.config
        assert type(configuration).__name__ == config_name
        shapes[library.__name__] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs, ours = shapes["transformers"], shapes["pe_av"]
    assert set(ours) <= set(theirs)  # tied copies aside, every key of ours is theirs
    # the one deliberate difference (README): the default vision config asks for num_classes=1024, which
    # the reference ignores (its ViT head becomes 1024 -> 2); ours builds the head it asks for
    head = [k for k in ours if k.endswith(("timm_model.head.weight", "timm_model.head.bias", "embedder.proj.weight"))]
    assert bool(head) == ("Video" in model_name)
    for key in head:
        assert 2 in theirs[key] and 1024 in ours[key] and 2 not in ours[key], key
    assert {k: theirs[k] for k in ours if k not in head} == {k: v for k, v in ours.items() if k not in head}


def test_pe_video_model_test_call_pattern():
    """transformers' PeVideoModelTester: configs as dicts plus projection_dim, positional forward."""
    text = transformers.ModernBertConfig(**TEXT)
    video = transformers.PeVideoEncoderConfig(**VIDEO2)
    outs = {}
    for library in (transformers, pe_av):
        config = library.PeVideoConfig(text_config=text.to_dict(), video_config=video.to_dict(), projection_dim=32)
        torch.manual_seed(0)
        model = library.PeVideoModel(config).eval()
        if library is transformers:
            reference = model
        else:
            model.load_state_dict(reference.state_dict(), strict=False)
        gen = torch.Generator().manual_seed(1)
        input_ids = torch.randint(1, 53, (2, 5), generator=gen)
        attention_mask = torch.ones(2, 5, dtype=torch.long)
        pixel_values_videos = torch.randn(2, 3, 3, 28, 28, generator=gen)
        padding_mask_videos = torch.ones(2, 3, dtype=torch.long)
        with torch.no_grad():
            outs[library.__name__] = model(input_ids, pixel_values_videos, attention_mask, padding_mask_videos)
    assert max_abs_diff(outs["pe_av"].logits_video_text, outs["transformers"].logits_video_text) <= FP32_ATOL


def test_audio_model_call_patterns(tmp_path):
    """PeAudioModel / PeAudioFrameLevelModel / PeAudioEncoder as transformers' testers call them."""
    config = transformers.PeAudioConfig(text_config=TEXT, audio_config={**AUDIO, "dac_config": DAC})
    torch.manual_seed(0)
    perturb_parameters(transformers.PeAudioFrameLevelModel(config).eval()).save_pretrained(tmp_path)
    gen = torch.Generator().manual_seed(2)
    input_ids = torch.randint(1, 53, (2, 5), generator=gen)
    input_values = torch.randn(2, 1, 24, generator=gen)
    padding_mask = torch.ones(2, 24, dtype=torch.long)
    got = {}
    for library in (transformers, pe_av):
        model = library.PeAudioFrameLevelModel.from_pretrained(tmp_path).eval()
        encoder = model.audio_encoder
        with torch.no_grad():
            out = model(input_ids, input_values, padding_mask=padding_mask)
            enc = encoder(input_values, padding_mask)
        got[library.__name__] = (out.logits_audio_text, enc.last_hidden_state, enc.pooler_output)
    for ours, theirs in zip(got["pe_av"], got["transformers"]):
        assert max_abs_diff(ours, theirs) <= FP32_ATOL


def test_audio_video_model_call_pattern():
    config = transformers.PeAudioVideoConfig(text_config=TEXT, audio_video_config=FUSION)
    torch.manual_seed(0)
    reference = perturb_parameters(transformers.PeAudioVideoModel(config).eval())
    ours = pe_av.PeAudioVideoModel(config)
    ours.load_state_dict(reference.state_dict(), strict=False)
    ours.eval()
    gen = torch.Generator().manual_seed(3)
    args = dict(input_ids=torch.randint(1, 53, (2, 5), generator=gen),
                pixel_values_videos=torch.randn(2, 2, 3, 28, 28, generator=gen),
                input_values=torch.randn(2, 1, 24, generator=gen))
    with torch.no_grad():
        expected, got = reference(**args), ours(**args)
    assert list(expected.keys()) == list(got.keys())
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert max_abs_diff(got[key], value) <= FP32_ATOL, key
