"""Decoding audio, video and images, through PyAV (FFmpeg) and Pillow.

- One clock (:class:`Timeline`): every stream of a file is read on one timeline, t = 0 at the
  earliest start of its audio and video streams; audio sample i and a frame at time t are
  meant to be heard and seen together. Readers report what they did to keep it
  (:class:`AudioReport`, :class:`VideoReport`).
- Audio: any file FFmpeg reads -> mono float32 at 48 kHz, on the timeline (silence where the
  stream has none). Stereo is averaged, 5.1/7.1 take FFmpeg's downmix, then FFmpeg's
  band-limited sinc resampler (64-tap filters) converts the rate. Arrays of any rate and layout go
  through the same resampler, so a file and its decoded array give the same samples.
  Decoding streams in chunks (:func:`iter_audio`), so an hour of audio need never be in memory.
- Video: frames at given times, or at a given rate, decoded in one forward pass and yielded one
  at a time; each time gets the frame on screen at that time, upright, at its display aspect,
  deinterlaced.
- Images: JPEG/PNG/... -> H x W x 3 uint8 RGB, whatever the file's mode.

Every failure is a :class:`~l3net.errors.MediaError` naming the file and the reason.

Modules: ``timeline`` (opening files, :func:`probe`, the :class:`Timeline`, seeking and decoding),
``audio`` (:class:`AudioReader`, :class:`AudioReport`), ``clock`` (:class:`AudioClock`: where each
audio frame goes on the timeline, pure), ``resampling`` (downmix and resampler, for
files and arrays), ``video`` (:class:`VideoReader`, :class:`VideoReport`, deinterlacing),
``images`` (image files and arrays), ``writer`` (:class:`VideoWriter`). This file only re-exports.
"""

from .audio import AudioReader, AudioReport, iter_audio, load_audio
from .clock import AUDIO_SYNC_LOOKAHEAD, AUDIO_SYNC_TOLERANCE, AudioClock, AudioPlacement
from .images import MIN_IMAGE_SIDE, center_crop, load_image, resize_smaller_side, to_rgb_uint8
from .resampling import RESAMPLER_OPTIONS, iter_resample, prepare_audio_array, resample, to_mono
from .timeline import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MEDIA_EXTENSIONS,
    SEEK_MARGINS,
    TIME_TOLERANCE,
    VIDEO_EXTENSIONS,
    MediaInfo,
    PathLike,
    Timeline,
    probe,
    read_timeline,
)
from .video import VideoReader, VideoReport, iter_video_frames, read_frames
from .writer import VideoWriter

__all__ = [
    "AUDIO_EXTENSIONS",
    "AUDIO_SYNC_LOOKAHEAD",
    "AUDIO_SYNC_TOLERANCE",
    "IMAGE_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "MIN_IMAGE_SIDE",
    "RESAMPLER_OPTIONS",
    "SEEK_MARGINS",
    "TIME_TOLERANCE",
    "VIDEO_EXTENSIONS",
    "AudioClock",
    "AudioPlacement",
    "AudioReader",
    "AudioReport",
    "MediaInfo",
    "PathLike",
    "Timeline",
    "VideoReader",
    "VideoReport",
    "VideoWriter",
    "center_crop",
    "iter_audio",
    "iter_resample",
    "iter_video_frames",
    "load_audio",
    "load_image",
    "prepare_audio_array",
    "probe",
    "read_frames",
    "read_timeline",
    "resample",
    "resize_smaller_side",
    "to_mono",
    "to_rgb_uint8",
]
