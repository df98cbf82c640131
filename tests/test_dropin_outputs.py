"""Drop-in outputs: the same call through transformers and pe_av on the same tiny checkpoint returns the
same thing: output types, keys and their order, tuple lengths and nesting (``return_dict=False``), None
placement, tensors (fp32, ≤ 1e-4), hidden states and attention probabilities (shapes, layer order, values).

Each model is compared on the call options ``return_dict``, ``output_hidden_states`` (True and the int
selection ``-1``) and ``output_attentions``, given in the call or read from the configs transformers
saved (each model reading its own sub-config). The reference runs eager attention (its sdpa returns no
probabilities); ours runs sdpa, whose attention falls back to eager when probabilities are asked for.
Inputs avoid the documented differences: clips batch-padded as the reference pads (``reference_padding``),
videos without padded frames, text whose padded queries each see a real key within the window.
"""

from collections.abc import Mapping

import pytest
import torch

from oracle import FP32_ATOL, max_abs_diff, perturb_parameters, reference_padding, sharpen, transformers
from model_inputs import valid
from pe_av import (
    ModernBertModel,
    PeAudioEncoder,
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioVideoEncoder,
    PeAudioVideoModel,
    PeVideoEncoder,
    PeVideoModel,
    PeVisionModel,
)
from pe_av.dispatch import BackendFallbackWarning, reset_warnings
from tiny_configs import AUDIO, FUSION, TEXT, VIDEO, VIT

pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore::pe_av.dispatch.BackendFallbackWarning")]

AUDIO2 = dict(AUDIO, num_hidden_layers=2)  # two layers everywhere: layer order shows
VIDEO2 = dict(VIDEO, num_hidden_layers=2)
FUSION2 = dict(FUSION, num_hidden_layers=2, audio_config=AUDIO2, video_config=VIDEO2)
VIT2 = dict(VIT, model_args=dict(VIT["model_args"], depth=2))
T = transformers
MODELS = {  # name: (reference class, reference config, our class, inputs)
    "PeAudioEncoder": (T.PeAudioEncoder, lambda: T.PeAudioEncoderConfig(**AUDIO2), PeAudioEncoder, ("audio",)),
    "PeVideoEncoder": (T.PeVideoEncoder, lambda: T.PeVideoEncoderConfig(**VIDEO2), PeVideoEncoder, ("video",)),
    "PeAudioVideoEncoder": (
        T.PeAudioVideoEncoder, lambda: T.PeAudioVideoEncoderConfig(**FUSION2), PeAudioVideoEncoder, ("audio", "video"),
    ),
    "ModernBertModel": (T.ModernBertModel, lambda: T.ModernBertConfig(**TEXT), ModernBertModel, ("text",)),
    "PeAudioModel": (
        T.PeAudioModel, lambda: T.PeAudioConfig(text_config=TEXT, audio_config=AUDIO2), PeAudioModel, ("text", "audio"),
    ),
    "PeAudioFrameLevelModel": (
        T.PeAudioFrameLevelModel, lambda: T.PeAudioConfig(text_config=TEXT, audio_config=AUDIO2),
        PeAudioFrameLevelModel, ("text", "audio"),
    ),
    "PeVideoModel": (
        T.PeVideoModel, lambda: T.PeVideoConfig(text_config=TEXT, video_config=VIDEO2), PeVideoModel, ("text", "video"),
    ),
    "PeAudioVideoModel": (
        T.PeAudioVideoModel, lambda: T.PeAudioVideoConfig(text_config=TEXT, audio_video_config=FUSION2),
        PeAudioVideoModel, ("text", "audio", "video"),
    ),
}
CALLS = {
    "default": {},
    "tuple": dict(return_dict=False),
    "hidden_states": dict(output_hidden_states=True),
    "last_hidden_state_only": dict(output_hidden_states=-1),
    "selected_hidden_states": dict(output_hidden_states=[0, -1]),
    "attentions": dict(output_attentions=True),
    "everything_as_tuple": dict(output_hidden_states=True, output_attentions=True, return_dict=False),
}


def inputs(*modalities: str) -> dict:
    args = {}
    if "text" in modalities:
        args.update(input_ids=valid("ids"), attention_mask=valid("text_mask"))  # 5 and 3 tokens: window 2 each side
    if "audio" in modalities:
        args.update(input_values=valid("audio"), padding_mask=valid("audio_mask"))  # 4 and 2 tokens
    if "video" in modalities:
        pixels = valid("video")
        args.update(pixel_values_videos=pixels, padding_mask_videos=torch.ones(pixels.shape[:2], dtype=torch.long))
    return args


def set_everywhere(config, **flags) -> None:
    """Set ``flags`` on ``config`` and its nested configs (not the ViT's: the reference refuses
    ``output_attentions`` there, and the video encoder never returns the ViT's outputs)."""
    for name, value in flags.items():
        setattr(config, name, value)
    for key in ("text_config", "audio_config", "video_config", "audio_video_config"):
        sub = config.__dict__.get(key)  # not the composite's derived audio_config/video_config properties
        if isinstance(sub, T.PreTrainedConfig):
            set_everywhere(sub, **flags)


def build_pair(name, directory, **config_flags):
    ref_cls, make_config, ours_cls, _ = MODELS[name]
    config = make_config()
    if config_flags:
        set_everywhere(config, output_hidden_states=True, output_attentions=True)
        config.return_dict = config_flags["return_dict"]
    torch.manual_seed(0)
    ref = sharpen(perturb_parameters(ref_cls(config).eval()))
    ref.save_pretrained(directory)
    ref.set_attn_implementation("eager")
    return ref, reference_padding(ours_cls.from_pretrained(directory))


def assert_same(expected, got, path="output"):
    """``got`` has ``expected``'s structure (types, keys in order, lengths, None placement) and values."""
    if expected is None:
        assert got is None, f"{path}: expected None, got {type(got).__name__}"
    elif isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{path}: expected a tensor, got {type(got).__name__}"
        assert got.shape == expected.shape and got.dtype == expected.dtype, (path, got.shape, expected.shape)
        if expected.is_floating_point():
            assert max_abs_diff(expected, got) <= FP32_ATOL, path
        else:
            assert torch.equal(expected, got), path
    elif isinstance(expected, Mapping):  # a transformers ModelOutput
        assert type(got).__name__ == type(expected).__name__, f"{path}: {type(got).__name__} vs {type(expected).__name__}"
        assert list(got.keys()) == list(expected.keys()), path
        assert len(got.to_tuple()) == len(expected.to_tuple()), path
        for key in expected.keys():
            assert_same(expected[key], got[key], f"{path}.{key}")
    elif isinstance(expected, (tuple, list)):
        assert type(got) is type(expected), f"{path}: {type(got).__name__} vs {type(expected).__name__}"
        assert len(got) == len(expected), f"{path}: length {len(got)} vs {len(expected)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            assert_same(e, g, f"{path}[{i}]")
    else:
        assert got == expected, path


def run_both(ref, ours, args, **options):
    with torch.no_grad():
        return ref(**args, **options), ours(**args, **options)


@pytest.fixture(scope="module", params=sorted(MODELS))
def plain(request, tmp_path_factory):
    return request.param, *build_pair(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module", params=sorted(MODELS))
def configured(request, tmp_path_factory):
    """Every config asks for hidden states and attentions, the top one for tuples."""
    directory = tmp_path_factory.mktemp(request.param + "-configured")
    return request.param, *build_pair(request.param, directory, return_dict=False)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_call_options(plain, call):
    name, ref, ours = plain
    expected, got = run_both(ref, ours, inputs(*MODELS[name][3]), **CALLS[call])
    assert_same(expected, got)


def attention_shapes(output, path="out") -> dict:
    """``{path of an output: [shape of each layer's attentions]}`` over ``output`` and its nested outputs."""
    found = {}
    if isinstance(output, Mapping):
        if output.get("attentions") is not None:
            found[path] = [tuple(a.shape) for a in output["attentions"]]
        for key, item in output.items():
            found.update(attention_shapes(item, f"{path}.{key}"))
    return found


def test_attentions_where_transformers_puts_them(plain):
    """Which towers return attentions, their shapes ``(B, heads, T, T)``, one per layer."""
    name, ref, ours = plain
    expected, got = run_both(ref, ours, inputs(*MODELS[name][3]), output_attentions=True)
    found = attention_shapes(got)
    assert found and all(len(shapes) == 2 for shapes in found.values()), found  # every tower here has two layers
    assert found == attention_shapes(expected)


@pytest.mark.parametrize("call", ["default", "override"])
def test_options_from_the_configs(configured, call):
    """Config flags as transformers reads them: each model its own config; the text tower inside the
    contrastive models is always asked for its last hidden state (its config's flag is not consulted)."""
    name, ref, ours = configured
    options = dict(return_dict=True, output_hidden_states=False) if call == "override" else {}
    expected, got = run_both(ref, ours, inputs(*MODELS[name][3]), **options)
    assert_same(expected, got)
    assert isinstance(got, tuple) == (call == "default")


@pytest.fixture(scope="module")
def av_pair(tmp_path_factory):
    return build_pair("PeAudioVideoModel", tmp_path_factory.mktemp("av"))


@pytest.mark.parametrize("modalities", [("text", "audio"), ("audio", "video")])
@pytest.mark.parametrize("call", ["default", "tuple"])
def test_two_modality_paths(av_pair, modalities, call):
    ref, ours = av_pair
    expected, got = run_both(ref, ours, inputs(*modalities), **CALLS[call])
    assert_same(expected, got)


def test_audio_video_path_keeps_asked_for_tower_outputs(av_pair):
    """The reference computes the fused encoder's hidden states and drops them; we return the towers'
    outputs on this path when they carry what was asked for (documented difference)."""
    ref, ours = av_pair
    expected, got = run_both(ref, ours, inputs("audio", "video"), output_hidden_states=True)
    assert "audio_video_outputs" not in expected
    assert list(got.keys()) == ["audio_embeds", "video_embeds", "audio_video_embeds", "audio_outputs", "video_outputs",
                                "audio_video_outputs", "logits_audio_video"]
    assert len(got.audio_video_outputs.hidden_states) == 3 and got.audio_outputs.hidden_states is None
    for name in expected.keys():
        assert_same(expected[name], got[name], name)


def test_text_outputs_hidden_states_as_the_reference_asks(av_pair):
    """The contrastive models ask their text tower for ``output_hidden_states=-1``: Nones, then the last
    hidden state, so the reference's idiom ``text_outputs.hidden_states[-1][:, 0]`` works."""
    ref, ours = av_pair
    args = inputs("text", "audio", "video")
    with torch.no_grad():
        got = ours(**args)
        alone = ours.text_model(args["input_ids"], args["attention_mask"])
    hidden = got.text_outputs.hidden_states
    assert len(hidden) == TEXT["num_hidden_layers"] + 1 and all(h is None for h in hidden[:-1])
    assert torch.equal(hidden[-1], got.text_outputs.last_hidden_state)
    assert torch.equal(hidden[-1][:, 0], got.text_outputs.pooler_output)
    assert alone.hidden_states is None and list(alone.keys()) == ["last_hidden_state"]


def test_attention_probabilities_fall_back_to_eager_once(av_pair):
    _, ours = av_pair
    args = inputs("text", "audio", "video")
    reset_warnings()
    with pytest.warns(BackendFallbackWarning, match="output_attentions=True runs attention in eager PyTorch") as caught, \
            torch.no_grad():
        first = ours(**args, output_attentions=True)
        ours(**args, output_attentions=True)
    assert {str(w.message).split(":")[0] for w in caught} == {"PeAttention", "ModernBertAttention"}
    assert len(caught) == 2  # once per module class, not per call or layer
    with torch.no_grad():
        eager = ours.set_attn_impl("eager")(**args, output_attentions=True)
    ours.set_attn_impl("sdpa")
    for a, b in zip(first.audio_video_outputs.attentions, eager.audio_video_outputs.attentions):
        assert max_abs_diff(a, b) <= 1e-5  # the other ops differ by rounding between the backends


def build_vision(directory, **config_flags):
    torch.manual_seed(0)
    config = T.TimmWrapperConfig(architecture=VIT2["architecture"], model_args=VIT2["model_args"],
                                 num_labels=VIT2["num_labels"], **config_flags)
    ref = sharpen(perturb_parameters(T.TimmWrapperForImageClassification(config).eval()))
    ref.save_pretrained(directory)
    return ref, PeVisionModel.from_pretrained(directory)


@pytest.fixture(scope="module")
def vision_pair(tmp_path_factory):
    return build_vision(tmp_path_factory.mktemp("vit"))


@pytest.mark.parametrize("options", [{}, dict(return_dict=False), dict(output_hidden_states=True),
                                     dict(output_hidden_states=[0, -1]), dict(output_hidden_states=[1], return_dict=False)])
def test_vision_call_options(vision_pair, options):
    ref, ours = vision_pair
    expected, got = run_both(ref, ours, dict(pixel_values=valid("image")), **options)
    assert_same(expected, got)


def test_vision_refuses_attentions_and_reads_its_config(vision_pair, tmp_path):
    for model in vision_pair:
        with pytest.raises(ValueError, match="Cannot set `output_attentions` for timm models"):
            model(valid("image"), output_attentions=True)
    ref, ours = build_vision(tmp_path, return_dict=False, output_hidden_states=True)
    expected, got = run_both(ref, ours, dict(pixel_values=valid("image")))
    assert_same(expected, got)
    assert isinstance(got, tuple) and len(got) == 2
