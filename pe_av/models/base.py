"""``PePreTrainedModel``: loading, saving, backend switching and weight init shared by all models."""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ..config import ConfigBase
from ..dispatch import BackendModule, backend_modules, backend_override, resolve_backend, set_default_backend
from ..hub import hub_offline, resolve_model_dir
from ..load_options import auto_dtype, resolve_dtype, resolve_load_device, take_loading_kwargs
from .attn_names import backend_for, record_attn_implementation
from ..loading import TensorInfo, check_config_header, index_dtype, load_weights, match_keys, read_header, read_state_dict
from ..loading import save_state_dict
from ..ops import RMSNorm, Snake1d
from .model_api import TransformersModelApi

logger = logging.getLogger("pe_av")


def _coerce_config(model_cls: type[PePreTrainedModel], config: Any) -> Any:
    """A transformers config object of the model's type, converted to pe_av's through its ``to_dict()``
    (anything else is returned as it is, for the constructor's own check)."""
    wanted = model_cls.config_class
    if isinstance(config, ConfigBase) or not callable(getattr(config, "to_dict", None)):
        return config
    if getattr(config, "model_type", None) != wanted.model_type:
        raise TypeError(f"{model_cls.__name__} needs a {wanted.__name__} (pe_av's or transformers'), got "
                        f"{type(config).__module__.split('.')[0]}'s {type(config).__name__}")
    return wanted.from_dict(config.to_dict())


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap each subclass's ``__init__`` so that a transformers config object is converted before the
        subclass reads it (``PeAudioVideoModel(transformers.PeAudioVideoConfig())`` builds as transformers')."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_converts_config", False):
            return

        @functools.wraps(init)
        def __init__(self: PePreTrainedModel, config: Any, *args: Any, **kw: Any) -> None:
            init(self, _coerce_config(type(self), config), *args, **kw)

        __init__._converts_config = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]

    def __init__(self, config: ConfigBase) -> None:
        super().__init__()
        config = _coerce_config(type(self), config)
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got "
                            f"{type(config).__module__.split('.')[0]}'s {type(config).__name__}")
        self.config = config

    @property
    def name_or_path(self) -> str:
        """Where the model was loaded from (``config.name_or_path``, as transformers)."""
        return self.config.name_or_path

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
        backend = resolve_backend(attn_impl, self._device())
        set_default_backend(backend_modules(self), backend)
        record_attn_implementation(self, backend)  # config._attn_implementation, where transformers users read it
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
        pretrained_model_name_or_path: str | os.PathLike | None,
        *model_args: Any,
        config: ConfigBase | str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        ignore_mismatched_sizes: bool = False,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        revision: str = "main",
        use_safetensors: bool | None = None,
        subfolder: str = "",
        attn_impl: str | None = None,
        attn_implementation: str | None = None,
        dtype: torch.dtype | str | None = None,
        torch_dtype: torch.dtype | str | None = None,
        device: torch.device | str | int | None = None,
        device_map: Any = None,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        output_loading_info: bool = False,
        check_weights: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Load a checkpoint saved by transformers (or by :meth:`save_pretrained`), with transformers' keywords.

        The path is a directory with ``config.json`` and ``model.safetensors`` (or a sharded index), or a hub
        id (``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``force_download`` and ``subfolder``
        go to ``huggingface_hub``; offline, only the cache is read). ``dtype`` (``torch_dtype``: older name)
        defaults to ``"auto"``: the config's dtype, else the stored one. ``device``/``device_map``: one device
        (see :mod:`pe_av.load_options`). ``attn_impl``/``attn_implementation``: ``"eager"``, ``"sdpa"``,
        ``"triton"``, or transformers' names (mapped, with a warning); ``None`` picks the device's fastest
        (``"eager"`` when ``output_attentions=True``). Other keywords naming config attributes
        (``output_hidden_states=True``, ``num_labels=…``) override the config, as in transformers.
        ``ignore_mismatched_sizes=True`` re-initialises weights whose shape differs from the checkpoint's and
        lists them (also in ``output_loading_info=True``'s ``(model, info)``). ``state_dict`` with a ``None``
        path and ``config`` loads those tensors.

        Before any model is built, the config is compared with the checkpoint's safetensors header (names
        and shapes only): a config asking for more layers, or other widths, than the checkpoint holds is a
        ``CheckpointError`` naming the config field. The model is then built on the meta device, matched
        key by key (missing, unexpected or misshapen keys are named before any tensor data is read), and
        filled. ``check_weights`` checks that every floating weight is finite once cast (``False`` skips it).
        """
        if attn_impl is not None and attn_implementation is not None and attn_impl != attn_implementation:
            raise ValueError(f"attn_impl={attn_impl!r} and attn_implementation={attn_implementation!r} disagree; give one")
        if not isinstance(check_weights, bool):
            raise TypeError(f"check_weights must be True or False, got {check_weights!r}")
        take_loading_kwargs(kwargs)
        target = resolve_dtype(dtype, torch_dtype)
        device = resolve_load_device(device, device_map)
        requested = attn_impl if attn_impl is not None else attn_implementation
        # fail fast, before reading anything: attn_impl takes pe_av's names, attn_implementation transformers'
        backend = resolve_backend(attn_impl, device) if attn_impl is not None else backend_for(attn_implementation, device)
        path = pretrained_model_name_or_path
        if state_dict is not None and path is not None:
            raise ValueError("`state_dict` cannot be passed together with a model name or a `gguf_file`. "
                             "Use one of the two loading strategies.")
        hub = dict(subfolder=subfolder, revision=revision, cache_dir=cache_dir, token=token,
                   local_files_only=local_files_only or hub_offline(), force_download=force_download)
        directory = None if path is None and state_dict is not None else resolve_model_dir(path, **hub)
        config, model_kwargs, source = cls._loading_config(config, directory, kwargs, hub)
        if requested is None and config.output_attentions:
            backend = "eager"  # attention weights come from the eager forms, as in transformers
        if directory is not None:
            header = read_header(directory, use_safetensors)
        else:
            header = {k: TensorInfo(tuple(t.shape), str(t.dtype)) for k, t in state_dict.items()}
        if target == "auto":
            target = auto_dtype(config.dtype, index_dtype(directory) if directory else None, [i.dtype for i in header.values()])
        config.dtype = target
        for key in config.sub_config_classes:  # as transformers: the config and its direct sub-configs
            getattr(config, key).dtype = target
        config.name_or_path = path
        _set_attn_implementation(config, backend)
        check_config_header(config, header, cls, source, compare_shapes=not ignore_mismatched_sizes)
        with torch.device("meta"):
            model = cls(config, *model_args, **model_kwargs)
        match_keys(model, header, ignore_mismatched_sizes)  # before reading any tensor data
        state = read_state_dict(directory, device) if directory is not None else {k: t.to(device) for k, t in state_dict.items()}
        mismatched = load_weights(model, state, target, check_weights, ignore_mismatched_sizes, device)
        if mismatched:
            logger.warning(f"{cls.__name__} LOAD REPORT from: {path}\n" + "\n".join(
                f"{key} | MISMATCH | Reinit due to size mismatch - ckpt: {ckpt} vs model:{ours}" for key, ckpt, ours in mismatched
            ))
        model.set_attn_impl(backend)
        model.eval()
        if output_loading_info:
            info = {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(mismatched), "error_msgs": []}
            return model, info
        return model

    @classmethod
    def _loading_config(
        cls, config: Any, directory: str | None, kwargs: dict[str, Any], hub: dict[str, Any]
    ) -> tuple[ConfigBase, dict[str, Any], str]:
        """The config to build from, the keywords left for the model's constructor, and the config's name
        in errors. Keywords naming config attributes override them, also on a ``config=`` object (which is
        copied; transformers would pass them to the constructor instead, and fail)."""
        if config is None:
            if directory is None:
                raise ValueError("from_pretrained(None, state_dict=...) needs config=")
            config, unused = cls.config_class.from_pretrained(directory, return_unused_kwargs=True, **kwargs)
            return config, unused, "config.json"
        if isinstance(config, (str, os.PathLike)):
            config = cls.config_class.from_pretrained(config, **hub)
        else:
            config = _coerce_config(cls, config)
            if not isinstance(config, cls.config_class):
                raise TypeError(f"config must be a {cls.config_class.__name__}, got {type(config).__name__}")
            config = copy.deepcopy(config)
        return config, config._apply_kwargs(kwargs), "config"

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        push_to_hub: bool = False,
        max_shard_size: int | str | None = None,
        safe_serialization: bool = True,
        variant: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Write ``config.json`` (as transformers writes it) and the weights, so that both pe_av and transformers
        load them.

        Tied copies are written once, under the reference's key. With ``max_shard_size`` (bytes or a string
        like ``"2GB"``) large checkpoints are split into shards plus an index. Only safetensors are written.
        """
        if push_to_hub:
            raise NotImplementedError("pe_av does not push to the hub; save locally and upload with huggingface_hub")
        if not safe_serialization or variant is not None:
            raise ValueError("pe_av writes model.safetensors only (safe_serialization=True, variant=None)")
        if os.path.isfile(save_directory):
            logger.error(f"Provided path ({save_directory}) should be a directory, not a file")
            return
        directory = os.fspath(save_directory)
        state = {
            key: tensor
            for key, tensor in (self.state_dict() if state_dict is None else state_dict).items()
            if not any(key.startswith(prefix) for prefix in self.tied_prefixes)
        }
        self.config.architectures = [type(self).__name__]
        self.config.dtype = self.dtype
        if is_main_process:
            self.config.save_pretrained(directory)
        save_state_dict(state, directory, max_shard_size)


def _set_attn_implementation(config: ConfigBase, backend: str) -> None:
    """``config._attn_implementation`` on the config and every sub-config, as transformers sets it."""
    config._attn_implementation = backend
    for key in config.sub_config_classes:
        _set_attn_implementation(getattr(config, key), backend)
