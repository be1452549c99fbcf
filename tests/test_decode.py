"""PyAV decoding on small generated videos: codecs, odd sizes, variable frame rate, rotation,
square pixels, truncated, audio-only and non-video files, and the frame selection rule."""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pytest

from mcsan.data.dataset import uniform_indices
from mcsan.extract import decode
from mcsan.extract.decode import (
    DecodeError,
    FrameSampling,
    apply_display_matrix,
    decode_video,
    select_frames,
)
from media import write_audio, write_video

VFR_MS = [0, 40, 80, 300, 340, 900, 940, 980, 1500, 1540]  # frame times of the VFR video


def frame_indices(frames: np.ndarray) -> list[int]:
    """Which generated frames were decoded, read back from their gray levels."""
    return [round((float(frame.mean()) - 16) / 8) for frame in frames]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    files = {
        "h264": write_video(root / "h264.mp4", "libx264", 48, 36, 20),
        "mpeg4_odd": write_video(root / "odd.avi", "mpeg4", 33, 17, 20),
        "vp9": write_video(root / "vp9.webm", "libvpx-vp9", 48, 36, 20),
        "mjpeg_odd": write_video(root / "mjpeg.mkv", "mjpeg", 33, 17, 20),
        "vfr": write_video(root / "vfr.mkv", "mpeg4", 48, 36, 10, times_ms=VFR_MS),
        "anamorphic": write_video(
            root / "anamorphic.avi", "mpeg4", 32, 36, 3, sample_aspect=Fraction(2)
        ),
        "long_mkv": write_video(root / "long.mkv", "mpeg4", 48, 36, 30),
        "long_mp4": write_video(root / "long.mp4", "libx264", 48, 36, 30),
        "wav": write_audio(root / "speech.wav", "pcm_s16le", 8000, 800),
        "cover_art": write_audio(root / "song.mp4", "aac", 16000, 4096, cover=True),
    }
    for name, source in (("cut_mkv", "long_mkv"), ("cut_mp4", "long_mp4")):
        data = files[source].read_bytes()
        files[name] = root / f"cut_{files[source].name}"
        files[name].write_bytes(data[: len(data) // 2])
    files["text"] = root / "notes.mp4"
    files["text"].write_text("this is not a video\n" * 20)
    return files


@pytest.mark.parametrize(
    ("name", "height", "width"),
    [("h264", 36, 48), ("mpeg4_odd", 17, 33), ("vp9", 36, 48), ("mjpeg_odd", 17, 33)],
)
def test_codecs_and_odd_sizes_decode_the_uniformly_chosen_frames(videos, name, height, width):
    decoded = decode_video(videos[name], FrameSampling("uniform", 8))
    assert decoded.frames.shape == (8, height, width, 3) and decoded.frames.dtype == np.uint8
    expected = uniform_indices(20, 8).tolist()
    assert frame_indices(decoded.frames) == expected
    assert np.allclose(decoded.timestamps, np.array(expected) / 25)
    assert decoded.decoded_frames == decoded.total_frames == 20 and decoded.notes == []
    assert decoded.passes == 1 and decoded.seeks == 0  # 8 of 20 frames: no seeking


def test_frames_are_scaled_to_the_short_side_keeping_the_aspect(videos):
    wide = decode_video(videos["h264"], FrameSampling("uniform", 2), short_side=24)
    assert wide.frames.shape == (2, 24, 32, 3)
    odd = decode_video(videos["mpeg4_odd"], FrameSampling("uniform", 2), short_side=24)
    assert odd.frames.shape == (2, 24, int(24 * 33 / 17), 3)
    assert frame_indices(odd.frames) == uniform_indices(20, 2).tolist()


def test_anamorphic_pixels_are_made_square(videos):
    decoded = decode_video(videos["anamorphic"], FrameSampling("uniform", 1))
    assert decoded.frames.shape == (1, 36, 64, 3)  # 32 stored columns, each twice as wide


def test_fps_sampling_takes_the_frame_on_screen_and_thins_to_the_cap(videos):
    every_tenth = decode_video(videos["h264"], FrameSampling("fps", 100, fps=10))
    assert frame_indices(every_tenth.frames) == [0, 2, 5, 7, 10, 12, 15, 17]
    capped = decode_video(videos["h264"], FrameSampling("fps", 4, fps=10))
    assert frame_indices(capped.frames) == [2, 7, 12, 17]  # 4 of the 8 instants, spread
    slow = decode_video(videos["h264"], FrameSampling("fps", 100, fps=2))
    assert frame_indices(slow.frames) == [0, 12]  # 0.0 s and 0.5 s of a 0.8 s video


def test_variable_frame_rate_follows_timestamps_not_frame_counts(videos):
    uniform = decode_video(videos["vfr"], FrameSampling("uniform", 4))
    # span 0 .. 1.58 s; instants 0.20, 0.59, 0.99, 1.38 s fall in frames 2, 4, 7 and 7 again;
    # counting frames instead would give uniform_indices(10, 4) = [1, 3, 6, 8]
    assert frame_indices(uniform.frames) == [2, 4, 7]
    assert np.allclose(uniform.timestamps, [0.08, 0.34, 0.98])
    per_second = decode_video(videos["vfr"], FrameSampling("fps", 10, fps=2))
    assert frame_indices(per_second.frames) == [0, 4, 7, 8]  # at 0, 0.5, 1.0, 1.5 s


QUADRANT_IMAGE = np.full((32, 48, 3), 90, np.uint8)
QUADRANT_IMAGE[:16, :24] = (255, 0, 0)  # red top-left quarter, the rest gray


def quadrants(index: int, height: int, width: int) -> np.ndarray:
    # -> (32, 48, 3) QUADRANT_IMAGE for every frame
    return QUADRANT_IMAGE


def red_mask(image: np.ndarray) -> np.ndarray:
    return (image[..., 0] > 170) & (image[..., 1] < 80)


@pytest.mark.parametrize(
    "rotation",
    [
        (90, False, False),
        (180, False, False),
        (270, False, False),
        (90, True, False),
        (0, False, True),
    ],
)
def test_display_matrix_rotation_and_mirroring_give_upright_frames(tmp_path, rotation):
    path = write_video(
        tmp_path / "phone.mp4", "libx264", 48, 32, 2, picture=quadrants, rotation=rotation
    )
    degrees, hflip, vflip = rotation
    expected = np.rot90(QUADRANT_IMAGE, degrees // 90)  # counter-clockwise, then mirrored
    if hflip:
        expected = expected[:, ::-1]
    if vflip:
        expected = expected[::-1]
    decoded = decode_video(path, FrameSampling("uniform", 1))
    assert decoded.frames.shape[1:] == expected.shape
    agreement = (red_mask(decoded.frames[0]) == red_mask(expected)).mean()
    assert agreement > 0.95


def test_old_rotate_tag_is_honoured_without_a_display_matrix(tmp_path):
    path = write_video(
        tmp_path / "tagged.mkv", "mpeg4", 48, 32, 2, picture=quadrants, tags={"rotate": "90"}
    )
    decoded = decode_video(path, FrameSampling("uniform", 1))
    expected = np.rot90(QUADRANT_IMAGE, -1)  # the tag counts degrees clockwise
    assert (red_mask(decoded.frames[0]) == red_mask(expected)).mean() > 0.95


def test_display_matrix_reading():
    image = np.arange(6).reshape(2, 3)
    one = 1 << 16
    identity = np.array([one, 0, 0, 0, one, 0, 0, 0, 1 << 30], dtype=np.int32)
    assert np.array_equal(apply_display_matrix(image, identity), image)
    mirrored = identity.copy()
    mirrored[0] = -one
    assert np.array_equal(apply_display_matrix(image, mirrored), image[:, ::-1])
    counter_clockwise = np.array([0, -one, 0, one, 0, 0, 0, 0, 1 << 30], dtype=np.int32)
    assert np.array_equal(apply_display_matrix(image, counter_clockwise), np.rot90(image))


def test_truncated_file_gives_the_frames_before_the_cut_with_a_note(videos):
    decoded = decode_video(videos["cut_mkv"], FrameSampling("uniform", 8))
    assert 0 < decoded.total_frames < 30 and len(decoded.frames) == 8
    indices = frame_indices(decoded.frames)
    assert indices == uniform_indices(decoded.total_frames, 8).tolist()
    assert any("truncated" in note for note in decoded.notes)
    assert decoded.passes == 2  # the declared 1.2 s misled the first pass
    assert decoded.decoded_frames == 2 * decoded.total_frames



def numbered(index: int, height: int, width: int) -> np.ndarray:
    # -> (height, width, 3): a colour of its own for each of the first 1,530 frames
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = 5 * (index % 51)
    pixels[..., 1] = 8 * (index // 51)
    return pixels


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    """12 s at 25 fps with a keyframe every second at most: H.264 (with B-frames) in MP4,
    Matroska and MPEG-TS (whose seeking is inexact), MPEG-4 Part 2 in AVI (its keyframes
    where the encoder chose), and an H.264 stream without a container (no timestamps)."""
    root = tmp_path_factory.mktemp("long")
    made = {}
    for name, codec in [("mp4", "libx264"), ("mkv", "libx264"), ("avi", "mpeg4"),
                        ("ts", "libx264"), ("h264", "libx264")]:
        made[name] = write_video(root / f"long.{name}", codec, 48, 36, 300, picture=numbered,
                                 gop=25)
    return made


def decode_sequentially(path, sampling, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(decode, "SEEK_SHARE", 0)  # seeking never pays
        return decode_video(path, sampling)


@pytest.mark.parametrize("name", ["mp4", "mkv", "avi"])
@pytest.mark.parametrize(
    "sampling", [FrameSampling("uniform", 4), FrameSampling("fps", 100, fps=0.45)]
)
def test_seeking_takes_the_frames_that_sequential_decoding_takes(
    long_videos, monkeypatch, name, sampling
):
    sought = decode_video(long_videos[name], sampling)
    decoded = decode_sequentially(long_videos[name], sampling, monkeypatch)
    assert sought.seeks > 0 and sought.passes == 0 and decoded.seeks == 0
    assert np.array_equal(sought.timestamps, decoded.timestamps)
    assert np.array_equal(sought.frames, decoded.frames)
    assert sought.total_frames == decoded.total_frames == decoded.decoded_frames == 300
    assert sought.decoded_frames <= 300 * decode.SEEK_SHARE
    assert sought.notes == decoded.notes == []


def test_without_sure_seeking_or_with_dense_sampling_every_frame_is_decoded(
    long_videos, monkeypatch
):
    sampling = FrameSampling("uniform", 4)
    for name in ("ts", "h264"):  # seeking inexact; no timestamps in the packets
        decoded = decode_video(long_videos[name], sampling)
        expected = decode_sequentially(long_videos[name], sampling, monkeypatch)
        assert decoded.seeks == 0 and decoded.decoded_frames >= 300
        assert np.array_equal(decoded.frames, expected.frames)
    assert decoded.passes == 2  # the stream declares no duration to choose by
    dense = decode_video(long_videos["mp4"], FrameSampling("uniform", 32))
    assert dense.seeks == 0 and dense.passes == 1 and dense.decoded_frames == 300

@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cut_mp4", "FFmpeg cannot open it"),  # its index (moov) was at the end
        ("wav", "no video stream: it holds only audio (pcm_s16le)"),
        ("cover_art", "no video stream: it holds only audio (aac), a cover picture (png)"),
        ("text", "not a media file, or a damaged or truncated one"),
    ],
)
def test_files_without_frames_raise_a_decode_error_with_the_reason(videos, name, reason):
    with pytest.raises(DecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")) as info:
        decode_video(videos[name], FrameSampling())
    assert info.value.path == videos[name]
    copy = pickle.loads(pickle.dumps(info.value))  # crosses process boundaries intact
    assert copy.reason == info.value.reason and str(copy) == str(info.value)


def test_missing_file_is_a_decode_error(tmp_path):
    with pytest.raises(DecodeError, match="No such file"):
        decode_video(tmp_path / "gone.mp4", FrameSampling())


def test_select_frames_matches_uniform_indices_at_constant_rate():
    for total in (1, 5, 16, 17, 40):
        times = [Fraction(k, 25) for k in range(total)]
        for count in (1, 4, 16, 32):
            chosen = select_frames(times, Fraction(total, 25), FrameSampling("uniform", count))
            assert chosen == sorted(set(uniform_indices(total, count).tolist()))


def test_sampling_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown"):
        FrameSampling("random")
    with pytest.raises(ValueError, match="positive fps"):
        FrameSampling("fps", 8)
    with pytest.raises(ValueError, match="only with sampling 'fps'"):
        FrameSampling("uniform", 8, fps=2.0)
    with pytest.raises(ValueError, match="at least 1"):
        FrameSampling("uniform", 0)
