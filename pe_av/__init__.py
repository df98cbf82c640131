"""pe_av: a fast, faithful implementation of Meta's PE-AV (Perception Encoder Audio-Visual).

Load transformers checkpoints with the same class names::

    from pe_av import PeAudioVideoModel
    model = PeAudioVideoModel.from_pretrained("path/to/checkpoint", attn_impl="sdpa")
"""

from . import dispatch
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
from .auto import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForImageClassification,
    AutoProcessor,
    AutoTokenizer,
    AutoVideoProcessor,
)
from .dispatch import BACKENDS, BackendFallbackWarning, BackendNotAvailableError
from .loading import CheckpointError
from .models.inputs import no_host_sync
from .models import (
    AudioVideoEmbeddings,
    ImageClassifierOutput,
    ModernBertModel,
    PeAudioEncoder,
    PeAudioEncoderOutput,
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioOutput,
    PeAudioVideoEncoder,
    PeAudioVideoEncoderOutput,
    PeAudioVideoModel,
    PeAudioVideoOutput,
    PeVideoEncoder,
    PeVideoModel,
    PeVideoOutput,
    PeVisionModel,
)

__version__ = "0.1.0"

__all__ = [
    "no_host_sync",
    "BACKENDS",
    "AutoConfig",
    "AutoFeatureExtractor",
    "AutoModel",
    "AutoModelForImageClassification",
    "AutoProcessor",
    "AutoTokenizer",
    "AutoVideoProcessor",
    "AudioVideoEmbeddings",
    "BackendFallbackWarning",
    "BackendNotAvailableError",
    "CheckpointError",
    "DacConfig",
    "ImageClassifierOutput",
    "ModernBertConfig",
    "ModernBertModel",
    "PeAudioConfig",
    "PeAudioEncoder",
    "PeAudioEncoderConfig",
    "PeAudioEncoderOutput",
    "PeAudioFrameLevelModel",
    "PeAudioModel",
    "PeAudioOutput",
    "PeAudioVideoConfig",
    "PeAudioVideoEncoder",
    "PeAudioVideoEncoderConfig",
    "PeAudioVideoEncoderOutput",
    "PeAudioVideoModel",
    "PeAudioVideoOutput",
    "PeVideoConfig",
    "PeVideoEncoder",
    "PeVideoEncoderConfig",
    "PeVideoModel",
    "PeVideoOutput",
    "PeVisionModel",
    "TimmVisionConfig",
    "dispatch",
    "load_config",
]

# processing, media files and encoding helpers (issue 8)
from .encode import EncodeFailure, encode_audio, encode_audio_video, encode_text, encode_video, iter_encode  # noqa: E402
from .media import load_audio, load_video, media_info  # noqa: E402
from .processing import (  # noqa: E402
    BatchFeature,
    PeAudioFeatureExtractor,
    PeAudioProcessor,
    PeAudioVideoProcessor,
    PeTokenizer,
    PeVideoProcessor,
    PeVideoVideoProcessor,
)
from .processing.resample import resample  # noqa: E402

__all__ += [
    "BatchFeature",
    "PeAudioFeatureExtractor",
    "PeAudioProcessor",
    "PeAudioVideoProcessor",
    "PeTokenizer",
    "PeVideoProcessor",
    "PeVideoVideoProcessor",
    "EncodeFailure",
    "encode_audio",
    "encode_audio_video",
    "encode_text",
    "encode_video",
    "iter_encode",
    "load_audio",
    "load_video",
    "media_info",
    "resample",
]

# Meta's original checkpoints (issue 17)
from .convert import ConversionError, convert_original

__all__ += ["ConversionError", "convert_original"]

# a searchable media index (issue 18)
from .index import MediaIndex  # noqa: E402

__all__ += ["MediaIndex"]

# the layer above the model: zero-shot classification, sound events, long media (issue 18)
from .media_frames import FrameSampling  # noqa: E402
from .tasks import (  # noqa: E402
    TEMPLATE_SETS,
    Classification,
    Event,
    EventDetection,
    WindowedEmbeddings,
    classify,
    detect_events,
    embed_audio_windows,
    events_from_scores,
    iter_audio_windows,
    plot_events,
)

__all__ += [
    "TEMPLATE_SETS",
    "Classification",
    "Event",
    "EventDetection",
    "FrameSampling",
    "WindowedEmbeddings",
    "classify",
    "detect_events",
    "embed_audio_windows",
    "events_from_scores",
    "iter_audio_windows",
    "plot_events",
]
