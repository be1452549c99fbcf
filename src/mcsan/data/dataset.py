"""The one in-memory form every layout reader produces.

A :class:`Dataset` holds named :class:`Split` objects. A split knows its video ids, its
captions and one or more :class:`FeatureStore` objects that give lazy per-video access to
frame features of shape ``(frames, dim)``. Several feature types are concatenated along
``dim``; no feature file is read whole at start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Caption:
    caption_id: str  # unique within the dataset, e.g. "video12#3"
    video_id: str
    text: str


class FeatureStore(Protocol):
    """Lazy per-video frame features of one feature type.

    Implementations must be picklable before first use (open files lazily, per process),
    so data-loader workers can fork safely.
    """

    name: str  # feature type, e.g. "resnet152"
    path: Path  # the file or directory that holds it (named in errors)
    dim: int

    def video_ids(self) -> list[str]: ...

    def __contains__(self, video_id: object) -> bool: ...

    def get(self, video_id: str) -> np.ndarray:
        """Return ``(frames, dim)`` float32 features of one video."""
        ...

    def file_of(self, video_id: str) -> Path:
        """The file that holds one video's features (named in errors)."""
        ...


class LazyHandle:
    """Opens a file on first use in each process; never pickles the open handle.

    h5py objects cannot be pickled and must not be shared across a fork, so a store keeps
    one of these and calls :meth:`get` whenever it reads.
    """

    def __init__(self, opener) -> None:
        self._opener = opener
        self._handle = None
        self._pid: int | None = None

    def get(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle = self._opener()
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict:
        return {"_opener": self._opener, "_handle": None, "_pid": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


@dataclass
class Split:
    name: str  # "train", "val", "test", ...
    video_ids: list[str]
    captions: list[Caption]
    features: list[FeatureStore] = field(default_factory=list)

    @property
    def feature_dim(self) -> int:
        return sum(store.dim for store in self.features)

    @property
    def feature_names(self) -> list[str]:
        return [store.name for store in self.features]

    def video_features(self, video_id: str) -> np.ndarray:
        """``(frames, sum of dims)`` float32: every feature type of one video, concatenated.

        Feature types with different frame counts are resampled to the first type's count
        by uniform index selection.
        """
        if not self.features:
            raise ValueError(f"split {self.name!r} has no feature stores")
        parts = [store.get(video_id) for store in self.features]
        if len(parts) == 1:  # every store returns float32 (frames, dim): no copy needed
            return parts[0]
        frames = parts[0].shape[0]
        aligned = [p if p.shape[0] == frames else p[uniform_indices(p.shape[0], frames)] for p in parts]
        return np.concatenate(aligned, axis=1).astype(np.float32, copy=False)

    def captions_by_video(self) -> dict[str, list[Caption]]:
        grouped: dict[str, list[Caption]] = {vid: [] for vid in self.video_ids}
        for caption in self.captions:
            grouped.setdefault(caption.video_id, []).append(caption)
        return grouped

    def __repr__(self) -> str:
        return (
            f"Split({self.name!r}, videos={len(self.video_ids)}, captions={len(self.captions)}, "
            f"features={self.feature_names}, dim={self.feature_dim if self.features else 0})"
        )


@dataclass
class Dataset:
    root: Path
    layout: str  # the layout it was read from
    splits: dict[str, Split]

    def __getitem__(self, name: str) -> Split:
        if name not in self.splits:
            raise KeyError(
                f"dataset at {self.root} ({self.layout} layout) has no split {name!r}; "
                f"it has {sorted(self.splits)}"
            )
        return self.splits[name]

    def __iter__(self) -> Iterator[Split]:
        return iter(self.splits.values())

    def all_captions(self) -> list[Caption]:
        return [c for split in self.splits.values() for c in split.captions]


def uniform_indices(length: int, count: int) -> np.ndarray:
    """``count`` indices spread uniformly over ``range(length)`` (centres of equal segments)."""
    if length <= 0:
        raise ValueError("cannot sample frames from an empty sequence")
    positions = (np.arange(count) + 0.5) * length / count
    return np.minimum(positions.astype(np.int64), length - 1)
