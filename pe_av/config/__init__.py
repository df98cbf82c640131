"""Configuration dataclasses for PE-AV, readable from and writable to transformers' ``config.json``.

Every config mirrors the transformers class of the same role (same field names, same defaults) so a
checkpoint's ``config.json`` loads as it is. Keys we do not model are kept in ``extra`` and written
back unchanged, so a load/save round trip never loses information.

The classes live by role: :mod:`.base` (``ConfigBase``: fields, constructor, dicts, loading),
:mod:`.compat` (the rest of transformers' ``PreTrainedConfig`` API: ``to_json_string``/``to_json_file``
with ``use_diff``, ``save_pretrained``/``from_pretrained`` with the hub keywords, ``update``,
``get_text_config``), :mod:`.encoders`, :mod:`.text`, :mod:`.models`, and :mod:`.layout` (what a
checkpoint's header must show for a config).
"""

from .base import ConfigBase, config_from_dict, load_config
from .encoders import (
    DacConfig,
    PeAudioEncoderConfig,
    PeAudioVideoEncoderConfig,
    PeTransformerConfig,
    PeVideoEncoderConfig,
    TimmVisionConfig,
)
from .models import PeAudioConfig, PeAudioVideoConfig, PeVideoConfig
from .text import ModernBertConfig

__all__ = [
    "ConfigBase",
    "DacConfig",
    "PeTransformerConfig",
    "PeAudioEncoderConfig",
    "TimmVisionConfig",
    "PeVideoEncoderConfig",
    "PeAudioVideoEncoderConfig",
    "ModernBertConfig",
    "PeAudioConfig",
    "PeVideoConfig",
    "PeAudioVideoConfig",
    "config_from_dict",
    "load_config",
]
