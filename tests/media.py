"""Small video and audio files for the decode and extract tests, written with PyAV."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def gray(index: int) -> int:
    return 16 + 8 * index  # frame ``index`` of the default picture is a flat gray of this level


def flat_gray(index: int, height: int, width: int) -> np.ndarray:
    # -> (height, width, 3) uint8
    return np.full((height, width, 3), gray(index), np.uint8)


def write_video(
    path: Path,
    codec: str,
    width: int,
    height: int,
    count: int,
    *,
    picture: Callable[[int, int, int], np.ndarray] = flat_gray,
    times_ms: list[int] | None = None,
    rotation: tuple[int, bool, bool] | None = None,
    sample_aspect: Fraction | None = None,
    tags: dict[str, str] | None = None,
    gop: int | None = None,
) -> Path:
    """``count`` frames ``picture(index, height, width)`` at 25 fps, or at ``times_ms`` (variable
    frame rate); ``rotation`` = (degrees, hflip, vflip) is written as a display matrix; ``gop``
    frames at most from one keyframe to the next."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if times_ms is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            degrees, hflip, vflip = rotation
            stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        if sample_aspect is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect
        stream.metadata.update(tags or {})
        if gop is not None:
            stream.codec_context.gop_size = gop
        for index in range(count):
            pixels = picture(index, height, width).astype(np.uint8)  # (height, width, 3)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio(path: Path, codec: str, rate: int, samples: int, *, cover: bool = False) -> Path:
    """An audio-only file, optionally with a cover picture (an attached-picture stream)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        if cover:
            still = container.add_stream("png", rate=1)
            still.width, still.height, still.pix_fmt = 16, 16, "rgb24"
            still.disposition = av.stream.Disposition.attached_pic
            image = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            for packet in [*still.encode(image), *still.encode()]:
                container.mux(packet)
        audio_format = "fltp" if codec == "aac" else "s16"
        dtype = np.float32 if codec == "aac" else np.int16
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, samples), dtype), format=audio_format, layout="mono"
        )
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path
