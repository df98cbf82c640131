"""Zero-shot classification: score media against label names with a template ensemble.

For each label, every template is filled in (``"the sound of {}"`` → ``"the sound of dog barking"``)
and embedded in the text space of the ``target`` modality. The label's embedding has

- the *direction* of the mean of the unit-length template embeddings (renormalized): each phrasing
  counts the same, however long its raw embedding is;
- the *length* of the mean raw length of the template embeddings.

The media embeddings are the model's raw ``get_*_embeds``, and the logits are the model's own pair
formula, ``media · label · scale + bias`` with the scale and bias the model learned for that pair
(text↔audio: ``text_audio_logit_*``, text↔video: ``text_video_logit_*``, text↔audio+video:
``text_audio_video_logit_*``). Keeping the length makes a one-template ensemble give exactly the
model's ``logits_audio_text`` / ``logits_video_text`` / ``logits_audio_video_text``, so the scale and
bias stay calibrated. Probabilities are ``sigmoid(logits)`` (``multi_label=True``, the default: PE-AV
is trained with the SigLIP loss, so each label is a yes/no question on its own) or a softmax over
the labels (``multi_label=False``: exactly one label is right).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..encode import (
    TARGETS,
    encode_audio,
    encode_audio_video,
    encode_text,
    encode_video,
)
from ..models import PeAudioModel, PeAudioVideoModel, PeVideoModel
from ..models.heads import scaled_logits
from .templates import check_templates

__all__ = ["Classification", "classify", "label_embeddings", "pair_logit_scale"]


@dataclass
class Classification:
    """What :func:`classify` returns: ``logits`` and ``probs`` are ``(n_inputs, n_labels)`` float32."""

    inputs: list[object]
    labels: list[str]
    logits: torch.Tensor
    probs: torch.Tensor
    target: str
    multi_label: bool

    def top(self, k: int | None = None) -> list[list[tuple[str, float]]]:
        """Per input, its ``k`` best ``(label, probability)`` pairs, best first (all labels by default)."""
        k = len(self.labels) if k is None else max(1, min(int(k), len(self.labels)))
        best = self.probs.topk(k, dim=-1)
        return [[(self.labels[j], float(p)) for p, j in zip(ps.tolist(), js.tolist())]
                for ps, js in zip(best.values, best.indices)]

    def rows(self, k: int | None = None) -> list[dict[str, object]]:
        """Flat rows ``{input, rank, label, probability, logit}`` of :meth:`top` (for JSON/CSV)."""
        from ..encode import describe_item

        rows = []
        for i, best in enumerate(self.top(k)):
            for rank, (label, prob) in enumerate(best, start=1):
                j = self.labels.index(label)
                rows.append({"input": describe_item(self.inputs[i]), "rank": rank, "label": label,
                             "probability": prob, "logit": float(self.logits[i, j])})
        return rows


def _default_target(model: object) -> str:
    if isinstance(model, PeAudioModel):
        return "audio"
    if isinstance(model, PeVideoModel):
        return "video"
    return "audio_video"


def pair_logit_scale(model: object, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The learned ``(scale, bias)`` of the text↔``target`` pair of ``model``."""
    owner = {"audio": getattr(model, "audio_model", model), "video": getattr(model, "video_model", model),
             "audio_video": model}[target]
    name = {"audio": "text_audio", "video": "text_video", "audio_video": "text_audio_video"}[target]
    scale, bias = getattr(owner, f"{name}_logit_scale", None), getattr(owner, f"{name}_logit_bias", None)
    if scale is None or bias is None:
        raise ValueError(f"{type(model).__name__} has no text-{target} logit scale and bias")
    return scale, bias


def label_embeddings(
    model: torch.nn.Module, processor: object, labels: Sequence[str], templates: object, target: str,
    batch_size: int = 32, progress: bool | None = None,
) -> torch.Tensor:
    """``(n_labels, D)`` float32 label embeddings of the template ensemble (see the module docstring)."""
    labels, templates = _check_labels(labels), check_templates(templates)
    texts = [template.format(label) for label in labels for template in templates]
    raw = encode_text(model, processor, texts, target, batch_size=batch_size, normalize=False, progress=progress)
    raw = raw.float().reshape(len(labels), len(templates), -1)
    direction = F.normalize(F.normalize(raw, dim=-1).mean(dim=1), dim=-1)
    return direction * raw.norm(dim=-1).mean(dim=1, keepdim=True)


def _check_labels(labels: object) -> list[str]:
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        raise ValueError(f"labels must be a non-empty list of strings, got {labels!r}")
    bad = [i for i, label in enumerate(labels) if not isinstance(label, str) or not label.strip()]
    if bad:
        raise ValueError(f"labels{bad} are not non-empty strings")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {list(labels)}")
    return list(labels)


def _as_items(inputs: object, target: str) -> list[object]:
    from ..processing.audio import as_clip_list
    from ..processing.video import as_video_list

    return as_clip_list(inputs) if target == "audio" else as_video_list(inputs)


def _media_embeddings(model, processor, inputs, target, batch_size, progress, options) -> torch.Tensor:
    if target == "audio":
        return encode_audio(model, processor, inputs, batch_size=batch_size, normalize=False, progress=progress,
                            **options)
    if target == "video":
        return encode_video(model, processor, inputs, batch_size=batch_size, normalize=False, progress=progress,
                            **options)
    return encode_audio_video(model, processor, inputs, batch_size=batch_size, normalize=False, progress=progress,
                              **options)


def classify(
    model: torch.nn.Module,
    processor: object,
    inputs: object,
    labels: Sequence[str],
    *,
    templates: str | Sequence[str] | None = None,
    target: str | None = None,
    multi_label: bool = True,
    batch_size: int = 8,
    progress: bool | None = None,
    on_error: str = "raise",
    failures: list | None = None,
    **options: object,
) -> Classification:
    """Zero-shot classify media ``inputs`` (file paths or arrays, as the ``encode_*`` helpers take) into
    ``labels``.

    Args:
        model: a ``PeAudioVideoModel``, ``PeAudioModel`` or ``PeVideoModel``.
        processor: its processor.
        labels: label names, filled into each template.
        templates: ``"sounds"``, ``"actions"``, ``"none"`` (the bare label) or a list of strings with one
            ``{}``; default ``"sounds"`` for audio, ``"actions"`` for video and audio+video.
        target: ``"audio"``, ``"video"`` or ``"audio_video"`` (default: the model's only one, and
            ``"audio_video"`` for ``PeAudioVideoModel``).
        multi_label: True: ``sigmoid`` per label; False: softmax over the labels.
        on_error / failures: as the ``encode_*`` helpers take them (``"skip"``: bad inputs are left
            out of the result and listed in ``failures``).
        options: passed to the media encoder (``sampling_rate``; ``num_frames``, ``fps``, ``max_frames``
            for video; ``audio=`` for audio+video of arrays).

    Returns:
        :class:`Classification` (``logits``, ``probs``, :meth:`~Classification.top`).
    """
    target = _default_target(model) if target is None else target
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "audio_video" and not isinstance(model, PeAudioVideoModel):
        raise ValueError(f"{type(model).__name__} has no audio+video embeddings; use target='audio' or 'video'")
    if not isinstance(multi_label, bool):
        raise TypeError(f"multi_label must be a bool, got {type(multi_label).__name__}")
    templates = ("sounds" if target == "audio" else "actions") if templates is None else templates
    label_embeds = label_embeddings(model, processor, labels, templates, target, progress=progress)
    failed: list = []
    options = dict(options, on_error=on_error, failures=failed)
    media = _media_embeddings(model, processor, inputs, target, batch_size, progress, options).float()
    if failures is not None:
        failures.extend(failed)
    elif failed:
        warnings.warn(f"classify skipped {len(failed)} input(s): " + "; ".join(f"[{f.index}] {f.reason}" for f in failed),
                      stacklevel=2)
    scale, bias = pair_logit_scale(model, target)
    with torch.no_grad():
        logits = scaled_logits(media, label_embeds, scale.detach().float().cpu(), bias.detach().float().cpu())
    probs = logits.sigmoid() if multi_label else logits.softmax(dim=-1)
    skipped = {failure.index for failure in failed}
    items = [item for i, item in enumerate(_as_items(inputs, target)) if i not in skipped]
    return Classification(items, list(labels), logits, probs, target, multi_label)
