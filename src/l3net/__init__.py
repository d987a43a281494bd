"""l3net: Look, Listen and Learn (Arandjelovic & Zisserman, ICCV 2017) in PyTorch."""

from .config import CLIP_SECONDS, PRESETS, SAMPLE_RATE, ModelConfig, SpectrogramConfig, get_preset
from .errors import DatasetError, InputError, L3NetError, MediaError, ModelFileError, OutputError
from ._version import __version__
from .models import L3Net, build_model
from .modelspec import load_model
from .embed import get_audio_embedding, get_image_embedding
from .embed_files import process_audio_file, process_image_file, process_video_file
from .stream import AudioStream

__all__ = [
    "AudioStream",
    "CLIP_SECONDS",
    "PRESETS",
    "SAMPLE_RATE",
    "DatasetError",
    "InputError",
    "L3Net",
    "L3NetError",
    "MediaError",
    "ModelConfig",
    "ModelFileError",
    "OutputError",
    "SpectrogramConfig",
    "__version__",
    "build_model",
    "get_audio_embedding",
    "get_image_embedding",
    "get_preset",
    "load_model",
    "process_audio_file",
    "process_image_file",
    "process_video_file",
]
