"""``from_pretrained``'s keywords as transformers takes them, turned into what pe_av's loader needs.

- ``dtype``/``torch_dtype`` (:func:`resolve_dtype`, :func:`auto_dtype`): default ``"auto"``, which is the
  config's ``dtype`` (``torch_dtype`` in older files), else the ``dtype`` of a sharded index's metadata,
  else the first floating tensor's dtype in the checkpoint's first file (transformers' rule, read from the
  safetensors header); every floating weight is cast to it.
- ``device``/``device_map`` (:func:`resolve_load_device`): pe_av puts the whole model on one device, so a
  device map is a device (``"cuda:1"``, ``0``, ``torch.device``), ``{"": device}``, or ``"auto"`` (and
  ``"balanced"``, ``"balanced_low_0"``, ``"sequential"``), which is the current CUDA device when there is
  one, else the CPU. A map placing modules on several devices is a ``ValueError``.
- ``attn_implementation`` names are mapped in one place, :func:`pe_av.models.attn_names.backend_for`.
- :func:`take_loading_kwargs`: keywords that change nothing here are accepted (``low_cpu_mem_usage``,
  ``trust_remote_code`` …); those asking for what pe_av does not do (``quantization_config``,
  ``max_memory`` …) are a ``ValueError`` when set.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch


__all__ = ["auto_dtype", "resolve_device", "resolve_dtype", "resolve_load_device",
           "take_loading_kwargs"]

_DTYPE_NAMES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64, "double": torch.float64,
}

#: transformers' keywords that change nothing in pe_av (pe_av always loads lazily, never unpickles)
IGNORED_KWARGS = frozenset((
    "low_cpu_mem_usage", "trust_remote_code", "weights_only", "_fast_init", "mirror", "from_tf", "from_flax",
    "offload_state_dict", "_from_auto", "_from_pipeline", "tqdm_class", "disable_mmap", "_commit_hash", "proxies",
))
#: transformers' keywords for features pe_av lacks, with the value that asks for nothing
UNSUPPORTED_KWARGS: dict[str, Any] = {
    "variant": None, "gguf_file": None, "quantization_config": None, "max_memory": None, "offload_folder": None,
    "offload_buffers": False, "adapter_kwargs": None, "adapter_name": "default", "tp_plan": None, "tp_size": None,
    "device_mesh": None, "distributed_config": None, "key_mapping": None, "use_kernels": False, "kernel_config": None,
    "generation_config": None, "fusion_config": None, "allow_all_kernels": False, "experts_implementation": None,
}
_AUTO_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def take_loading_kwargs(kwargs: dict[str, Any]) -> None:
    """Remove the keywords pe_av ignores from ``kwargs``; a keyword asking for a missing feature is an error."""
    for name in IGNORED_KWARGS.intersection(kwargs):
        kwargs.pop(name)
    for name, default in UNSUPPORTED_KWARGS.items():
        if name in kwargs:
            value = kwargs.pop(name)
            if value not in (None, False, default, {}, []):
                raise ValueError(f"from_pretrained({name}=...) is not supported by pe_av (got {value!r})")


# --------------------------------------------------------------------------------------------------
# dtype


def resolve_dtype(dtype: Any, torch_dtype: Any = None) -> torch.dtype | str:
    """``dtype=`` (or the older ``torch_dtype=``; ``dtype`` wins) as ``"auto"`` or a floating ``torch.dtype``."""
    if dtype is None:
        dtype = torch_dtype
    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, Mapping):  # transformers' per-sub-config dtypes: deprecated there, one dtype for all
        warnings.warn("dtype given per sub-config: pe_av uses dtype[''] (default float32) for the whole model",
                      FutureWarning, stacklevel=3)
        dtype = dtype.get("", torch.float32)
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        if name not in _DTYPE_NAMES:
            raise ValueError(f"dtype {dtype!r} is not supported; use one of {sorted(_DTYPE_NAMES)} or 'auto'")
        return _DTYPE_NAMES[name]
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating point type, got {dtype}")
        return dtype
    raise TypeError(f"dtype must be a torch.dtype, a string or None, got {type(dtype).__name__}")


def auto_dtype(config_dtype: torch.dtype | None, index_dtype: Any, first_file_dtypes: list[str]) -> torch.dtype:
    """transformers' ``dtype="auto"``: the config's dtype, else the index metadata's, else the first floating
    dtype of the checkpoint's first file (``first_file_dtypes``, as ``"torch.float32"`` names)."""
    if config_dtype is not None:
        return resolve_dtype(config_dtype)  # type: ignore[return-value]
    if isinstance(index_dtype, str):
        return resolve_dtype(index_dtype)  # type: ignore[return-value]
    for name in first_file_dtypes:
        if name.removeprefix("torch.") in _DTYPE_NAMES:
            return _DTYPE_NAMES[name.removeprefix("torch.")]
    return torch.float32


# --------------------------------------------------------------------------------------------------
# device


def resolve_device(device: torch.device | str | int | None) -> torch.device:
    """``device=`` of ``from_pretrained`` as a ``torch.device`` that can hold weights (default CPU)."""
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, (torch.device, str, int)) or isinstance(device, bool):
        raise TypeError(f"device must be a torch.device, a string like 'cuda:0' or None, got {type(device).__name__}")
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device {device!r} is not a valid torch device: {exc}") from exc
    if device.type == "meta":
        raise ValueError("device='meta' cannot hold loaded weights; build the model from its config under torch.device('meta')")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available in this process")
    return device


def _device_of_map(device_map: Any) -> torch.device:
    if isinstance(device_map, Mapping):
        if set(device_map) != {""}:
            raise ValueError(
                f"device_map={dict(device_map)!r} places parts of the model on their own devices; pe_av loads a model "
                "onto one device: pass a device (device_map='cuda:0', 0, torch.device(...)), {'': device} or 'auto'"
            )
        device_map = device_map[""]
    if isinstance(device_map, bool) or not isinstance(device_map, (str, int, torch.device)):
        raise TypeError(f"device_map must be a device, a string, an int or {{'': device}}, got {type(device_map).__name__}")
    if isinstance(device_map, str) and device_map in _AUTO_MAPS:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if isinstance(device_map, int):
        if device_map < 0:
            raise ValueError("You can't pass device_map as a negative int. If you want to put the model on the cpu, "
                             "pass device_map = 'cpu'")
        return resolve_device(torch.device("cuda", device_map))
    if device_map == "cuda":  # transformers: the local rank's GPU
        device_map = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    if isinstance(device_map, str):
        try:
            torch.device(device_map)
        except RuntimeError as exc:
            raise ValueError(
                "When passing device_map as a string, the value needs to be a device name (e.g. cpu, cuda:0) or "
                f"'auto', 'balanced', 'balanced_low_0', 'sequential' but found {device_map}."
            ) from exc
    return resolve_device(device_map)


def resolve_load_device(device: Any, device_map: Any) -> torch.device:
    """The one device to load onto, from pe_av's ``device=`` and/or transformers' ``device_map=``; with
    neither, the device of an enclosing ``with torch.device(...)`` block (the CPU by default)."""
    from_map = None if device_map is None else _device_of_map(device_map)
    if device is not None:
        chosen = resolve_device(device)
        if from_map is not None and from_map != chosen:
            raise ValueError(f"device={str(chosen)!r} and device_map={device_map!r} ({str(from_map)!r}) disagree; give one")
        return chosen
    if from_map is not None:
        return from_map
    default = torch.get_default_device()
    if default.type == "meta":
        raise RuntimeError(
            "You are using `from_pretrained` with a meta device context manager or `torch.set_default_device('meta')`.\n"
            "This is an anti-pattern as `from_pretrained` wants to load existing weights.\nIf you want to initialize an "
            "empty model on the meta device, use the context manager or global device with `from_config`, or `ModelClass(config)`"
        )
    return resolve_device(default)
