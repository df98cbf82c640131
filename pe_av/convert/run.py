"""``convert_original(src, dst)``: one of Meta's original checkpoints → a pe_av (= transformers) checkpoint.

Steps: read the original config.json and weights; derive our config (:mod:`.config`); map every key
(:mod:`.keys`); check the result against the model the config builds (every key, every shape); write
config.json, model.safetensors, the processor config and the tokenizer files into a temporary folder
next to ``dst``; reload it strictly and run a forward on fixed inputs; then rename it to ``dst``. A
failure at any step leaves ``dst`` as it was (absent, or the old checkpoint with ``overwrite``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import fsync_dir, fsync_file
from ..json_io import read_json_object
from ..loading import read_state_dict, save_state_dict
from .config import derive_config, detect_kind
from .keys import map_state_dict

__all__ = ["TOKENIZER_FILES", "ConversionError", "ConversionReport", "convert_original"]

#: tokenizer files copied as they are from the original checkpoint
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "added_tokens.json")
#: the value every logit scale and bias the original lacks gets (logits = plain dot products)
FILLED_LOGIT_SCALE, FILLED_LOGIT_BIAS = 1.0, 0.0
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ConversionError(ValueError):
    """The original checkpoint does not map onto pe_av's model; the message names the keys."""


@dataclass
class ConversionReport:
    """What :func:`convert_original` did."""

    kind: str  #: "pe_audio_video" (original PEAudioVisual) or "pe_audio_frame" (PEAudioFrame)
    model_class: str
    mapped: int  #: original tensors mapped (a fused one split in two counts once)
    written: int  #: tensors in the written model.safetensors
    dropped: list[str] = field(default_factory=list)  #: original weights the original never uses
    filled: list[str] = field(default_factory=list)  #: our weights the original lacks (logit scales/biases)
    tokenizer_files: list[str] = field(default_factory=list)
    num_frames: int | None = None  #: frames the processor samples (None: every frame)
    verify: dict[str, float] = field(default_factory=dict)  #: output name → max |value| of the check forward


def _fmt(keys: list[str], limit: int = 12) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _model_class(kind: str) -> type:
    from ..models import PeAudioFrameLevelModel, PeAudioVideoModel

    return PeAudioVideoModel if kind == "pe_audio_video" else PeAudioFrameLevelModel


def _expected(model_cls: type, config: Any) -> dict[str, torch.Size]:
    """Key → shape of what ``model_cls.save_pretrained`` writes for ``config`` (built on the meta device)."""
    with torch.device("meta"):
        model = model_cls(config)
    return {
        key: tensor.shape
        for key, tensor in model.state_dict().items()
        if not any(key.startswith(prefix) for prefix in model_cls.tied_prefixes)
    }


def build_state(original: dict[str, Any], state: dict[str, torch.Tensor], kind: str, config: Any,
                model_cls: type) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Our state dict for the original ``state``, checked against ``model_cls(config)``; returns it, the
    dropped original keys and our keys filled in (the original has no such weight)."""
    mapped, source = map_state_dict(state, kind, config)
    if source.missing:
        raise ConversionError(f"the original checkpoint lacks weights its config.json implies: {_fmt(source.missing)}")
    unknown = source.untaken()
    if unknown:
        raise ConversionError(f"unknown keys in the original checkpoint (not part of the original {kind} model): "
                              f"{_fmt(unknown)}")
    expected = _expected(model_cls, config)
    filled = sorted(k for k in expected if k not in mapped and k.endswith(("_logit_scale", "_logit_bias")))
    for key in filled:
        value = FILLED_LOGIT_SCALE if key.endswith("_logit_scale") else FILLED_LOGIT_BIAS
        mapped[key] = torch.full(tuple(expected[key]), value)
    missing = sorted(k for k in expected if k not in mapped)
    if missing:
        raise ConversionError(f"no original weight maps to {_fmt(missing)}")
    extra = sorted(source.origin.get(k, k) for k in mapped if k not in expected)
    if extra:
        raise ConversionError(f"original weights with no place in pe_av's model: {_fmt(extra)}")
    for key, shape in expected.items():
        if tuple(mapped[key].shape) != tuple(shape):
            origin = source.origin.get(key, key)
            raise ConversionError(f"shape mismatch for {origin!r} (→ {key!r}): the original checkpoint has "
                                  f"{tuple(state[origin].shape) if origin in state else tuple(mapped[key].shape)}, "
                                  f"its config.json implies {tuple(shape)} for {key!r}")
    return mapped, source.dropped, filled


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    if dtype is None:
        return {k: v.contiguous() for k, v in state.items()}
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def _write_processor(directory: Path, kind: str, settings: dict[str, Any]) -> None:
    from ..processing import PeAudioProcessor, PeAudioVideoProcessor
    from ..processing.audio import PeAudioFeatureExtractor
    from ..processing.video import PeVideoVideoProcessor

    audio = PeAudioFeatureExtractor(sampling_rate=settings["sampling_rate"], hop_length=settings["hop_length"])
    if kind == "pe_audio_frame":
        PeAudioProcessor(feature_extractor=audio).save_pretrained(directory)
        return
    frames = settings["num_frames"]
    video = PeVideoVideoProcessor(size=settings["image_size"], do_sample_frames=frames is not None, num_frames=frames)
    PeAudioVideoProcessor(feature_extractor=audio, video_processor=video).save_pretrained(directory)


def _check_inputs(kind: str, config: Any, settings: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Fixed, seeded inputs of every modality the model takes (two audio tokens, one frame)."""
    gen = torch.Generator().manual_seed(0)
    text = config.text_config
    ids = torch.randint(0, text.vocab_size, (1, 6), generator=gen)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
              "input_values": 0.1 * torch.randn(1, 1, 2 * settings["hop_length"], generator=gen)}
    if kind == "pe_audio_video":
        size = settings["image_size"]
        inputs["pixel_values_videos"] = torch.rand(1, 1, 3, size["height"], size["width"], generator=gen) * 2 - 1
    return inputs


def verify_checkpoint(directory: Path, model_cls: type, state: dict[str, torch.Tensor], kind: str, config: Any,
                      settings: dict[str, Any]) -> dict[str, float]:
    """Reload ``directory`` strictly, check its weights equal ``state`` bit for bit, run a forward on fixed
    inputs and check every output is finite; returns each output's max absolute value."""
    model = model_cls.from_pretrained(directory, dtype=torch.float32).eval()
    loaded = model.state_dict()
    for key, tensor in state.items():
        if not torch.equal(loaded[key].to(tensor.dtype), tensor):
            raise ConversionError(f"verification: {key!r} reads back different from what was written")
    with torch.no_grad():
        output = model(**_check_inputs(kind, config, settings))
    result = {}
    for name, value in output.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and name.endswith("embeds"):
            if not bool(torch.isfinite(value).all()):
                raise ConversionError(f"verification: the converted model's {name} is not finite")
            result[name] = float(value.abs().max())
    if not result:
        raise ConversionError("verification: the converted model returned no embeddings")
    return result


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            fsync_file(path)
    fsync_dir(directory)


def convert_original(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
    verify: bool = True,
    progress: bool = True,
) -> ConversionReport:
    """Convert one of Meta's original PE-AV / PE-A-Frame checkpoints (``perception_models`` format:
    config.json, model.safetensors, tokenizer files) in ``src`` into a checkpoint in ``dst`` that
    ``pe_av`` and transformers load (``PeAudioVideoModel`` / ``PeAudioFrameLevelModel``).

    Args:
        src: folder of the original checkpoint.
        dst: folder to create; an existing one is a ``FileExistsError`` unless ``overwrite``.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` (or a torch dtype) for the floating weights;
            None keeps the original's.
        overwrite: replace an existing ``dst`` (only once the new checkpoint is complete and verified).
        verify: reload the written checkpoint and run a forward on fixed inputs before publishing it.
        progress: show a progress bar over the steps.

    Returns:
        a :class:`ConversionReport`. Raises :class:`ConversionError` (unknown, missing or misshapen
        keys) or :class:`~pe_av.convert.config.OriginalConfigError` (an unsupported option).
    """
    src_dir, dst_dir = Path(src), Path(dst)
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or None, got {dtype!r}")
        dtype = _DTYPES[dtype]
    elif dtype is not None and dtype not in _DTYPES.values():
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or None, got {dtype!r}")
    if not src_dir.is_dir():
        raise FileNotFoundError(f"src must be a folder holding the original checkpoint, got {os.fspath(src)!r}")
    if dst_dir.exists() and not overwrite:
        raise FileExistsError(f"{os.fspath(dst)!r} exists; pass overwrite=True (--overwrite) to replace it")
    if dst_dir.resolve() == src_dir.resolve():
        raise ValueError("dst must differ from src")
    from tqdm.auto import tqdm

    steps = tqdm(total=4 if verify else 3, desc="convert", disable=not progress)
    original = read_json_object(src_dir / "config.json", "the original model's config")
    state = read_state_dict(os.fspath(src_dir))
    kind = detect_kind(original, set(state))
    config, settings = derive_config(original, kind)
    model_cls = _model_class(kind)
    steps.update()
    mapped, dropped, filled = build_state(original, state, kind, config, model_cls)
    mapped = _cast(mapped, dtype)
    steps.update()
    dst_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst_dir.name}.", suffix=".tmp", dir=dst_dir.parent))
    try:
        config.architectures = [model_cls.__name__]
        config.dtype = next(v.dtype for v in mapped.values() if v.is_floating_point())
        config.save_pretrained(tmp)
        save_state_dict(mapped, os.fspath(tmp))
        _write_processor(tmp, kind, settings)
        copied = [name for name in TOKENIZER_FILES if (src_dir / name).is_file()]
        for name in copied:
            shutil.copyfile(src_dir / name, tmp / name)
        _fsync_tree(tmp)
        steps.update()
        checks = verify_checkpoint(tmp, model_cls, mapped, kind, config, settings) if verify else {}
        steps.update(1 if verify else 0)
        _publish(tmp, dst_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        steps.close()
    return ConversionReport(kind=kind, model_class=model_cls.__name__, mapped=len(state) - len(
        [k for k in dropped if k in state]), written=len(mapped), dropped=dropped, filled=filled,
        tokenizer_files=copied, num_frames=settings["num_frames"], verify=checks)


def _publish(tmp: Path, dst: Path) -> None:
    """Rename the finished ``tmp`` to ``dst``; an old ``dst`` is moved aside first and removed after."""
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        os.rmdir(old)
        os.rename(dst, old)
    try:
        os.rename(tmp, dst)
    except BaseException:
        if old is not None:
            os.rename(old, dst)
        raise
    fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
