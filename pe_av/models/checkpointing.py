"""Gradient (activation) checkpointing of the repeated blocks, as transformers 5.24 does it.

The blocks are the PE transformer layers (audio, video and fusion encoders), the ModernBERT layers and
the ViT blocks: each derives from :class:`CheckpointedLayer`. When checkpointing is on for a block, it
is in training mode and gradients are being recorded, its forward runs inside
``torch.utils.checkpoint.checkpoint`` (by default ``use_reentrant=False``, as transformers 5): only the
block's inputs are kept for the backward pass, which runs the block again to get the rest. The
recomputation restores the RNG state, so dropout draws the same masks and gradients are unchanged.

The model side (:func:`set_checkpointing`) is what transformers' ``activation_checkpointing_enable`` /
``gradient_checkpointing_enable`` do: set ``gradient_checkpointing`` and the checkpoint function on
every block (``every_n_layers``: on every n-th block only, counted in module order), optionally keeping
the saved inputs on the CPU (``offload``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

__all__ = ["CheckpointedLayer", "checkpoint_function", "set_checkpointing"]


class CheckpointedLayer(nn.Module):
    """A repeated block whose forward can run under gradient checkpointing.

    Subclasses implement their computation in ``layer_forward(*inputs, attentions=None)`` (``inputs``
    positional: tensors or None, the checkpoint's inputs; ``attentions``: a list that receives the
    block's one attention-probability tensor, or None). ``forward`` runs it, checkpointed when
    :attr:`gradient_checkpointing` is set, the block is training and gradients are enabled.
    """

    #: set by ``activation_checkpointing_enable`` / ``gradient_checkpointing_enable`` (transformers' attribute)
    gradient_checkpointing: bool = False
    _gradient_checkpointing_func: Callable[..., Any] | None = None

    def layer_forward(self, *inputs: Any, attentions: list[torch.Tensor] | None = None) -> Any:
        raise NotImplementedError

    def forward(self, *inputs: Any, attentions: list[torch.Tensor] | None = None) -> Any:
        if not (self.gradient_checkpointing and self.training and torch.is_grad_enabled()):
            return self.layer_forward(*inputs, attentions=attentions)
        run = self._gradient_checkpointing_func or checkpoint_function(None)
        if attentions is None:
            return run(functools.partial(self.layer_forward, attentions=None), *inputs)
        # the probabilities leave the checkpoint as one more output (a list given to it would get a second
        # entry when the backward pass recomputes the block); outputs stay flat tensors for use_reentrant=True
        returns_tuple = []

        def recording(*args: Any) -> tuple[torch.Tensor, ...]:
            probs: list[torch.Tensor] = []
            out = self.layer_forward(*args, attentions=probs)
            returns_tuple[:] = [isinstance(out, tuple)]
            return (*out, *probs) if returns_tuple[0] else (out, *probs)

        *out, probs = run(recording, *inputs)
        attentions.append(probs)
        return tuple(out) if returns_tuple[0] else out[0]


def checkpoint_function(kwargs: dict[str, Any] | None, offload: bool = False) -> Callable[..., Any]:
    """``torch.utils.checkpoint.checkpoint`` with ``kwargs`` (default ``{"use_reentrant": False}``), saving
    its inputs to (pinned, where a GPU exists) CPU memory when ``offload``."""
    kwargs = {"use_reentrant": False} if kwargs is None else dict(kwargs)
    if not offload:
        return functools.partial(checkpoint, **kwargs)
    pin = torch.cuda.is_available()  # pinned host memory needs a GPU (on a CPU-only machine: plain copies)

    def offloaded(function: Callable[..., Any], *args: Any) -> Any:
        with torch.autograd.graph.save_on_cpu(pin_memory=pin, device_type="cuda"):
            return checkpoint(function, *args, **kwargs)

    return offloaded


def set_checkpointing(
    model: nn.Module, enable: bool, function: Callable[..., Any] | None = None, every_n_layers: int = 1
) -> None:
    """Turn checkpointing on (every ``every_n_layers``-th block, in module order) or off in ``model``.

    The models (modules with a ``config``) get ``gradient_checkpointing`` too, as transformers sets it on
    every module that has the attribute.
    """
    if isinstance(every_n_layers, bool) or not isinstance(every_n_layers, int) or every_n_layers < 1:
        raise ValueError(f"every_n_layers must be a positive integer, got {every_n_layers!r}")
    index = 0
    for module in model.modules():
        if isinstance(module, CheckpointedLayer):
            module._gradient_checkpointing_func = function
            module.gradient_checkpointing = enable and index % every_n_layers == 0
            index += 1
        elif hasattr(module, "config") and hasattr(module, "set_attn_impl"):
            module.gradient_checkpointing = enable
