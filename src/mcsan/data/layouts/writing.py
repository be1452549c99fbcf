"""What the writers (:func:`~mcsan.data.layouts.hgr.write_hgr`,
:func:`~mcsan.data.layouts.bigfile.write_bigfile`) share: input checks, one video's features
at a time, and a staging directory renamed into place only when complete.

A writer builds everything in a hidden directory ``.<name>.partial-<pid>`` beside its target
(readers skip hidden directories), so an interrupted write never looks like a dataset, and a
target that is not empty is replaced only when the caller passes ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

WRITABLE_SPLITS = ("train", "val", "test")

FeatureSource = Mapping[str, np.ndarray] | Callable[[str], np.ndarray]


def check_writer_input(
    split_video_ids: Mapping[str, list[str]],
    captions: Mapping[str, list[str]],
    features: Mapping[str, FeatureSource],
) -> None:
    unknown = [name for name in split_video_ids if name not in WRITABLE_SPLITS]
    if unknown or not split_video_ids:
        raise ValueError(f"splits must be among {WRITABLE_SPLITS}; got {list(split_video_ids)}")
    in_splits: set[str] = set()
    for split, video_ids in split_video_ids.items():
        if not video_ids:
            raise ValueError(f"split {split!r} has no videos")
        repeated = [vid for vid, count in Counter(video_ids).items() if count > 1]
        if repeated:
            raise ValueError(f"split {split!r} lists video {repeated[0]!r} more than once")
        in_splits.update(video_ids)
    stray = [video_id for video_id in captions if video_id not in in_splits]
    if stray:
        raise ValueError(
            f"captions given for {len(stray)} video(s) in no split (e.g. {stray[0]!r}); "
            f"add them to a split or leave their captions out"
        )
    for video_id, texts in captions.items():
        for text in texts:
            if not isinstance(text, str) or "\n" in text or "\r" in text:
                raise ValueError(f"caption {text!r} of video {video_id!r} must be one line of text")
    for name in features:
        if not name or re.search(r"[/\\]", name) or name.startswith("."):
            raise ValueError(f"feature type {name!r} must be a plain directory name")


def feature_getter(name: str, source: FeatureSource) -> Callable[[str], np.ndarray]:
    if not isinstance(source, Mapping):
        return source

    def get(video_id: str) -> np.ndarray:
        if video_id not in source:
            raise ValueError(f"features[{name!r}] has no entry for video {video_id!r}")
        return source[video_id]

    return get


def checked_frames(values: Any, name: str, video_id: str, dim: int | None) -> np.ndarray:
    """One video's features as C-contiguous ``(frames, dim)`` float32, shape-checked."""
    array = np.ascontiguousarray(values, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(
            f"features[{name!r}] for video {video_id!r} has shape {array.shape}; "
            f"expected (frames, dim) with at least one frame"
        )
    if dim is not None and array.shape[1] != dim:
        raise ValueError(
            f"features[{name!r}] for video {video_id!r} has dimension {array.shape[1]}, "
            f"earlier videos {dim}"
        )
    return array


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out, ensure_ascii=False)


@contextmanager
def staging_area(parent: Path, name: str) -> Iterator[Path]:
    """A hidden directory ``parent/.<name>.partial-<pid>`` to write into, removed at the end.

    Readers skip hidden directories, so an interrupted write is never taken for a dataset;
    the writer renames finished parts out of it into place.
    """
    parent.mkdir(parents=True, exist_ok=True)
    stage = parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def check_free(target: Path, overwrite: bool) -> None:
    occupied = target.exists() and (not target.is_dir() or any(target.iterdir()))
    if occupied and not overwrite:
        raise FileExistsError(
            f"{target} already exists and is not empty. Fix: choose another path or pass "
            f"overwrite=True"
        )


def replace_directory(source: Path, target: Path, overwrite: bool) -> None:
    """Rename ``source`` to ``target``, replacing an empty or (``overwrite``) old target."""
    check_free(target, overwrite)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        source.rename(target)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    target.rename(old)
    source.rename(target)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()
