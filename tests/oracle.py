"""Helpers for oracle tests: random transformers models, saved and reloaded by pe_av."""

from __future__ import annotations

import logging
import warnings

import torch

warnings.filterwarnings("ignore", module="transformers")
logging.getLogger("transformers").setLevel(logging.ERROR)

import transformers  # noqa: E402  (the oracle; the test extra installs it)

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

FP32_ATOL = 1e-4  # DESIGN.md: eager/sdpa vs the oracle in fp32


@torch.no_grad()
def perturb_parameters(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Move parameters that the reference initialises to constants (norm weights = 1, biases = 0,
    Snake alpha = 1, logit scale/bias = 0) off those constants, so a test notices when one is
    ignored or misplaced. Matrices keep the reference's random init."""
    gen = torch.Generator().manual_seed(seed)
    for _, param in sorted(model.named_parameters()):
        if param.dim() <= 1 or param.shape[0] == 1:
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
            param.add_((noise * scale).to(param.dtype))
    return model


def build_reference(model_cls, config, tmp_path, seed: int = 0, perturb: bool = True, **save_kwargs):
    """Instantiate a random transformers model, perturb it, ``save_pretrained`` it; return (model, dir)."""
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    if perturb:
        perturb_parameters(model, seed)
    directory = tmp_path / f"{model_cls.__name__}-{seed}"
    model.save_pretrained(directory, **save_kwargs)
    return model, directory


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a.float() - b.float()).abs().max().item()


def reference_padding(model: torch.nn.Module) -> torch.nn.Module:
    """Make our audio encoders treat batch padding as the reference does (padding leaks into the DAC's
    receptive field), so padded batches can be compared with the reference number for number.

    Our default isolates each clip (its result equals the clip encoded alone); tests of that default
    compare with the reference run clip by clip instead.
    """
    from pe_av.models.audio import PeAudioEncoderEmbedder

    for module in model.modules():
        if isinstance(module, PeAudioEncoderEmbedder):
            module.isolate_samples = False
    return model


#: weight-name suffix → multiplier: at the reference's init (std 0.02) attention is nearly uniform and
#: the ViT head is scaled by 1e-3, so a wrong RoPE, window, mask or pooling barely moves the outputs;
#: peaked attention and unit-scale heads make such mistakes show.
SHARPEN_FACTORS = {
    "attn.qkv.weight": 8.0,  # ViT
    "Wqkv.weight": 10.0,  # ModernBERT
    "q_proj.weight": 6.0,  # PE transformer
    "k_proj.weight": 6.0,
}


@torch.no_grad()
def sharpen(model: torch.nn.Module, factors: dict[str, float] | None = None, logit_scale: float | None = 3.0):
    """Scale the weights named by ``factors`` (default :data:`SHARPEN_FACTORS`) and set every
    ``*logit_scale`` to ``logit_scale`` so logits are of order 1."""
    factors = SHARPEN_FACTORS if factors is None else factors
    for name, param in model.named_parameters():
        for suffix, factor in factors.items():
            if name.endswith(suffix):
                param.mul_(factor)
        if logit_scale is not None and name.endswith("logit_scale"):
            param.fill_(logit_scale)
    return model
