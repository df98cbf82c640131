"""``pe_av.convert_original``: tiny checkpoints in the format of Meta's original code (built by the test-side
re-implementation in original_model.py) are converted, loaded by pe_av and by transformers, and their
embeddings compared with the original's forward on the original weights."""

from __future__ import annotations

import pytest
import torch
from oracle import max_abs_diff, reference_padding, transformers
from original_checkpoints import av_config, build_original, frame_config, inputs, write_original

import pe_av
from pe_av import PeAudioFrameLevelModel, PeAudioVideoModel, PeAudioVideoProcessor

pytestmark = pytest.mark.oracle

ATOL = 1e-5  # the conversion only renames, splits and transposes: fp32 differences are rounding only
AV_EMBEDS = ("audio_embeds", "video_embeds", "audio_video_embeds", "text_audio_embeds", "text_video_embeds",
             "text_audio_video_embeds", "audio_plus_text_embeds", "video_plus_text_embeds")


@pytest.fixture(scope="module")
def av(tmp_path_factory):
    """(original model, its folder, the converted folder, the conversion report)."""
    root = tmp_path_factory.mktemp("av")
    model = build_original("av")
    src = write_original(model, av_config(), root / "original")
    report = pe_av.convert_original(src, root / "converted", progress=False)
    return model, src, root / "converted", report


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    root = tmp_path_factory.mktemp("frame")
    model = build_original("frame")
    src = write_original(model, frame_config(), root / "original")
    report = pe_av.convert_original(src, root / "converted", progress=False)
    return model, src, root / "converted", report


def _reference(model, kind, **kw):
    with torch.no_grad():
        return model(**inputs(kind, **kw))


def test_pe_av_embeddings_equal_the_original(av):
    original, _, converted, report = av
    assert report.kind == "pe_audio_video" and report.model_class == "PeAudioVideoModel"
    # padded batch: the reference's padding semantics (the DAC sees the batch's padding, as in the original)
    ours = reference_padding(PeAudioVideoModel.from_pretrained(converted)).eval()
    expected = _reference(original, "av")
    with torch.no_grad():
        out = ours(**inputs("av"))
    for name in AV_EMBEDS:
        assert max_abs_diff(getattr(out, name), expected[name]) <= ATOL, name


def test_pe_av_get_embeds_equal_the_original_unpadded(av):
    original, _, converted, _ = av
    ours = PeAudioVideoModel.from_pretrained(converted).eval()  # default padding handling; no padding here
    x, expected = inputs("av", padded=False), _reference(original, "av", padded=False)
    with torch.no_grad():
        got = {
            "audio_embeds": ours.get_audio_embeds(x["input_values"]),
            "video_embeds": ours.get_video_embeds(x["pixel_values_videos"]),
            "audio_video_embeds": ours.get_audio_video_embeds(x["input_values"], x["pixel_values_videos"]).audio_video_embeds,
            "text_audio_video_embeds": ours.get_text_audio_video_embeds(x["input_ids"]),
            "text_audio_embeds": ours.get_text_audio_embeds(x["input_ids"]),
            "text_video_embeds": ours.get_text_video_embeds(x["input_ids"]),
        }
    for name, value in got.items():
        assert max_abs_diff(value, expected[name]) <= ATOL, name


def test_pe_av_loads_in_transformers(av):
    original, _, converted, _ = av
    theirs = transformers.PeAudioVideoModel.from_pretrained(converted).eval()
    x, expected = inputs("av", padded=False), _reference(original, "av", padded=False)
    with torch.no_grad():
        out = theirs(**x)
    # transformers' forward with every modality fills these (its other paths have defects, see SPEC.md)
    for name in ("audio_embeds", "video_embeds", "audio_video_embeds", "text_audio_video_embeds"):
        assert max_abs_diff(getattr(out, name), expected[name]) <= ATOL, name


def test_frame_embeddings_and_logits_equal_the_original(frame):
    original, _, converted, report = frame
    assert report.kind == "pe_audio_frame" and report.model_class == "PeAudioFrameLevelModel"
    ours = reference_padding(PeAudioFrameLevelModel.from_pretrained(converted)).eval()
    expected = _reference(original, "frame")
    with torch.no_grad():
        out = ours(**inputs("frame"))
    assert max_abs_diff(out.text_audio_embeds, expected["text_audio_embeds"]) <= ATOL
    assert max_abs_diff(out.audio_embeds, expected["audio_embeds"]) <= ATOL
    # ours: every (audio, text) pair per frame; the original: clip i with caption i
    diagonal = torch.stack([out.logits_audio_text[i, i] for i in range(2)])
    assert max_abs_diff(diagonal, expected["logits"]) <= 10 * ATOL  # logits carry the scale 3.5


def test_frame_loads_in_transformers(frame):
    original, _, converted, _ = frame
    theirs = transformers.PeAudioFrameLevelModel.from_pretrained(converted).eval()
    x, expected = inputs("frame", padded=False), _reference(original, "frame", padded=False)
    with torch.no_grad():
        out = theirs(**x)
    assert max_abs_diff(out.audio_embeds, expected["audio_embeds"]) <= ATOL
    assert max_abs_diff(out.text_audio_embeds, expected["text_audio_embeds"]) <= ATOL


def test_config_derived_as_the_original_computes_it(av):
    _, _, converted, report = av
    config = pe_av.load_config(converted)
    fusion = config.audio_video_config
    # rope_theta = max(10000, 2 · max_position_embeddings): 8000 → 16000, default 10000 → 20000, 3000 → 10000
    assert fusion.audio_config.rope_theta == 16000.0
    assert fusion.video_config.rope_theta == 20000.0
    assert fusion.rope_theta == 10000.0 and fusion.rms_norm_eps == 1e-6
    assert [fusion.audio_config.head_dim, fusion.video_config.head_dim, fusion.head_dim] == [12, 6, 12]
    assert fusion.video_config.vision_config.architecture == "vit_pe_core_tiny_patch16_384"
    assert fusion.video_config.vision_config.num_labels == 512
    text = config.text_config
    assert text.num_hidden_layers == 2 and text.tie_last_hidden_states is False  # nth_text_layer = 2 of 3
    assert fusion.audio_config.dac_config.hop_length == 6
    assert report.num_frames == 16


def test_processor_and_tokenizer_files(av, tmp_path):
    _, src, converted, report = av
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (converted / name).read_bytes() == (src / name).read_bytes()
    assert sorted(report.tokenizer_files) == ["tokenizer.json", "tokenizer_config.json"]
    processor = PeAudioVideoProcessor.from_pretrained(converted)
    assert processor.video_processor.do_sample_frames and processor.video_processor.num_frames == 16
    assert processor.feature_extractor.hop_length == 6
    theirs = transformers.AutoProcessor.from_pretrained(converted)
    assert theirs.video_processor.num_frames == 16
    # without fixed_len_video every frame is kept
    original = build_original("av", av_config(fixed_len_video=False))
    src2 = write_original(original, av_config(fixed_len_video=False), tmp_path / "every-frame")
    pe_av.convert_original(src2, tmp_path / "out", verify=False, progress=False)
    assert not PeAudioVideoProcessor.from_pretrained(tmp_path / "out").video_processor.do_sample_frames


def test_dropped_and_filled_weights_are_reported(av, frame):
    report = av[3]
    assert {k for k in report.dropped if k.startswith("text_model.")} == {
        f"text_model.layers.2.{name}" for name in
        ("attn.Wo.weight", "attn.Wqkv.weight", "attn_norm.weight", "mlp.Wi.weight", "mlp.Wo.weight", "mlp_norm.weight")}
    assert sum("bottleneck.out_proj" in k for k in report.dropped) == 2
    assert sum("log-variance" in k for k in report.dropped) == 2
    assert len(report.filled) == 12 and all(k.endswith(("_logit_scale", "_logit_bias")) for k in report.filled)
    assert frame[3].filled == []  # PE-A-Frame has its scale and bias


def test_logit_scales_filled_and_embeddings_independent_of_them(av):
    _, _, converted, _ = av
    model = PeAudioVideoModel.from_pretrained(converted).eval()
    x = inputs("av", padded=False)
    with torch.no_grad():
        before = model(**x)
        # filled with scale 1, bias 0: logits are the plain dot products of the embeddings
        assert max_abs_diff(before.logits_audio_video, before.audio_embeds @ before.video_embeds.T) <= 1e-6
        for name, param in model.named_parameters():
            if name.endswith(("_logit_scale", "_logit_bias")):
                param.fill_(7.0)
        after = model(**x)
    for name in AV_EMBEDS:
        assert torch.equal(getattr(before, name), getattr(after, name)), name


def test_dtype_option(frame, tmp_path):
    _, src, _, _ = frame
    pe_av.convert_original(src, tmp_path / "bf16", dtype="bfloat16", verify=True, progress=False)
    from pe_av.loading import read_header

    dtypes = {info.dtype for info in read_header(str(tmp_path / "bf16")).values()}
    assert dtypes == {"torch.bfloat16"} or dtypes == {"BF16"}, dtypes
    assert pe_av.load_config(tmp_path / "bf16").dtype in ("bfloat16", torch.bfloat16)


def test_precomputed_features_are_the_originals(av):
    """``get_codec_features`` / ``get_frame_features`` of a converted model equal what the original passes as
    ``input_features`` (codec features) and ``pe_features`` (normalised per-frame ViT features)."""
    original, _, converted, _ = av
    ours = PeAudioVideoModel.from_pretrained(converted).eval()
    x = inputs("av", padded=False)
    m = original.audio_visual_model
    with torch.no_grad():
        codec = m.audio_model.dac_vae_encoder(x["input_values"]).transpose(1, 2)
        frames = x["pixel_values_videos"]
        pe = torch.nn.functional.normalize(m.visual_model.pe_encoder(frames.flatten(0, 1)).view(2, 2, -1), dim=-1)
        features, _ = ours.audio_model.audio_encoder.get_codec_features(x["input_values"])
        frame_features = ours.video_model.video_encoder.get_frame_features(frames)
        assert max_abs_diff(features, codec) <= ATOL
        assert max_abs_diff(frame_features, pe) <= ATOL
        embeds = ours.get_audio_video_embeds(input_features=codec, pe_features=pe).audio_video_embeds
    assert max_abs_diff(embeds, _reference(original, "av", padded=False)["audio_video_embeds"]) <= ATOL
