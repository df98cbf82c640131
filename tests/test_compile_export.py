"""``torch.export.export`` of every model and ``torch.compile(fullgraph=True)`` of a representative subset,
on the tiny models with ``attn_impl="sdpa"`` on CPU: the traced programs give the eager outputs (≤ 1e-5).

The inputs are padded in every modality, so the traced general paths (every frame through the ViT,
per-sample alignment, masks kept when full) are compared with the eager shortcuts. While tracing,
checks of values are skipped (see :mod:`pe_av.models.inputs`): they are tested eagerly elsewhere.

Compiling is slow on small CPUs (inductor needs over a minute per tiny model on two cores), so
``torch.compile`` runs with ``backend="eager"``: with ``fullgraph=True`` it fails on any graph break, which
is where data-dependent Python lives; the export of every model traces the same code down to aten ops.
Select these tests with ``-k "compile or export"``.
"""

from collections.abc import Mapping

import pytest
import torch

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
from pe_av.models.inputs import tracing
from tiny_configs import CONFIGS, build

pytestmark = pytest.mark.filterwarnings("ignore::pe_av.dispatch.BackendFallbackWarning")

ATOL = 1e-5
#: argument kinds of :func:`model_inputs.valid`, in each forward's positional order
ARGUMENTS = {
    PeAudioEncoder: ("audio", "audio_mask"),
    PeVideoEncoder: ("video", "video_mask"),
    PeAudioVideoEncoder: ("audio", "video", "audio_mask", "video_mask"),
    ModernBertModel: ("ids", "text_mask"),
    PeVisionModel: ("image",),
    PeAudioModel: ("ids", "audio", "text_mask", "audio_mask"),
    PeAudioFrameLevelModel: ("ids", "audio", "text_mask", "audio_mask"),
    PeVideoModel: ("ids", "video", "text_mask", "video_mask"),
    PeAudioVideoModel: ("ids", "video", "audio", "text_mask", "video_mask", "audio_mask"),
}
COMPILED = (PeVisionModel, PeAudioVideoModel)  # the latter runs the text, audio, video and fusion forwards


def model_and_args(cls):
    return build(cls).set_attn_impl("sdpa"), tuple(valid(kind) for kind in ARGUMENTS[cls])


def assert_close(expected, got, path="output"):
    if expected is None:
        assert got is None, path
    elif isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype == expected.dtype, path
        assert torch.allclose(expected, got, atol=ATOL, rtol=0), (path, (expected - got).abs().max())
    elif isinstance(expected, Mapping):
        assert type(got) is type(expected) and list(got.keys()) == list(expected.keys()), path
        for key in expected.keys():
            assert_close(expected[key], got[key], f"{path}.{key}")
        for name in expected._attribute_only:
            assert_close(getattr(expected, name), getattr(got, name), f"{path}.{name}")
    else:
        assert type(got) is type(expected) and len(got) == len(expected), path
        for i, (e, g) in enumerate(zip(expected, got)):
            assert_close(e, g, f"{path}[{i}]")


def test_every_model_has_arguments():
    assert set(ARGUMENTS) == set(CONFIGS)


@pytest.mark.parametrize("cls", list(ARGUMENTS), ids=lambda cls: cls.__name__)
def test_export(cls):
    model, args = model_and_args(cls)
    with torch.no_grad():
        expected = model(*args)
    program = torch.export.export(model, args)
    with torch.no_grad():
        got = program.module()(*args)
    assert_close(expected, got)


@pytest.mark.parametrize("cls", COMPILED, ids=lambda cls: cls.__name__)
def test_compile_fullgraph(cls):
    model, args = model_and_args(cls)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        expected, got = model(*args), compiled(*args)
    assert_close(expected, got)


@pytest.mark.parametrize("attn_impl", ["sdpa", "eager"])
def test_compile_fullgraph_with_output_options(attn_impl):
    """Selected hidden states, attention probabilities (sdpa runs them eagerly, without the warning
    while tracing) and tuples trace too."""
    model, args = model_and_args(ModernBertModel)
    model.set_attn_impl(attn_impl)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    options = dict(output_hidden_states=-1, output_attentions=True, return_dict=False)
    with torch.no_grad():
        expected, got = model(*args, **options), compiled(*args, **options)
    assert_close(expected, got)
    assert isinstance(got, tuple) and len(got) == 3 and got[1][0] is None and len(got[2]) == 2


class _Probe(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(tracing())
        return x + 1


def test_tracing_is_false_eagerly_and_true_while_compiling_or_exporting():
    probe = _Probe()
    probe(torch.zeros(1))
    torch._dynamo.reset()
    torch.compile(probe, fullgraph=True, backend="eager")(torch.zeros(1))
    torch.export.export(probe, (torch.zeros(1),))
    assert probe.seen[0] is False and probe.seen[1:] and all(probe.seen[1:])


def test_value_checks_still_run_eagerly():
    model, (ids, mask) = model_and_args(ModernBertModel)
    with pytest.raises(ValueError, match="input_ids must lie in"):
        model(ids + 1000, mask)
