"""Decode sampled frames of a video file with PyAV: upright, resized, as uint8 RGB.

:func:`decode_video` opens a file, picks its video stream (never an attached cover picture)
and returns the frames that a :class:`FrameSampling` asks for:

``uniform``
    ``max_frames`` instants at the centres of equal slices of the video's time span; with
    constant frame rate and ``T`` frames this is ``uniform_indices(T, max_frames)``.
``fps``
    one instant every ``1 / fps`` seconds from the first frame on; when that gives more than
    ``max_frames`` instants, ``max_frames`` of them are kept, evenly spread.

Each instant takes the frame on screen at that time (the last one whose timestamp is not
after it), so timestamps (``pts * time_base``), not frame counts, decide; variable frame rate
is handled. A frame is returned at most once, so a short video or a low frame rate gives
fewer frames than asked for; that is not an error.

Where few frames of a video are sampled, they are found by seeking. Demuxing alone (no
decoding) gives every packet's timestamp and which packets are keyframes, so every frame's
time, and thus which frames to take, is known before decoding; each chosen frame is then
decoded from the last keyframe before it (or on from the previous chosen frame, where that
is nearer). This is done only where the frames it decodes, with :data:`SEEK_COST` more for
each seek, are at most :data:`SEEK_SHARE` of the video's frames, and only where the packets
tell each frame's time for sure (every packet has a timestamp, no two share one, none is
damaged); where a seek does not lead to the frame expected (a container whose seeking is
inexact, such as MPEG-TS), the video is decoded sequentially instead.

Otherwise, decoding is one sequential pass: every frame is decoded (a codec needs that), but
only the chosen ones are converted. Which frames to take is decided while decoding from the
duration the file declares; when the decoded timestamps show that guess was wrong (a
truncated file, a missing or wrong duration), a second pass takes the right ones. Either
way the same frames are taken. Chosen frames are converted to RGB and scaled by FFmpeg's
``swscale`` so that their shorter side is ``short_side`` (the backbone's resize size), turned
upright from the display matrix (rotation and mirroring, as phones write them) or, in old
files, the ``rotate`` tag, and pixels are made square from the sample aspect ratio.

A file without a video stream, one that FFmpeg cannot open, or one whose video stream gives
no frame raises :class:`DecodeError` with the reason. Damaged packets are skipped and a file
that ends early gives the frames before the damage; both are reported in
:attr:`DecodedVideo.notes`.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import VideoReformatter

SAMPLINGS = ("uniform", "fps")
# fmt: off
VIDEO_EXTENSIONS = frozenset((
    ".3gp", ".asf", ".avi", ".f4v", ".flv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg",
    ".mpg", ".mts", ".mxf", ".ogv", ".ts", ".vob", ".webm", ".wmv",
))
# fmt: on
INTERPOLATIONS = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "area": "AREA"}
MAX_DECODE_ERRORS = 50  # damaged packets tolerated before the rest of a file is given up
TRUNCATION_SLACK = 0.05  # missing share of the declared duration (and 2 frames) worth a note
# seek only where the frames decoded plus SEEK_COST for each seek are at most SEEK_SHARE of the
# frames. A seek (and decoding a keyframe) took as long as decoding 4 frames at 160x120; at
# 320x240, seeking took 0.97 of the time of decoding every frame where this estimate said 0.96,
# 0.78 where it said 0.91, and 0.58 where it said 0.52
SEEK_SHARE = 0.8
SEEK_COST = 4


class DecodeError(Exception):
    """A video file gave no frame; ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)  # both in args, so the error pickles across processes
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class FrameSampling:
    """Which frames to take: ``mode`` "uniform" or "fps", at most ``max_frames`` of them."""

    mode: str = "uniform"
    max_frames: int = 32
    fps: float | None = None  # frames per second, for mode "fps" only

    def __post_init__(self) -> None:
        if self.mode not in SAMPLINGS:
            raise ValueError(f"sampling {self.mode!r} is unknown; choose one of {SAMPLINGS}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames={self.max_frames}; it must be at least 1")
        if self.mode == "fps" and (self.fps is None or not self.fps > 0):
            raise ValueError(f"sampling 'fps' needs a positive fps, got {self.fps}")
        if self.mode == "uniform" and self.fps is not None:
            raise ValueError("fps is used only with sampling 'fps'; leave it unset for 'uniform'")

    def instants(self, start: Fraction, end: Fraction) -> list[Fraction]:
        """The times (seconds, ascending) to take frames at, for a video on ``[start, end)``."""
        span = max(end - start, Fraction(0))
        if self.mode == "uniform":
            count = self.max_frames
            return [start + span * (2 * k + 1) / (2 * count) for k in range(count)]
        step = 1 / Fraction(str(self.fps))
        count = max(1, math.ceil(span / step))
        chosen = np.arange(count)
        if count > self.max_frames:  # evenly thinned to the cap
            chosen = uniform_positions(count, self.max_frames)
        return [start + step * int(k) for k in chosen]


@dataclass
class DecodedVideo:
    path: Path
    frames: np.ndarray  # (frames, height, width, 3) uint8 RGB, upright
    timestamps: np.ndarray  # (frames,) float64 seconds of each returned frame
    decoded_frames: int  # frames decoded to find these (every pass and seek counted)
    total_frames: int  # frames in the video stream
    passes: int  # passes from the start (2 when the declared duration misled; 0: seeking)
    seeks: int = 0  # seeks to a keyframe before a sampled frame (0: decoded from the start)
    notes: list[str] = field(default_factory=list)  # what was odd but not fatal


def uniform_positions(length: int, count: int) -> np.ndarray:
    """``count`` of ``range(length)`` at the centres of equal segments (as in data.dataset)."""
    positions = (np.arange(count) + 0.5) * length / count
    return np.minimum(positions.astype(np.int64), length - 1)


def select_frames(timestamps: list[Fraction], end: Fraction, sampling: FrameSampling) -> list[int]:
    """Indices (ascending, distinct) of the frames on screen at the sampling instants.

    ``timestamps`` are non-decreasing presentation times in seconds; ``end`` is when the last
    frame stops being shown.
    """
    if not timestamps:
        return []
    chosen: list[int] = []
    frame = 0
    for instant in sampling.instants(timestamps[0], end):
        while frame + 1 < len(timestamps) and timestamps[frame + 1] <= instant:
            frame += 1
        if not chosen or chosen[-1] != frame:
            chosen.append(frame)
    return chosen


def is_video_file(path: Path) -> bool:
    """Whether a file name has a common video extension (used when scanning directories)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def decode_video(
    path: str | Path,
    sampling: FrameSampling,
    *,
    short_side: int | None = None,
    interpolation: str = "bilinear",
    threads: int = 1,
) -> DecodedVideo:
    """The sampled frames of one video file, upright, shorter side ``short_side`` (None: as
    stored, with square pixels). ``threads`` are FFmpeg decoding threads (0: FFmpeg chooses).

    Raises :class:`DecodeError` when the file gives no frame.
    """
    path = Path(path)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r}; choose one of {list(INTERPOLATIONS)}")
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side={short_side}; it must be positive")
    interpolation = INTERPOLATIONS[interpolation]
    found, wasted = _seek_pass(path, threads, _Scaler(short_side, interpolation), sampling)
    if found is None:
        found = _sequential_passes(path, threads, _Scaler(short_side, interpolation), sampling)
        found.decoded += wasted
    wanted = select_frames(found.timestamps, found.end, sampling)
    notes = found.notes
    if found.declared_end is not None:
        declared = found.declared_end - found.timestamps[0]
        shortfall = found.declared_end - found.end
        frame_interval = found.end - found.timestamps[-1]
        if shortfall > max(2 * frame_interval, TRUNCATION_SLACK * declared):
            notes.append(
                f"its frames end at {float(found.end):.2f} s but the file declares "
                f"{float(found.declared_end):.2f} s: it may be truncated (or its video track "
                f"is shorter than the others)"
            )
    return DecodedVideo(
        path=path,
        frames=np.stack([found.converted[index] for index in wanted]),
        timestamps=np.array([float(found.timestamps[index]) for index in wanted]),
        decoded_frames=found.decoded,
        total_frames=len(found.timestamps),
        passes=found.passes,
        seeks=found.seeks,
        notes=notes,
    )


# --------------------------------------------------------------------------- decoding passes


@dataclass
class _Pass:
    """What decoding found: every frame's time and the chosen frames, converted."""

    timestamps: list[Fraction]  # every frame's time, made non-decreasing
    end: Fraction  # when the last frame stops being shown
    declared_end: Fraction | None  # the end the container declares
    converted: dict[int, np.ndarray]  # frame index -> (height, width, 3) uint8
    notes: list[str]
    decoded: int  # frames decoded
    passes: int = 1
    seeks: int = 0


def _open(path: Path):
    """The container, opened for reading; raises :class:`DecodeError` with the reason."""
    try:
        return av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as error:
        reason = f"FFmpeg cannot open it ({_describe(error)})"
        if isinstance(error, av.error.InvalidDataError):
            reason += ": not a media file, or a damaged or truncated one"
        raise DecodeError(path, reason) from error
    except OSError as error:
        raise DecodeError(path, f"cannot be read ({error})") from error


def _sequential_passes(path: Path, threads: int, scaler: _Scaler, sampling: FrameSampling) -> _Pass:
    """Decode every frame, choosing from the declared duration; a second pass takes the right
    frames when the decoded timestamps show that guess was wrong."""
    first = _decode_pass(path, threads, scaler, provisional=sampling)
    wanted = select_frames(first.timestamps, first.end, sampling)
    if wanted != sorted(first.converted):
        second = _decode_pass(path, threads, scaler, wanted=set(wanted))
        if sorted(second.converted) != wanted:
            raise DecodeError(
                path, "the file decoded differently on a second pass; it is unreadable"
            )
        first.converted, first.decoded, first.passes = second.converted, first.decoded * 2, 2
    return first


def _decode_pass(
    path: Path,
    threads: int,
    scaler: _Scaler,
    *,
    provisional: FrameSampling | None = None,
    wanted: set[int] | None = None,
) -> _Pass:
    """Decode every frame once; convert those in ``wanted``, or, with ``provisional``, those
    the sampling picks from the declared duration (the caller checks that guess)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        declared_end = _declared_end(container, stream)
        reader = _FrameReader(container, stream, path)
        converted: dict[int, np.ndarray] = {}
        timestamps: list[Fraction] = []
        instants: deque[Fraction] = deque()
        previous = None  # the last frame seen, while it may still be picked
        for index, (frame, time) in enumerate(reader):
            if wanted is not None:
                if index in wanted:
                    converted[index] = scaler.convert(frame, stream)
            elif provisional is not None and declared_end is not None:
                if previous is None:
                    instants.extend(provisional.instants(time, declared_end))
                else:
                    picked = False
                    while instants and instants[0] < time:  # on screen before this frame
                        instants.popleft()
                        picked = True
                    if picked:
                        converted[index - 1] = scaler.convert(previous, stream)
                previous = frame
            timestamps.append(time)
        if previous is not None and instants:  # instants after the last frame's start
            converted[len(timestamps) - 1] = scaler.convert(previous, stream)
    if not timestamps:
        reason = "its video stream gave no frame"
        if reader.errors:
            reason += f" ({reader.errors} damaged packet(s); first: {reader.first_error})"
        raise DecodeError(path, reason)
    return _Pass(
        timestamps=timestamps,
        end=timestamps[-1] + _frame_interval(timestamps, reader.last_duration, stream),
        declared_end=declared_end,
        converted=converted,
        notes=reader.notes(),
        decoded=len(timestamps),
    )


# --------------------------------------------------------------------------- seeking


@dataclass
class _Packets:
    """The video stream's packets as demuxing alone (no decoding) gives them."""

    pts: list[int]  # in decoding order, in the stream's time base
    keyframe: list[bool]
    last_duration: int  # of the packet shown last


def _seek_pass(
    path: Path, threads: int, scaler: _Scaler, sampling: FrameSampling
) -> tuple[_Pass | None, int]:
    """The sampled frames found by seeking to the keyframe before each (frames' times come
    from the packets, which demuxing reads without decoding), or None where that is not sure
    to give the frames a sequential pass gives, or would not save much; and the frames
    decoded in vain when seeking failed."""
    try:
        container = _open(path)
    except DecodeError:
        return None, 0  # the sequential pass says why
    with container:
        try:
            stream = _video_stream(container, path)
        except DecodeError:
            return None, 0
        packets = _read_packets(container, stream)
        if packets is None:
            return None, 0
        time_base = Fraction(stream.time_base)
        frame_pts = sorted(packets.pts)
        timestamps = [pts * time_base for pts in frame_pts]
        last_duration = packets.last_duration * time_base or None
        end = timestamps[-1] + _frame_interval(timestamps, last_duration, stream)
        wanted = select_frames(timestamps, end, sampling)
        runs = _seek_runs(packets, [frame_pts[index] for index in wanted])
        if runs is None:
            return None, 0
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        converted, decoded = _decode_runs(container, stream, scaler, runs)
        if converted is None:
            return None, decoded
        index_of = {pts: index for index, pts in enumerate(frame_pts)}
        found = _Pass(
            timestamps=timestamps,
            end=end,
            declared_end=_declared_end(container, stream),
            converted={index_of[pts]: frame for pts, frame in converted.items()},
            notes=[],
            decoded=decoded,
            passes=0,
            seeks=len(runs),
        )
        return found, 0


def _read_packets(container, stream) -> _Packets | None:
    """Every packet's timestamp, or None where packets do not tell each frame's time: a packet
    without one, a damaged or discarded packet, two with one time, a read error."""
    pts: list[int] = []
    keyframe: list[bool] = []
    durations: dict[int, int] = {}
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the empty packet that ends the stream
                continue
            if packet.pts is None or packet.is_corrupt or packet.is_discard:
                return None
            pts.append(packet.pts)
            keyframe.append(packet.is_keyframe)
            durations[packet.pts] = packet.duration or 0
    except av.error.FFmpegError:
        return None
    if not pts or len(durations) < len(pts) or Fraction(stream.time_base or 0) <= 0:
        return None
    return _Packets(pts, keyframe, durations[max(pts)])


def _seek_runs(packets: _Packets, targets: list[int]) -> list[tuple[int, list[int]]] | None:
    """Where to seek (a keyframe's pts) and the frames (pts) to take after each seek, decoding
    on without a seek where the next frame's keyframe has been decoded already; None when that
    costs more than :data:`SEEK_SHARE` of a sequential pass, or a frame has no keyframe before
    it."""
    position = {pts: index for index, pts in enumerate(packets.pts)}  # in decoding order
    keyframes = [index for index, key in enumerate(packets.keyframe) if key]
    runs: list[tuple[int, list[int]]] = []
    reached = -1  # the decoding position reached
    cost = 0  # in frames decoded
    for target in targets:
        at = position[target]
        k = bisect.bisect_right(keyframes, at) - 1  # the last keyframe before it in decoding
        while k >= 0 and packets.pts[keyframes[k]] > target:  # ... and in time
            k -= 1
        if k < 0:
            return None
        if runs and keyframes[k] <= reached:
            runs[-1][1].append(target)
        else:
            runs.append((packets.pts[keyframes[k]], [target]))
            reached = keyframes[k] - 1
            cost += SEEK_COST
        cost += max(0, at - reached)
        reached = max(reached, at)
    return runs if cost <= SEEK_SHARE * len(packets.pts) else None


def _decode_runs(
    container, stream, scaler: _Scaler, runs: list[tuple[int, list[int]]]
) -> tuple[dict[int, np.ndarray] | None, int]:
    """pts -> converted frame for every target, or None where a target is not among the
    frames decoded after its seek, or decoding fails; and the frames decoded."""
    converted: dict[int, np.ndarray] = {}
    decoded = 0
    for seek_to, targets in runs:
        pending = deque(targets)
        try:
            container.seek(seek_to, stream=stream, backward=True)
            for packet in container.demux(stream):
                for frame in packet.decode():
                    decoded += 1
                    if frame.pts is None or frame.pts > pending[0]:
                        return None, decoded  # the target went by: the packets misled
                    if frame.pts == pending[0]:
                        converted[pending.popleft()] = scaler.convert(frame, stream)
                        if not pending:
                            break
                if not pending:
                    break
        except av.error.FFmpegError:
            return None, decoded
        if pending:
            return None, decoded
    return converted, decoded


class _FrameReader:
    """Decoded frames of one stream with their times in seconds, made non-decreasing.

    Damaged packets are skipped (counted); a container that cannot be read further ends the
    frames early. Both become notes.
    """

    def __init__(self, container, stream, path: Path) -> None:
        self.container = container
        self.stream = stream
        self.path = path
        self.errors = 0
        self.first_error = ""
        self.stopped = ""  # why reading stopped early, if it did
        self.last_duration: Fraction | None = None  # the last frame's own duration, seconds

    def __iter__(self) -> Iterator[tuple[av.VideoFrame, Fraction]]:
        rate = self.stream.guessed_rate or self.stream.average_rate or 25
        previous: Fraction | None = None
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as error:
                self.stopped = _describe(error)
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                self.errors += 1
                self.first_error = self.first_error or _describe(error)
                if self.errors > MAX_DECODE_ERRORS:
                    self.stopped = f"more than {MAX_DECODE_ERRORS} damaged packets"
                    return
                continue
            for frame in frames:
                time_base = frame.time_base or self.stream.time_base
                if frame.pts is not None and time_base is not None:
                    time = frame.pts * Fraction(time_base)
                else:  # no timestamp: one frame interval after the previous frame
                    time = Fraction(0) if previous is None else previous + 1 / Fraction(rate)
                if previous is not None and time < previous:
                    time = previous
                if frame.duration and time_base is not None:
                    self.last_duration = frame.duration * Fraction(time_base)
                previous = time
                yield frame, time

    def notes(self) -> list[str]:
        notes = []
        if self.errors:
            notes.append(f"skipped {self.errors} damaged packet(s) (first: {self.first_error})")
        if self.stopped:
            notes.append(f"decoding stopped early: {self.stopped}")
        return notes


def _video_stream(container, path: Path):
    """The first video stream that is not an attached picture (cover art)."""
    streams = list(container.streams)
    for stream in streams:
        if stream.type == "video" and not _is_picture(stream):
            return stream
    kinds = ", ".join(
        f"{'a cover picture' if _is_picture(stream) else stream.type} "
        f"({stream.codec_context.name if stream.codec_context else '?'})"
        for stream in streams
    )
    found = f"it holds only {kinds}" if kinds else "it holds no stream"
    raise DecodeError(path, f"no video stream: {found}")


def _is_picture(stream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _declared_end(container, stream) -> Fraction | None:
    """The end time (seconds) the stream, or else the container, declares."""
    if stream.duration and stream.time_base:
        start = stream.start_time or 0
        return (start + stream.duration) * Fraction(stream.time_base)
    if container.duration:
        start = container.start_time or 0
        return Fraction(start + container.duration, av.time_base)
    return None


def _frame_interval(timestamps: list[Fraction], last_duration: Fraction | None, stream) -> Fraction:
    """How long the last frame is shown: the median gap between frames, else its duration."""
    gaps = sorted(b - a for a, b in zip(timestamps, timestamps[1:], strict=False) if b > a)
    if gaps:
        return gaps[len(gaps) // 2]
    if last_duration:
        return last_duration
    rate = stream.guessed_rate or stream.average_rate
    return 1 / Fraction(rate) if rate else Fraction(0)


def _describe(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


# --------------------------------------------------------------------------- conversion


class _Scaler:
    """Converts a decoded frame to upright uint8 RGB with the shorter side ``short_side``."""

    def __init__(self, short_side: int | None, interpolation: str) -> None:
        self.short_side = short_side
        self.interpolation = interpolation
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame
        # one swscale context for the video, single-threaded: PyAV's default is a new context
        # with a thread per core for every frame (and threads must not outlive a fork)
        self._reformatter = VideoReformatter()

    def convert(self, frame: av.VideoFrame, stream) -> np.ndarray:
        """(height, width, 3) uint8, upright."""
        if self._size is None:  # every frame of a video gets the first frame's size
            self._size = _scaled_size(
                frame.width, frame.height, stream.sample_aspect_ratio, self.short_side
            )
        width, height = self._size
        converted = self._reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="rgb24",
            interpolation=self.interpolation,
            src_color_range=frame.color_range,  # full-range (phone) video stays full range
            dst_color_range="JPEG",
            threads=1,
        )
        return np.ascontiguousarray(_upright(converted.to_ndarray(), frame, stream))


def _scaled_size(
    width: int, height: int, sample_aspect: Fraction | None, short_side: int | None
) -> tuple[int, int]:
    """(width, height) with square pixels and, if given, the shorter side ``short_side``."""
    display_width = width * float(sample_aspect) if sample_aspect else float(width)
    if short_side is None:
        return max(1, round(display_width)), height
    if display_width <= height:  # torchvision's rule: the longer side is truncated
        return short_side, max(1, int(short_side * height / display_width))
    return max(1, int(short_side * display_width / height)), short_side


def _upright(rgb: np.ndarray, frame: av.VideoFrame, stream) -> np.ndarray:
    """The frame as it should be displayed: the display matrix's rotation and mirroring
    applied, or an old-style ``rotate`` tag (degrees clockwise) when there is no matrix."""
    side_data = frame.side_data.get(SideDataType.DISPLAYMATRIX)
    if side_data is not None:
        return apply_display_matrix(rgb, np.frombuffer(bytes(side_data), dtype=np.int32))
    tags = {key.lower(): value for key, value in stream.metadata.items()}  # MKV: "ROTATE"
    rotate = tags.get("rotate")
    if rotate:
        try:
            clockwise = round(float(rotate) / 90) % 4
        except ValueError:
            return rgb
        return np.rot90(rgb, k=-clockwise)
    return rgb


def apply_display_matrix(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` (height, width, ...) as displayed under an FFmpeg display matrix.

    The matrix (9 int32, row-major, 16.16 fixed point) maps a decoded pixel ``(x, y)`` to
    ``(a x + c y, b x + d y)`` on screen with ``a, b, c, d = m[0], m[1], m[3], m[4]``.
    Rotations that are not a multiple of 90 degrees are rounded to the nearest one.
    """
    a, b, c, d = (int(matrix[i]) for i in (0, 1, 3, 4))
    if abs(a) + abs(d) >= abs(b) + abs(c):  # axes kept: x' = a x, y' = d y
        out = image
        if a < 0:
            out = out[:, ::-1]
        if d < 0:
            out = out[::-1]
        return out
    out = np.swapaxes(image, 0, 1)  # axes swapped: x' = c y, y' = b x
    if c < 0:
        out = out[:, ::-1]
    if b < 0:
        out = out[::-1]
    return out
