"""Snake's compiled one-pass CPU forms (``pe_av.ops._snake_cpu``) against the eager form, and their fallbacks.

The compile threshold is lowered so that small inputs take the compiled path (one compile of the
forward and one of the backward for this file, a few seconds with inductor's cache warm).
"""

import pytest
import torch

from pe_av.ops import _snake_cpu, snake, snake_fused, snake_one_pass, snake_sdpa


@pytest.fixture
def compiled_path(monkeypatch):
    monkeypatch.setattr(_snake_cpu, "MIN_ELEMENTS", 0)
    monkeypatch.setenv("PE_AV_SNAKE_COMPILE", "1")
    monkeypatch.setattr(_snake_cpu, "_failure", [])
    if _snake_cpu.compiled_forms() is None:
        pytest.fail("torch.compile should be usable in the test environment")


def inputs(channels_last, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(1, 6, 1, 53, generator=gen)
    alpha = 0.2 + torch.rand(1, 6, 1, 1, generator=gen)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), alpha


@pytest.mark.parametrize("channels_last", [False, True])
def test_one_pass_forward_matches_eager(compiled_path, channels_last):
    x, alpha = inputs(channels_last)
    got = snake_one_pass(x, alpha)
    torch.testing.assert_close(got, snake(x, alpha), atol=2e-6, rtol=1e-6)
    if channels_last:
        assert got.is_contiguous(memory_format=torch.channels_last)


def test_one_pass_backward_matches_autograd_of_eager(compiled_path):
    x, alpha = inputs(False, seed=1)
    grad = torch.randn_like(x)
    x1, a1 = x.clone().requires_grad_(), alpha.clone().requires_grad_()
    snake(x1, a1).backward(grad)
    x2, a2 = x.clone().requires_grad_(), alpha.clone().requires_grad_()
    out = snake_sdpa(x2, a2)
    assert out.grad_fn is not None and "SnakeOnePass" in type(out.grad_fn).__name__
    out.backward(grad)
    torch.testing.assert_close(out.detach(), snake(x, alpha), atol=2e-6, rtol=1e-6)
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a2.grad, a1.grad, atol=1e-4, rtol=1e-5)


def test_small_inputs_do_not_compile(monkeypatch):
    def no_compile():
        raise AssertionError("compiled for a small input")

    monkeypatch.setattr(_snake_cpu, "compiled_forms", no_compile)
    x, alpha = inputs(False)
    assert x.numel() < _snake_cpu.MIN_ELEMENTS
    torch.testing.assert_close(snake_one_pass(x, alpha), snake(x, alpha), atol=1e-6, rtol=1e-6)
    assert torch.equal(snake_sdpa(x, alpha), snake(x, alpha))


def test_a_compile_failure_falls_back_to_the_same_numbers(compiled_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(_snake_cpu, "compiled_forms", lambda: (broken, broken))
    x, alpha = inputs(True, seed=2)
    assert torch.equal(snake_one_pass(x, alpha), snake_fused(x, alpha))
    assert not _snake_cpu.compile_enabled()  # later calls do not try again
    x.requires_grad_()
    out = snake_sdpa(x, alpha)
    torch.testing.assert_close(out, snake(x, alpha))
    out.sum().backward()
    assert x.grad is not None


def test_the_environment_switch_turns_compiling_off(monkeypatch):
    monkeypatch.setenv("PE_AV_SNAKE_COMPILE", "0")
    assert _snake_cpu.compiled_forms() is None
    assert not _snake_cpu.wants_compiled(1 << 30)
    monkeypatch.setenv("PE_AV_SNAKE_COMPILE", "yes")
    with pytest.raises(ValueError, match="PE_AV_SNAKE_COMPILE"):
        _snake_cpu.wants_compiled(1)


def test_auto_compiles_only_after_enough_work(monkeypatch):
    """The default policy: short runs never pay the compile, long ones switch to the one-pass form."""
    monkeypatch.delenv("PE_AV_SNAKE_COMPILE", raising=False)
    monkeypatch.setattr(_snake_cpu, "_failure", [])
    monkeypatch.setattr(_snake_cpu, "_seen", [0])
    monkeypatch.setattr(_snake_cpu, "COMPILE_AFTER_ELEMENTS", 1000)
    assert [_snake_cpu.wants_compiled(400) for _ in range(3)] == [False, False, True]
