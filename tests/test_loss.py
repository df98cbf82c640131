"""Sigmoid (SigLIP) contrastive losses vs a direct, loop-by-loop evaluation of the formula.

The reference computes ``-logsigmoid(I * logits)`` (off-diagonal terms constant, zero gradient); these
tests pin the intended formula instead: ``(1/N) Σ_ij log(1 + exp(-y_ij z_ij))`` with ``y = 2·I − 1``.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from pe_av.models.loss import frame_level_sigmoid_loss, sigmoid_contrastive_loss


def pair_term(z: float, matching: bool) -> float:
    """``-log σ(y z)`` in double precision, written as ``log(1 + e^{-y z})`` with a stable branch."""
    t = -z if matching else z
    return t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))


def loop_clip_loss(logits: torch.Tensor) -> float:
    n = logits.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            total += pair_term(float(logits[i, j]), i == j)
    return total / n


def loop_frame_loss(logits: torch.Tensor, valid: list[list[bool]]) -> float:
    n, _, frames = logits.shape
    total = 0.0
    for i in range(n):
        kept = [t for t in range(frames) if valid[i][t]]
        for t in kept:
            for j in range(n):
                total += pair_term(float(logits[i, j, t]), i == j) / len(kept)
    return total / n


@pytest.mark.parametrize("n", [1, 2, 5])
def test_clip_loss_matches_formula(n):
    logits = torch.randn(n, n) * 4
    assert abs(sigmoid_contrastive_loss(logits).item() - loop_clip_loss(logits)) <= 1e-5


def test_clip_loss_extreme_logits_finite():
    logits = torch.tensor([[80.0, -90.0], [70.0, -60.0]])
    loss = sigmoid_contrastive_loss(logits)
    assert torch.isfinite(loss) and abs(loss.item() - loop_clip_loss(logits)) <= 1e-3


def test_clip_loss_gradient_off_diagonal():
    logits = torch.randn(4, 4, requires_grad=True)
    sigmoid_contrastive_loss(logits).backward()
    off = ~torch.eye(4, dtype=torch.bool)
    assert (logits.grad[off] != 0).all()
    # d/dz of log(1 + e^{z}) / N for a negative pair is σ(z) / N
    assert torch.allclose(logits.grad[off], torch.sigmoid(logits.detach())[off] / 4)
    # the reference's formula: off-diagonal gradient is exactly zero (the defect we fix)
    ref_logits = logits.detach().clone().requires_grad_()
    (-F.logsigmoid(torch.eye(4) * ref_logits).sum() / 4).backward()
    assert (ref_logits.grad[off] == 0).all()


@pytest.mark.parametrize("shape", [(2, 3), (3, 3, 2, 1), (3,)])
def test_clip_loss_rejects_non_square(shape):
    with pytest.raises(ValueError, match="square"):
        sigmoid_contrastive_loss(torch.zeros(shape))


def test_frame_loss_matches_formula_with_mask():
    logits = torch.randn(3, 3, 5) * 3
    valid = [[True] * 5, [True, True, False, False, False], [True, False, False, False, False]]
    got = frame_level_sigmoid_loss(logits, torch.tensor(valid))
    assert abs(got.item() - loop_frame_loss(logits, valid)) <= 1e-5


def test_frame_loss_without_mask_is_mean_over_frames():
    logits = torch.randn(4, 4, 6)
    got = frame_level_sigmoid_loss(logits)
    assert abs(got.item() - loop_frame_loss(logits, [[True] * 6] * 4)) <= 1e-5
    per_frame = torch.stack([sigmoid_contrastive_loss(logits[..., t]) for t in range(6)])
    assert torch.allclose(got, per_frame.mean())


def test_frame_loss_single_frame_is_clip_loss():
    logits = torch.randn(3, 3, 1)
    assert torch.allclose(frame_level_sigmoid_loss(logits), sigmoid_contrastive_loss(logits[..., 0]))


def test_frame_loss_ignores_padded_frames_and_empty_clips():
    logits = torch.randn(2, 2, 4, requires_grad=True)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    loss = frame_level_sigmoid_loss(logits, mask)
    loss.backward()
    assert (logits.grad[:, :, 2:] == 0).all() and (logits.grad[1] == 0).all()
    assert (logits.grad[0, 1, :2] != 0).all()  # negatives of valid frames get gradient
    assert abs(loss.item() - loop_frame_loss(logits.detach(), [[True, True, False, False], [False] * 4])) <= 1e-5


def test_frame_loss_rejects_bad_shape():
    with pytest.raises(ValueError, match="frames"):
        frame_level_sigmoid_loss(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="frames"):
        frame_level_sigmoid_loss(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="frame_mask"):
        frame_level_sigmoid_loss(torch.zeros(2, 2, 4), torch.ones(2, 3, dtype=torch.bool))
