"""``mcsan extract``: video files -> per-video frame features ``(frames, dim)`` on disk.

Worker processes decode videos (:func:`~mcsan.extract.decode.decode_video`: sampled frames,
upright, scaled to the backbone's resize size) while the main process runs the backbone on
the previous ones; at most two videos per worker are decoded ahead, so memory stays bounded.
A video's frames go through the backbone on their own (in chunks of ``batch_size``), so its
features do not depend on which other videos a run holds or in which order they finish.

Output, in ``out``:

``<feature>.hdf5``
    one ``(frames, dim)`` float32 dataset per video, keyed by video id, with attributes
    ``timestamps`` (seconds of each frame), ``source`` (the file) and ``decoded_frames``
    (frames decoded to find them: fewer than the video has where seeking paid); the
    file attribute ``mcsan_extract_recipe`` (JSON) holds how the features were made (backbone,
    weights fingerprint, preprocessing, sampling, library versions). This is the
    ``features/<ft>.hdf5`` file that the MSR-VTT and VATEX readers read: point ``out`` at
    ``<dataset>/features``. The first run writes the datasets into this file. A later run
    that adds videos writes them into a segment file of its own,
    ``.<feature>.segments/<n>.hdf5``, and ``<feature>.hdf5`` becomes a small file of HDF5
    external links, one per video, to the segment that holds it (HDF5 follows them when the
    file is read, and :class:`~mcsan.data.layouts.HDF5FeatureStore` resolves them once when
    it opens the file; the segments are found relative to it, so the two move together); the
    first run's file is segment ``0``, under a second name (a hard link; a copy on a file
    system without them). A segment is never written again once finished, so adding videos
    never rewrites the features already there.
``<feature>.failures.json``
    every video whose last try gave no features, from every run, and why (``when`` it was
    tried; a video leaves the list once it gives features), the notes on videos that gave
    features with something odd (a truncated file), the counts of the last run, and the
    recipe.
``hgr/`` or ``bigfile/`` (``layout="hgr"`` / ``"bigfile"``)
    a complete dataset in that layout, its splits and captions taken from the annotation at
    ``dataset_root`` (any layout :func:`~mcsan.data.layouts.read_dataset` reads), its features
    from ``<feature>.hdf5``, rewritten on every run; ``recipe.json`` sits beside the features.

Video ids are file names without their extension (``video123.mp4`` -> ``video123``, as
MSR-VTT and VATEX name videos), wherever in the scanned directories the file lies; two files
with one id are an error. A directory is scanned recursively for the extensions in
:data:`~mcsan.extract.decode.VIDEO_EXTENSIONS` (other files are counted as ignored); files
named explicitly are taken whatever their extension.

Resume and interruption: each finished video is written at once to its own file,
``.<feature>.parts/<id>.npz``, under a temporary name that is renamed into place when
complete, so a process killed at any moment (``kill -9`` included) loses at most the videos
in flight, and a half-written file is never taken for a finished one. At the end of a run,
also an interrupted one, the parts' videos are added to ``<feature>.hdf5`` as above, and then
the parts are deleted. Every HDF5 file is written under a temporary name, flushed to disk and
renamed into place (a segment before the links to it), and no finished HDF5 file is opened
for writing, so a kill at any moment leaves ``<feature>.hdf5`` as it was or with the new
videos, whole. The next run deletes what a killed one left half done (temporary files,
segments that no link names) and adds the parts that are not in ``<feature>.hdf5`` yet. A
later run skips every video found in either place, and refuses to add to features made by
another recipe. One ``extract`` process per output feature at a time.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import av
import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from mcsan import __version__
from mcsan.atomic import fsync_directory, fsync_file, replace_json
from mcsan.data.layouts import WRITABLE_SPLITS, read_dataset, write_bigfile, write_hgr
from mcsan.data.recipes import RECIPE_ATTRIBUTE, RECIPE_FILE, differing_keys, same_recipe
from mcsan.extract.backbones import FrameBackbone
from mcsan.extract.decode import (
    DecodedVideo,
    DecodeError,
    FrameSampling,
    decode_video,
    is_video_file,
)
from mcsan.runtime import resolve_device

FEATURE_LAYOUTS = ("hdf5", "hgr", "bigfile")
FORMAT_VERSION = 1
VIDEOS_AHEAD_PER_WORKER = 2  # decoded videos waiting for the model, per worker process
PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for this process when its parent dies
SEGMENT_FILE = re.compile(r"\.?\d+\.hdf5(\.partial-\d+)?")  # in .<feature>.segments/


@dataclass(frozen=True)
class VideoFile:
    video_id: str
    path: Path


@dataclass(frozen=True)
class Failure:
    video_id: str
    path: str
    reason: str


@dataclass
class ExtractionSummary:
    """What a run did. ``extracted`` and ``skipped`` are video ids."""

    features_path: Path  # the HDF5 file
    report_path: Path  # the failure report (JSON)
    layout_path: Path | None  # the HGR / BigFile dataset, when one was written
    extracted: list[str] = field(default_factory=list)  # in this run
    skipped: list[str] = field(default_factory=list)  # found done by an earlier run
    failed: list[Failure] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # video id -> what was odd
    frames: dict[str, int] = field(default_factory=dict)  # video id -> frames extracted
    ignored_files: list[Path] = field(default_factory=list)  # scanned, not video extensions
    layout_notes: list[str] = field(default_factory=list)  # videos left out of the layout
    seconds: float = 0.0

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())

    def describe(self) -> str:
        """A human-readable report: counts, speed, failures, notes, where things are."""
        rate = self.total_frames / self.seconds if self.seconds else 0.0
        lines = [
            f"extracted {len(self.extracted)} video(s), {self.total_frames} frames in "
            f"{self.seconds:.1f} s ({rate:.1f} frames/s); skipped {len(self.skipped)} already "
            f"done; {len(self.failed)} failed",
            f"features: {self.features_path}",
        ]
        if self.layout_path is not None:
            lines.append(f"dataset: {self.layout_path}")
        if self.ignored_files:
            lines.append(
                f"ignored {len(self.ignored_files)} file(s) without a video extension, e.g. "
                f"{self.ignored_files[0]}"
            )
        lines += [f"note: {note}" for note in self.layout_notes]
        if self.failed:
            lines.append(f"failed videos (also in {self.report_path}):")
            lines += [f"  {failure.path}: {failure.reason}" for failure in self.failed]
        if self.notes:
            lines.append("videos with notes:")
            for video_id, notes in self.notes.items():
                lines += [f"  {video_id}: {note}" for note in notes]
        return "\n".join(lines)


def find_videos(videos: str | Path | Sequence[str | Path]) -> tuple[list[VideoFile], list[Path]]:
    """The video files named or found in directories (recursively), and the files ignored.

    Raises on a missing path, on no video at all, and on two files with one video id.
    """
    entries = [videos] if isinstance(videos, str | Path) else list(videos)
    found: list[Path] = []
    ignored: list[Path] = []
    for entry in map(Path, entries):
        if entry.is_dir():
            for directory, subdirectories, names in os.walk(entry):
                subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
                for name in sorted(names):
                    path = Path(directory, name)
                    if name.startswith("."):
                        continue
                    (found if is_video_file(path) else ignored).append(path)
        elif entry.exists():
            found.append(entry)
        else:
            raise FileNotFoundError(f"{entry}: no such file or directory")
    if not found:
        raise ValueError(
            f"no video files in {', '.join(map(str, entries)) or 'the empty list given'} "
            f"(ignored {len(ignored)} file(s) without a video extension). Fix: name the "
            "files or a directory that holds .mp4, .avi, .mkv, .webm, ... files"
        )
    by_id: dict[str, Path] = {}
    for path in found:
        video_id = path.stem
        if video_id in by_id and by_id[video_id].resolve() != path.resolve():
            raise ValueError(
                f"{by_id[video_id]} and {path} both have the video id {video_id!r} (a video's "
                "id is its file name without the extension). Fix: rename one, or extract "
                "them into different outputs"
            )
        by_id[video_id] = path
    return [VideoFile(video_id, path) for video_id, path in by_id.items()], ignored


def extract_features(
    videos: str | Path | Sequence[str | Path],
    out: str | Path,
    backbone: FrameBackbone,
    *,
    sampling: str = "uniform",
    fps: float | None = None,
    max_frames: int = 32,
    batch_size: int = 32,
    workers: int = 2,
    decode_threads: int = 1,
    feature_name: str | None = None,
    layout: str = "hdf5",
    dataset_root: str | Path | None = None,
    device: str | torch.device = "cpu",
    weights_label: str = "",
    progress: bool = True,
) -> ExtractionSummary:
    """Extract ``backbone`` features of every video into ``out``; see the module docstring.

    ``workers`` decoding processes (0: decode in this process); ``decode_threads`` FFmpeg
    threads each; ``feature_name`` defaults to the backbone's name; ``dataset_root`` (for
    layouts "hgr" and "bigfile") gives splits and captions; ``weights_label`` says in the
    recipe where the weights came from (the recipe also holds their fingerprint).
    """
    frame_sampling = FrameSampling(sampling, max_frames, fps)
    feature_name = feature_name or backbone.name
    _check_arguments(feature_name, layout, dataset_root, batch_size, workers, decode_threads)
    video_files, ignored = find_videos(videos)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = _FeatureFile(out / f"{feature_name}.hdf5")
    parts = _Parts(out / f".{feature_name}.parts")
    device = resolve_device(str(device))
    recipe = _recipe(backbone, frame_sampling, weights_label)
    report_path = out / f"{feature_name}.failures.json"
    earlier = _earlier_report(report_path)
    done = _done_videos(store, parts, recipe)
    summary = ExtractionSummary(
        features_path=store.path,
        report_path=report_path,
        layout_path=None,
        skipped=[video.video_id for video in video_files if video.video_id in done],
        ignored_files=ignored,
    )
    todo = [video for video in video_files if video.video_id not in done]
    parts.start(recipe)
    model = backbone.to(device).eval()
    decode = _DecodeJob(
        frame_sampling, model.transform.resize, model.transform.interpolation, decode_threads
    )
    started = time.perf_counter()
    bar = tqdm(
        total=len(todo), unit="video", desc=f"extracting {feature_name}", disable=not progress
    )
    try:
        for video, outcome in decoded_videos(todo, decode, workers):
            if isinstance(outcome, Failure):
                summary.failed.append(outcome)
            else:
                _embed_and_store(model, video, outcome, batch_size, device, parts, summary)
            bar.update()
            elapsed = time.perf_counter() - started
            bar.set_postfix(frames_per_s=f"{summary.total_frames / max(elapsed, 1e-9):.1f}")
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - started
        store.add(parts, recipe)
        _write_report(summary, recipe, earlier, done)
    if layout != "hdf5":
        summary.layout_path = _write_layout(
            layout,
            out,
            store.path,
            Path(dataset_root),
            feature_name,
            recipe,
            summary,
            progress,
        )
    return summary


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class _DecodeJob:
    """What a worker needs to decode one video (picklable)."""

    sampling: FrameSampling
    short_side: int
    interpolation: str
    threads: int

    def __call__(self, path: Path) -> DecodedVideo:
        return decode_video(
            path,
            self.sampling,
            short_side=self.short_side,
            interpolation=self.interpolation,
            threads=self.threads,
        )


def decoded_videos(
    videos: Sequence[VideoFile], decode: Callable[[Path], DecodedVideo], workers: int
) -> Iterator[tuple[VideoFile, DecodedVideo | Failure]]:
    """Each video with its decoded frames or its failure, in the order decoding finishes.

    With ``workers`` > 0, ``decode`` (a picklable callable) runs in that many processes,
    at most :data:`VIDEOS_AHEAD_PER_WORKER` videos each ahead of the consumer. A file that
    kills its worker (a crash inside FFmpeg) fails alone: the videos in flight when a
    worker died are decoded again one at a time in a fresh pool.
    """
    if workers == 0:
        for video in videos:
            yield video, _outcome(video, partial(decode, video.path))
        return
    queue = deque(videos)
    suspects: deque[VideoFile] = deque()  # in flight when a worker died
    in_flight: dict[Future, tuple[VideoFile, bool]] = {}  # future -> (video, decoded alone)
    pool = _decoding_pool(workers)
    try:
        while queue or suspects or in_flight:
            if suspects:
                if not in_flight:
                    video = suspects.popleft()
                    in_flight[pool.submit(decode, video.path)] = (video, True)
            else:
                while queue and len(in_flight) < VIDEOS_AHEAD_PER_WORKER * workers:
                    video = queue.popleft()
                    in_flight[pool.submit(decode, video.path)] = (video, False)
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                video, alone = in_flight.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    broken = True
                    if alone:
                        reason = "the decoding process died on this file (a crash in FFmpeg?)"
                        yield video, Failure(video.video_id, str(video.path), reason)
                    else:
                        suspects.append(video)
                    continue
                yield video, _outcome(video, future.result)
            if broken:
                suspects.extend(video for video, _ in in_flight.values())
                in_flight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = _decoding_pool(workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _decoding_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes that leave Ctrl-C to the main process, which stops them.

    On Linux they are forked, as torch's data-loader workers are (they never touch torch, so
    its threads do not matter, and a script needs no ``if __name__ == "__main__"`` guard);
    elsewhere they are spawned.
    """
    linux = sys.platform.startswith("linux")
    context = multiprocessing.get_context("fork" if linux else "spawn")
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(), linux)
    )


def _start_worker(parent: int, linux: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if linux:  # die with the main process, even when it is killed (no orphan keeps decoding)
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before the request was made
            os._exit(1)
    # objects inherited through the fork are never garbage-collected here: freeing one that
    # owned threads (which a fork does not copy) would wait for them forever
    gc.freeze()


def _outcome(video: VideoFile, result: Callable[[], DecodedVideo]) -> DecodedVideo | Failure:
    """The decoded video, or the failure that one bad file is (never raised further)."""
    try:
        return result()
    except DecodeError as error:
        return Failure(video.video_id, str(video.path), error.reason)
    except Exception as error:  # anything else one file does must not stop the run
        return Failure(video.video_id, str(video.path), f"{type(error).__name__}: {error}")


# --------------------------------------------------------------------------- the model


def _embed_and_store(
    model: FrameBackbone,
    video: VideoFile,
    decoded: DecodedVideo,
    batch_size: int,
    device: torch.device,
    parts: _Parts,
    summary: ExtractionSummary,
) -> None:
    features = embed_frames(model, decoded.frames, batch_size, device)  # (frames, dim)
    if not np.isfinite(features).all():
        reason = "the backbone gave NaN or Inf features; check the weights file"
        summary.failed.append(Failure(video.video_id, str(video.path), reason))
        return
    parts.write(video, decoded, features)
    summary.extracted.append(video.video_id)
    summary.frames[video.video_id] = len(features)
    if decoded.notes:
        summary.notes[video.video_id] = decoded.notes


def embed_frames(
    model: FrameBackbone, frames: np.ndarray, batch_size: int, device: torch.device
) -> np.ndarray:
    """(frames, height, width, 3) uint8 -> (frames, output_dim) float32, in chunks."""
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            batch = torch.from_numpy(frames[start : start + batch_size]).to(device)
            images = model.transform(batch)  # (chunk, 3, size, size)
            chunks.append(model(images).float().cpu())  # (chunk, output_dim)
    return torch.cat(chunks).numpy()


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha1 over every parameter and buffer (names, shapes, values): which weights ran."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _recipe(backbone: FrameBackbone, sampling: FrameSampling, weights_label: str) -> dict:
    transform = backbone.transform
    recipe = {
        "format": FORMAT_VERSION,
        "backbone": backbone.name,
        "output_dim": backbone.output_dim,
        "features": "the backbone's pooled image embedding of each sampled frame; no "
        "temporal pooling",
        "weights_sha1": weights_fingerprint(backbone),
        "sampling": asdict(sampling),
        "decoding": f"PyAV/FFmpeg; sampled frames turned upright, made square-pixel and "
        f"scaled by swscale ({transform.interpolation}) to shorter side {transform.resize}",
        "transform": asdict(transform),
        "informational": {  # not compared when resuming
            "weights": weights_label,
            "mcsan": __version__,
            "torch": torch.__version__,
            "av": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        },
    }
    return json.loads(json.dumps(recipe))  # tuples as lists, as when read back


def _recipe_mismatch(path: Path, found: dict, recipe: dict) -> ValueError:
    differing = differing_keys(found, recipe)
    return ValueError(
        f"{path} holds features made by another recipe (differing: {', '.join(differing)}); "
        "adding to them would mix two kinds of features. Fix: choose another --feature-name "
        "or --out, or delete it to start over"
    )


# --------------------------------------------------------------------------- storage


class _Parts:
    """Finished videos of the current run, one ``<id>.npz`` each, renamed into place."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def files(self) -> dict[str, Path]:
        """video id -> finished part file (temporary files are not finished parts)."""
        if not self.directory.is_dir():
            return {}
        return {
            path.name[: -len(".npz")]: path
            for path in sorted(self.directory.iterdir())
            if path.name.endswith(".npz")
        }

    def recipe(self) -> dict | None:
        path = self.directory / RECIPE_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def start(self, recipe: dict) -> None:
        self.directory.mkdir(exist_ok=True)
        for stale in self.directory.glob("*.partial-*"):  # from a killed run
            stale.unlink()
        replace_json(self.directory / RECIPE_FILE, recipe)

    def write(self, video: VideoFile, decoded: DecodedVideo, features: np.ndarray) -> None:
        """Write one video's part so that it exists whole or not at all."""
        final = self.directory / f"{video.video_id}.npz"
        unfinished = self.directory / f"{video.video_id}.npz.partial-{os.getpid()}"
        with open(unfinished, "wb") as file:
            np.savez(
                file,
                features=features,  # (frames, dim) float32
                timestamps=decoded.timestamps,  # (frames,) seconds
                source=np.array(str(video.path)),
                decoded_frames=np.array(decoded.decoded_frames),
            )
            file.flush()
            os.fsync(file.fileno())
        os.replace(unfinished, final)

    def remove(self) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)


class _FeatureFile:
    """``<feature>.hdf5``: the features themselves (a first run), or one HDF5 external link
    per video to the segment file in ``.<feature>.segments/`` that holds them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.segments = path.with_name(f".{path.stem}.segments")

    def videos(self, recipe: dict) -> dict[str, str | None]:
        """video id -> the segment file holding its features (None: this file); raises if
        the file is not readable, was made by another recipe, or links to a missing segment."""
        if not self.path.exists():
            return {}
        try:
            with h5py.File(self.path, "r") as file:
                found = file.attrs.get(RECIPE_ATTRIBUTE)
                links = {key: file.get(key, getlink=True) for key in file}
        except OSError as error:
            raise ValueError(
                f"{self.path} cannot be read as HDF5 ({error}). Fix: delete it and "
                f"{self.segments} to extract from scratch, or choose another --out or "
                "--feature-name"
            ) from error
        if found is None:
            raise ValueError(
                f"{self.path} was not written by mcsan extract (it has no recipe). Fix: "
                "choose another --out or --feature-name"
            )
        if not same_recipe(json.loads(found), recipe):
            raise _recipe_mismatch(self.path, json.loads(found), recipe)
        where = {
            video_id: Path(link.filename).name if isinstance(link, h5py.ExternalLink) else None
            for video_id, link in links.items()
        }
        missing = sorted({name for name in where.values() if name} - self._segment_files())
        if missing:
            raise ValueError(
                f"{self.path} links to {self.segments / missing[0]}, which is missing: the "
                f"features of its videos are there. Fix: copy {self.segments} along with "
                f"{self.path.name}, or delete both to extract from scratch"
            )
        return where

    def recover(self, where: dict[str, str | None]) -> None:
        """Delete what a killed run left: unfinished files, and segments that no link names."""
        for stale in self.path.parent.glob(f".{self.path.name}.partial-*"):
            stale.unlink()
        for name in self._segment_files() - set(where.values()):
            (self.segments / name).unlink()

    def add(self, parts: _Parts, recipe: dict) -> None:
        """Add the videos of ``parts`` that the file does not hold yet, then delete the parts.

        The first run writes the file itself. Later runs write their videos into a new
        segment, then write the file anew as links to every video's segment and rename it
        over the old one; a file that holds features itself becomes segment ``0`` first,
        under a second name (a hard link): no feature already stored is copied or rewritten.
        """
        where = self.videos(recipe)
        new = {video_id: path for video_id, path in parts.files().items() if video_id not in where}
        if not where:
            if new:
                _write_hdf5(self.path, partial(_fill_segment, recipe=recipe, parts=new))
        elif new:
            self.segments.mkdir(exist_ok=True)
            numbers = (int(name.split(".")[0]) for name in where.values() if name)
            number = max(numbers, default=-1) + 1
            if None in where.values():  # features stored in the file itself
                first = self.segments / f"{number}.hdf5"
                _second_name(self.path, first)
                where = {video_id: name or first.name for video_id, name in where.items()}
                number += 1
            segment = self.segments / f"{number}.hdf5"
            _write_hdf5(segment, partial(_fill_segment, recipe=recipe, parts=new))
            where |= dict.fromkeys(new, segment.name)
            _write_hdf5(self.path, partial(self._fill_links, recipe=recipe, where=where))
        parts.remove()

    def _segment_files(self) -> set[str]:
        """Names of the segment files, finished or not, in the segments directory."""
        if not self.segments.is_dir():
            return set()
        return {path.name for path in self.segments.iterdir() if SEGMENT_FILE.fullmatch(path.name)}

    def _fill_links(self, file: h5py.File, recipe: dict, where: dict[str, str]) -> None:
        file.attrs[RECIPE_ATTRIBUTE] = json.dumps(recipe)
        for video_id, name in sorted(where.items()):
            file[video_id] = h5py.ExternalLink(f"{self.segments.name}/{name}", f"/{video_id}")


def _fill_segment(file: h5py.File, recipe: dict, parts: dict[str, Path]) -> None:
    file.attrs[RECIPE_ATTRIBUTE] = json.dumps(recipe)
    for video_id, path in parts.items():
        try:
            with np.load(path, allow_pickle=False) as part:
                dataset = file.create_dataset(video_id, data=part["features"])  # (frames, dim)
                dataset.attrs["timestamps"] = part["timestamps"]
                dataset.attrs["source"] = str(part["source"])
                dataset.attrs["decoded_frames"] = int(part["decoded_frames"])
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(
                f"{path}: finished part of video {video_id} cannot be read ({error}). Fix: "
                "delete it; the next run extracts the video again"
            ) from error


def _write_hdf5(path: Path, fill: Callable[[h5py.File], None]) -> None:
    """Write a new HDF5 file with ``fill`` and rename it to ``path``: whole or not at all."""
    unfinished = _unfinished(path)
    try:
        with h5py.File(unfinished, "w") as file:
            fill(file)
        fsync_file(unfinished)
        os.replace(unfinished, path)
    except BaseException:
        unfinished.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def _second_name(path: Path, name: Path) -> None:
    """Give the file at ``path`` a second ``name``: a hard link, else (a file system without
    them) a copy."""
    try:
        os.link(path, name)
    except OSError:
        shutil.copyfile(path, name)
        fsync_file(name)
    fsync_directory(name.parent)


def _done_videos(store: _FeatureFile, parts: _Parts, recipe: dict) -> set[str]:
    """Ids already extracted with this recipe; raises if earlier output used another. Clears
    away what a killed run left half done."""
    stored = store.videos(recipe)
    part_recipe = parts.recipe()
    if part_recipe is not None and not same_recipe(part_recipe, recipe):
        raise _recipe_mismatch(parts.directory, part_recipe, recipe)
    store.recover(stored)
    return set(stored) | set(parts.files())


def _earlier_report(path: Path) -> dict:
    """The failure report of earlier runs ({} if none); raises on a file that is not one."""
    if not path.exists():
        return {}
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = None
    if not isinstance(report, dict) or "failed" not in report:
        raise ValueError(
            f"{path} is not a failure report of mcsan extract, so it cannot be added to. Fix: "
            "move it away, or choose another --out or --feature-name"
        )
    return report


def _write_report(summary: ExtractionSummary, recipe: dict, earlier: dict, done: set[str]) -> None:
    """The report of every run so far: a video's last failure stays until it gives features;
    ``done`` holds the videos stored before this run."""
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    stored = done | set(summary.extracted)
    failed = {item["video_id"]: item for item in earlier.get("failed", [])}
    failed |= {failure.video_id: asdict(failure) | {"when": finished} for failure in summary.failed}
    notes = {item["video_id"]: item["notes"] for item in earlier.get("notes", [])}
    notes |= summary.notes
    report = {
        "finished": finished,
        "features": str(summary.features_path),
        "videos": {  # this run
            "extracted": len(summary.extracted),
            "skipped_as_done": len(summary.skipped),
            "failed": len(summary.failed),
        },
        "failed": [item for video_id, item in sorted(failed.items()) if video_id not in stored],
        "notes": [
            {"video_id": video_id, "notes": notes[video_id]}
            for video_id in sorted(notes)
            if video_id in stored
        ],
        "frames": summary.frames,  # this run
        "recipe": recipe,
    }
    replace_json(summary.report_path, report)


def _unfinished(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place (hidden from readers)."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


# --------------------------------------------------------------------------- layouts


def _write_layout(
    layout: str,
    out: Path,
    features_path: Path,
    dataset_root: Path,
    feature_name: str,
    recipe: dict,
    summary: ExtractionSummary,
    progress: bool,
) -> Path:
    """Write the HGR or BigFile dataset: splits and captions from ``dataset_root``, features
    of the videos extracted so far; note the videos left out."""
    dataset = read_dataset(dataset_root, check_values=False, progress=False)
    if not features_path.exists():
        raise ValueError(
            f"no video has features yet ({features_path} does not exist), so no {layout} "
            "dataset can be written; see the failure report"
        )
    with h5py.File(features_path, "r") as file:
        available = set(file.keys())
        split_ids: dict[str, list[str]] = {}
        captions: dict[str, list[str]] = {}
        for split in dataset:
            if split.name not in WRITABLE_SPLITS:
                summary.layout_notes.append(
                    f"split {split.name!r} of {dataset_root} is not written: the {layout} "
                    f"layout holds {', '.join(WRITABLE_SPLITS)} only"
                )
                continue
            kept = [video_id for video_id in split.video_ids if video_id in available]
            left_out = [video_id for video_id in split.video_ids if video_id not in available]
            if left_out:
                summary.layout_notes.append(
                    f"{len(left_out)} of {len(split.video_ids)} videos of split {split.name!r} "
                    f"have no features (no file, or it failed), e.g. {left_out[0]}; they are "
                    "left out of the dataset"
                )
            if kept:
                split_ids[split.name] = kept
                for caption in split.captions:
                    if caption.video_id in available:
                        captions.setdefault(caption.video_id, []).append(caption.text)
        if not split_ids:
            raise ValueError(
                f"none of the videos of {dataset_root} has features in {features_path} "
                f"(it holds {len(available)} videos). A video's id is its file name without the "
                "extension. Fix: check that the file names match the dataset's video ids"
            )
        source = {feature_name: lambda video_id: file[video_id][()]}  # (frames, dim)
        if layout == "hgr":
            root = write_hgr(
                out / "hgr", split_ids, captions, source, overwrite=True, progress=progress
            )
            feature_dirs = [root / "ordered_feature" / "SA" / feature_name]
        else:
            prefix = re.sub(r"[^\w.-]", "_", dataset_root.resolve().name) or "videos"
            root = write_bigfile(
                out / "bigfile",
                prefix,
                split_ids,
                captions,
                source,
                overwrite=True,
                progress=progress,
            )
            feature_dirs = [
                root / f"{prefix}{split}" / "FeatureData" / feature_name for split in split_ids
            ]
    for directory in feature_dirs:
        replace_json(directory / RECIPE_FILE, recipe)
    return root


def _check_arguments(
    feature_name: str,
    layout: str,
    dataset_root: str | Path | None,
    batch_size: int,
    workers: int,
    decode_threads: int,
) -> None:
    if not feature_name or feature_name.startswith(".") or re.search(r"[/\\\s]", feature_name):
        raise ValueError(f"feature name {feature_name!r} must be a plain file name")
    if layout not in FEATURE_LAYOUTS:
        raise ValueError(f"layout {layout!r} is unknown; choose one of {FEATURE_LAYOUTS}")
    if layout == "hdf5" and dataset_root is not None:
        raise ValueError("a dataset root is used only with layout 'hgr' or 'bigfile'")
    if layout != "hdf5" and dataset_root is None:
        raise ValueError(
            f"layout {layout!r} needs the dataset's annotation (--dataset ROOT) for its splits "
            "and captions"
        )
    if batch_size < 1 or workers < 0 or decode_threads < 0:
        raise ValueError(
            f"batch_size={batch_size}, workers={workers}, decode_threads={decode_threads}: "
            "batch_size must be positive, the others at least 0"
        )
