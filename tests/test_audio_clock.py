"""The audio clock (media/clock.py) on synthetic timestamps: no media file, no FFmpeg.

Each test feeds frames (sample count, timeline time) and checks the exact samples padded or dropped
and the report fields; the clapper files of test_timing.py check the same logic end to end.
"""

from __future__ import annotations

import pytest

from l3net.media.clock import AUDIO_SYNC_LOOKAHEAD, AUDIO_SYNC_TOLERANCE, AudioClock, AudioPlacement

RATE = 48_000
N = 1024  # samples per frame (AAC's)


def on_time(count: int, *, t0: float = 0.0, rate: int = RATE, samples: int = N, first: int = 0) -> list[tuple[int, float]]:
    """``count`` contiguous frames whose timestamps agree with their samples, from ``t0`` seconds."""
    return [(samples, t0 + (first + k) * samples / rate) for k in range(count)]


def place_all(clock: AudioClock[int], frames: list[tuple[int, float | None]], rate: int | None = None) -> list[AudioPlacement]:
    """Every frame's placement, in order (the item is the frame's index)."""
    out: list[tuple[int, AudioPlacement]] = []
    for index, (samples, time) in enumerate(frames):
        out += clock.add(index, samples, time, rate)
    out += list(clock.flush())
    assert [i for i, _ in out] == list(range(len(frames)))
    return [p for _, p in out]


def heard(placements: list[AudioPlacement]) -> int:
    """Output samples: silence plus what is kept of each frame."""
    return sum(p.pad + p.samples - p.drop for p in placements)


def test_frames_on_time_are_placed_as_they_are() -> None:
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, on_time(30))
    assert all(p.pad == 0 and p.drop == 0 for p in placements)
    assert (clock.padded_start, clock.gaps, clock.overlaps, clock.trimmed_start) == (0, 0, 0, 0)
    assert clock.offset == 0.0 and clock.position == 30 * N


def test_a_late_start_is_preceded_by_exactly_its_silence() -> None:
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, on_time(20, t0=0.25))
    assert placements[0].pad == 12_000 and all(p.pad == 0 for p in placements[1:])
    assert clock.padded_start == 0.25 and clock.offset == 0.25 and clock.gaps == 0
    assert heard(placements) == 12_000 + 20 * N


def test_a_first_frame_one_sample_late_is_padded_by_one_sample() -> None:
    # the first frame has nothing to be jitter against: any lead, even under the tolerance, is placed exactly
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, on_time(3, t0=1 / RATE))
    assert placements[0].pad == 1 and clock.padded_start == pytest.approx(1 / RATE)


def test_a_timestamp_a_float_rounding_under_its_sample_is_that_sample() -> None:
    # pts x time_base lands a hair either side of a sample: the clock takes the nearest sample, so a
    # late start and a gap keep their exact lengths (truncating would make each a sample short)
    late, gap, under = 12_000, 4_800, 1e-9  # samples, samples, seconds (a 20,000th of a sample)
    frames = [(N, (late + k * N) / RATE - under) for k in range(10)]
    frames += [(N, (late + gap + k * N) / RATE - under) for k in range(10, 30)]
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    assert placements[0].pad == late and placements[10].pad == gap
    assert sum(p.pad for p in placements) == late + gap and all(p.drop == 0 for p in placements)
    assert clock.position == late + gap + 30 * N


def test_a_gap_past_the_tolerance_becomes_silence_of_its_length() -> None:
    clock: AudioClock[int] = AudioClock(RATE)
    gap = 4_800  # 100 ms
    frames = on_time(10) + on_time(20, t0=gap / RATE, first=10)
    placements = place_all(clock, frames)
    assert [p.pad for p in placements] == [0] * 10 + [gap] + [0] * 19
    assert clock.gaps == pytest.approx(0.1) and clock.padded_start == 0 and clock.overlaps == 0
    assert heard(placements) == gap + 30 * N


def test_a_drift_within_the_tolerance_is_left_alone() -> None:
    clock: AudioClock[int] = AudioClock(RATE)
    inside = round(AUDIO_SYNC_TOLERANCE * RATE)  # exactly the tolerance: still no gap
    frames = on_time(10) + on_time(20, t0=inside / RATE, first=10)
    placements = place_all(clock, frames)
    assert all(p.pad == 0 and p.drop == 0 for p in placements) and clock.gaps == 0


def test_jitter_beyond_the_tolerance_without_drift_is_no_gap() -> None:
    # one frame's timestamp 20 ms late (muxers' rounding), the next ones back on time: nothing moves
    frames = on_time(30)
    frames[12] = (N, frames[12][1] + 0.02)
    frames[20] = (N, frames[20][1] - 0.02)
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    assert all(p.pad == 0 and p.drop == 0 for p in placements)
    assert clock.gaps == 0 and clock.overlaps == 0 and clock.position == 30 * N


def test_only_the_part_of_a_gap_all_waiting_frames_share_is_filled() -> None:
    # frame 10 says 100 ms late, the frames after it 60 ms late (the rest of its lead was jitter)
    frames = on_time(10) + [(N, 10 * N / RATE + 0.1)] + on_time(20, t0=0.06, first=11)
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    assert placements[10].pad == round(0.06 * RATE) and clock.gaps == pytest.approx(0.06)
    assert sum(p.pad for p in placements) == round(0.06 * RATE)


def test_an_overlap_drops_the_samples_heard_twice() -> None:
    back = 2 * N + 352  # two whole frames, and 352 samples (under the tolerance) of the third
    frames = on_time(10) + on_time(20, t0=-back / RATE, first=10)
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    assert [p.drop for p in placements] == [0] * 10 + [N, N, back - 2 * N] + [0] * 17
    assert placements[10].skipped and placements[11].skipped and not placements[12].skipped
    assert clock.overlaps == pytest.approx(back / RATE) and clock.gaps == 0 and clock.trimmed_start == 0
    assert heard(placements) == 30 * N - back


def test_an_overlap_spanning_frames_is_cut_to_its_end() -> None:
    # what is left of the overlap after a whole frame is dropped (100 samples, far under the
    # tolerance) is cut too: the next frame starts exactly where its timestamp says
    frames = on_time(10) + on_time(20, t0=-(N + 100) / RATE, first=10)
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    assert [p.drop for p in placements[10:13]] == [N, 100, 0]
    assert clock.position == 30 * N - (N + 100)


def test_samples_before_zero_are_trimmed_and_reported() -> None:
    frames = on_time(20, t0=-1500 / RATE)  # a stream that starts 1500 samples before t = 0
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    # the first frame is wholly before 0; the second, still "first heard", loses the other 476
    assert placements[0].skipped and placements[1].drop == 1500 - N and placements[2].drop == 0
    assert clock.trimmed_start == pytest.approx(1500 / RATE) and clock.overlaps == 0
    assert clock.offset == pytest.approx(-1500 / RATE)
    assert heard(placements) == 20 * N - 1500


def test_from_a_seek_the_samples_before_the_start_are_cut_but_not_reported() -> None:
    start = 2.0
    clock: AudioClock[int] = AudioClock(RATE, start=start)
    placements = place_all(clock, on_time(10, t0=start - 0.01))
    assert placements[0].drop == 480 and clock.trimmed_start == 0 and clock.offset is None
    assert clock.position == round(start * RATE) + 10 * N - 480


def test_a_video_s_sound_is_padded_to_the_end_of_its_picture_an_audio_file_s_is_not() -> None:
    clock: AudioClock[int] = AudioClock(RATE)
    place_all(clock, on_time(40))  # 40 * 1024 samples: 0.853 s
    assert clock.end_padding(None) == 0 and clock.padded_end == 0
    assert clock.end_padding(1.0) == RATE - 40 * N and clock.padded_end == pytest.approx(1.0 - 40 * N / RATE)


def test_end_padding_within_the_tolerance_is_none_and_nothing_placed_pads_nothing() -> None:
    clock: AudioClock[int] = AudioClock(RATE)
    place_all(clock, on_time(10))
    assert clock.end_padding((10 * N + round(AUDIO_SYNC_TOLERANCE * RATE)) / RATE) == 0
    empty: AudioClock[int] = AudioClock(RATE)
    assert empty.end_padding(5.0) == 0


def test_placement_waits_for_the_lookahead_frames() -> None:
    clock: AudioClock[int] = AudioClock(RATE)
    frames = on_time(AUDIO_SYNC_LOOKAHEAD + 2)
    returned = [len(clock.add(i, samples, time)) for i, (samples, time) in enumerate(frames)]
    assert returned == [0] * AUDIO_SYNC_LOOKAHEAD + [1, 1]
    assert len(list(clock.flush())) == AUDIO_SYNC_LOOKAHEAD


def test_a_gap_the_lookahead_does_not_confirm_is_not_filled() -> None:
    # the jump lasts fewer frames than the look-ahead: the next frames disagree, so it is jitter
    short = AUDIO_SYNC_LOOKAHEAD - 2
    frames = on_time(10) + on_time(short, t0=0.1, first=10) + on_time(20, first=10 + short)
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    assert all(p.pad == 0 for p in placements) and clock.gaps == 0


def test_a_disagreement_on_the_last_frame_is_not_corrected() -> None:
    # nothing waits after it to confirm a gap
    frames = on_time(10) + [(N, 10 * N / RATE + 0.1)]
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    assert placements[-1].pad == 0 and clock.gaps == 0


def test_an_untimed_frame_still_takes_its_place() -> None:
    # an overlap of 600 samples, and among the frames waiting after it one without a timestamp:
    # the frames after that one start after its samples, so they confirm the overlap
    frames: list[tuple[int, float | None]] = on_time(10) + on_time(20, t0=-600 / RATE, first=10)
    frames[12] = (N, None)
    clock: AudioClock[int] = AudioClock(RATE)
    placements = place_all(clock, frames)
    assert placements[10].drop == 600 and clock.overlaps == pytest.approx(600 / RATE)
    assert sum(p.drop for p in placements) == 600


def test_a_rate_change_continues_the_count_without_a_gap() -> None:
    # 48 kHz stereo for 0.5 s, then 44.1 kHz frames whose timestamps follow on: no silence, nothing dropped
    first = on_time(24, samples=1000)  # 24000 samples: 0.5 s
    clock: AudioClock[int] = AudioClock(RATE)
    out: list[AudioPlacement] = []
    for index, (samples, time) in enumerate(first):
        out += [p for _, p in clock.add(index, samples, time, RATE)]
    for index, (samples, time) in enumerate(on_time(30, t0=0.5, rate=44_100, samples=882)):
        out += [p for _, p in clock.add(100 + index, samples, time, 44_100)]
    out += [p for _, p in clock.flush()]
    assert all(p.pad == 0 and p.drop == 0 for p in out) and clock.gaps == 0 and clock.overlaps == 0
    assert clock.rate == 44_100 and clock.position == round(0.5 * 44_100) + 30 * 882
    assert [p.rate for p in out] == [RATE] * 24 + [44_100] * 30


def test_a_gap_at_a_rate_change_is_counted_in_the_new_rate() -> None:
    clock: AudioClock[int] = AudioClock(RATE)
    frames = on_time(24, samples=1000) + on_time(30, t0=0.6, rate=44_100, samples=882)
    rates = [RATE] * 24 + [44_100] * 30
    out: list[AudioPlacement] = []
    for index, ((samples, time), rate) in enumerate(zip(frames, rates)):
        out += [p for _, p in clock.add(index, samples, time, rate)]
    out += [p for _, p in clock.flush()]
    assert out[24].pad == 4_410 and out[24].rate == 44_100 and clock.gaps == pytest.approx(0.1)


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        AudioClock(0)
