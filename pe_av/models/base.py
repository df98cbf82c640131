"""``PePreTrainedModel``: loading, saving, backend switching and weight init shared by all models."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import ClassVar

import torch
import torch.nn as nn

from ..config import ConfigBase
from ..dispatch import BackendModule, backend_modules, backend_override, resolve_backend, set_default_backend
from ..loading import load_weights, read_state_dict, resolve_device, resolve_dtype, resolve_model_dir, save_state_dict
from ..loading import check_config_header, match_keys, read_header
from ..ops import RMSNorm, Snake1d
from .model_api import TransformersModelApi


class PePreTrainedModel(TransformersModelApi, nn.Module):
    """Base class of every pe_av model.

    Subclasses set ``config_class`` and, where the reference shares modules between sub-models,
    ``tied_prefixes`` (prefix of the copy → prefix of the saved original) so that saving writes a
    tied weight once, under the key transformers uses. transformers' model API (``num_parameters``,
    ``set_attn_implementation``, gradient checkpointing, ``push_to_hub``, ...) comes from
    :class:`~pe_av.models.model_api.TransformersModelApi`.
    """

    config_class: ClassVar[type[ConfigBase]]
    tied_prefixes: ClassVar[dict[str, str]] = {}

    def __init__(self, config: ConfigBase) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    # ------------------------------------------------------------------ backends

    @property
    def attn_impl(self) -> str:
        """The backend the model's ops run on in this thread (``"eager"``, ``"sdpa"`` or ``"triton"``)."""
        for module in self.modules():
            if isinstance(module, BackendModule):
                return module.backend
        return "sdpa"

    def set_attn_impl(self, attn_impl: str | None) -> PePreTrainedModel:
        """Switch every op of the model to ``attn_impl`` for all threads; ``None`` picks the device's default.

        This changes the model's default and is meant for setting a model up: call it while no other
        thread runs the model (a call in flight would switch backends between two of its ops). It
        raises ``RuntimeError`` while any thread is inside :meth:`using_attn_impl` on this model. Threads
        sharing a model should each choose their backend with :meth:`using_attn_impl` instead.
        """
        set_default_backend(backend_modules(self), resolve_backend(attn_impl, self._device()))
        return self

    @contextlib.contextmanager
    def using_attn_impl(self, attn_impl: str | None) -> Iterator[PePreTrainedModel]:
        """Run the model on ``attn_impl`` in the current thread only, inside the ``with`` block.

        Other threads keep theirs (their own ``using_attn_impl``, else the default of
        :meth:`set_attn_impl`), so one model can serve threads that each want another backend::

            with model.using_attn_impl("eager"):
                out = model(**inputs)

        Blocks nest (the innermost wins); ``None`` picks the device's default. A thread started inside
        the block does not inherit it (see :func:`pe_av.dispatch.backend_override`).
        """
        backend = resolve_backend(attn_impl, self._device())
        with backend_override(backend_modules(self), backend):
            yield self

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def device(self) -> torch.device:
        return self._device()

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # ------------------------------------------------------------------ init

    @torch.no_grad()
    def init_weights(self) -> None:
        """Random initialisation following the reference's scheme (for models built from a config)."""
        std = getattr(self.config, "initializer_range", 0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv1d):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (RMSNorm,)):
                nn.init.ones_(module.weight)
            elif isinstance(module, Snake1d):
                nn.init.ones_(module.alpha)
            if isinstance(getattr(module, "class_embedding", None), nn.Parameter):
                width = module.class_embedding.shape[-1]
                nn.init.normal_(module.class_embedding, std=width**-0.5 * std)

    def _maybe_init_weights(self) -> None:
        if not next(self.parameters()).is_meta:
            self.init_weights()

    # ------------------------------------------------------------------ loading / saving

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        attn_impl: str | None = None,
        attn_implementation: str | None = None,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        config: ConfigBase | None = None,
        check_weights: bool = True,
    ) -> PePreTrainedModel:
        """Load a checkpoint saved by transformers (or by :meth:`save_pretrained`).

        Before any model is built, the config is compared with the checkpoint's safetensors header
        (names and shapes only): a config asking for more layers, or other widths, than the checkpoint
        holds is a ``CheckpointError`` naming the config field, found in milliseconds. The model is then
        built on the meta device, matched key by key against the header (missing, unexpected or misshapen
        keys are named before any tensor data is read), and filled with the checkpoint's tensors.

        Args:
            path: a directory with ``config.json`` and ``model.safetensors`` (or a sharded index), or a
                hub id when ``huggingface_hub`` is installed.
            attn_impl: ``"eager"``, ``"sdpa"`` or ``"triton"``; ``None`` picks the device's default.
            attn_implementation: transformers' spelling of ``attn_impl`` (give one or the other).
            dtype: floating dtype of the weights (default float32; ``"auto"`` keeps the stored one).
            device: where to put the weights (default CPU).
            config: use this config instead of the directory's ``config.json``.
            check_weights: check that every floating weight is finite once cast to ``dtype`` (one
                reduction per tensor); a NaN or Inf is a ``CheckpointError`` naming the first such keys,
                rather than a model that returns NaN. ``False`` skips the check (e.g. to inspect a
                damaged checkpoint).
        """
        if attn_impl is not None and attn_implementation is not None and attn_impl != attn_implementation:
            raise ValueError(
                f"attn_impl={attn_impl!r} and attn_implementation={attn_implementation!r} disagree; give one"
            )
        if not isinstance(check_weights, bool):
            raise TypeError(f"check_weights must be True or False, got {check_weights!r}")
        attn_impl = attn_impl if attn_impl is not None else attn_implementation
        device = resolve_device(device)
        backend = resolve_backend(attn_impl, device)  # fail fast, before reading weights
        directory = resolve_model_dir(path)
        source = "config.json" if config is None else "config"
        if config is None:
            config = cls.config_class.from_pretrained(directory)
        elif not isinstance(config, cls.config_class):
            raise TypeError(f"config must be a {cls.config_class.__name__}, got {type(config).__name__}")
        target_dtype = resolve_dtype(dtype, config.extra)
        header = read_header(directory)
        check_config_header(config, header, cls, source)  # before building anything
        with torch.device("meta"):
            model = cls(config)
        match_keys(model, header)  # before reading any tensor data
        load_weights(model, read_state_dict(directory, device), target_dtype, check_weights=check_weights)
        model.set_attn_impl(backend)
        return model.eval()

    def save_pretrained(self, directory: str | os.PathLike, max_shard_size: int | str | None = None) -> None:
        """Write ``config.json`` and the weights so that both pe_av and transformers can load them.

        Tied copies are written once, under the reference's key. With ``max_shard_size`` (bytes or a
        string like ``"2GB"``) large checkpoints are split into shards plus an index.
        """
        directory = os.fspath(directory)
        state = {
            key: tensor
            for key, tensor in self.state_dict().items()
            if not any(key.startswith(prefix) for prefix in self.tied_prefixes)
        }
        self.config.extra["architectures"] = [type(self).__name__]
        self.config.extra["dtype"] = str(self.dtype).removeprefix("torch.")
        self.config.save_pretrained(directory)
        save_state_dict(state, directory, max_shard_size)
