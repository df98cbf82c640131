"""PE-AV model modules: one file per tower or model, hot ops in ``pe_av.ops``."""

from .audio import PeAudioEncoder
from .base import PePreTrainedModel
from .fusion import PeAudioVideoEncoder
from .outputs import (
    AudioVideoEmbeddings,
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    ModelOutput,
    PeAudioEncoderOutput,
    PeAudioOutput,
    PeAudioVideoEncoderOutput,
    PeAudioVideoOutput,
    PeVideoOutput,
)
from .pe_audio import PeAudioFrameLevelModel, PeAudioModel
from .pe_audio_video import PeAudioVideoModel
from .pe_video import PeVideoModel
from .text import ModernBertModel
from .video import PeVideoEncoder
from .vision import PeVisionModel

__all__ = [
    "AudioVideoEmbeddings",
    "BaseModelOutputWithPooling",
    "ImageClassifierOutput",
    "ModelOutput",
    "ModernBertModel",
    "PeAudioEncoder",
    "PeAudioEncoderOutput",
    "PeAudioFrameLevelModel",
    "PeAudioModel",
    "PeAudioOutput",
    "PeAudioVideoEncoder",
    "PeAudioVideoEncoderOutput",
    "PeAudioVideoModel",
    "PeAudioVideoOutput",
    "PePreTrainedModel",
    "PeVideoEncoder",
    "PeVideoModel",
    "PeVideoOutput",
    "PeVisionModel",
]
