"""``mcsan extract`` end to end on small generated videos: features, failures, resume after a
kill, determinism, worker crashes, the HGR / BigFile layouts, and training on the output."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import mcsan.extract.pipeline as pipeline
import media
from mcsan import cli
from mcsan.data.layouts import HDF5FeatureStore, read_dataset, read_dataset_with_report
from mcsan.extract import (
    BACKBONES,
    FEATURE_LAYOUTS,
    SAMPLINGS,
    FrameBackbone,
    FrameSampling,
    ImageTransform,
    decode_video,
    extract_features,
    find_videos,
)
from mcsan.extract.pipeline import VideoFile, decoded_videos, embed_frames
from mcsan.sources import open_source

GOOD = ["video0", "video1", "video2", "video3", "video4", "video5"]
FAILING = {
    "broken": "FFmpeg cannot open it",
    "song": "no video stream: it holds only audio",
    "notes": "not a media file",
}
CAPTIONS = [
    "a man is cooking food in a kitchen",
    "a woman plays the guitar on a stage",
    "a dog runs after a ball in the park",
    "two people talk at a table",
    "a child rides a bicycle down the street",
    "a cat sleeps on a sofa",
    "a car drives along a road",
]


class TinyBackbone(FrameBackbone):
    """A stand-in for a real backbone: one fixed random convolution, pooled to 8 values."""

    def __init__(self) -> None:
        transform = ImageTransform(
            size=16,
            resize=20,
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
            interpolation="bilinear",
        )
        super().__init__("tiny", 8, transform)
        self.conv = nn.Conv2d(3, 8, kernel_size=3, stride=2)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images (N, 3, 16, 16) -> (N, 8)
        return self.conv(images).mean(dim=(2, 3))


def coloured(index: int, height: int, width: int) -> np.ndarray:
    # -> (height, width, 3): red changes with the frame, a green top-left quadrant
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = 20 + 7 * index
    pixels[: height // 2, : width // 2, 1] = 200
    return pixels


def write_video(path: Path, codec: str, width: int, height: int, count: int, **options) -> Path:
    return media.write_video(path, codec, width, height, count, picture=coloured, **options)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A directory of videos as a user has them: good ones in several codecs and containers,
    a truncated one that still decodes, three that give no frame, and a text file."""
    root = tmp_path_factory.mktemp("library")
    nested = root / "more"
    nested.mkdir()
    write_video(root / "video0.mp4", "libx264", 48, 36, 12)
    write_video(root / "video1.avi", "mpeg4", 33, 17, 10)  # odd size
    write_video(nested / "video2.mkv", "mpeg4", 48, 36, 6, times_ms=[0, 40, 500, 540, 1500, 1540])
    write_video(root / "video3.mp4", "libx264", 48, 32, 8, rotation=(90, False, False))
    write_video(nested / "video4.webm", "libvpx-vp9", 48, 36, 9)
    whole = write_video(root / "whole.mkv", "mpeg4", 48, 36, 30)
    (root / "video5.mkv").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    cut = write_video(root / "cut.mp4", "libx264", 48, 36, 10)
    (root / "broken.mp4").write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    cut.unlink()
    media.write_audio(root / "song.mkv", "mp2", 16000, 1152)
    (root / "notes.mp4").write_text("not a video\n" * 30)
    (root / "readme.txt").write_text("a file that is not a video\n")
    return root


@pytest.fixture(scope="module")
def annotation(tmp_path_factory) -> Path:
    """An MSR-VTT style annotation of the library's videos plus one without a file."""
    root = tmp_path_factory.mktemp("msrvtt")
    splits = {
        "video0": "train",
        "video1": "train",
        "video2": "train",
        "video3": "train",
        "video4": "validate",
        "video5": "validate",
        "video9": "test",
    }
    sentences = [
        {"sen_id": 2 * n + k, "video_id": video_id, "caption": CAPTIONS[(n + k) % len(CAPTIONS)]}
        for n, video_id in enumerate(splits)
        for k in range(2)
    ]
    info = {
        "videos": [{"video_id": v, "split": s} for v, s in splits.items()],
        "sentences": sentences,
    }
    (root / "train_val_videodatainfo.json").write_text(json.dumps(info))
    return root


def extract(library, out, **options):
    settings = {"max_frames": 4, "workers": 0, "progress": False, **options}
    return extract_features(library, out, TinyBackbone(), **settings)


@pytest.fixture(scope="module")
def reference(library, tmp_path_factory):
    """One complete run, read-only for the tests below."""
    out = tmp_path_factory.mktemp("reference")
    return out, extract(library, out)


def read_features(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as file:
        return {key: file[key][()] for key in file}


def test_run_writes_features_a_failure_report_and_notes(library, reference):
    out, summary = reference
    assert sorted(summary.extracted) == GOOD and summary.skipped == []
    features = read_features(out / "tiny.hdf5")
    assert sorted(features) == GOOD
    for video_id, values in features.items():
        assert values.dtype == np.float32 and values.shape[1] == 8
        assert values.shape[0] == summary.frames[video_id] <= 4
    # video2's frames start at 0, .04, .5, .54, 1.5, 1.54 s: of the instants .20, .59, .99 and
    # 1.38 s, the last three fall on the frame shown from .54 to 1.5 s
    assert features["video2"].shape[0] == 2
    with h5py.File(out / "tiny.hdf5", "r") as file:
        assert np.allclose(file["video2"].attrs["timestamps"], [0.04, 0.54])
        assert file["video0"].attrs["decoded_frames"] == 12
        assert file["video0"].attrs["source"] == str(library / "video0.mp4")
        recipe = json.loads(file.attrs["mcsan_extract_recipe"])
    assert recipe["backbone"] == "tiny" and recipe["sampling"]["max_frames"] == 4
    assert recipe["transform"]["resize"] == 20 and len(recipe["weights_sha1"]) == 40

    report = json.loads((out / "tiny.failures.json").read_text())
    reasons = {Path(item["path"]).stem: item["reason"] for item in report["failed"]}
    assert sorted(reasons) == sorted(FAILING)
    for name, reason in FAILING.items():
        assert reason in reasons[name]
    assert report["videos"] == {"extracted": 6, "skipped_as_done": 0, "failed": 3}
    assert [item["video_id"] for item in report["notes"]] == ["video5"]
    assert "truncated" in report["notes"][0]["notes"][0]
    assert [path.name for path in summary.ignored_files] == ["readme.txt"]
    text = summary.describe()
    assert "3 failed" in text and "broken.mp4" in text and "video5: its frames end at" in text
    assert not (out / ".tiny.parts").exists()


def test_features_are_the_backbone_applied_to_the_decoded_frames(library, reference):
    out, _ = reference
    backbone = TinyBackbone()
    decoded = decode_video(library / "video3.mp4", FrameSampling("uniform", 4), short_side=20)
    assert decoded.frames.shape == (4, 30, 20, 3)  # rotated upright: portrait
    expected = embed_frames(backbone, decoded.frames, 2, torch.device("cpu"))
    assert np.allclose(read_features(out / "tiny.hdf5")["video3"], expected, atol=1e-5)


def test_second_run_skips_what_is_done_and_retries_failures(reference, library, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference[0], out)
    before = read_features(out / "tiny.hdf5")
    summary = extract(library, out)
    assert summary.extracted == [] and sorted(summary.skipped) == GOOD
    assert sorted(Path(f.path).stem for f in summary.failed) == sorted(FAILING)
    after = read_features(out / "tiny.hdf5")
    assert all(np.array_equal(before[key], after[key]) for key in GOOD)


class Killed(BaseException):
    """Stands for SIGKILL: no clean-up code runs after it."""


def test_a_killed_run_keeps_finished_videos_and_distrusts_half_written_ones(
    library, reference, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    real_write = pipeline._Parts.write
    written = []

    def write_then_die(self, video, decoded, features):
        real_write(self, video, decoded, features)
        written.append(video.video_id)
        if len(written) == 2:  # killed while writing the third video and while merging
            (self.directory / "video4.npz.partial-99999").write_bytes(b"PK\x03\x04 half a zip")
            (out / ".tiny.hdf5.partial-99999").write_bytes(b"\x89HDF\r\n half a file")
            raise Killed

    monkeypatch.setattr(pipeline._Parts, "write", write_then_die)
    monkeypatch.setattr(pipeline._FeatureFile, "add", lambda self, parts, recipe: None)
    with pytest.raises(Killed):
        extract(library, out)
    monkeypatch.undo()
    assert not (out / "tiny.hdf5").exists()
    assert sorted(p.name for p in (out / ".tiny.parts").glob("*.npz")) == [
        f"{video_id}.npz" for video_id in sorted(written)
    ]

    summary = extract(library, out)
    assert sorted(summary.skipped) == sorted(written)
    assert sorted(summary.extracted) == sorted(set(GOOD) - set(written))
    assert sorted(p.name for p in out.iterdir()) == ["tiny.failures.json", "tiny.hdf5"]
    resumed, complete = read_features(out / "tiny.hdf5"), read_features(reference[0] / "tiny.hdf5")
    assert sorted(resumed) == GOOD
    assert all(np.array_equal(resumed[key], complete[key]) for key in GOOD)


def file_state(path: Path) -> tuple[int, int, str]:
    """What writing a file again would change: its inode, modification time and bytes."""
    status = path.stat()
    return status.st_ino, status.st_mtime_ns, hashlib.sha1(path.read_bytes()).hexdigest()


def segment_videos(out: Path) -> dict[str, list[str]]:
    """Segment file name -> the video ids it holds."""
    segments = sorted((out / ".tiny.segments").iterdir())
    return {path.name: sorted(read_features(path)) for path in segments}


def test_adding_videos_writes_a_new_segment_and_never_rewrites_stored_ones(
    library, reference, tmp_path
):
    out = tmp_path / "out"
    extract([library / "video0.mp4", library / "video1.avi"], out)
    first = file_state(out / "tiny.hdf5")
    extract(library, out)
    assert file_state(out / ".tiny.segments" / "0.hdf5") == first  # the first file, not a copy
    assert segment_videos(out) == {"0.hdf5": ["video0", "video1"], "1.hdf5": GOOD[2:]}
    second = file_state(out / ".tiny.segments" / "1.hdf5")
    extra = tmp_path / "extra"
    extra.mkdir()
    write_video(extra / "video6.mp4", "libx264", 48, 36, 8)
    assert extract([library, extra], out).extracted == ["video6"]
    assert file_state(out / ".tiny.segments" / "0.hdf5") == first
    assert file_state(out / ".tiny.segments" / "1.hdf5") == second
    assert segment_videos(out)["2.hdf5"] == ["video6"]

    features, expected = read_features(out / "tiny.hdf5"), read_features(reference[0] / "tiny.hdf5")
    assert sorted(features) == [*GOOD, "video6"]
    assert all(np.array_equal(features[key], expected[key]) for key in GOOD)
    with h5py.File(out / "tiny.hdf5", "r") as file:  # links, each to the segment holding it
        assert isinstance(file.get("video1", getlink=True), h5py.ExternalLink)
        assert file["video1"].attrs["source"] == str(library / "video1.avi")
    # the readers of dataset roots and `mcsan index`, opened from another directory
    moved = tmp_path / "moved"
    out.rename(moved)
    store = HDF5FeatureStore.open("tiny", moved / "tiny.hdf5")
    assert store.shape("video2") == (2, 8)
    assert np.array_equal(store.get("video4"), expected["video4"])
    source = open_source(moved)
    assert source.video_ids == [*GOOD, "video6"]
    assert source.metadata("video6")["source"] == str(extra / "video6.mp4")


def test_a_file_system_without_hard_links_gets_a_copy_of_the_first_file(
    library, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    extract([library / "video0.mp4"], out)
    first = (out / "tiny.hdf5").read_bytes()

    def refuse(source, target):
        raise PermissionError("no hard links here")

    monkeypatch.setattr(pipeline.os, "link", refuse)
    extract([library / "video0.mp4", library / "video1.avi"], out)
    assert (out / ".tiny.segments" / "0.hdf5").read_bytes() == first
    assert sorted(read_features(out / "tiny.hdf5")) == ["video0", "video1"]


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_while_writing_a_segment(module) -> None:
    real = module._fill_segment

    def write_one_then_die(file, recipe, parts):
        real(file, recipe, dict(list(parts.items())[:1]))
        file.flush()
        die()

    module._fill_segment = write_one_then_die


def kill_after_the_second_name(module) -> None:
    real = module._second_name
    module._second_name = lambda path, name: (real(path, name), die())


def kill_while_writing_the_links(module) -> None:
    real = module._FeatureFile._fill_links

    def link_some_then_die(self, file, recipe, where):
        real(self, file, recipe, dict(list(where.items())[:2]))
        file.flush()
        die()

    module._FeatureFile._fill_links = link_some_then_die


def kill_while_deleting_the_parts(module) -> None:
    def delete_one_then_die(self):
        next(iter(self.files().values())).unlink()
        die()

    module._Parts.remove = delete_one_then_die


@pytest.mark.parametrize(
    ("stored", "kill"),
    [
        ("nothing", kill_while_writing_a_segment),  # the first run writes tiny.hdf5 itself
        ("in the file", kill_while_writing_a_segment),
        ("in the file", kill_after_the_second_name),
        ("in the file", kill_while_writing_the_links),
        ("in segments", kill_while_writing_the_links),
        ("in segments", kill_while_deleting_the_parts),
    ],
)
def test_kill_9_while_adding_videos_loses_nothing_stored(
    library, reference, tmp_path, monkeypatch, stored, kill
):
    out = tmp_path / "out"
    if stored != "nothing":
        extract([library / "video0.mp4"], out)
    if stored == "in segments":
        extract([library / "video1.avi"], out)
    with monkeypatch.context() as patch:  # a run killed before adding its parts
        patch.setattr(pipeline._FeatureFile, "add", lambda self, parts, recipe: None)
        extract(library, out)
    before = read_features(out / "tiny.hdf5") if stored != "nothing" else {}
    child = os.fork()
    if child == 0:  # SIGKILLed at the chosen moment of adding the parts
        try:
            kill(pipeline)
            parts = pipeline._Parts(out / ".tiny.parts")
            pipeline._FeatureFile(out / "tiny.hdf5").add(parts, parts.recipe())
        finally:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

    after = read_features(out / "tiny.hdf5") if stored != "nothing" else {}
    assert sorted(after) == sorted(before) or sorted(after) == GOOD  # as it was, or complete
    assert all(np.array_equal(after[key], before[key]) for key in before)
    summary = extract(library, out)
    assert summary.extracted == [] and sorted(summary.skipped) == GOOD
    resumed, complete = read_features(out / "tiny.hdf5"), read_features(reference[0] / "tiny.hdf5")
    assert sorted(resumed) == GOOD
    assert all(np.array_equal(resumed[key], complete[key]) for key in GOOD)
    left = sorted(path.name for path in out.rglob("*"))
    assert not any("partial" in name or name.endswith(".npz") for name in left)
    if (out / ".tiny.segments").exists():
        with h5py.File(out / "tiny.hdf5", "r") as file:
            linked = {Path(file.get(key, getlink=True).filename).name for key in file}
        assert sorted(linked) == sorted(path.name for path in (out / ".tiny.segments").iterdir())


def child_processes(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry))
    return children


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        state = Path("/proc", str(pid), "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


SLOW_TINY_CLI = """
import sys, time
import mcsan.extract
from mcsan.cli import main
from test_extract import TinyBackbone

class Slow(TinyBackbone):
    def forward(self, images):
        time.sleep(0.2)  # time to be stopped in
        return super().forward(images)

mcsan.extract.build_backbone = lambda *arguments, **options: Slow()
sys.exit(main(sys.argv[1:]))
"""


def start_tiny_cli(library: Path, out: Path, **options) -> subprocess.Popen:
    """``mcsan extract`` of the library with a slow tiny backbone, in a process of its own; it
    returns once the process has finished its first video."""
    paths = [str(Path(__file__).parent), str(Path(pipeline.__file__).parents[2])]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    arguments = ["extract", str(library), "--out", str(out), "--random-weights", "--max-frames",
                 "4", "--workers", "1", "--threads", "1", "--quiet"]
    process = subprocess.Popen([sys.executable, "-c", SLOW_TINY_CLI, *arguments],
                               env=environment, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, **options)
    deadline = time.monotonic() + 60
    while not list((out / ".tiny.parts").glob("*.npz")) and time.monotonic() < deadline:
        time.sleep(0.01)
    return process


def test_kill_9_mid_run_then_resume_gives_a_clean_run_and_keeps_stored_files(
    library, reference, tmp_path
):
    out = tmp_path / "out"
    extract([library / "video0.mp4", library / "video1.avi"], out)
    first = file_state(out / "tiny.hdf5")
    process = start_tiny_cli(library, out)
    workers = child_processes(process.pid)
    process.kill()
    assert process.wait() == -signal.SIGKILL, process.stderr.read()
    assert file_state(out / "tiny.hdf5") == first  # killed before adding anything
    time.sleep(0.5)
    assert workers and not any(alive(pid) for pid in workers)  # died with it

    summary = extract(library, out)
    assert 1 <= len(summary.skipped) - 2 < len(GOOD) - 2  # video0, video1 and the parts
    resumed, complete = read_features(out / "tiny.hdf5"), read_features(reference[0] / "tiny.hdf5")
    assert sorted(resumed) == GOOD
    assert all(np.array_equal(resumed[key], complete[key]) for key in GOOD)
    assert file_state(out / ".tiny.segments" / "0.hdf5") == first


def test_ctrl_c_stores_the_finished_videos_and_ends_with_one_line(library, tmp_path):
    out = tmp_path / "out"
    process = start_tiny_cli(library, out, start_new_session=True)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole process group
    printed, errors = process.communicate(timeout=60)
    assert process.returncode == 130
    assert errors.strip().splitlines() == [
        f"mcsan extract: interrupted; every finished video is kept under {out}; run the same "
        "command again to extract the rest"
    ]
    assert printed == ""
    assert 1 <= len(read_features(out / "tiny.hdf5")) < len(GOOD)
    assert not (out / ".tiny.parts").exists()


def test_command_line_exits_with_1_when_a_video_failed_and_the_report_keeps_failures(
    library, tmp_path, monkeypatch, capsys, one_thread
):
    monkeypatch.setattr("mcsan.extract.build_backbone", lambda *arguments, **options: TinyBackbone())
    flaky = tmp_path / "flaky.mp4"
    flaky.write_text("not a video yet\n")
    out = tmp_path / "out"
    command = ["extract", "--out", str(out), "--random-weights", "--max-frames", "2",
               "--workers", "0", "--threads", "1", "--quiet"]

    def report() -> tuple[dict[str, str], list[str], dict[str, int]]:
        found = json.loads((out / "tiny.failures.json").read_text())
        failed = {item["video_id"]: item["reason"] for item in found["failed"]}
        return failed, [item["video_id"] for item in found["notes"]], found["videos"]

    first = [library / "video0.mp4", library / "video5.mkv", library / "song.mkv", flaky]
    assert cli.main([*command, *map(str, first)]) == 1
    assert "2 failed" in capsys.readouterr().out
    assert cli.main([*command, str(library / "video0.mp4"), str(flaky)]) == 1
    assert cli.main([*command, "--allow-failures", str(library / "video0.mp4"), str(flaky)]) == 0
    failed, notes, counts = report()  # song.mkv was not tried again: its failure stays
    assert sorted(failed) == ["flaky", "song"] and "no video stream" in failed["song"]
    assert notes == ["video5"] and counts == {"extracted": 0, "skipped_as_done": 1, "failed": 1}

    write_video(flaky, "libx264", 48, 36, 6)  # the file is mended: it leaves the report
    assert cli.main([*command, str(flaky)]) == 0
    failed, notes, counts = report()
    assert list(failed) == ["song"] and notes == ["video5"] and counts["extracted"] == 1
    # with nothing extracted at all, failures are not allowed
    assert cli.main([*command, "--allow-failures", str(library / "notes.mp4")]) == 1

def test_worker_processes_give_the_same_features(library, reference, tmp_path):
    summary = extract(library, tmp_path / "out", workers=2)
    assert sorted(summary.extracted) == GOOD and len(summary.failed) == 3
    parallel = read_features(tmp_path / "out" / "tiny.hdf5")
    serial = read_features(reference[0] / "tiny.hdf5")
    assert all(np.array_equal(parallel[key], serial[key]) for key in GOOD)


def decode_or_crash(path: Path):
    """Decodes, except that a file named crash* kills its process, as a crash in FFmpeg would."""
    if path.name.startswith("crash"):
        os._exit(1)
    return decode_video(path, FrameSampling("uniform", 2))


def test_a_file_that_kills_its_worker_fails_alone(library, tmp_path):
    crash = tmp_path / "crash.mp4"
    shutil.copy(library / "video0.mp4", crash)
    videos = [VideoFile(v, library / f"{v}.mp4") for v in ("video0", "video3")]
    videos.insert(1, VideoFile("crash", crash))
    outcomes = dict(decoded_videos(videos, decode_or_crash, workers=2))
    assert len(outcomes) == 3
    assert "process died" in outcomes[videos[1]].reason
    assert outcomes[videos[0]].frames.shape[0] == 2 and outcomes[videos[2]].frames.shape[0] == 2


def test_other_sampling_or_backbone_is_refused_on_existing_output(reference, library, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference[0], out)
    with pytest.raises(ValueError, match="another recipe.*sampling"):
        extract(library, out, sampling="fps", fps=2.0)
    (out / "tiny.hdf5").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read as HDF5.*delete it"):
        extract(library, out)
    (out / "tiny.failures.json").write_text("my own notes\n")  # never overwritten
    with pytest.raises(ValueError, match="not a failure report of mcsan extract"):
        extract(library, out)
    assert (out / "tiny.failures.json").read_text() == "my own notes\n"


def test_duplicate_ids_and_empty_inputs_are_errors(library, tmp_path):
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(library / "video0.mp4", twin / "video0.mkv")
    with pytest.raises(ValueError, match="both have the video id 'video0'"):
        find_videos([library, twin])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no video files"):
        find_videos(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_videos(tmp_path / "nowhere")


def test_hdf5_output_is_the_features_file_of_an_msrvtt_root(library, annotation, tmp_path):
    root = tmp_path / "msrvtt"
    shutil.copytree(annotation, root)
    extract(library / "video0.mp4", root / "features")
    # the failure report and the segments beside it are not feature types
    extract(library, root / "features")
    dataset, report = read_dataset_with_report(root, progress=False, skip_invalid=True)
    assert dataset["train"].feature_names == ["tiny"]
    assert dataset["train"].video_features("video2").shape == (2, 8)
    assert dataset["val"].video_ids == ["video4", "video5"]
    skipped = [item.item_id for item in report.skipped]  # video9 has no file
    assert skipped == ["video video9", "caption video9#0", "caption video9#1"]


@pytest.mark.parametrize("layout", ["hgr", "bigfile"])
def test_hgr_and_bigfile_layouts_read_back(reference, library, annotation, tmp_path, layout):
    out = tmp_path / "out"
    shutil.copytree(reference[0], out)
    summary = extract(library, out, layout=layout, dataset_root=annotation)
    assert summary.layout_path == out / layout
    assert any("video9" in note and "'test'" in note for note in summary.layout_notes)
    dataset = read_dataset(summary.layout_path, progress=False)
    assert dataset.layout == layout
    assert set(dataset.splits) == {"train", "val"}  # the test split's only video has no file
    assert dataset["train"].video_ids == ["video0", "video1", "video2", "video3"]
    assert dataset["val"].video_ids == ["video4", "video5"]
    assert len(dataset["train"].captions) == 8
    expected = read_features(out / "tiny.hdf5")
    for split in dataset:
        for video_id in split.video_ids:
            assert np.array_equal(split.video_features(video_id), expected[video_id])
    recipes = list(summary.layout_path.rglob("recipe.json"))
    assert recipes and json.loads(recipes[0].read_text())["backbone"] == "tiny"


def test_layout_needs_a_dataset_and_matching_ids(library, tmp_path, annotation):
    with pytest.raises(ValueError, match="--dataset"):
        extract(library, tmp_path / "a", layout="hgr")
    other = tmp_path / "other"
    shutil.copytree(annotation, other)
    info = json.loads((other / "train_val_videodatainfo.json").read_text())
    for record in info["videos"] + info["sentences"]:
        record["video_id"] = "clip_" + record["video_id"]
    (other / "train_val_videodatainfo.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="none of the videos.*file names match"):
        extract(library / "video0.mp4", tmp_path / "b", layout="hgr", dataset_root=other)


def test_command_line_extracts_with_resnet50_and_the_output_trains(
    library, annotation, tmp_path, capsys, one_thread
):
    out, prepared, run = tmp_path / "out", tmp_path / "prepared", tmp_path / "run"
    videos = [str(library / name) for name in ("video0.mp4", "video1.avi", "video3.mp4")]
    videos += [str(library / "more"), str(library / "video5.mkv"), str(library / "song.mkv")]
    arguments = [
        "extract",
        *videos,
        "--out",
        str(out),
        "--backbone",
        "resnet50",
        "--random-weights",
        "--max-frames",
        "2",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--layout",
        "hgr",
        "--dataset",
        str(annotation),
        "--quiet",
        "--allow-failures",  # song.mkv fails
    ]
    assert cli.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "extracted 6 video(s)" in printed and "song.mkv: no video stream" in printed
    with h5py.File(out / "resnet50.hdf5", "r") as file:
        assert file["video0"].shape == (2, 2048) and file["video1"].shape == (2, 2048)
        first = file["video0"][()]
    again = [
        "extract",
        videos[0],
        "--out",
        str(out),
        "--backbone",
        "resnet50",
        "--random-weights",
        "--max-frames",
        "2",
        "--workers",
        "0",
        "--feature-name",
        "again",
        "--quiet",
    ]
    assert cli.main(again) == 0
    with h5py.File(out / "again.hdf5", "r") as file:
        assert np.array_equal(file["video0"][()], first)  # the same random weights, seed 0

    data = out / "hgr"
    assert (
        cli.main(["prepare", str(data), "--out", str(prepared), "--set", "vocab.min_count=1"]) == 0
    )
    assert (
        cli.main(
            [
                "train",
                f"data.root={data}",
                f"data.prepared={prepared}",
                f"train.out_dir={run}",
                "train.epochs=1",
                "train.batch_size=16",
                "model.embed_dim=16",
                "model.hidden_dim=16",
                "model.word_dim=8",
                "data.max_frames=2",
            ]
        )
        == 0
    )
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 2 and "val_rsum" in log[0]

    # Search your own videos: a folder without captions, extracted with the model's recipe,
    # indexed and searched, all through the command line.
    mine = tmp_path / "my_videos"
    mine.mkdir()
    write_video(mine / "clip_a.mp4", "libx264", 48, 36, 10)
    write_video(mine / "clip_b.mkv", "mpeg4", 40, 30, 7)
    recipe = ["--backbone", "resnet50", "--random-weights", "--workers", "0", "--quiet"]
    for videos in (mine / "clip_a.mp4", mine):  # the second run adds clip_b
        assert cli.main(["extract", str(videos), "--out", str(tmp_path / "mine_features"),
                         "--max-frames", "2", *recipe]) == 0
    index = tmp_path / "my_index"
    assert cli.main(["index", str(run / "best"), str(tmp_path / "mine_features"), "--out",
                     str(index), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["search", str(index), "a dog runs in the park", "-k", "5", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)["results"]
    assert result["query"]["actions"] == ["run"]
    hits = {hit["video_id"]: hit for hit in result["hits"]}
    assert sorted(hits) == ["clip_a", "clip_b"]
    assert hits["clip_a"]["source"] == str(mine / "clip_a.mp4")
    assert len(hits["clip_a"]["timestamps"]) == 2
    # features made another way (3 frames a video) are refused, naming both recipes
    assert cli.main(["extract", str(mine / "clip_a.mp4"), "--out", str(tmp_path / "other"),
                     "--max-frames", "3", *recipe]) == 0
    arguments = ["index", str(run / "best"), str(tmp_path / "other" / "resnet50.hdf5"),
                 "--out", str(tmp_path / "other_index"), "--quiet"]
    assert cli.main(arguments) == 1
    error = capsys.readouterr().err
    assert "max_frames=3" in error and "max_frames=2" in error and "--allow-other-recipe" in error
    assert not (tmp_path / "other_index").exists()
    assert cli.main([*arguments, "--allow-other-recipe"]) == 0


def test_command_line_names_agree_with_the_library():
    assert cli.EXTRACT_BACKBONES == BACKBONES
    assert cli.EXTRACT_SAMPLINGS == SAMPLINGS
    assert cli.EXTRACT_LAYOUTS == FEATURE_LAYOUTS
