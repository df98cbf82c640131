"""transformers' attention implementation names (``attn_implementation``) → pe_av backends.

transformers names the attention code a model runs ``"eager"``, ``"sdpa"``, ``"flash_attention_2"``,
``"flex_attention"``, a hub kernel (``"kernels-community/..."``) and so on. pe_av has three backends
(``"eager"``, ``"sdpa"``, ``"triton"``): the first two mean what transformers means by them, and
``"triton"`` is pe_av's own. Every other name transformers knows asks for a fused kernel of some
library; pe_av runs its fastest backend for the device instead (``"triton"`` on CUDA when the kernels
import, else ``"sdpa"``) and says so once. A name transformers does not know either is a ``ValueError``,
as in transformers.

:func:`backend_for` is the one mapping (``set_attn_implementation`` uses it, and so should
``from_pretrained``'s ``attn_implementation``). :func:`record_attn_implementation` writes the backend each
sub-model runs into its config's ``_attn_implementation``, where transformers users read it;
:func:`plan` turns a ``set_attn_implementation`` request (a name or a per-sub-config dict) into steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from ..dispatch import BACKENDS, BackendModule, default_backend, warn_once

__all__ = ["TRANSFORMERS_FUSED_NAMES", "backend_for", "own_backend_modules", "plan", "record_attn_implementation"]

#: the names of transformers 5.24 (``ALL_ATTENTION_FUNCTIONS`` and the paged variants) for fused kernels
#: pe_av does not have: each runs pe_av's fastest backend
TRANSFORMERS_FUSED_NAMES = frozenset({
    "flash_attention_2",
    "flash_attention_3",
    "flash_attention_4",
    "flex_attention",
    "paged|eager",
    "paged|sdpa",
    "paged|flash_attention_2",
    "paged|flash_attention_3",
    "paged|flash_attention_4",
    "paged|flex_attention",
})
_OWN = {backend: backend for backend in BACKENDS}


def backend_for(attn_implementation: Any, device: torch.device | str | None = None) -> str:
    """The pe_av backend for transformers' ``attn_implementation`` name (or a pe_av backend name).

    ``None`` is the device's default. ``"eager"`` / ``"sdpa"`` / ``"triton"`` are themselves. The other
    names transformers accepts (:data:`TRANSFORMERS_FUSED_NAMES`, a hub kernel ``"org/repo"``) give the
    device's fastest backend, with a one-time ``BackendFallbackWarning``. Anything else raises.
    """
    if attn_implementation is None:
        return default_backend(device)
    if not isinstance(attn_implementation, str):
        raise TypeError(
            f"attn_implementation must be a string such as 'sdpa' or 'eager', got {type(attn_implementation).__name__}"
        )
    own = _OWN.get(attn_implementation)
    if own is not None:
        return own
    inner = attn_implementation.removeprefix("paged|")
    if inner != attn_implementation and inner in _OWN:
        # "paged|X" is X with transformers' paged generation cache, which encoders do not use
        warn_once(
            f"attn_implementation={attn_implementation!r}: paged attention is a generation cache layout "
            f"pe_av's encoders do not use; pe_av runs attn_impl={inner!r}"
        )
        return inner
    if attn_implementation in TRANSFORMERS_FUSED_NAMES or "/" in attn_implementation:
        backend = default_backend(device)
        warn_once(
            f"attn_implementation={attn_implementation!r} is transformers' name for a fused attention kernel "
            f"pe_av does not have; pe_av runs its fastest backend here, attn_impl={backend!r}"
        )
        return backend
    known = sorted(set(BACKENDS) | TRANSFORMERS_FUSED_NAMES)
    raise ValueError(
        f"Specified `attn_implementation={attn_implementation!r}` is not supported. The possible arguments are "
        + ", ".join(repr(name) for name in known)
    )


def record_attn_implementation(model: nn.Module, backend: str) -> None:
    """Write ``backend`` into ``config._attn_implementation`` of ``model`` and of every sub-model in it,
    where transformers users read the attention a model runs (call it after switching them to it)."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(module, "set_attn_impl"):
            config._attn_implementation = backend


def own_backend_modules(model: nn.Module) -> list[BackendModule]:
    """The :class:`BackendModule` s of ``model`` outside its sub-models (those with a config of their own)."""
    found, stack = [], [model]
    while stack:
        module = stack.pop()
        if isinstance(module, BackendModule):
            found.append(module)
        stack += [child for child in module.children() if not hasattr(child, "set_attn_impl")]
    return found


def plan(model: nn.Module, config: Any, request: Any, device: torch.device) -> list[tuple[Any, Any, str, bool]]:
    """``(config, model or None, backend, whole)`` steps for ``request``, to apply in order (outer first).

    ``request`` is a name, for ``model`` and every sub-model in it (``whole``), or a dict as transformers
    takes it: ``""`` for the model itself only (not its sub-models), sub-config names (``"text_config"``,
    ``"audio_video_config"``, ...) for the sub-models built from them, a nested dict for a sub-config's
    own sub-configs. A key that is not a sub-config is a ``ValueError``. A sub-config no sub-model is
    built from (the DAC's: no attention) only has the name recorded (model None).
    """
    if not isinstance(request, Mapping):
        return [(config, model, backend_for(request, device), True)]
    steps = []
    if "" in request:
        steps += [(c, m, backend, False) for c, m, backend, _ in plan(model, config, request[""], device)]
    names = getattr(type(config), "sub_config_classes", {})
    for key, value in request.items():
        if key == "":
            continue
        if key not in names:
            raise ValueError(
                f"set_attn_implementation: {key!r} is not a sub-config of {type(config).__name__}; "
                f"its sub-configs are {sorted(names)} ('' for the model itself)"
            )
        sub = getattr(config, key)
        targets = [m for m in model.modules() if getattr(m, "config", None) is sub and hasattr(m, "set_attn_impl")]
        for target in targets or [None]:
            steps += plan(target, sub, value, device) if target is not None else [
                (c, None, backend, whole) for c, _, backend, whole in plan(model, sub, value, device)
            ]
    return steps
