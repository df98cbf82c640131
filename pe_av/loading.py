"""Reading and writing checkpoints in transformers' layout (``config.json`` + safetensors).

Models are built on the ``meta`` device and the checkpoint's tensors are assigned by name: module
attribute names equal checkpoint keys, so loading is name matching with strict checks, never a remap
table. Pickle checkpoints (``.bin``/``.pt``) are refused, never unpickled.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .json_io import read_json_object

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")

_DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
}


class CheckpointError(ValueError):
    """A checkpoint does not match the model it is loaded into, or cannot be read."""


def resolve_dtype(dtype: torch.dtype | str | None, config_extra: Mapping | None = None) -> torch.dtype | None:
    """Turn ``dtype=`` into a floating ``torch.dtype``; ``None`` means float32, ``"auto"`` the
    checkpoint's own (``None`` returned: keep each tensor's stored dtype)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype == "auto":
            stored = (config_extra or {}).get("dtype") or (config_extra or {}).get("torch_dtype")
            return _DTYPE_NAMES.get(stored) if isinstance(stored, str) else None
        name = dtype.removeprefix("torch.")
        if name not in _DTYPE_NAMES:
            raise ValueError(f"dtype {dtype!r} is not supported; use one of {sorted(_DTYPE_NAMES)} or 'auto'")
        return _DTYPE_NAMES[name]
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating point type, got {dtype}")
        return dtype
    raise TypeError(f"dtype must be a torch.dtype, a string or None, got {type(dtype).__name__}")


def resolve_device(device: torch.device | str | None) -> torch.device:
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


def resolve_model_dir(path: str | os.PathLike) -> str:
    """A local directory as given, or a hub id downloaded through ``huggingface_hub`` when installed."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"from_pretrained expects a directory path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise NotADirectoryError(f"{path!r} is a file; from_pretrained expects a directory holding config.json")
    looks_like_repo_id = re.fullmatch(r"[\w.-]+/[\w.-]+", path) is not None
    if not looks_like_repo_id:
        raise FileNotFoundError(f"model directory {path!r} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise FileNotFoundError(
            f"{path!r} is not a local directory, and huggingface_hub is not installed to fetch it from the hub"
        ) from exc
    return snapshot_download(path, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])


def _read_weight_map(index: str) -> dict[str, str]:
    """The ``weight_map`` of a sharded checkpoint's index: tensor key → shard file name in its directory."""
    try:
        weight_map = read_json_object(index, holds="a safetensors index")["weight_map"]
    except (ValueError, KeyError) as exc:  # not JSON, not an object, or no weight_map
        raise CheckpointError(f"{index} is not a valid safetensors index (needs a 'weight_map'): {exc!r}") from exc
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise CheckpointError(f"{index}: 'weight_map' must map tensor names to shard file names (strings)")
    # shards are files beside the index: an absolute path or '..' could make us read files elsewhere
    outside = sorted({v for v in weight_map.values() if os.path.isabs(v) or ".." in re.split(r"[\\/]", v)})
    if outside:
        raise CheckpointError(f"{index} names shard files outside its directory: {outside}")
    return weight_map


def _checkpoint_files(directory: str) -> tuple[list[str], set[str] | None]:
    """The safetensors files of the checkpoint, and the keys its index promises (None: no index)."""
    single = os.path.join(directory, SAFE_WEIGHTS_NAME)
    index = os.path.join(directory, SAFE_WEIGHTS_INDEX_NAME)
    if os.path.isfile(single):
        return [single], None
    if os.path.isfile(index):
        weight_map = _read_weight_map(index)
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not os.path.isfile(os.path.join(directory, s))]
        if missing:
            raise CheckpointError(f"{index} names shard files that do not exist: {missing}")
        return [os.path.join(directory, s) for s in shards], set(weight_map)
    pickles = [name for name in _PICKLE_NAMES if os.path.exists(os.path.join(directory, name))]
    if pickles:
        raise CheckpointError(
            f"{directory} holds only pickle weights ({', '.join(pickles)}). pe_av never unpickles files "
            "(they can run arbitrary code); convert them to model.safetensors first."
        )
    raise CheckpointError(f"no {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME} in {directory}")


def read_state_dict(directory: str, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint in ``directory`` (single file or sharded), loaded onto ``device``."""
    state: dict[str, torch.Tensor] = {}
    files, indexed_keys = _checkpoint_files(directory)
    for path in files:
        try:
            with safe_open(path, framework="pt", device=str(device)) as fh:
                for key in fh.keys():
                    if key in state:
                        raise CheckpointError(f"key {key!r} appears in more than one shard ({path})")
                    state[key] = fh.get_tensor(key)
        except SafetensorError as exc:
            raise CheckpointError(f"cannot read {path}: {exc} (truncated or not a safetensors file?)") from exc
        except OSError as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if indexed_keys is not None:
        absent = sorted(indexed_keys - state.keys())
        if absent:
            raise CheckpointError(
                f"{SAFE_WEIGHTS_INDEX_NAME} in {directory} names keys that no shard holds: {_fmt_keys(absent)}"
            )
    return state


def _tie_groups(model: nn.Module) -> dict[str, list[str]]:
    """Map each state-dict key to all keys naming the same tensor (shared modules)."""
    by_identity: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        by_identity.setdefault(id(tensor), []).append(key)
    return {key: keys for keys in by_identity.values() for key in keys}


def _fmt_keys(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> None:
    """Assign ``state`` into ``model`` (built on any device, typically ``meta``), strictly.

    Keys of weights the model shares between submodules (tied weights) may appear once; every other
    expected key must be present with its exact shape, and no unexpected key may remain.
    """
    groups = _tie_groups(model)
    expected = model.state_dict(keep_vars=True)
    unexpected = sorted(k for k in state if k not in expected)
    missing: list[str] = []
    filled: dict[str, torch.Tensor] = {}
    for key, param in expected.items():
        source = key if key in state else next((k for k in groups[key] if k in state), None)
        if source is None:
            missing.append(key)
            continue
        tensor = state[source]
        if tuple(tensor.shape) != tuple(param.shape):
            raise CheckpointError(
                f"shape mismatch for {source!r}: checkpoint has {tuple(tensor.shape)}, "
                f"the model (from config.json) expects {tuple(param.shape)}"
            )
        if tensor.is_floating_point() != param.is_floating_point():
            raise CheckpointError(
                f"dtype mismatch for {source!r}: checkpoint has {tensor.dtype}, the model expects "
                f"{'a floating point' if param.is_floating_point() else 'a ' + str(param.dtype)} tensor"
            )
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        filled[key] = tensor
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_fmt_keys(unexpected)}")
        raise CheckpointError(
            f"checkpoint does not match {type(model).__name__} built from its config.json; " + "; ".join(parts)
        )
    if dtype is None:  # "auto": keep the stored dtype, which must then be one dtype for the whole model
        stored = sorted({str(t.dtype) for t in filled.values() if t.is_floating_point()})
        if len(stored) > 1:
            raise CheckpointError(
                f"the checkpoint mixes floating dtypes {stored} and its config.json names none; "
                "pass dtype= (e.g. torch.float32) to from_pretrained"
            )
    model.load_state_dict(filled, strict=True, assign=True)


def _parse_size(size: int | str) -> int:
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    if isinstance(size, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B)\s*", size, flags=re.IGNORECASE)
        if match:
            units = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
            return int(float(match.group(1)) * units[match.group(2).lower()])
    raise ValueError(f"max_shard_size must be a positive byte count or a string like '5GB', got {size!r}")


def save_state_dict(
    state: Mapping[str, torch.Tensor], directory: str, max_shard_size: int | str | None = None
) -> None:
    """Write ``state`` as ``model.safetensors``, or as shards plus an index when it exceeds ``max_shard_size``."""
    os.makedirs(directory, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    limit = None if max_shard_size is None else _parse_size(max_shard_size)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(tensors):
        nbytes = tensors[key].numel() * tensors[key].element_size()
        if limit is not None and shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][key] = tensors[key]
        size += nbytes
    for stale in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME):
        if os.path.exists(os.path.join(directory, stale)):
            os.remove(os.path.join(directory, stale))
    if len(shards) == 1:
        save_file(shards[0], os.path.join(directory, SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(directory, name), metadata={"format": "pt"})
        weight_map.update({key: name for key in shard})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(directory, SAFE_WEIGHTS_INDEX_NAME), "w", encoding="utf-8") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2, sort_keys=True)
