"""No host synchronisation in forward when asked (``pe_av.no_host_sync``) or while a CUDA graph captures.

On CPU a TorchDispatchMode records every op that hands a tensor's value to Python (``.item()``,
``bool(tensor)``, ``.tolist()`` go through ``aten::_local_scalar_dense`` / ``aten::is_nonzero``) or whose
output shape depends on values (``nonzero``): inside ``no_host_sync()`` a whole PeAudioVideoModel forward
(padded audio, video and text) makes none, and gives the same numbers as the checked call; outside it the
same forward makes some (so the check can fail). On CUDA (skipped without a GPU) the audio encoder is
captured in a CUDA graph and replayed.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pe_av import no_host_sync
from pe_av.models.inputs import tracing
from test_backend_triton import all_inputs, audio_inputs, audio_video_model, audio_encoder

HOST_READS = {"_local_scalar_dense", "is_nonzero", "nonzero", "equal", "item"}


class HostReads(TorchDispatchMode):
    """Records the ops of :data:`HOST_READS` run inside the mode."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in HOST_READS:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def forward(model, inputs):
    with torch.no_grad():
        out = model(**inputs)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_forward_reads_nothing_on_the_host_when_asked(backend):
    model = audio_video_model("cpu").set_attn_impl(backend)
    inputs = all_inputs("cpu")
    checked = HostReads()
    with checked:
        expected = forward(model, inputs)
    assert checked.seen, "the checked forward reads values: the recorder must see them"
    unchecked = HostReads()
    with no_host_sync(), unchecked:
        assert tracing()
        got = forward(model, inputs)
    assert unchecked.seen == []
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5, msg=name)
    assert not tracing()


def test_the_switch_nests_and_resets():
    with no_host_sync():
        with no_host_sync(False):
            assert not tracing()
        assert tracing()
    assert not tracing()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_cuda_graph_captures_an_encoder(dtype):
    model = audio_encoder("cuda", dtype).set_attn_impl("triton")
    inputs = audio_inputs("cuda", dtype)
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up (kernel compilation, allocator) outside the capture
            model(**inputs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = model(**inputs).last_hidden_state
        graph.replay()
        torch.cuda.synchronize()
    torch.testing.assert_close(captured, expected, atol=1e-4 if dtype == torch.float32 else 2e-2, rtol=1e-3)
