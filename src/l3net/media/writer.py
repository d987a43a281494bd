"""The one MP4 writer: RGB frames and an optional mono sound track (:class:`VideoWriter`)."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..config import SAMPLE_RATE
from .timeline import PathLike

class VideoWriter:
    """An MP4 of RGB frames (H.264, or MPEG-4 Part 2 where FFmpeg lacks libx264) with an optional mono
    sound track (AAC), written under a temporary name and renamed into place by :meth:`close`.

    ``fps``: frames per second. ``audio``: float32 mono samples at ``audio_rate`` Hz, interleaved with
    the pictures as they are written (padded with silence when shorter). The frame size is that of the
    first frame (cropped to even sizes, as 4:2:0 chroma needs). ``options``: encoder options (e.g.
    ``{"preset": "ultrafast", "crf": "20"}``); ``threads``: encoder threads (None: FFmpeg's choice).
    Use it as a context manager: an exception inside discards the file.
    """

    def __init__(
        self,
        path: PathLike,
        fps: float,
        audio: np.ndarray | None = None,
        *,
        audio_rate: int = SAMPLE_RATE,
        options: dict[str, str] | None = None,
        threads: int | None = None,
    ) -> None:
        from ..fileio import atomic_path

        self.path = Path(path)
        self._context = atomic_path(self.path, suffix=".mp4")
        self._tmp = self._context.__enter__()
        self.container = av.open(str(self._tmp), mode="w", format="mp4")
        self.rate = Fraction(fps).limit_denominator(1000)
        self._options, self._threads = options, threads
        self.video: Any = None
        self.audio: Any = None
        self._audio_data = audio
        self._audio_rate = int(audio_rate)
        self._audio_done = 0
        self.frames = 0
        if audio is not None:
            try:
                self.audio = self.container.add_stream("aac", rate=self._audio_rate, layout="mono")
            except (av.error.FFmpegError, ValueError) as exc:  # an FFmpeg without an AAC encoder
                warnings.warn(f"{self.path}: no AAC encoder ({exc}); the video is written without sound")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)

    def _open_video(self, height: int, width: int) -> None:
        from ..errors import OutputError

        for codec in ("libx264", "mpeg4"):
            try:
                av.codec.Codec(codec, "w")
            except (av.error.FFmpegError, ValueError):
                continue
            self.video = self.container.add_stream(codec, rate=self.rate)
            break
        else:
            raise OutputError(f"{self.path}: FFmpeg has neither a libx264 nor an mpeg4 encoder: cannot write a video")
        self.video.width, self.video.height = width - width % 2, height - height % 2
        self.video.pix_fmt = "yuv420p"
        if self._options and self.video.codec_context.name == "libx264":
            self.video.options = dict(self._options)
        if self._threads is not None:
            self.video.codec_context.thread_count = self._threads

    def write(self, image: np.ndarray) -> None:
        """Append one H x W x 3 uint8 RGB frame (then the sound up to its end)."""
        if self.video is None:
            self._open_video(*image.shape[:2])
        image = np.ascontiguousarray(image[: self.video.height, : self.video.width])
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.frames
        self.frames += 1
        for packet in self.video.encode(frame):
            self.container.mux(packet)
        self._write_audio_until(self.frames / float(self.rate))

    def _write_audio_until(self, seconds: float) -> None:
        if self.audio is None or self._audio_data is None:
            return
        end = round(seconds * self._audio_rate)
        if end <= self._audio_done:
            return
        chunk = self._audio_data[self._audio_done : end]
        if chunk.size < end - self._audio_done:  # sound shorter than the pictures: silence
            chunk = np.pad(chunk, (0, end - self._audio_done - chunk.size))
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, dtype=np.float32).reshape(1, -1),
                                           format="fltp", layout="mono")
        frame.sample_rate = self._audio_rate
        frame.pts = self._audio_done
        self._audio_done = end
        for packet in self.audio.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and rename the file into place."""
        try:
            if self.video is not None:
                for packet in self.video.encode():
                    self.container.mux(packet)
            if self.audio is not None:
                for packet in self.audio.encode():
                    self.container.mux(packet)
            self.container.close()
        except BaseException as exc:
            self.abort(exc)
            raise
        self._context.__exit__(None, None, None)

    def abort(self, exc: BaseException | None = None) -> None:
        """Discard the file (nothing is left under its name or a temporary one)."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass
        error = exc or RuntimeError("aborted")
        try:
            self._context.__exit__(type(error), error, error.__traceback__)
        except BaseException:  # noqa: BLE001 - atomic_path re-raises what it is handed
            pass
