"""The audio clock: where each decoded audio frame goes on the file's timeline (pure; no FFmpeg).

An audio stream's timestamps and the count of its decoded samples should agree; where they do
not, :class:`AudioClock` says what to do so that output sample ``i`` sits at timeline time
``start + i / rate``: silence before a stream that starts late (``padded_start``), cut the samples
of one that starts early or before t = 0 (``trimmed_start``), silence in a gap of the timestamps
(``gaps``), drop samples where they go back (``overlaps``), and silence after the end up to the
end of the picture (``padded_end``). Timestamps that jitter around the sample count without
drifting are no gap: a disagreement is corrected only where the next ``AUDIO_SYNC_LOOKAHEAD``
frames all share it, and only by the part they share.

The clock counts in samples at the rate of the frame being placed; a frame of another rate (a
stream whose rate changes mid-file) rescales the count to its own rate first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

#: Seconds by which an audio stream's timestamps may disagree with the count of its decoded samples
#: before silence is inserted (a gap) or samples are dropped (an overlap). Containers round
#: timestamps (Matroska to 1 ms), which is no gap; a drift never grows past this (half a frame
#: interval at 50 fps).
AUDIO_SYNC_TOLERANCE = 0.01
#: Decoded audio frames looked at after one whose timestamp disagrees with the samples so far:
#: only a disagreement they all share (a real gap or overlap, not timestamp jitter) is corrected.
AUDIO_SYNC_LOOKAHEAD = 8

T = TypeVar("T")


@dataclass(frozen=True)
class AudioPlacement:
    """What to do with one frame: ``pad`` samples of silence before it, then its samples without
    the first ``drop`` (all of them dropped when ``drop == samples``). Counts at ``rate`` Hz."""

    samples: int
    rate: int
    pad: int = 0
    drop: int = 0

    @property
    def skipped(self) -> bool:
        """True when the whole frame is dropped (nothing of it is heard)."""
        return self.drop >= self.samples


@dataclass
class _Waiting(Generic[T]):
    item: T
    samples: int
    rate: int
    time: float | None  # timeline seconds of the frame's first sample (None: no timestamp)


class AudioClock(Generic[T]):
    """Places decoded audio frames on the timeline, ``AUDIO_SYNC_LOOKAHEAD`` frames behind decoding.

    ``rate``: the stream's sample rate (Hz), the unit of the count until a frame says otherwise.
    ``start``: timeline seconds of the first output sample (samples before it are cut; from a seek
    that is no news, so ``trimmed_start`` counts them only when ``start`` is 0). Feed each decoded
    frame to :meth:`add` (any ``item`` of the caller's, its sample count, its timeline time in
    seconds and its rate); it returns the frames that leave the look-ahead window with their
    :class:`AudioPlacement`, in order. At the end :meth:`flush` places the rest (lazily: a caller
    that needs no more stops iterating) and :meth:`end_padding` gives the silence up to the end.
    The report fields (seconds) accumulate as frames are placed.
    """

    def __init__(
        self,
        rate: int,
        *,
        start: float = 0.0,
        tolerance: float = AUDIO_SYNC_TOLERANCE,
        lookahead: int = AUDIO_SYNC_LOOKAHEAD,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = int(rate)
        self.start = float(start)
        self.tolerance_s, self.lookahead = float(tolerance), int(lookahead)
        self.position = round(self.start * self.rate)  # timeline sample (at `rate`) of the next sample out
        self.placed = 0  # frames placed (not skipped) so far
        self._dropping = False  # the last frame was dropped whole: an overlap still being cut
        self._ahead: deque[_Waiting[T]] = deque()
        #: timeline seconds of the first timestamp seen (reading from t = 0 only), else None
        self.offset: float | None = None
        self.padded_start = 0.0
        self.trimmed_start = 0.0
        self.gaps = 0.0
        self.overlaps = 0.0
        self.padded_end = 0.0

    @property
    def tolerance(self) -> int:
        """``AUDIO_SYNC_TOLERANCE`` in samples at the current rate."""
        return round(self.tolerance_s * self.rate)

    def add(self, item: T, samples: int, time: float | None, rate: int | None = None) -> list[tuple[T, AudioPlacement]]:
        """Queue one decoded frame (``samples`` long at ``rate`` Hz, None: the clock's rate, first
        sample at timeline ``time`` seconds); return the frames placed now (at most one)."""
        rate = self.rate if rate is None else int(rate)
        if self.offset is None and time is not None and self.start == 0:
            self.offset = round(time * rate) / rate
        self._ahead.append(_Waiting(item, int(samples), rate, time))
        if len(self._ahead) > self.lookahead:
            return [self._place(self._ahead.popleft())]
        return []

    def flush(self) -> Iterator[tuple[T, AudioPlacement]]:
        """Place the frames still waiting, one at a time (decoding has ended)."""
        while self._ahead:
            yield self._place(self._ahead.popleft())

    def end_padding(self, end: float | None) -> int:
        """Samples of silence (at the current rate) after the last frame up to timeline ``end``
        seconds (None: no end, 0); recorded in ``padded_end``. Nothing placed: nothing to pad."""
        if end is None or not self.placed:
            return 0
        missing = round(end * self.rate) - self.position
        if missing <= self.tolerance:
            return 0
        self.padded_end += missing / self.rate
        self.position += missing
        return missing

    def _rescale(self, rate: int) -> None:
        # A frame of another rate: count in its samples from here (rounded once, to its nearest sample).
        if rate != self.rate:
            self.position = round(self.position * rate / self.rate)
            self.rate = rate

    def _persistent(self, lead: int, after: int) -> int:
        """The part of ``lead`` (samples) that the frames waiting after this one share.

        Some muxers write timestamps that jitter around the sample count (+-20 ms) without
        drifting: one frame off is no gap. A real gap (or overlap) moves every frame after it:
        only the offset all of the waiting frames share is corrected.
        """
        shared = abs(lead)
        for waiting in self._ahead:
            if waiting.time is not None:
                offset = round(waiting.time * self.rate) - after
                if offset * lead <= 0 or abs(offset) <= self.tolerance:
                    return 0
                shared = min(shared, abs(offset))
            # an untimed frame still takes its place: the next ones start after its samples
            after += round(waiting.samples * self.rate / waiting.rate)
        return shared if lead > 0 else -shared

    def _place(self, frame: _Waiting[T]) -> tuple[T, AudioPlacement]:
        self._rescale(frame.rate)
        rate, first, tolerance = self.rate, self.placed == 0, self.tolerance
        # An overlap longer than a frame is cut to its end: what is left of it after whole frames
        # were dropped is the same overlap (already confirmed), however short.
        exact = first or self._dropping
        pad = drop = 0
        if frame.time is not None:
            lead = round(frame.time * rate) - self.position  # > 0: the frame starts after the samples so far end
            if not exact and abs(lead) > tolerance:
                lead = self._persistent(lead, self.position + frame.samples) if self._ahead else 0
            if lead > 0 and (first or lead > tolerance):
                if first:
                    self.padded_start += lead / rate
                else:
                    self.gaps += lead / rate
                pad = lead
                self.position += lead
            elif lead < 0 and (exact or -lead > tolerance):
                drop = min(-lead, frame.samples)
                if not first:
                    self.overlaps += drop / rate
                elif self.start == 0:  # (from a seek, the samples before `start` are no news)
                    self.trimmed_start += drop / rate
        placement = AudioPlacement(frame.samples, rate, pad, drop)
        self._dropping = placement.skipped
        if not placement.skipped:
            self.placed += 1
            self.position += frame.samples - drop
        return frame.item, placement
