"""Reading and writing checkpoints in transformers' layout (``config.json`` + safetensors).

Models are built on the ``meta`` device and the checkpoint's tensors are assigned by name: module
attribute names equal checkpoint keys, so loading is name matching with strict checks, never a remap
table. Pickle checkpoints (``.bin``/``.pt``) are refused, never unpickled. With
``ignore_mismatched_sizes`` a tensor whose shape differs from the model's is left out and that weight is
newly initialised, as transformers does (:func:`match_keys`, :func:`load_weights`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .hub import resolve_model_dir
from .json_io import read_json_object
from .load_options import resolve_device, resolve_dtype

__all__ = ["CheckpointError", "MissingWeightsError", "TensorInfo", "check_config_header", "load_weights", "match_keys",
           "read_header", "read_state_dict", "resolve_device", "resolve_dtype", "resolve_model_dir", "save_state_dict"]

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")



class CheckpointError(ValueError):
    """A checkpoint does not match the model it is loaded into, or cannot be read."""


class MissingWeightsError(CheckpointError, OSError):
    """No weights file where one was looked for (an ``OSError`` too, as transformers raises there)."""


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


def _checkpoint_files(directory: str, use_safetensors: bool | None = None) -> tuple[list[str], set[str] | None]:
    """The safetensors files of the checkpoint, and the keys its index promises (None: no index).

    ``use_safetensors=False`` asks for pickle weights, which pe_av never reads: as in transformers, a
    directory with safetensors only is then an ``OSError``."""
    single = os.path.join(directory, SAFE_WEIGHTS_NAME)
    index = os.path.join(directory, SAFE_WEIGHTS_INDEX_NAME)
    pickles = [name for name in _PICKLE_NAMES if os.path.exists(os.path.join(directory, name))]
    if use_safetensors is False:
        if pickles:
            raise CheckpointError(
                f"use_safetensors=False asks for the pickle weights in {directory} ({', '.join(pickles)}); pe_av never "
                "unpickles files (they can run arbitrary code): convert them to model.safetensors and load that"
            )
        raise MissingWeightsError(f"Error no file named {SAFE_WEIGHTS_NAME}, or pytorch_model.bin, found in directory "
                                  f"{directory} (use_safetensors=False: pe_av reads safetensors only)")
    if os.path.isfile(single):
        return [single], None
    if os.path.isfile(index):
        weight_map = _read_weight_map(index)
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not os.path.isfile(os.path.join(directory, s))]
        if missing:
            raise CheckpointError(f"{index} names shard files that do not exist: {missing}")
        return [os.path.join(directory, s) for s in shards], set(weight_map)
    if pickles:
        raise MissingWeightsError(
            f"{directory} holds only pickle weights ({', '.join(pickles)}). pe_av never unpickles files "
            "(they can run arbitrary code); convert them to model.safetensors first."
        )
    raise MissingWeightsError(f"no {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME} in {directory}")


def index_dtype(directory: str) -> Any:
    """The ``dtype`` a sharded checkpoint's index names in its ``metadata`` (None when it names none)."""
    path = os.path.join(directory, SAFE_WEIGHTS_INDEX_NAME)
    if os.path.isfile(path) and not os.path.isfile(os.path.join(directory, SAFE_WEIGHTS_NAME)):
        metadata = read_json_object(path, holds="a safetensors index").get("metadata")
        return metadata.get("dtype") if isinstance(metadata, dict) else None
    return None


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header describes it: shape and dtype (``torch.float32``, or the
    header's own name for a dtype torch lacks)."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def is_floating_point(self) -> bool:
        return self.dtype.startswith(("torch.float", "torch.bfloat", "F", "BF"))


_HEADER_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _each_file(
    directory: str, device: torch.device | str, visit: Callable[[str, Any], None], use_safetensors: bool | None = None
) -> None:
    """Open every safetensors file of the checkpoint and call ``visit(path, handle)``; read errors
    become ``CheckpointError``, and the keys an index promises must all be somewhere."""
    files, indexed_keys = _checkpoint_files(directory, use_safetensors)
    seen: set[str] = set()
    for path in files:
        try:
            with safe_open(path, framework="pt", device=str(device)) as fh:
                keys = fh.keys()
                twice = next((k for k in keys if k in seen), None)
                if twice is not None:
                    raise CheckpointError(f"key {twice!r} appears in more than one shard ({path})")
                seen.update(keys)
                visit(path, fh)
        except SafetensorError as exc:
            raise CheckpointError(f"cannot read {path}: {exc} (truncated or not a safetensors file?)") from exc
        except OSError as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if indexed_keys is not None:
        absent = sorted(indexed_keys - seen)
        if absent:
            raise CheckpointError(
                f"{SAFE_WEIGHTS_INDEX_NAME} in {directory} names keys that no shard holds: {_fmt_keys(absent)}"
            )


def read_header(directory: str, use_safetensors: bool | None = None) -> dict[str, TensorInfo]:
    """Name, shape and dtype of every tensor of the checkpoint in ``directory`` (shard by shard, in file
    order), read from the safetensors headers (and the index of a sharded checkpoint) only: no tensor
    data is read."""
    header: dict[str, TensorInfo] = {}

    def visit(path: str, fh: Any) -> None:
        for key in fh.keys():
            piece = fh.get_slice(key)
            dtype = piece.get_dtype()
            header[key] = TensorInfo(tuple(piece.get_shape()), str(_HEADER_DTYPES.get(dtype, dtype)))

    _each_file(directory, "cpu", visit, use_safetensors)
    return header


def read_state_dict(directory: str, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint in ``directory`` (single file or sharded), loaded onto ``device``."""
    state: dict[str, torch.Tensor] = {}

    def visit(path: str, fh: Any) -> None:
        for key in fh.keys():
            state[key] = fh.get_tensor(key)

    _each_file(directory, device, visit)
    return state


def check_config_header(
    config: Any, header: Mapping[str, TensorInfo], model_class: type, source: str = "config.json",
    compare_shapes: bool = True,
) -> None:
    """Raise ``CheckpointError`` naming the config field when ``config`` asks for stacks or widths the
    header does not show (see :mod:`pe_av.config.layout`); cheap, and run before any model is built.
    ``compare_shapes=False`` (``ignore_mismatched_sizes``) compares the stacks only.

    Applies to the model classes the registry lists for the config's type (their key layout is the one
    the layouts describe); any other class is only checked strictly, once built.
    """
    from .config.layout import header_mismatches
    from .registry import MODEL_TYPES

    entry = MODEL_TYPES.get(getattr(config, "model_type", None))
    if entry is None or model_class not in entry.model_classes:
        return
    shapes = {k: v.shape for k, v in header.items()}
    problems = header_mismatches(config, shapes, model_class.tied_prefixes, compare_shapes=compare_shapes)
    if problems:
        more = f"; ... ({len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(f"{source}: " + "; ".join(problems[:3]) + more)


def _tie_groups(model: nn.Module) -> dict[str, list[str]]:
    """Map each state-dict key to all keys naming the same tensor (shared modules)."""
    by_identity: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        by_identity.setdefault(id(tensor), []).append(key)
    return {key: keys for keys in by_identity.values() for key in keys}


def _fmt_keys(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


#: a weight left out for its shape: (model key, shape in the checkpoint, shape in the model), as
#: transformers lists it in ``loading_info["mismatched_keys"]``
Mismatch = tuple[str, torch.Size, torch.Size]


def match_keys(
    model: nn.Module, found: Mapping[str, TensorInfo], ignore_mismatched_sizes: bool = False
) -> tuple[dict[str, str], list[Mismatch]]:
    """Each of ``model``'s state-dict keys → the checkpoint key that fills it, checked strictly, and the
    weights left out for their shape (only with ``ignore_mismatched_sizes``; else a shape is an error).

    Keys of weights the model shares between submodules (tied weights) may appear once; every other
    expected key must be present with its exact shape and kind (floating or not), and no unexpected key
    may remain. Works on a header (:func:`read_header`), so mismatches show before any data is read.
    """
    groups = _tie_groups(model)
    expected = model.state_dict(keep_vars=True)
    unexpected = sorted(k for k in found if k not in expected)
    missing: list[str] = []
    sources: dict[str, str] = {}
    mismatched: list[Mismatch] = []
    for key, param in expected.items():
        source = key if key in found else next((k for k in groups[key] if k in found), None)
        if source is None:
            missing.append(key)
            continue
        info = found[source]
        if info.shape != tuple(param.shape):
            if ignore_mismatched_sizes:
                mismatched.append((key, torch.Size(info.shape), torch.Size(param.shape)))
                continue
            raise CheckpointError(
                f"shape mismatch for {source!r}: checkpoint has {info.shape}, "
                f"the model (from config.json) expects {tuple(param.shape)}"
            )
        if info.is_floating_point != param.is_floating_point():
            raise CheckpointError(
                f"dtype mismatch for {source!r}: checkpoint has {info.dtype}, the model expects "
                f"{'a floating point' if param.is_floating_point() else 'a ' + str(param.dtype)} tensor"
            )
        sources[key] = source
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_fmt_keys(unexpected)}")
        raise CheckpointError(
            f"checkpoint does not match {type(model).__name__} built from its config.json; " + "; ".join(parts)
        )
    return sources, mismatched


def _non_finite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys of the floating tensors holding a NaN or an infinity.

    One reduction per tensor, a sum, and one host sync per device: a NaN or Inf element always makes
    the sum non-finite, so a finite sum clears the tensor. A non-finite sum of finite values (a sum
    overflowing float16) is then told apart by an exact ``isfinite`` check of that tensor only. The sum
    is about 4x faster than ``isfinite(t).all()`` on CPU (no temporary mask).
    """
    by_device: dict[torch.device, list[str]] = {}
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and tensor.numel():
            by_device.setdefault(tensor.device, []).append(key)
    suspects = []
    for keys in by_device.values():
        finite = torch.isfinite(torch.stack([tensors[k].sum().float() for k in keys])).tolist()
        suspects += [k for k, ok in zip(keys, finite) if not ok]
    return sorted(k for k in suspects if not bool(torch.isfinite(tensors[k]).all()))


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype, check_weights: bool = True,
    ignore_mismatched_sizes: bool = False, device: torch.device | str = "cpu",
) -> list[Mismatch]:
    """Fill ``model`` (built on any device, typically ``meta``) with ``state``, matched as :func:`match_keys`
    says, every floating tensor cast to ``dtype``; returns the weights left out for their shape.

    With ``check_weights`` every floating tensor must be finite after the cast: a NaN or an infinity
    (stored, or from a cast that overflows, e.g. float32 → float16) is a ``CheckpointError`` naming the
    first keys, since such weights would only show as NaN outputs. When weights are left out the model
    is materialised on ``device``, initialised by its ``init_weights`` (its own random init, as transformers
    re-initialises such weights), and the checkpoint's other tensors are copied over that.
    """
    infos = {k: TensorInfo(tuple(t.shape), str(t.dtype)) for k, t in state.items()}
    sources, mismatched = match_keys(model, infos, ignore_mismatched_sizes)
    cast = {
        source: state[source].to(dtype) if state[source].is_floating_point() else state[source]
        for source in set(sources.values())
    }
    if check_weights:
        bad = _non_finite(cast)
        if bad:
            overflow = [k for k in bad if not _non_finite({k: state[k]})]
            why = f" (finite as stored: casting {_fmt_keys(overflow, 5)} to {dtype} overflows)" if overflow else ""
            raise CheckpointError(
                f"the checkpoint has non-finite weights (NaN or Inf) in {len(bad)} tensor(s): {_fmt_keys(bad, 5)}"
                f"{why}; pass check_weights=False to from_pretrained to load them anyway"
            )
    values = {key: cast[source] for key, source in sources.items()}
    if not mismatched:
        model.load_state_dict(values, strict=True, assign=True)
        return mismatched
    model.to_empty(device=device)
    model.to(dtype)
    model.init_weights()
    model.load_state_dict(values, strict=False)
    return mismatched


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
