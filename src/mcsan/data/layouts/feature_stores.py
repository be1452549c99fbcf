"""Feature stores: lazy per-video access to ``(frames, dim)`` features, whatever the file format.

Every store implements :class:`~mcsan.data.dataset.FeatureStore` over an index from each video
id to where its frames are. Nothing is read whole at start: HDF5 files open lazily inside each
process (:class:`~mcsan.data.dataset.LazyHandle`, so stores pickle safely before a data-loader
fork), binary matrices and ``.npy`` files are memory-mapped, and each request reads one video.
Shapes come from file metadata (HDF5 dataset shapes, ``.npy`` headers), never from the data.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mcsan.data.dataset import LazyHandle
from mcsan.data.validate import DataValidationError


class _IndexedStore:
    """What every feature store shares: a name, a path, and an index from each video id to where
    its frames are (an HDF5 dataset name, a file, or row numbers)."""

    def __init__(self, name: str, path: Path, index: dict) -> None:
        self.name = name
        self.path = path
        self._index = index

    def video_ids(self) -> list[str]:
        return list(self._index)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._index

    def file_of(self, video_id: str) -> Path:
        return self.path

    def _locate(self, video_id: str):
        if video_id not in self._index:
            raise KeyError(f"{self.path}: no {self.name} features for video {video_id}")
        return self._index[video_id]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {str(self.path)!r}, videos={len(self._index)})"


class _ShapesStore(_IndexedStore):
    """A store whose dimension comes from its per-video shapes (each subclass's ``shapes()``,
    read from file metadata) on first use."""

    def __init__(self, name: str, path: Path, index: dict) -> None:
        super().__init__(name, path, index)
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        """The dimension most videos share (validation rejects the others)."""
        if self._dim is None:
            self._dim = _common_dim(self.shapes().values())
        return self._dim


class HDF5FeatureStore(_ShapesStore):
    """Frame features in one HDF5 file: one ``(frames, dim)`` dataset per video.

    A dataset may be an HDF5 external link to another file, as in a file that ``mcsan
    extract`` added videos to (links to ``.<feature>.segments/<n>.hdf5``). :meth:`open`
    resolves the links once, and reads go straight to the linked files: following a link on
    every read costs more than reading a small video. Files are opened on first read in each
    process, never at construction, so the store pickles before a data-loader fork and every
    worker opens its own handles, one per file.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        keys: dict[str, str],
        links: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(name, path, keys)  # video id -> HDF5 dataset name in ``path``
        # dataset name -> (the file it links to, the dataset's name in that file)
        self._links = links or {}
        self._file = LazyHandle(partial(h5py.File, str(path), "r"))
        self._linked_files = {
            file: LazyHandle(partial(h5py.File, file, "r")) for file, _ in self._links.values()
        }

    @classmethod
    def open(
        cls,
        name: str,
        path: Path,
        video_ids: list[str] | None = None,
        key_of: Callable[[str], str] = str,
    ) -> HDF5FeatureStore:
        """A store over ``video_ids`` (every key of the file when None) found in ``path``."""
        try:
            with h5py.File(path, "r") as file:
                keys = list(file.keys())
                links = _external_links(file, path.parent)
        except OSError as error:
            raise DataValidationError(
                f"{path}: cannot be opened as HDF5 ({error}). Fix: re-copy or re-extract it"
            ) from error
        if video_ids is None:
            index = {key: key for key in keys}
        else:
            present = set(keys)
            index = {vid: key_of(vid) for vid in video_ids if key_of(vid) in present}
        return cls(name, path, index, {key: links[key] for key in index.values() if key in links})

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every readable video's ``(frames, dim)`` shape, from file metadata (no feature read);
        () for a name that is not a dataset."""
        if self._shapes is None:
            shapes = {}
            for video_id, key in self._index.items():
                try:
                    shapes[video_id] = _frames_shape(self._dataset(video_id).shape)
                except KeyError:
                    shapes[video_id] = ()  # a group, not a dataset
                except OSError:
                    if key not in self._links:
                        raise
                    # a linked file that cannot be opened: shape() raises why
            self._shapes = shapes
        return self._shapes

    def shape(self, video_id: str) -> tuple[int, ...]:
        shapes = self.shapes()
        if video_id in shapes:
            return shapes[video_id]
        return _frames_shape(self._dataset(video_id).shape)

    def dataset_name(self, video_id: str) -> str:
        """The name of the video's HDF5 dataset in the file."""
        return self._locate(video_id)

    def get(self, video_id: str) -> np.ndarray:
        """``(frames, dim)`` float32 features of one video."""
        dataset = self._dataset(video_id)
        shape = _frames_shape(dataset.shape)
        if len(shape) != 2:
            raise ValueError(f"{self.path}: video {video_id} has features of shape {dataset.shape}")
        values = np.empty(dataset.shape, np.float32)  # HDF5 converts other float types
        if values.size:
            # the low-level read skips h5py's selection machinery: about twice as fast per video
            dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, values)
        return values.reshape(shape)

    def _dataset(self, video_id: str) -> h5py.h5d.DatasetID:
        """The video's dataset, opened in the file that holds it (a linked file directly)."""
        key = self._locate(video_id)
        if key not in self._links:
            return h5py.h5d.open(self._file.get().id, key.encode("utf-8"))
        file, name = self._links[key]
        try:
            handle = self._linked_files[file].get()
        except OSError as error:
            raise OSError(
                f"{self.path}: video {video_id} links to {file}, which cannot be opened "
                f"({error}). Fix: copy the files it links to along with it, or re-extract"
            ) from error
        return h5py.h5d.open(handle.id, name.encode("utf-8"))


class NpyDirFeatureStore(_ShapesStore):
    """Frame features as one ``<video>.npy`` file per video under a directory (memory-mapped)."""

    def __init__(self, name: str, path: Path, files: dict[str, str]) -> None:
        super().__init__(name, path, files)  # video id -> file path relative to ``path``

    @classmethod
    def scan(cls, name: str, path: Path) -> NpyDirFeatureStore:
        """Index every ``*.npy`` under ``path`` (subdirectories included) by file stem."""
        files: dict[str, str] = {}
        for directory, subdirectories, filenames in os.walk(path):
            subdirectories.sort()
            for filename in sorted(filenames):
                if not filename.endswith(".npy"):
                    continue
                video_id = filename[: -len(".npy")]
                relative = os.path.relpath(os.path.join(directory, filename), path)
                if video_id in files:
                    raise DataValidationError(
                        f"{path}: video {video_id} has two feature files ({files[video_id]} and "
                        f"{relative}). Fix: keep one"
                    )
                files[video_id] = relative
        return cls(name, path, files)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every readable video's ``(frames, dim)`` shape, from the ``.npy`` headers."""
        if self._shapes is None:
            shapes = {}
            for video_id, relative in self._index.items():
                try:
                    shapes[video_id] = _frames_shape(_npy_shape(self.path / relative))
                except (OSError, ValueError):
                    continue  # shape() raises for it, and validation reports it
            self._shapes = shapes
        return self._shapes

    def shape(self, video_id: str) -> tuple[int, ...]:
        if self._shapes is not None and video_id in self._shapes:
            return self._shapes[video_id]
        return _frames_shape(_npy_shape(self.path / self._locate(video_id)))

    def file_of(self, video_id: str) -> Path:
        return self.path / self._index[video_id] if video_id in self._index else self.path

    def get(self, video_id: str) -> np.ndarray:
        """``(frames, dim)`` float32 features of one video."""
        file = self.path / self._locate(video_id)
        return _as_frames(np.load(file, mmap_mode="r"), file, video_id)


class RowFeatureStore(_IndexedStore):
    """Rows of one memory-mapped ``(rows, dim)`` matrix; a video is a list of row numbers.

    Serves the BigFile ``feature.bin`` (a video's frames are its rows) and HGR mean-pooled
    ``.npy`` files (one row per video, read as one frame).
    """

    def __init__(
        self,
        name: str,
        path: Path,
        rows: dict[str, list[int]],
        dim: int,
        open_matrix: Callable[[], np.ndarray],
    ) -> None:
        super().__init__(name, path, rows)  # video id -> row numbers, in frame order
        self.dim = dim
        self._matrix = LazyHandle(open_matrix)  # the (rows, dim) memory map

    def shape(self, video_id: str) -> tuple[int, int]:
        return (len(self._locate(video_id)), self.dim)

    def get(self, video_id: str) -> np.ndarray:
        """``(frames, dim)`` float32 features of one video."""
        rows = self._locate(video_id)
        return np.asarray(self._matrix.get()[rows], dtype=np.float32).reshape(len(rows), self.dim)


def _external_links(file: h5py.File, directory: Path) -> dict[str, tuple[str, str]]:
    """Name -> (linked file, dataset name in it) of each external link at the top of ``file``;
    a relative file name is taken relative to ``directory``, that of the linking file."""
    external: list[bytes] = []

    def collect(name: bytes, info: h5py.h5l.LinkInfo) -> None:
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            external.append(name)

    # the low-level calls take a quarter of the time of file.get(name, getlink=True)
    file.id.links.iterate(collect, info=True)
    links = {}
    files: dict[str, str] = {}  # one string per linked file, shared by its links
    for name in external:
        target, path = (value.decode("utf-8") for value in file.id.links.get_val(name))
        links[name.decode("utf-8")] = (files.setdefault(target, str(directory / target)), path)
    return links


def _npy_shape(path: Path) -> tuple[int, ...]:
    """The array shape from a ``.npy`` header, without mapping the data."""
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(file)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(file)
    return shape


def _frames_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``(frames, dim)`` for an array stored as (frames, dim), (dim,) or (1, frames, dim)."""
    if len(shape) == 1:
        return (1, shape[0])
    if len(shape) == 3 and shape[0] == 1:
        return tuple(shape[1:])
    return tuple(shape)


def _as_frames(values: Any, path: Path, video_id: str) -> np.ndarray:
    """The stored array as an in-memory ``(frames, dim)`` float32 array.

    A read-only memory map is copied, so callers never hold a view into the file.
    """
    array = np.asarray(values)
    shape = _frames_shape(array.shape)
    if len(shape) != 2:
        raise ValueError(f"{path}: video {video_id} has features of shape {array.shape}")
    array = array.reshape(shape)
    if not array.flags.writeable:
        return np.array(array, dtype=np.float32)
    return array.astype(np.float32, copy=False)


def _common_dim(shapes: Any) -> int:
    """The feature dimension most videos of a store share (0 for an empty store)."""
    dims = Counter(shape[1] for shape in shapes if len(shape) == 2)
    return dims.most_common(1)[0][0] if dims else 0
