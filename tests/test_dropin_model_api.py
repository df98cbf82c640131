"""transformers' model API on pe_av models: the same call through transformers and pe_av on the same tiny
checkpoint (transformers' ``save_pretrained``, pe_av's ``from_pretrained``) returns the same thing.

Compared per model class: ``num_parameters`` (all flag combinations; tied weights counted once),
``main_input_name``, ``get_input_embeddings`` / ``set_input_embeddings`` (the module, None, or
``NotImplementedError``), ``get_output_embeddings``, ``tie_weights`` (returns None, weights stay tied),
``can_generate``, ``supports_gradient_checkpointing``, ``_keys_to_ignore_on_save``, ``model_tags``,
``device`` / ``dtype``, ``train()`` / ``eval()``, gradient checkpointing's switches and flags,
``set_attn_implementation`` (names, dicts, unknown names) and ``config._attn_implementation``, and
``push_to_hub`` with the Hub mocked (what is uploaded, and that transformers loads it).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

from model_inputs import valid
from oracle import FP32_ATOL, max_abs_diff, transformers
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
from pe_av.models.attn_names import own_backend_modules
from tiny_configs import AUDIO, FUSION, TEXT, VIDEO, VIT

pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore::FutureWarning")]

T = transformers
MODELS = {  # name: (reference class, reference config, our class)
    "PeAudioEncoder": (T.PeAudioEncoder, lambda: T.PeAudioEncoderConfig(**AUDIO), PeAudioEncoder),
    "PeVideoEncoder": (T.PeVideoEncoder, lambda: T.PeVideoEncoderConfig(**VIDEO), PeVideoEncoder),
    "PeAudioVideoEncoder": (T.PeAudioVideoEncoder, lambda: T.PeAudioVideoEncoderConfig(**FUSION), PeAudioVideoEncoder),
    "ModernBertModel": (T.ModernBertModel, lambda: T.ModernBertConfig(**TEXT), ModernBertModel),
    "PeAudioModel": (T.PeAudioModel, lambda: T.PeAudioConfig(text_config=TEXT, audio_config=AUDIO), PeAudioModel),
    "PeAudioFrameLevelModel": (
        T.PeAudioFrameLevelModel, lambda: T.PeAudioConfig(text_config=TEXT, audio_config=AUDIO), PeAudioFrameLevelModel,
    ),
    "PeVideoModel": (T.PeVideoModel, lambda: T.PeVideoConfig(text_config=TEXT, video_config=VIDEO), PeVideoModel),
    "PeAudioVideoModel": (
        T.PeAudioVideoModel, lambda: T.PeAudioVideoConfig(text_config=TEXT, audio_video_config=FUSION), PeAudioVideoModel,
    ),
    "PeVisionModel": (
        T.TimmWrapperForImageClassification,
        lambda: T.TimmWrapperConfig(architecture=VIT["architecture"], model_args=VIT["model_args"],
                                    num_labels=VIT["num_labels"]),
        PeVisionModel,
    ),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def pair(request, tmp_path_factory):
    ref_cls, make_config, ours_cls = MODELS[request.param]
    torch.manual_seed(0)
    ref = ref_cls(make_config()).eval()
    directory = tmp_path_factory.mktemp(request.param)
    ref.save_pretrained(directory)
    return request.param, ref, ours_cls.from_pretrained(directory)


def outcome(call):
    """What ``call()`` gives: ``("value", v)``, ``("module", class name, its parameters' names)`` or
    ``("raises", exception type)``."""
    try:
        value = call()
    except Exception as error:  # noqa: BLE001 - the exception type is what is compared
        return ("raises", type(error))
    if isinstance(value, nn.Module):
        return ("module", type(value).__name__, sorted(name for name, _ in value.named_parameters()))
    return ("value", value)


def test_attributes_and_parameter_counts(pair):
    _, ref, ours = pair
    for only_trainable in (False, True):
        for exclude_embeddings in (False, True):
            flags = dict(only_trainable=only_trainable, exclude_embeddings=exclude_embeddings)
            assert ours.num_parameters(**flags) == ref.num_parameters(**flags), flags
    for attribute in ("main_input_name", "supports_gradient_checkpointing", "_keys_to_ignore_on_save", "model_tags",
                      "device", "dtype", "training"):
        assert getattr(ours, attribute) == getattr(ref, attribute), attribute
    assert ours.can_generate() is ref.can_generate() is False
    assert type(ours).can_generate() is False
    assert ours.get_output_embeddings() is ref.get_output_embeddings() is None


def test_input_embeddings(pair):
    name, ref, ours = pair
    assert outcome(ours.get_input_embeddings) == outcome(ref.get_input_embeddings)
    new = nn.Embedding(TEXT["vocab_size"], TEXT["hidden_size"])
    assert outcome(lambda: ours.set_input_embeddings(new)) == outcome(lambda: ref.set_input_embeddings(new))
    if name == "ModernBertModel":
        assert ours.get_input_embeddings() is new and ours.embeddings.tok_embeddings is new


def test_a_shared_text_tower_has_one_input_embedding(tmp_path):
    """transformers' composite models expose no input embedding; their text tower does, and ours is one module
    for every sub-model that uses it, so replacing it replaces it everywhere."""
    model = PeAudioVideoModel(PeAudioVideoModel.config_class(text_config=TEXT, audio_video_config=FUSION))
    with pytest.raises(NotImplementedError):
        model.get_input_embeddings()
    new = nn.Embedding(TEXT["vocab_size"], TEXT["hidden_size"])
    model.text_model.set_input_embeddings(new)
    assert model.audio_model.text_model.get_input_embeddings() is new
    assert model.video_model.text_model.get_input_embeddings() is new


def test_tie_weights_returns_none_and_keeps_tied_modules(pair):
    name, ref, ours = pair
    with torch.no_grad():
        before = {key: tensor.clone() for key, tensor in ours.state_dict().items()}
    assert ours.tie_weights() is None and ref.tie_weights() is None
    after = ours.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    if name == "PeAudioVideoModel":
        assert ours.audio_model.text_model is ours.text_model is ours.video_model.text_model
        assert ours.audio_video_encoder.embedder.audio_encoder is ours.audio_model.audio_encoder
        assert ours.audio_video_encoder.embedder.video_encoder is ours.video_model.video_encoder


def test_train_and_eval_return_the_model(pair):
    _, ref, ours = pair
    for model in (ref, ours):
        assert model.train() is model and all(m.training for m in model.modules())
        assert model.eval() is model and not any(m.training for m in model.modules())


def checkpointing_flags(model) -> list[bool]:
    """``is_gradient_checkpointing`` / ``is_activation_checkpointing`` through each switch, in order."""
    flags = [model.is_gradient_checkpointing]
    model.gradient_checkpointing_enable()
    flags += [model.is_gradient_checkpointing, model.is_activation_checkpointing]
    model.gradient_checkpointing_disable()
    flags += [model.is_gradient_checkpointing]
    model.activation_checkpointing_enable(every_n_layers=2)
    flags += [model.is_activation_checkpointing]
    model.activation_checkpointing_disable()
    return flags + [model.is_activation_checkpointing]


def test_checkpointing_switches(pair):
    name, ref, ours = pair
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = checkpointing_flags(ref)
        half = len(caught)
        got = checkpointing_flags(ours)
    if name == "PeVisionModel":
        # transformers' TimmWrapper turns timm's own checkpointing on but reports False (it looks for a
        # ``gradient_checkpointing`` attribute timm does not have); ours reports what it does
        assert expected == [False] * 6
        ref.gradient_checkpointing_enable()
        assert ref.timm_model.grad_checkpointing is True
        expected = [False, True, True, False, True, False]
    assert got == expected == [False, True, True, False, True, False]
    deprecations = [str(w.message).split("`")[1] for w in caught if issubclass(w.category, FutureWarning)]
    ours_half = [str(w.message).split("`")[1] for w in caught[half:] if issubclass(w.category, FutureWarning)]
    assert deprecations == ours_half * 2  # the same deprecation warnings, in the same order
    assert set(ours_half) == {"is_gradient_checkpointing", "gradient_checkpointing_enable", "gradient_checkpointing_disable"}
    # models whose main input is input_ids make their token embedding's output require grad, as transformers
    assert len(getattr(ours, "_require_grads_hooks", [])) == (1 if ours.main_input_name == "input_ids" else 0)


def sub_configs(config, prefix=""):
    """``{dotted name: config}`` of a config and its nested sub-configs (transformers' ``sub_configs``, or ours)."""
    found = {prefix: config}
    names = getattr(config, "sub_configs", None) or getattr(type(config), "sub_config_classes", {})
    for key in names:
        sub = getattr(config, key, None)
        if sub is not None and key != "dac_config":  # the DAC has no attention (transformers sets it "in the dark")
            found.update(sub_configs(sub, f"{prefix}.{key}" if prefix else key))
    return found


REQUESTS = ["eager", "sdpa", {"": "eager"}, {"text_config": "eager"}, {"": "eager", "text_config": "sdpa"},
            {"audio_video_config": {"audio_config": "eager"}}, {"vision_config": "eager"}]


def test_set_attn_implementation(pair):
    """Names and per-sub-config dicts give every (sub-)config the same ``_attn_implementation`` as in
    transformers, and each of our sub-models runs what its config says."""
    _, ref, ours = pair
    names = set(sub_configs(ours.config))
    requests = [r for r in REQUESTS if not isinstance(r, dict) or {k for k in r if k} <= names]
    assert len(requests) >= 3
    for request in requests:
        for model in (ref, ours):
            model.set_attn_implementation("sdpa")
            assert model.set_attn_implementation(request) is None
        expected = {key: config._attn_implementation for key, config in sub_configs(ref.config).items()}
        got = {key: config._attn_implementation for key, config in sub_configs(ours.config).items()}
        assert got == expected, request
        for module in ours.modules():  # each model's own layers (not its sub-models') run what its config says
            if hasattr(module, "set_attn_impl"):
                own = {m.backend for m in own_backend_modules(module)}
                assert own <= {module.config._attn_implementation}, (request, type(module).__name__)
    ours.set_attn_implementation("sdpa")


def test_attn_implementation_names(pair):
    name, ref, ours = pair
    for model in (ref, ours):
        with pytest.raises(ValueError, match="not supported"):
            model.set_attn_implementation("bogus")
    # transformers' fused kernels we lack run our fastest backend (sdpa on CPU), once warned; transformers
    # raises ImportError without flash-attn installed (a documented difference)
    reset_warnings()
    with pytest.warns(BackendFallbackWarning, match="flash_attention_2"):
        ours.set_attn_implementation("flash_attention_2")
    assert ours.attn_impl == "sdpa" and ours.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="not a sub-config"):
        ours.set_attn_implementation({"text_confg": "eager"})
    ours.set_attn_implementation("triton")
    assert ours.attn_impl == "triton" == ours.config._attn_implementation
    ours.set_attn_implementation("sdpa")


# --------------------------------------------------------------------------------------------------
# push_to_hub, with the Hub mocked


class FakeHub:
    """Stands in for ``HfApi`` (ours) and transformers' ``hf_api()``: records calls, keeps uploaded files."""

    def __init__(self, *args, **kwargs):
        self.calls, self.files = [], {}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return SimpleNamespace(repo_id=f"user/{repo_id}" if "/" not in repo_id else repo_id)

    def create_branch(self, **kwargs):
        self.calls.append(("create_branch", kwargs))

    def hf_hub_download(self, repo_id, filename, **kwargs):
        from huggingface_hub.errors import EntryNotFoundError

        raise EntryNotFoundError(f"{filename} not in {repo_id}")

    def upload_folder(self, *, folder_path, **kwargs):  # ours
        self.calls.append(("upload", kwargs))
        self.files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        return "commit-info"

    def create_commit(self, *, operations, **kwargs):  # transformers'
        self.calls.append(("upload", kwargs))
        self.files = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}
        return "commit-info"


def push_both(monkeypatch, ref, ours, **kwargs):
    import huggingface_hub
    import transformers.utils.hub as transformers_hub
    from huggingface_hub import ModelCard
    from huggingface_hub.errors import EntryNotFoundError

    ours_hub, ref_hub = FakeHub(), FakeHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *a, **k: ours_hub)
    monkeypatch.setattr(transformers_hub, "hf_api", lambda: ref_hub)

    def no_card(*args, **kwargs):
        raise EntryNotFoundError("no README.md")

    monkeypatch.setattr(ModelCard, "load", classmethod(lambda cls, *a, **k: no_card()))
    assert ours.push_to_hub("tiny", **kwargs) == ref.push_to_hub("tiny", **kwargs) == "commit-info"
    return ref_hub, ours_hub


def card_tags(readme: bytes) -> list[str]:
    from huggingface_hub import ModelCard

    return ModelCard(readme.decode()).data.tags or []


def test_push_to_hub(pair, monkeypatch, tmp_path):
    name, ref, ours = pair
    ref_hub, ours_hub = push_both(monkeypatch, ref, ours, tags=["mine"], revision="dev", private=True)
    assert sorted(ours_hub.files) == sorted(ref_hub.files) == ["README.md", "config.json", "model.safetensors"]
    # the default commit message names the class unless it has "Model" in its name; transformers' ViT class
    # is TimmWrapperForImageClassification, ours PeVisionModel
    for hub, model in ((ref_hub, ref), (ours_hub, ours)):
        cls = type(model).__name__
        assert hub.calls[-1][1].pop("commit_message") == ("Upload model" if "Model" in cls else f"Upload {cls}")
    assert ours_hub.calls == ref_hub.calls  # create_repo, create_branch, upload: same arguments
    assert card_tags(ours_hub.files["README.md"]) == card_tags(ref_hub.files["README.md"])
    for hub, folder in ((ref_hub, tmp_path / "ref"), (ours_hub, tmp_path / "ours")):
        folder.mkdir()
        for file, data in hub.files.items():
            (folder / file).write_bytes(data)
    expected, got = load_file(tmp_path / "ref" / "model.safetensors"), load_file(tmp_path / "ours" / "model.safetensors")
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    config = json.loads((tmp_path / "ours" / "config.json").read_text())
    if name != "PeVisionModel":  # save_pretrained writes our class name; transformers' ViT class has another
        assert config["architectures"] == [type(ref).__name__]
    if name in ("ModernBertModel", "PeAudioEncoder"):  # transformers loads what we pushed (spot check)
        reloaded = type(ref).from_pretrained(tmp_path / "ours").eval()
        args = dict(input_ids=valid("ids")) if name == "ModernBertModel" else dict(input_values=valid("audio"))
        with torch.no_grad():
            assert max_abs_diff(reloaded(**args).last_hidden_state, ref(**args).last_hidden_state) <= FP32_ATOL
