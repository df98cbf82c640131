"""Input checks shared by the model entry points: clear errors instead of shape errors deep in torch.

Every check raises a ``TypeError`` (wrong kind of object or dtype) or a ``ValueError`` (wrong shape,
device, values) whose message names the argument and the expected form. Decisions (also in the README,
"Input handling"):

- **NaN / Inf** in waveforms or pixels are an error (:func:`check_finite`), checked after the cast to
  the model's dtype so values that overflow it (e.g. ``1e5`` into float16) are caught too. Propagating
  them would not stay local: a NaN in a clip's *padding* reaches its valid outputs (``0 · NaN = NaN`` in
  the masked convolutions and attention), so the mask could not protect a clip.
- **All-padding samples** (a mask row without a 1) are an error: such a clip, video or text has no
  embedding to give (the reference returns NaN or an average of padding).
- **Zero-length inputs** (no samples, frames or tokens, or an empty batch) are an error.
- Masks are 0/1 tensors of bool, integer or float dtype; values other than 0 and 1 are an error. Text
  must have a real token 0 (its embedding), and the audio-video fusion needs right-padded masks (it
  aligns clips by count); a mask given without its input is an error.
- Inputs of several modalities that are paired must agree on the batch size (:func:`check_same_batch`).

Tracing (``torch.compile``, ``torch.export``), CUDA-graph capture and :func:`no_host_sync`: **checks of
values run only eagerly; shape/type checks always.** While :func:`tracing` is True, tensors have no values to test, so every check that reads
them (NaN/Inf, 0/1 masks, all-padding rows, left padding, token id range) is skipped, and the models'
data-dependent shortcuts (an all-ones mask treated as no mask, skipping padded frames, per-sample
alignment only when there is padding) take their general path, which gives the same numbers. Types,
ranks, shapes, dtypes and devices are Python facts of the traced call and stay checked. Validate
inputs eagerly (one eager call) before feeding a compiled or exported model data you do not trust.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch


_no_host_sync: ContextVar[bool] = ContextVar("pe_av_no_host_sync", default=False)


@contextlib.contextmanager
def no_host_sync(enabled: bool = True) -> Iterator[None]:
    """Inside the block, forwards never read tensor values on the host (no ``.item()``, ``bool(tensor)``,
    ``.tolist()``): the value checks and data-dependent shortcuts are skipped exactly as while tracing.

    Use it around CUDA-graph capture of your own (CUDA graphs cannot record a host read) or to keep a
    launch-bound forward from stalling on the device; capture by ``torch.cuda.graph`` and
    ``torch.compile(mode="reduce-overhead")`` is detected without it. Validate untrusted inputs with one
    ordinary call first: NaN/Inf, non-0/1 masks and all-padding rows are then not reported.
    Applies to the current thread (and asyncio task); ``enabled=False`` turns it off inside an outer block.
    """
    token = _no_host_sync.set(enabled)
    try:
        yield
    finally:
        _no_host_sync.reset(token)


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def tracing() -> bool:
    """Whether tensor values must not be read on the host now: ``torch.compile`` / ``torch.export`` are
    tracing, the current CUDA stream is capturing a graph, or :func:`no_host_sync` is in effect."""
    if _no_host_sync.get():
        return True
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return torch.compiler.is_compiling() or (is_exporting is not None and is_exporting()) or _capturing()


def describe_type(value: object) -> str:
    """The type of a wrong input for an error message, with a hint for numpy arrays."""
    name = type(value).__name__
    if name == "ndarray":
        return "numpy.ndarray (convert it with torch.from_numpy)"
    return name


def check_finite(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Raise a ``ValueError`` naming the samples of ``tensor`` (batch-first) that hold NaN or Inf."""
    if tensor.is_floating_point() and tensor.device.type != "meta" and not tracing():
        # NaN and Inf survive a sum, so a finite sum proves every value finite with no temporary (isfinite
        # holds an abs copy and a mask: ~14 MB per minute of 48 kHz audio); only a non-finite sum (a bad
        # value, or finite values overflowing) pays for the exact, per-sample check
        if bool(torch.isfinite(tensor.sum())):
            return tensor
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad = (~finite).flatten(1).any(dim=1).nonzero().flatten().tolist()
            raise ValueError(
                f"{name} holds NaN or Inf values (after casting to {tensor.dtype}) in sample(s) {bad}; "
                "inputs must be finite everywhere, padding included (pad with zeros)"
            )
    return tensor


def check_waveform(input_values: object, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Validate ``(B, 1, L)`` or ``(B, L)`` finite floating waveforms; return ``(B, 1, L)`` in ``dtype``."""
    if not isinstance(input_values, torch.Tensor):
        raise TypeError(
            f"input_values must be a torch.Tensor of shape (batch, 1, samples), got {describe_type(input_values)}"
        )
    if not input_values.is_floating_point():
        raise TypeError(f"input_values must hold floating point samples, got dtype {input_values.dtype}")
    if input_values.dim() == 2:
        input_values = input_values[:, None, :]
    if input_values.dim() != 3 or input_values.shape[1] != 1:
        raise ValueError(
            f"input_values must have shape (batch, 1, samples) or (batch, samples) for mono audio, "
            f"got {tuple(input_values.shape)}"
        )
    if input_values.shape[0] == 0 or input_values.shape[-1] == 0:
        raise ValueError(f"input_values is empty: shape {tuple(input_values.shape)}")
    if input_values.device != device:
        raise ValueError(f"input_values is on {input_values.device} but the model is on {device}")
    return check_finite(input_values.to(dtype), "input_values")


def check_padding_mask(
    mask: object, name: str, batch: int, length: int, device: torch.device
) -> torch.Tensor | None:
    """Validate a ``(batch, length)`` 0/1 mask (bool, integer or float); return it as bool."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({batch}, {length}), got {describe_type(mask)}")
    if tuple(mask.shape) != (batch, length):
        raise ValueError(f"{name} must have shape (batch, length) = ({batch}, {length}), got {tuple(mask.shape)}")
    if mask.device != device:
        raise ValueError(f"{name} is on {mask.device} but the model is on {device}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex():
        raise TypeError(f"{name} must be bool, integer or float 0/1 values, got dtype {mask.dtype}")
    if not tracing() and bool(((mask != 0) & (mask != 1)).any()):
        raise ValueError(f"{name} must contain only 0 and 1 (1 = keep), got other values")
    return mask != 0


def check_each_has_valid(mask: torch.Tensor | None, name: str, item: str, unit: str) -> None:
    """Raise when a row of the bool ``mask`` has no valid position (an all-padding ``item``)."""
    if mask is None or tracing():
        return
    empty = ~mask.any(dim=1)
    if bool(empty.any()):
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(
            f"{name} marks every {unit} of {item}(s) {rows} as padding; each needs at least one real {unit}"
        )


def check_starts_valid(mask: torch.Tensor | None, name: str, item: str, why: str) -> None:
    """Raise when position 0 of a row of the bool ``mask`` is padding (e.g. left-padded text)."""
    if mask is None or tracing():
        return
    padded = ~mask[:, 0]
    if bool(padded.any()):
        rows = padded.nonzero().flatten().tolist()
        raise ValueError(f"{name} marks position 0 of {item}(s) {rows} as padding; {why}")


def check_right_padded(mask: object, name: str, why: str) -> None:
    """Raise when a 2-D 0/1 ``mask`` is not right-padded (a valid position after a padded one).

    Anything that is not a 2-D tensor is left to the full checks of the encoder that receives it.
    """
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.device.type == "meta" or mask.is_complex():
        return
    if tracing():
        return
    valid = mask != 0
    holes = valid[:, 1:] & ~valid[:, :-1]
    if bool(holes.any()):
        rows = holes.any(dim=1).nonzero().flatten().tolist()
        raise ValueError(
            f"{name} must be right-padded (1s, then 0s) {why}, but row(s) {rows} have a 1 after a 0"
        )


def check_mask_has_input(mask: object, mask_name: str, value: object, input_name: str) -> None:
    """Raise when ``mask`` is given without the input it masks (it would be silently ignored)."""
    if mask is not None and value is None:
        raise ValueError(f"{mask_name} was given without {input_name}; pass both or neither")


#: ranks of the batched model inputs; a tensor of another rank is left to its encoder's full check
INPUT_RANKS = {"input_ids": (2,), "input_values": (2, 3), "pixel_values_videos": (5,), "input_features": (3,),
               "pe_features": (3,)}


def check_same_batch(why: str, **inputs: object) -> None:
    """Raise when the given model inputs (named as in :data:`INPUT_RANKS`) disagree on the batch size."""
    sizes = {
        name: value.shape[0]
        for name, value in inputs.items()
        if isinstance(value, torch.Tensor) and value.dim() in INPUT_RANKS[name]
    }
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} has {size}" for name, size in sizes.items())
        raise ValueError(f"{why} needs the same batch size for every modality, but {listed}")
