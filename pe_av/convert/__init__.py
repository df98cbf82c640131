"""Convert Meta's original PE-AV / PE-A-Frame checkpoints (``facebookresearch/perception_models``,
``core/audio_visual_encoder``) into pe_av's layout, which transformers loads too.

    from pe_av import convert_original
    report = convert_original("pe-av-large-original/", "pe-av-large/")

:mod:`.config` derives the config as the original computes it, :mod:`.keys` maps every weight,
:mod:`.run` writes, reloads and verifies the result.
"""

from .config import ORIGINAL_VISION_ENCODERS, OriginalConfigError
from .run import ConversionError, ConversionReport, convert_original

__all__ = ["ORIGINAL_VISION_ENCODERS", "ConversionError", "ConversionReport", "OriginalConfigError", "convert_original"]
