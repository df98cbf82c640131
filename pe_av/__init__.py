"""pe_av: a fast, faithful implementation of Meta's PE-AV (Perception Encoder Audio-Visual).

Load transformers checkpoints with the same class names::

    from pe_av import PeAudioEncoder
    model = PeAudioEncoder.from_pretrained("path/to/checkpoint", attn_impl="sdpa")
"""

from .config import (
    DacConfig,
    ModernBertConfig,
    PeAudioConfig,
    PeAudioEncoderConfig,
    PeAudioVideoConfig,
    PeAudioVideoEncoderConfig,
    PeVideoConfig,
    PeVideoEncoderConfig,
    TimmVisionConfig,
    load_config,
)
from .dispatch import BACKENDS, BackendFallbackWarning, BackendNotAvailableError
from .loading import CheckpointError
from .models import PeAudioEncoder, PeAudioEncoderOutput

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "BackendFallbackWarning",
    "BackendNotAvailableError",
    "CheckpointError",
    "DacConfig",
    "ModernBertConfig",
    "PeAudioConfig",
    "PeAudioEncoder",
    "PeAudioEncoderConfig",
    "PeAudioEncoderOutput",
    "PeAudioVideoConfig",
    "PeAudioVideoEncoderConfig",
    "PeVideoConfig",
    "PeVideoEncoderConfig",
    "TimmVisionConfig",
    "load_config",
]
