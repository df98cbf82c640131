"""PE-AV model modules."""

from .audio import PeAudioEncoder
from .base import PePreTrainedModel
from .outputs import BaseModelOutputWithPooling, ModelOutput, PeAudioEncoderOutput

__all__ = ["PeAudioEncoder", "PePreTrainedModel", "ModelOutput", "BaseModelOutputWithPooling", "PeAudioEncoderOutput"]
