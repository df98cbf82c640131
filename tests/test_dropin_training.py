"""Training behaviours against transformers 5.24 on the same tiny checkpoints.

- Gradient checkpointing: the same gradients as without it (fp32, exact up to 1e-6) and as transformers'
  checkpointed models; fewer bytes kept for the backward pass (counted with
  ``torch.autograd.graph.saved_tensors_hooks``, deterministic on CPU); only in training with gradients.
- ``attention_dropout`` of the PE transformers: in ``train()`` the same numbers as transformers with the
  same torch seed (eager and sdpa: the towers run in transformers' order and draw the same masks); in
  ``eval()`` no effect; under ``triton`` a one-time fallback to eager.
"""

from __future__ import annotations

import pytest
import torch

from model_inputs import valid
from oracle import perturb_parameters, sharpen, transformers
from pe_av import ModernBertModel, PeAudioEncoder, PeAudioVideoEncoder, PeAudioVideoModel, PeVideoEncoder
from pe_av.dispatch import BackendFallbackWarning, reset_warnings
from pe_av.models.checkpointing import CheckpointedLayer
from pe_av.ops.attention import rope_attention_eager_probs
from tiny_configs import AUDIO, FUSION, TEXT, VIDEO

pytestmark = [pytest.mark.oracle, pytest.mark.filterwarnings("ignore::FutureWarning")]

T = transformers
DROP = 0.4
AUDIO2 = dict(AUDIO, num_hidden_layers=2, attention_dropout=DROP)
VIDEO2 = dict(VIDEO, num_hidden_layers=2, attention_dropout=DROP)
FUSION2 = dict(FUSION, num_hidden_layers=2, attention_dropout=DROP, audio_config=AUDIO2, video_config=VIDEO2)
TEXT2 = dict(TEXT, attention_dropout=DROP)
MODELS = {  # name: (reference class, reference config, our class, inputs)
    "PeAudioEncoder": (T.PeAudioEncoder, lambda: T.PeAudioEncoderConfig(**AUDIO2), PeAudioEncoder, ("audio",)),
    "PeVideoEncoder": (T.PeVideoEncoder, lambda: T.PeVideoEncoderConfig(**VIDEO2), PeVideoEncoder, ("video",)),
    "PeAudioVideoEncoder": (
        T.PeAudioVideoEncoder, lambda: T.PeAudioVideoEncoderConfig(**FUSION2), PeAudioVideoEncoder, ("audio", "video"),
    ),
    "ModernBertModel": (T.ModernBertModel, lambda: T.ModernBertConfig(**TEXT2), ModernBertModel, ("text",)),
    "PeAudioVideoModel": (
        T.PeAudioVideoModel, lambda: T.PeAudioVideoConfig(text_config=TEXT2, audio_video_config=FUSION2),
        PeAudioVideoModel, ("text", "audio", "video"),
    ),
}


def inputs(*modalities: str) -> dict:
    args = {}
    if "text" in modalities:
        args["input_ids"] = valid("ids")
    if "audio" in modalities:
        args["input_values"] = valid("audio")
    if "video" in modalities:
        args["pixel_values_videos"] = valid("video")
    return args


@pytest.fixture(scope="module", params=sorted(MODELS))
def pair(request, tmp_path_factory):
    ref_cls, make_config, ours_cls, modalities = MODELS[request.param]
    torch.manual_seed(0)
    ref = sharpen(perturb_parameters(ref_cls(make_config()).eval()))
    directory = tmp_path_factory.mktemp(request.param)
    ref.save_pretrained(directory)
    ours = ours_cls.from_pretrained(directory)
    yield request.param, ref, ours, inputs(*modalities)
    ref.eval(), ours.eval()


def first_output(output) -> torch.Tensor:
    return output["audio_video_embeds"] if "audio_video_embeds" in output else output["last_hidden_state"]


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_attention_dropout_in_training_as_transformers(pair, backend):
    name, ref, ours, args = pair
    ref.set_attn_implementation(backend)
    ours.set_attn_implementation(backend)
    results = []
    for mode in ("train", "eval"):
        for model in (ref, ours):
            getattr(model, mode)()
            torch.manual_seed(1234)
            with torch.no_grad():
                results.append(first_output(model(**args)))
    train_ref, train_ours, eval_ref, eval_ours = results
    torch.testing.assert_close(train_ours, train_ref, atol=1e-5, rtol=1e-5)  # the same masks
    torch.testing.assert_close(eval_ours, eval_ref, atol=1e-5, rtol=1e-5)
    assert (train_ours - eval_ours).abs().max() > 1e-3  # dropout did something in training


def test_eval_ignores_attention_dropout(tmp_path):
    """In eval the dropout probability changes nothing: the same weights without it give the same numbers."""
    torch.manual_seed(0)
    with_dropout = PeAudioEncoder(PeAudioEncoder.config_class(**AUDIO2)).eval()
    without = PeAudioEncoder(PeAudioEncoder.config_class(**dict(AUDIO2, attention_dropout=0.0))).eval()
    without.load_state_dict(with_dropout.state_dict())
    with torch.no_grad():
        assert torch.equal(with_dropout(valid("audio")).last_hidden_state, without(valid("audio")).last_hidden_state)


def test_triton_falls_back_to_eager_for_dropout_once():
    pytest.importorskip("pe_av_kernels")
    torch.manual_seed(0)
    model = PeAudioEncoder(PeAudioEncoder.config_class(**AUDIO2)).train()
    reset_warnings()
    outputs = {}
    for backend in ("eager", "triton"):
        model.set_attn_impl(backend)
        torch.manual_seed(5)
        with torch.no_grad():
            if backend == "triton":
                with pytest.warns(BackendFallbackWarning, match="dropout is not supported by the kernel") as caught:
                    outputs[backend] = model(valid("audio")).last_hidden_state
                    model(valid("audio"))
                assert sum("dropout" in str(w.message) for w in caught) == 1
            else:
                outputs[backend] = model(valid("audio")).last_hidden_state
    torch.testing.assert_close(outputs["triton"], outputs["eager"], atol=1e-5, rtol=1e-5)


def test_dropout_zeroes_probabilities_with_probability_p():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 64, 4, 8, generator=gen) for _ in range(3))
    ones, cos, sin = torch.ones(8), torch.ones(64, 4), torch.zeros(64, 4)
    _, plain = rope_attention_eager_probs(q, k, v, ones, ones, cos, sin)
    torch.manual_seed(0)
    _, dropped = rope_attention_eager_probs(q, k, v, ones, ones, cos, sin, dropout=DROP)
    zeroed = (dropped == 0).float().mean().item()
    assert abs(zeroed - DROP) < 0.01  # 32k probabilities: ±0.01 is > 3 standard deviations
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], plain[kept] / (1 - DROP))  # inverted dropout, as F.dropout


# --------------------------------------------------------------------------------------------------
# gradient checkpointing


def grads_of(model, args, **kwargs) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """Loss, parameter gradients, and the bytes of distinct storages saved for the backward pass."""
    model.zero_grad(set_to_none=True)
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    torch.manual_seed(7)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(**args, **kwargs)
    loss = output["loss"] if "loss" in output else first_output(output).square().mean()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, sum(storages.values())


@pytest.fixture(scope="module")
def av_model():
    torch.manual_seed(0)
    config = PeAudioVideoModel.config_class(text_config=TEXT2, audio_video_config=FUSION2)
    return PeAudioVideoModel(config).train()


@pytest.mark.parametrize("options", [{}, dict(activation_checkpointing_kwargs={"use_reentrant": True}),
                                     dict(every_n_layers=2), dict(offload=True)], ids=str)
def test_checkpointing_gives_the_same_gradients_and_keeps_less(av_model, options):
    args = dict(inputs("text", "audio", "video"), return_loss=True)
    av_model.activation_checkpointing_disable()
    loss, grads, kept = grads_of(av_model, args)
    av_model.activation_checkpointing_enable(**options)
    try:
        loss_gc, grads_gc, kept_gc = grads_of(av_model, args)
    finally:
        av_model.activation_checkpointing_disable()
    assert torch.equal(loss, loss_gc)  # dropout masks replayed: the same numbers
    assert grads.keys() == grads_gc.keys() and len(grads) > 100
    for name in grads:
        torch.testing.assert_close(grads_gc[name], grads[name], atol=1e-6, rtol=1e-6, msg=name)
    if not options.get("offload"):  # offloaded saves are CPU copies: counted anew
        assert kept_gc < (0.8 if options.get("every_n_layers") else 0.6) * kept, (kept_gc, kept)


def test_checkpointing_only_in_training_with_gradients(av_model, monkeypatch):
    calls = []
    av_model.activation_checkpointing_enable()
    for layer in av_model.modules():
        if isinstance(layer, CheckpointedLayer):
            func = layer._gradient_checkpointing_func
            monkeypatch.setattr(layer, "_gradient_checkpointing_func",
                                lambda *a, _f=func, **k: calls.append(1) or _f(*a, **k))
    args = inputs("text", "audio", "video")
    try:
        with torch.no_grad():
            av_model(**args)
        av_model.eval()
        av_model(**args)
        assert calls == []
        av_model.train()
        av_model(**args)
        # 2 text + 2 audio + 2 video + 2 fusion layers, and the 1-layer ViT once per chunk of frames
        encoder = next(m for m in av_model.modules() if type(m).__name__ == "PeVideoEncoder")
        frames = args["pixel_values_videos"].shape[0] * args["pixel_values_videos"].shape[1]
        chunks = -(-frames // encoder._chunk_size(None))
        assert len(calls) == 8 + chunks
    finally:
        av_model.activation_checkpointing_disable()


@pytest.mark.filterwarnings("ignore::pe_av.dispatch.BackendFallbackWarning")
def test_checkpointed_attentions_are_recorded_once(av_model):
    args = inputs("audio", "video")
    av_model.activation_checkpointing_enable()
    try:
        torch.manual_seed(3)
        output = av_model(**args, output_attentions=True)
        first_output(output).sum().backward()
    finally:
        av_model.activation_checkpointing_disable()
    torch.manual_seed(3)
    plain = av_model(**args, output_attentions=True)
    assert len(output.audio_video_outputs.attentions) == len(plain.audio_video_outputs.attentions) == 2
    for a, b in zip(output.audio_video_outputs.attentions, plain.audio_video_outputs.attentions):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["PeAudioEncoder", "ModernBertModel", "PeAudioVideoEncoder"])
def test_checkpointed_gradients_as_transformers(name, tmp_path):
    """Both checkpointed, in training without dropout: the same gradients for every parameter."""
    ref_cls, make_config, ours_cls, modalities = MODELS[name]
    config = make_config()
    for sub in [config, *(getattr(config, key) for key in ("audio_config", "video_config") if hasattr(config, key))]:
        sub.attention_dropout = 0.0
    torch.manual_seed(0)
    ref = sharpen(perturb_parameters(ref_cls(config).eval()))
    ref.save_pretrained(tmp_path)
    ours = ours_cls.from_pretrained(tmp_path)
    results = []
    for model in (ref, ours):
        model.train()
        model.gradient_checkpointing_enable()
        results.append(grads_of(model, inputs(*modalities)))
    (loss_ref, grads_ref, _), (loss_ours, grads_ours, _) = results
    torch.testing.assert_close(loss_ours, loss_ref, atol=1e-5, rtol=1e-4)
    assert grads_ours.keys() == grads_ref.keys()
    for key in grads_ref:
        scale = grads_ref[key].abs().max().item() + 1e-6
        assert (grads_ours[key] - grads_ref[key]).abs().max().item() <= 1e-3 * scale + 1e-6, key
