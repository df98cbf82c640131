"""The parts of transformers' ``PreTrainedModel`` API that scripts and ``transformers.Trainer`` use.

:class:`TransformersModelApi` is a base of :class:`~pe_av.models.base.PePreTrainedModel`; each method
behaves as transformers 5.24's on the same model class (values, return values, exceptions), except
where its docstring says otherwise:

- ``num_parameters``, ``get_input_embeddings`` / ``set_input_embeddings`` (ModernBERT: its token
  embedding; the ViT: None / refused; every other class raises ``NotImplementedError``, as
  transformers' do), ``get_output_embeddings`` (None), ``tie_weights`` (nothing to do: tied weights are
  shared modules already), ``can_generate`` (False);
- ``set_attn_implementation`` (transformers' names mapped by :mod:`pe_av.models.attn_names`);
- activation (gradient) checkpointing: ``activation_checkpointing_enable`` / ``_disable`` /
  ``is_activation_checkpointing`` and their deprecated aliases ``gradient_checkpointing_*`` /
  ``is_gradient_checkpointing`` (which warn ``FutureWarning`` as transformers' do);
- ``push_to_hub`` (in :mod:`pe_av.models.hub`).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ..dispatch import set_default_backend
from .attn_names import own_backend_modules, plan, record_attn_implementation
from .checkpointing import checkpoint_function, set_checkpointing
from .hub import push_to_hub

__all__ = ["TransformersModelApi"]


class TransformersModelApi:
    """transformers' ``PreTrainedModel`` methods and attributes, for ``PePreTrainedModel`` (an ``nn.Module``)."""

    #: transformers' default; each model sets its own (the encoders' raw input, ``input_ids`` for the rest)
    main_input_name: ClassVar[str] = "input_ids"
    supports_gradient_checkpointing: ClassVar[bool] = True
    #: read by ``Trainer`` after loading a checkpoint (transformers' value for these models: empty)
    _keys_to_ignore_on_save: ClassVar[frozenset[str]] = frozenset()
    #: tags ``push_to_hub`` adds to the model card (transformers': None, ``["timm"]`` for the ViT)
    model_tags: ClassVar[list[str] | None] = None

    # ------------------------------------------------------------------ parameters and embeddings

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of parameters, each shared (tied) one counted once; optionally only those requiring grad,
        or without the ``nn.Embedding`` weights (what ``Trainer`` uses to estimate FLOPs)."""
        skipped = set()
        if exclude_embeddings:
            skipped = {f"{name}.weight" for name, module in self.named_modules() if isinstance(module, nn.Embedding)}
        return sum(
            param.numel()
            for name, param in self.named_parameters()
            if name not in skipped and (param.requires_grad or not only_trainable)
        )

    def get_input_embeddings(self) -> nn.Module | None:
        """The token embedding (ModernBERT). Other models have none and raise ``NotImplementedError``, as
        transformers' do (the ViT returns None)."""
        raise NotImplementedError(
            f"`get_input_embeddings` not auto-handled for {type(self).__name__}; please override in the subclass."
        )

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the token embedding (ModernBERT); ``NotImplementedError`` for models without one."""
        raise NotImplementedError(
            f"`set_input_embeddings` not auto-handled for {type(self).__name__}; please override in the subclass."
        )

    def get_output_embeddings(self) -> None:
        """None: no model here has a language-model head."""
        return None

    def tie_weights(self, missing_keys: set[str] | None = None, recompute_mapping: bool = True) -> None:
        """Nothing to do: the weights transformers ties are one shared module here (see ``tied_prefixes``),
        so they stay tied whatever is loaded or assigned. Returns None, as transformers'."""
        return None

    @classmethod
    def can_generate(cls) -> bool:
        """False: these are encoders."""
        return False

    # ------------------------------------------------------------------ attention implementation

    def set_attn_implementation(self, attn_implementation: str | dict, allow_all_kernels: bool = False) -> None:
        """Switch the model's backend at run time, with transformers' names.

        ``"eager"`` and ``"sdpa"`` are pe_av's backends of those names, ``"triton"`` pe_av's kernels;
        transformers' other names (``"flash_attention_2"``, ``"flex_attention"``, hub kernels) run pe_av's
        fastest backend for the device and warn once (see :mod:`pe_av.models.attn_names`); unknown names
        raise ``ValueError``. A dict sets sub-models by their sub-config's name, as in transformers:
        ``{"": "sdpa", "text_config": "eager"}`` (``""``: the model's own layers, not its sub-models'; a
        key that is not a sub-config is a ``ValueError``, transformers ignores it).
        Each sub-model's ``config._attn_implementation`` then names the backend it runs. As
        :meth:`set_attn_impl`, this sets the default of every thread. ``allow_all_kernels`` is accepted
        and ignored (pe_av loads no hub kernels). Returns None.
        """
        for config, model, backend, whole in plan(self, self.config, attn_implementation, self._device()):
            if model is not None and whole:
                model.set_attn_impl(backend)
                record_attn_implementation(model, backend)
            elif model is not None:
                set_default_backend(own_backend_modules(model), backend)
            config._attn_implementation = backend

    # ------------------------------------------------------------------ activation checkpointing

    def activation_checkpointing_enable(
        self,
        activation_checkpointing_kwargs: dict[str, Any] | None = None,
        every_n_layers: int = 1,
        offload: bool = False,
    ) -> None:
        """Checkpoint every ``every_n_layers``-th repeated block (PE transformer layers, ModernBERT layers,
        ViT blocks) while training: their activations are recomputed in the backward pass instead of kept.

        ``activation_checkpointing_kwargs`` go to ``torch.utils.checkpoint.checkpoint`` (default
        ``{"use_reentrant": False}``); ``offload`` keeps the saved inputs in CPU memory. As in transformers,
        models whose main input is ``input_ids`` also make their token embedding's output require grad
        (:meth:`enable_input_require_grads`). Difference: the ViT blocks inside the video encoders are
        checkpointed too (transformers checkpoints a timm ViT only when it is the model itself).
        """
        set_checkpointing(self, True, checkpoint_function(activation_checkpointing_kwargs, offload), every_n_layers)
        if self.main_input_name == "input_ids":
            self.enable_input_require_grads()

    def activation_checkpointing_disable(self) -> None:
        """Turn checkpointing off (the input-grad hooks stay, as in transformers)."""
        set_checkpointing(self, False)

    @property
    def is_activation_checkpointing(self) -> bool:
        """Whether any block (or sub-model) has checkpointing on."""
        return any(getattr(module, "gradient_checkpointing", False) for module in self.modules())

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs: Any) -> None:
        """Deprecated alias of :meth:`activation_checkpointing_enable` (warns ``FutureWarning``, as transformers)."""
        _deprecated("gradient_checkpointing_enable", "activation_checkpointing_enable")
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def gradient_checkpointing_disable(self) -> None:
        """Deprecated alias of :meth:`activation_checkpointing_disable` (warns ``FutureWarning``)."""
        _deprecated("gradient_checkpointing_disable", "activation_checkpointing_disable")
        self.activation_checkpointing_disable()

    @property
    def is_gradient_checkpointing(self) -> bool:
        """Deprecated alias of :attr:`is_activation_checkpointing` (warns ``FutureWarning``)."""
        _deprecated("is_gradient_checkpointing", "is_activation_checkpointing")
        return self.is_activation_checkpointing

    def enable_input_require_grads(self) -> None:
        """Make the output of each sub-model's token embedding require grad (so that checkpointed layers see
        an input that does, with frozen embeddings): a forward hook, kept until
        :meth:`disable_input_require_grads`."""
        seen: dict[int, nn.Module] = {}
        for module in self.modules():
            if not hasattr(module, "set_attn_impl"):
                continue
            try:
                embedding = module.get_input_embeddings()
            except NotImplementedError:
                continue
            if embedding is not None:
                seen.setdefault(id(embedding), embedding)
        self.disable_input_require_grads()
        self._require_grads_hooks = [m.register_forward_hook(_output_requires_grad) for m in seen.values()]

    def disable_input_require_grads(self) -> None:
        """Remove the hooks of :meth:`enable_input_require_grads`."""
        for hook in self.__dict__.pop("_require_grads_hooks", []):
            hook.remove()

    push_to_hub = push_to_hub


def _output_requires_grad(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
    if torch.is_grad_enabled() and output.is_floating_point():
        output.requires_grad_(True)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"`{old}` is deprecated and will be removed in v6. Use `{new}` instead.", FutureWarning, stacklevel=3)
