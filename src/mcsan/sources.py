"""Videos to index: the frame features of a dataset in any layout, or of a plain folder of
videos that ``mcsan extract`` wrote to one HDF5 file. No captions are needed.

:func:`open_source` takes

- an HDF5 file written by ``mcsan extract`` (``OUT/<feature>.hdf5``), or a directory holding
  exactly one: every video in it, with its source file and frame timestamps;
- a dataset root in any layout :func:`~mcsan.data.layouts.read_dataset` reads: the videos of
  every split, or of the splits named, in split order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mcsan.data.dataset import LazyHandle, Split
from mcsan.data.layouts import HDF5FeatureStore, detect_layout, read_dataset
from mcsan.data.recipes import features_record, read_recipe
from mcsan.data.validate import DataValidationError

HDF5_SUFFIXES = (".hdf5", ".h5")


class VideoSource(ABC):
    """Per-video frame features, with what is known of each video."""

    description: str  # names the source in messages
    video_ids: list[str]
    dim: int

    @abstractmethod
    def features(self, video_id: str) -> np.ndarray:
        """(frames, dim) float32."""

    @abstractmethod
    def metadata(self, video_id: str) -> dict[str, Any]:
        """``source`` (the video file) and ``timestamps`` (seconds of each frame) where known."""

    @abstractmethod
    def features_record(self) -> dict[str, Any]:
        """The feature types' names, sizes and extraction recipes (``recipes.features_record``)."""


class ExtractedFile(VideoSource):
    """Every video of one ``mcsan extract`` HDF5 file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)
        self.store = HDF5FeatureStore.open(path.stem, path)
        self.video_ids = sorted(self.store.video_ids())
        if not self.video_ids:
            raise ValueError(f"{path} holds no video features")
        self.dim = self.store.dim
        self._file = LazyHandle(partial(h5py.File, str(path), "r"))

    def features(self, video_id: str) -> np.ndarray:
        return self.store.get(video_id)

    def metadata(self, video_id: str) -> dict[str, Any]:
        return extraction_metadata(self._file.get()[video_id])

    def features_record(self) -> dict[str, Any]:
        return {"dim": self.dim,
                "features": [{"name": self.store.name, "dim": self.dim,
                              "recipe": read_recipe(self.path)}]}


class DatasetVideos(VideoSource):
    """The videos of a dataset's splits (each once, in split order)."""

    def __init__(self, root: Path, splits: Sequence[str] | None, layout: str,
                 progress: bool) -> None:
        dataset = read_dataset(root, layout, check_values=False, progress=progress)
        names = list(splits) if splits else list(dataset.splits)
        chosen: list[Split] = [dataset[name] for name in names]  # KeyError names the splits
        without = [split.name for split in chosen if not split.features]
        if without:
            raise ValueError(f"split(s) {without} of {root} have no features; extract them "
                             "first (`mcsan extract`)")
        self.description = f"{root} ({', '.join(names)})"
        self.split_of: dict[str, Split] = {}
        for split in chosen:
            for video_id in split.video_ids:
                self.split_of.setdefault(video_id, split)
        self.video_ids = list(self.split_of)
        if not self.video_ids:
            raise ValueError(f"{self.description} holds no video")
        self.dim = chosen[0].feature_dim
        self._record = features_record(chosen[0].features)
        self._files: dict[Path, LazyHandle] = {}  # HDF5 file -> its handle, for metadata

    def features(self, video_id: str) -> np.ndarray:
        return self.split_of[video_id].video_features(video_id)

    def metadata(self, video_id: str) -> dict[str, Any]:
        """Source and timestamps where the first feature type is an `mcsan extract` file."""
        store = self.split_of[video_id].features[0]
        if not isinstance(store, HDF5FeatureStore) or video_id not in store:
            return {}
        if store.path not in self._files:
            self._files[store.path] = LazyHandle(partial(h5py.File, str(store.path), "r"))
        return extraction_metadata(self._files[store.path].get()[store.dataset_name(video_id)])

    def features_record(self) -> dict[str, Any]:
        return self._record


def extraction_metadata(dataset: h5py.Dataset) -> dict[str, Any]:
    """The ``source`` file and frame ``timestamps`` that `mcsan extract` stores with a video."""
    found: dict[str, Any] = {}
    if "source" in dataset.attrs:
        found["source"] = str(dataset.attrs["source"])
    if "timestamps" in dataset.attrs:
        found["timestamps"] = [round(float(t), 3) for t in dataset.attrs["timestamps"]]
    return found


def open_source(path: str | Path, splits: Sequence[str] | None = None, layout: str = "auto",
                progress: bool = True) -> VideoSource:
    """The videos at ``path``; see the module docstring."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give a dataset directory or the HDF5 "
                                "file that `mcsan extract` wrote")
    if path.is_file():
        if path.suffix not in HDF5_SUFFIXES:
            raise ValueError(f"{path} is not an HDF5 feature file (.hdf5); give the file "
                             "`mcsan extract` wrote, or a dataset directory")
        _no_splits(splits, path)
        return ExtractedFile(path)
    try:
        if layout == "auto":
            detect_layout(path)
    except DataValidationError:
        found = sorted(p for p in path.iterdir() if p.suffix in HDF5_SUFFIXES)
        if len(found) == 1:
            _no_splits(splits, path)
            return ExtractedFile(found[0])
        if found:
            raise ValueError(
                f"{path} holds several feature files ({', '.join(p.name for p in found)}); "
                "name the one to index"
            ) from None
        raise
    return DatasetVideos(path, splits, layout, progress)


def _no_splits(splits: Sequence[str] | None, path: Path) -> None:
    if splits:
        raise ValueError(f"{path} is a plain feature file without splits; leave out --split")
