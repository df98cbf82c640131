"""CPU inference runs the PE transformer's MLP by blocks of tokens (to bound a long clip's memory):
the blocked form must compute what the one-shot form computes, and must stay out of the way of
autograd, where the activations are kept anyway."""

import pytest
import torch

from pe_av.models import pe_transformer
from pe_av.models.pe_transformer import SwiGLUMLP


def _mlp(hidden=24, intermediate=40):
    torch.manual_seed(0)
    return SwiGLUMLP(hidden, intermediate).eval()


@pytest.mark.parametrize("shape", [(1, 23, 24), (3, 9, 24), (50, 24)])
def test_blocked_mlp_equals_the_one_shot_mlp(monkeypatch, shape):
    mlp = _mlp()
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = mlp._mlp(x)
        monkeypatch.setattr(pe_transformer, "CPU_MLP_TOKENS", 4)  # 23, 27 and 50 rows: ragged last blocks
        got = mlp(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_blocked_mlp_runs_in_blocks(monkeypatch):
    mlp = _mlp()
    sizes = []
    one_shot = mlp._mlp
    monkeypatch.setattr(mlp, "_mlp", lambda x: sizes.append(x.shape[0]) or one_shot(x))
    monkeypatch.setattr(pe_transformer, "CPU_MLP_TOKENS", 4)
    with torch.no_grad():
        mlp(torch.randn(2, 5, 24))
    assert sizes == [4, 4, 2]


def test_mlp_under_autograd_is_one_shot_and_differentiable(monkeypatch):
    mlp = _mlp()
    sizes = []
    one_shot = mlp._mlp
    monkeypatch.setattr(mlp, "_mlp", lambda x: sizes.append(tuple(x.shape)) or one_shot(x))
    monkeypatch.setattr(pe_transformer, "CPU_MLP_TOKENS", 4)
    x = torch.randn(2, 5, 24, requires_grad=True)
    mlp(x).sum().backward()
    assert sizes == [(2, 5, 24)]
    assert x.grad is not None and torch.isfinite(x.grad).all()
