"""Readers and writers for the dataset layouts users already have, with auto-detection.

Every reader produces the one in-memory form, :class:`~mcsan.data.dataset.Dataset`, with
splits ``train`` / ``val`` / ``test`` (plus extra splits where a layout has them) and caption
ids ``<video>#<k>``. The layouts, as :func:`detect_layout` names them:

``hgr`` (HGR, CVPR 2020)
    ``annotation/RET/ref_captions.json`` (``{video: [captions]}``),
    ``public_split/{trn,val,tst}_names.npy`` (splits train / val / test),
    ``ordered_feature/SA/<ft>/{trn,val,tst}_ft.hdf5`` (one ``(frames, dim)`` dataset per
    video, key = video name with ``/`` -> ``_``) and, used only for a feature type without SA
    files, ``ordered_feature/MP/<ft>/{trn,val,tst}_ft.npy`` (mean-pooled rows in split-file
    order, read as one frame per video).
``bigfile`` (dual encoding / hybrid space "VisualSearch")
    ``<root>/<collection>/TextData/<collection>.caption.txt`` (``<video>#enc#<k> <caption>``
    per line) and ``<root>/<collection>/FeatureData/<ft>/`` with ``feature.bin`` (float32
    rows), ``shape.txt`` ("N D"), ``id.txt`` (space-separated frame ids) and
    ``video2frames.txt`` (a Python dict literal or JSON ``{video: [frame ids]}``; without it
    every id is a video of one frame). A caption file ``<name>train|val|test.caption.txt``
    gives split train / val / test, any other name a split of that name. ``root`` may also be
    a single collection.
``msrvtt`` (official MSR-VTT JSON)
    ``*videodatainfo*.json`` files, or zips holding them (``train_val_annotation.zip``,
    ``test_videodatainfo.json.zip``): each video's ``split`` field (train / validate / test)
    gives train / val / test. ``MSRVTT_JSFUSION_test.csv`` (columns ``key,vid_key,video_id,
    sentence``) gives the extra split ``test_1k``, one caption per video, joined on
    ``video_id``. Features: ``features/<ft>/<video_id>.npy`` or ``features/<ft>.hdf5``.
``vatex`` (official VATEX JSON)
    ``vatex_*train*.json``, ``vatex_*val*.json``, ``vatex_*test*.json`` (lists of
    ``{"videoID", "enCap": [...], "chCap": [...]}``; English captions are read, the public
    test file has none) and features ``features/<ft>/<videoID>.npy`` of shape
    ``(frames, 1024)`` (a leading axis of 1 is dropped) or ``features/<ft>.hdf5``.

An ``msrvtt`` or ``vatex`` root without ``features/`` is read for text-only work (``mcsan
prepare``): its splits then have no feature stores.

Features are never read whole at start: HDF5 files open lazily inside each process
(:class:`~mcsan.data.dataset.LazyHandle`, so stores pickle safely before a data-loader
fork), binary matrices and ``.npy`` files are memory-mapped, and each request reads one
video. Reading ends with :func:`~mcsan.data.validate.validate_dataset`.

The writers :func:`write_hgr` and :func:`write_bigfile` stream features one video at a time
and build everything in a hidden staging directory that is renamed into place only when
complete, so an interrupted write never looks like a dataset.
"""

from __future__ import annotations

import ast
import csv
import fnmatch
import io
import json
import os
import re
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from mcsan.data.dataset import Caption, Dataset, FeatureStore, LazyHandle, Split
from mcsan.data.validate import (
    DataSources,
    DataValidationError,
    ValidationReport,
    validate_dataset,
)

LAYOUTS = ("hgr", "bigfile", "msrvtt", "vatex")
WRITABLE_SPLITS = ("train", "val", "test")

HGR_CAPTIONS = Path("annotation", "RET", "ref_captions.json")
HGR_SPLIT_FILES = {"train": "trn", "val": "val", "test": "tst"}  # split -> file prefix
MSRVTT_SPLITS = {"train": "train", "validate": "val", "test": "test"}  # "split" field -> split
MSRVTT_1K_CSV = "MSRVTT_JSFUSION_test.csv"
MSRVTT_1K_SPLIT = "test_1k"

FeatureSource = Mapping[str, np.ndarray] | Callable[[str], np.ndarray]

_LOOKED_FOR = {
    "hgr": f"{HGR_CAPTIONS} or public_split/*_names.npy",
    "bigfile": "TextData/ or FeatureData/ in the root or in its subdirectories (collections)",
    "msrvtt": f"*videodatainfo*.json, a .zip holding one, or {MSRVTT_1K_CSV}",
    "vatex": "vatex_*.json (e.g. vatex_training_v1.0.json)",
}


# --------------------------------------------------------------------------- public API


def detect_layout(root: str | Path) -> str:
    """Name the layout of the dataset at ``root``: "hgr", "bigfile", "msrvtt" or "vatex"."""
    root = _existing_directory(root)
    found = [name for name, present in _LAYOUT_PROBES.items() if present(root)]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataValidationError(
            f"{root}: looks like several dataset layouts at once ({', '.join(found)}). "
            f"Fix: pass the layout explicitly (data.layout=...)"
        )
    listing = ", ".join(sorted(child.name for child in root.iterdir())[:20]) or "nothing"
    looked_for = "; ".join(f"{name}: {what}" for name, what in _LOOKED_FOR.items())
    raise DataValidationError(
        f"{root}: no known dataset layout found. Looked for {looked_for}. The directory "
        f"holds: {listing}. Fix: point data.root at the dataset directory, or set data.layout"
    )


def read_dataset(
    root: str | Path,
    layout: str = "auto",
    features: list[str] | None = None,
    skip_invalid: bool = False,
    *,
    check_values: bool = True,
    progress: bool = True,
) -> Dataset:
    """Read and validate the dataset at ``root``; see :func:`read_dataset_with_report`."""
    dataset, _ = read_dataset_with_report(
        root, layout, features, skip_invalid, check_values=check_values, progress=progress
    )
    return dataset


def read_dataset_with_report(
    root: str | Path,
    layout: str = "auto",
    features: list[str] | None = None,
    skip_invalid: bool = False,
    *,
    check_values: bool = True,
    progress: bool = True,
) -> tuple[Dataset, ValidationReport]:
    """Read the dataset at ``root`` in any supported layout and validate it.

    ``layout`` is "auto" or one of :data:`LAYOUTS`. ``features`` names the feature types to
    use, in concatenation order; None or [] means every type found, sorted by name.
    ``skip_invalid`` skips bad items (listed in the report) instead of raising
    :class:`DataValidationError`; ``check_values`` scans every feature value for NaN/Inf.
    """
    root = _existing_directory(root)
    name = detect_layout(root) if layout == "auto" else layout
    if name not in _READERS:
        raise ValueError(f"unknown dataset layout {layout!r}; expected 'auto' or one of {LAYOUTS}")
    report = ValidationReport(skip_invalid=skip_invalid)
    dataset, sources = _READERS[name](root, list(features) if features else None, report)
    validate_dataset(
        dataset,
        skip_invalid,
        check_values=check_values,
        progress=progress,
        report=report,
        sources=sources,
    )
    return dataset, report


def write_hgr(
    root: str | Path,
    split_video_ids: Mapping[str, list[str]],
    captions: Mapping[str, list[str]],
    features: Mapping[str, FeatureSource],
    *,
    write_mean_pooled: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write a dataset in the HGR layout at ``root`` and return ``root``.

    ``split_video_ids`` maps train / val / test to video ids; ``captions`` maps a video id
    to its captions; ``features`` maps a feature type to a mapping or a callable giving one
    video's ``(frames, dim)`` array, which is requested one video at a time and written at
    once, so no more than one video's features sit in memory. ``extra_files`` maps a file
    name to its text, written beside the data before the dataset appears (so it is there
    whenever the dataset is).
    """
    root = Path(root)
    _check_writer_input(split_video_ids, captions, features)
    _check_free(root, overwrite)
    with _staging_area(root.parent, root.name) as stage:
        references = {
            video_id: list(captions.get(video_id, []))
            for video_ids in split_video_ids.values()
            for video_id in video_ids
        }
        _write_json(stage / HGR_CAPTIONS, references)
        for name, text in (extra_files or {}).items():
            if Path(name).name != name or name.startswith("."):
                raise ValueError(f"extra file name {name!r} must be a plain file name")
            (stage / name).write_text(text, encoding="utf-8")
        for split, video_ids in split_video_ids.items():
            names_path = stage / "public_split" / f"{HGR_SPLIT_FILES[split]}_names.npy"
            names_path.parent.mkdir(parents=True, exist_ok=True)
            np.save(names_path, np.array(video_ids, dtype=str))
        for feature_name, source in features.items():
            get = _feature_getter(feature_name, source)
            for split, video_ids in split_video_ids.items():
                _write_hgr_features(
                    stage, feature_name, split, video_ids, get, write_mean_pooled, progress
                )
        _replace_directory(stage, root, overwrite)
    return root


def write_bigfile(
    root: str | Path,
    collection_prefix: str,
    split_video_ids: Mapping[str, list[str]],
    captions: Mapping[str, list[str]],
    features: Mapping[str, FeatureSource],
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write one BigFile collection per split, ``<root>/<prefix><split>``; return ``root``.

    Frames of video ``v`` are named ``v_0``, ``v_1``, ... in ``id.txt`` and
    ``video2frames.txt``; caption ``k`` of ``v`` is ``v#enc#k``. Only videos with captions
    appear in a caption file, so a captionless video is read back as unused features.
    Inputs are as for :func:`write_hgr`. Other collections under ``root`` are left alone.
    """
    root = Path(root)
    if not collection_prefix or re.search(r"[\s/\\]", collection_prefix):
        raise ValueError(f"collection_prefix {collection_prefix!r} must be a non-empty name")
    _check_writer_input(split_video_ids, captions, features)
    for video_ids in split_video_ids.values():
        for video_id in video_ids:
            if re.search(r"[\s#]", video_id):
                raise ValueError(
                    f"video id {video_id!r} holds whitespace or '#'; BigFile forbids it"
                )
    targets = {split: root / f"{collection_prefix}{split}" for split in split_video_ids}
    for target in targets.values():
        _check_free(target, overwrite)
    with _staging_area(root, collection_prefix) as stage:
        for split, video_ids in split_video_ids.items():
            collection = stage / targets[split].name
            _write_caption_txt(collection, video_ids, captions)
            for feature_name, source in features.items():
                get = _feature_getter(feature_name, source)
                directory = collection / "FeatureData" / feature_name
                _write_bigfile_features(directory, split, video_ids, get, progress)
        for target in targets.values():
            _replace_directory(stage / target.name, target, overwrite)
    return root


# --------------------------------------------------------------------------- feature stores


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

    The file is opened on first read in each process, never at construction, so the store
    pickles before a data-loader fork and every worker opens its own handle.
    """

    def __init__(self, name: str, path: Path, keys: dict[str, str]) -> None:
        super().__init__(name, path, keys)  # video id -> HDF5 dataset name
        self._file = LazyHandle(partial(h5py.File, str(path), "r"))

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
        except OSError as error:
            raise DataValidationError(
                f"{path}: cannot be opened as HDF5 ({error}). Fix: re-copy or re-extract it"
            ) from error
        if video_ids is None:
            return cls(name, path, {key: key for key in keys})
        present = set(keys)
        return cls(name, path, {vid: key_of(vid) for vid in video_ids if key_of(vid) in present})

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every video's ``(frames, dim)`` shape, from file metadata (no feature read)."""
        if self._shapes is None:
            with h5py.File(self.path, "r") as file:
                self._shapes = {
                    vid: _frames_shape(_hdf5_shape(file, key)) for vid, key in self._index.items()
                }
        return self._shapes

    def shape(self, video_id: str) -> tuple[int, ...]:
        return self.shapes()[video_id]

    def dataset_name(self, video_id: str) -> str:
        """The name of the video's HDF5 dataset in the file."""
        return self._locate(video_id)

    def get(self, video_id: str) -> np.ndarray:
        """``(frames, dim)`` float32 features of one video."""
        key = self._locate(video_id)
        # the low-level read skips h5py's selection machinery: about twice as fast per video
        dataset = h5py.h5d.open(self._file.get().id, key.encode("utf-8"))
        shape = _frames_shape(dataset.shape)
        if len(shape) != 2:
            raise ValueError(f"{self.path}: video {video_id} has features of shape {dataset.shape}")
        values = np.empty(dataset.shape, np.float32)  # HDF5 converts other float types
        if values.size:
            dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, values)
        return values.reshape(shape)



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


def _hdf5_shape(file: h5py.File, key: str) -> tuple[int, ...]:
    """A dataset's shape through the low-level API (twice as fast); () for a group."""
    try:
        return h5py.h5d.open(file.id, key.encode("utf-8")).shape
    except KeyError:
        return ()


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


# --------------------------------------------------------------------------- detection


def _looks_hgr(root: Path) -> bool:
    return (root / HGR_CAPTIONS).is_file() or any((root / "public_split").glob("*_names.npy"))


def _looks_bigfile(root: Path) -> bool:
    return bool(_bigfile_collections(root))


def _looks_msrvtt(root: Path) -> bool:
    return bool(_msrvtt_annotations(root)) or (root / MSRVTT_1K_CSV).is_file()


def _looks_vatex(root: Path) -> bool:
    return bool(_vatex_files(root))


_LAYOUT_PROBES: dict[str, Callable[[Path], bool]] = {
    "hgr": _looks_hgr,
    "bigfile": _looks_bigfile,
    "msrvtt": _looks_msrvtt,
    "vatex": _looks_vatex,
}


# --------------------------------------------------------------------------- HGR reader


def _read_hgr(
    root: Path, features: list[str] | None, report: ValidationReport
) -> tuple[Dataset, DataSources]:
    caption_path = root / HGR_CAPTIONS
    if not caption_path.is_file():
        raise DataValidationError(
            f"{caption_path}: not found; an HGR dataset keeps its captions there as "
            f"{{video: [captions]}}. Fix: add the file or point data.root at the dataset root"
        )
    source = _read_text(caption_path)
    references = _parse_json(source)
    if not isinstance(references, dict):
        raise DataValidationError(
            f"{caption_path}: expected a JSON object {{video: [captions]}}, found "
            f"{type(references).__name__}. Fix: write the captions in that form"
        )
    frame_types = _subdirectories(root / "ordered_feature" / "SA")
    pooled_types = _subdirectories(root / "ordered_feature" / "MP")
    chosen = _choose_features(frame_types | pooled_types, features, root / "ordered_feature")

    splits: dict[str, Split] = {}
    sources = DataSources()
    for split_name, prefix in HGR_SPLIT_FILES.items():
        names_path = root / "public_split" / f"{prefix}_names.npy"
        if not names_path.is_file():
            continue
        video_ids = _load_names(names_path)
        captions = []
        for video_id in video_ids:
            texts = references.get(video_id, [])
            if not isinstance(texts, list):
                raise DataValidationError(
                    f"{caption_path}: video {video_id} maps to {type(texts).__name__}, not a "
                    f"list of captions. Fix: write {{video: [captions]}}"
                )
            for k, text in enumerate(texts):
                caption_id = f"{video_id}#{k}"
                if _caption_ok(source, caption_id, text, report):
                    captions.append(Caption(caption_id, video_id, text))
        stores = [
            _hgr_store(root, name, prefix, names_path, video_ids, name in frame_types)
            for name in chosen
        ]
        splits[split_name] = Split(split_name, video_ids, captions, stores)
        sources.video_lists[split_name] = names_path
        sources.captions[split_name] = caption_path
    if not splits:
        raise DataValidationError(
            f"{root / 'public_split'}: no trn_names.npy, val_names.npy or tst_names.npy. "
            f"Fix: add the split files (numpy arrays of video names)"
        )
    _finish_text(source, report)
    in_splits = {video_id for split in splits.values() for video_id in split.video_ids}
    unsplit = [video_id for video_id in references if video_id not in in_splits]
    if unsplit:
        report.warn(
            f"{caption_path}: {len(unsplit):,} videos (e.g. {unsplit[0]}) are in no split file "
            f"under {root / 'public_split'}; their captions are not used"
        )
    return Dataset(root, "hgr", splits), sources


def _hgr_store(
    root: Path,
    name: str,
    prefix: str,
    names_path: Path,
    video_ids: list[str],
    has_frames: bool,
) -> FeatureStore:
    """SA frame features of one split when the type has SA files, else its MP rows."""
    kind = "SA" if has_frames else "MP"
    suffix = "hdf5" if has_frames else "npy"
    path = root / "ordered_feature" / kind / name / f"{prefix}_ft.{suffix}"
    if not path.is_file():
        raise DataValidationError(
            f"{path}: not found, but {names_path} defines this split and feature type {name!r} "
            f"exists. Fix: add the file, choose other features (data.features), or remove "
            f"{names_path.name} to drop the split"
        )
    if has_frames:
        return HDF5FeatureStore.open(name, path, video_ids, key_of=_hgr_key)
    matrix = np.load(path, mmap_mode="r")
    if matrix.ndim != 2 or matrix.shape[0] != len(video_ids):
        raise DataValidationError(
            f"{path}: has shape {matrix.shape}, but {names_path} lists {len(video_ids)} videos; "
            f"mean-pooled rows must follow the split file one to one. Fix: regenerate it"
        )
    rows = {video_id: [row] for row, video_id in enumerate(video_ids)}
    opener = partial(np.load, str(path), mmap_mode="r")
    return RowFeatureStore(name, path, rows, int(matrix.shape[1]), opener)


def _hgr_key(video_id: str) -> str:
    return video_id.replace("/", "_")


def _load_names(path: Path) -> list[str]:
    """Video ids of an HGR split file (a 1-D numpy array of strings)."""
    try:
        names = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise DataValidationError(
            f"{path}: holds pickled Python objects, which this reader never unpickles "
            f"({error}). Fix: if you trust the file, convert it once with "
            f"np.save(path, np.load(path, allow_pickle=True).astype(str))"
        ) from error
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataValidationError(
            f"{path}: expected a 1-D array of video names, found {names.dtype} of shape "
            f"{names.shape}. Fix: np.save it as np.array(names, dtype=str)"
        )
    if names.dtype.kind == "S":
        return [name.decode("utf-8") for name in names.tolist()]
    return names.tolist()


# --------------------------------------------------------------------------- BigFile reader


def _read_bigfile(
    root: Path, features: list[str] | None, report: ValidationReport
) -> tuple[Dataset, DataSources]:
    collections = _bigfile_collections(root)
    available = {
        name: collection / "FeatureData" / name
        for collection in collections
        for name in _subdirectories(collection / "FeatureData")
    }
    chosen = _choose_features(available, features, root)
    stores = {
        collection: [_bigfile_store(collection, name, report) for name in chosen]
        for collection in collections
    }
    # one split per caption file; a collection without captions is a split of its own
    entries: list[tuple[str, Path, Path | None]] = []
    for collection in collections:
        caption_files = sorted((collection / "TextData").glob("*.caption.txt"))
        entries += [(path.name[: -len(".caption.txt")], collection, path) for path in caption_files]
        if not caption_files:
            entries.append((collection.name, collection, None))
    names = _bigfile_split_names([stem for stem, _, _ in entries], report)

    splits: dict[str, Split] = {}
    sources = DataSources()
    for (_, collection, caption_path), split_name in zip(entries, names, strict=True):
        split_stores = stores[collection]
        if caption_path is not None:
            video_ids, captions = _read_caption_txt(caption_path, report)
            sources.video_lists[split_name] = sources.captions[split_name] = caption_path
        else:
            video_ids = split_stores[0].video_ids() if split_stores else []
            captions = []
            sources.video_lists[split_name] = collection / "FeatureData"
        splits[split_name] = Split(split_name, video_ids, captions, split_stores)
    return Dataset(root, "bigfile", splits), sources


def _bigfile_collections(root: Path) -> list[Path]:
    """``root`` itself when it is a collection, else its collection subdirectories."""

    def is_collection(path: Path) -> bool:
        return (path / "TextData").is_dir() or (path / "FeatureData").is_dir()

    if is_collection(root):
        return [root]
    children = sorted(c for c in root.iterdir() if c.is_dir() and not c.name.startswith("."))
    return [child for child in children if is_collection(child)]


def _bigfile_split_names(stems: list[str], report: ValidationReport) -> list[str]:
    """train / val / test from a caption file's suffix; the stem itself otherwise or on a clash."""
    mapped = [_split_from_suffix(stem) for stem in stems]
    counts = Counter(mapped)
    names = []
    for stem, name in zip(stems, mapped, strict=True):
        if counts[name] > 1 and name != stem:
            report.warn(f"several caption files end in {name!r}; split {stem!r} keeps its name")
            name = stem
        names.append(name)
    return names


def _split_from_suffix(stem: str) -> str:
    lowered = stem.lower()
    if lowered.endswith("trainval"):
        return stem
    return next((name for name in WRITABLE_SPLITS if lowered.endswith(name)), stem)


_ENC_CAPTION_ID = re.compile(r"(.+?)#enc#(\d+)")


def _read_caption_txt(path: Path, report: ValidationReport) -> tuple[list[str], list[Caption]]:
    """Videos (in order of first caption) and captions of a ``<id> <caption>`` per line file."""
    source = _read_text(path)
    video_ids: dict[str, None] = {}
    captions = []
    for line in source.text.split("\n"):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        file_id, _, text = line.partition(" ")
        match = _ENC_CAPTION_ID.fullmatch(file_id)
        caption_id = f"{match[1]}#{match[2]}" if match else file_id
        video_id = file_id.split("#", 1)[0]
        if _caption_ok(source, caption_id, text, report):
            video_ids.setdefault(video_id)
            captions.append(Caption(caption_id, video_id, text))
    _finish_text(source, report)
    return list(video_ids), captions


def _bigfile_store(collection: Path, name: str, report: ValidationReport) -> RowFeatureStore:
    """A BigFile feature directory as a store; checks sizes against ``shape.txt``."""
    directory = collection / "FeatureData" / name
    shape_path, id_path, binary_path = (
        directory / "shape.txt",
        directory / "id.txt",
        directory / "feature.bin",
    )
    for path in (shape_path, id_path, binary_path):
        if not path.is_file():
            raise DataValidationError(
                f"{path}: not found; a BigFile feature directory needs feature.bin, shape.txt "
                f"and id.txt. Fix: add it or choose other features (data.features)"
            )
    try:
        rows_total, dim = (int(value) for value in shape_path.read_text().split())
    except ValueError as error:
        raise DataValidationError(
            f"{shape_path}: expected two integers 'N D', found "
            f"{shape_path.read_text()[:50]!r}. Fix: write the row count and dimension"
        ) from error
    frame_ids = _read_text(id_path).text.split()
    if len(frame_ids) != rows_total:
        raise DataValidationError(
            f"{id_path}: lists {len(frame_ids):,} ids but {shape_path} says {rows_total:,} rows. "
            f"Fix: regenerate id.txt and shape.txt together"
        )
    expected_bytes = rows_total * dim * 4
    if binary_path.stat().st_size != expected_bytes:
        raise DataValidationError(
            f"{binary_path}: has {binary_path.stat().st_size:,} bytes, but shape.txt "
            f"({rows_total} x {dim} float32) needs {expected_bytes:,}; the file is truncated or "
            f"not float32. Fix: re-copy or re-extract it"
        )
    row_of: dict[str, int] = {}
    for row, frame_id in enumerate(frame_ids):
        if frame_id in row_of:
            reason = f"appears twice in this file (rows {row_of[frame_id]} and {row})"
            report.reject(id_path, f"frame {frame_id}", reason, "remove the duplicate row")
            continue
        row_of[frame_id] = row
    rows = _video_rows(directory / "video2frames.txt", id_path, row_of, report)
    opener = partial(
        np.memmap, str(binary_path), dtype=np.float32, mode="r", shape=(rows_total, dim)
    )
    return RowFeatureStore(name, binary_path, rows, dim, opener)


def _video_rows(
    path: Path, id_path: Path, row_of: dict[str, int], report: ValidationReport
) -> dict[str, list[int]]:
    """Video -> its frames' rows from ``video2frames.txt``; each id is a video without it."""
    if not path.is_file():
        return {frame_id: [row] for frame_id, row in row_of.items()}
    source = _read_text(path)
    try:
        video_frames = json.loads(source.text)
    except json.JSONDecodeError:
        try:
            video_frames = ast.literal_eval(source.text)
        except (ValueError, SyntaxError) as error:
            raise DataValidationError(
                f"{path}: not a Python dict literal or JSON object ({error}). "
                f"Fix: write {{video: [frame ids]}}"
            ) from error
    if not isinstance(video_frames, dict):
        raise DataValidationError(f"{path}: expected {{video: [frame ids]}}. Fix: rewrite it")
    rows: dict[str, list[int]] = {}
    for video_id, frames in video_frames.items():
        missing = [frame for frame in frames if frame not in row_of]
        if missing:
            reason = f"names {len(missing)} frame(s) absent from {id_path} (e.g. {missing[0]})"
            fix = "regenerate video2frames.txt from id.txt"
            report.reject(path, f"video {video_id}", reason, fix)
            continue
        rows[str(video_id)] = [row_of[frame] for frame in frames]
    return rows


# --------------------------------------------------------------------------- MSR-VTT reader


@dataclass(frozen=True)
class _Member:
    """An annotation file, either on disk or inside a zip."""

    path: Path  # the file, or the zip holding it
    member: str | None = None  # name inside the zip

    @property
    def label(self) -> Path:
        return self.path / self.member if self.member else self.path

    def read(self) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


def _msrvtt_annotations(root: Path) -> list[_Member]:
    """``*videodatainfo*.json`` files, and those inside zips unless also present unpacked."""
    files = [_Member(path) for path in sorted(root.glob("*videodatainfo*.json"))]
    unpacked = {member.path.name for member in files}
    for archive_path in sorted(root.glob("*.zip")):
        try:
            with zipfile.ZipFile(archive_path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            continue
        for name in names:
            base = name.rsplit("/", 1)[-1]
            if fnmatch.fnmatch(base, "*videodatainfo*.json") and base not in unpacked:
                files.append(_Member(archive_path, name))
    return files


def _read_msrvtt(
    root: Path, features: list[str] | None, report: ValidationReport
) -> tuple[Dataset, DataSources]:
    split_videos: dict[str, list[str]] = {name: [] for name in MSRVTT_SPLITS.values()}
    captions_of: dict[str, list[Caption]] = {}
    sources = DataSources()
    for member in _msrvtt_annotations(root):
        _read_videodatainfo(member, split_videos, captions_of, sources, report)

    splits = {
        name: Split(
            name,
            video_ids,
            [caption for video_id in video_ids for caption in captions_of.get(video_id, [])],
        )
        for name, video_ids in split_videos.items()
        if video_ids
    }
    one_k_path = root / MSRVTT_1K_CSV
    if one_k_path.is_file():
        test_videos = set(split_videos["test"]) if split_videos["test"] else None
        splits[MSRVTT_1K_SPLIT] = _read_msrvtt_1k(one_k_path, test_videos, sources, report)
        sources.video_lists[MSRVTT_1K_SPLIT] = sources.captions[MSRVTT_1K_SPLIT] = one_k_path
    if not splits:
        raise DataValidationError(
            f"{root}: no MSR-VTT videos found in {_LOOKED_FOR['msrvtt']}. Fix: add the "
            f"official annotation (train_val_videodatainfo.json or its zip)"
        )
    stores = _per_video_stores(root / "features", features)
    for split in splits.values():
        split.features = list(stores)
    return Dataset(root, "msrvtt", splits), sources


def _read_videodatainfo(
    member: _Member,
    split_videos: dict[str, list[str]],
    captions_of: dict[str, list[Caption]],
    sources: DataSources,
    report: ValidationReport,
) -> None:
    """Add the videos and sentences of one official MSR-VTT JSON file."""
    label = member.label
    source = _read_text(label, member.read())
    data = _parse_json(source)
    videos, sentences = _required(data, ("videos", "sentences"), label)
    known: set[str] = set()
    for index, video in enumerate(videos):
        video_id, split_value = _required(video, ("video_id", "split"), label, f"videos[{index}]")
        split = MSRVTT_SPLITS.get(split_value)
        if split is None:
            reason = f"has split {split_value!r}; expected one of {sorted(MSRVTT_SPLITS)}"
            report.reject(label, f"video {video_id}", reason, "correct the split field")
            continue
        split_videos[split].append(video_id)
        known.add(video_id)
        sources.video_lists.setdefault(split, label)
        sources.captions.setdefault(split, label)
    counters: Counter[str] = Counter()
    for index, sentence in enumerate(sentences):
        try:
            video_id, text = sentence["video_id"], sentence["caption"]
        except (KeyError, TypeError):
            _required(sentence, ("video_id", "caption"), label, f"sentences[{index}]")
            raise
        k = counters[video_id]
        counters[video_id] += 1
        caption_id = f"{video_id}#{k}"
        if video_id not in known:
            reason = (
                f"(sen_id {sentence.get('sen_id')}) names video {video_id}, absent from 'videos'"
            )
            fix = "add the video to 'videos' or delete the sentence"
            report.reject(label, f"caption {caption_id}", reason, fix)
            continue
        if _caption_ok(source, caption_id, text, report, sentence.get("sen_id")):
            captions_of.setdefault(video_id, []).append(Caption(caption_id, video_id, text))
    _finish_text(source, report)


def _read_msrvtt_1k(
    path: Path, test_videos: set[str] | None, sources: DataSources, report: ValidationReport
) -> Split:
    """The 1k-A test list: one caption per video, joined to the test split on ``video_id``."""
    source = _read_text(path)
    reader = csv.DictReader(io.StringIO(source.text, newline=""))
    missing = {"key", "video_id", "sentence"} - set(reader.fieldnames or [])
    if missing:
        raise DataValidationError(
            f"{path}: lacks column(s) {sorted(missing)}; expected key,vid_key,video_id,sentence. "
            f"Fix: use the JSFusion 1k-A test list"
        )
    test_label = sources.video_lists.get("test")
    video_ids: list[str] = []
    captions = []
    for row_number, row in enumerate(reader, start=2):
        video_id = row["video_id"]
        if test_videos is not None and video_id not in test_videos:
            reason = f"(row {row_number}) is not in the official test split of {test_label}"
            fix = "use the 1k-A list that belongs to this annotation, or delete the row"
            report.reject(path, f"video {video_id}", reason, fix)
            continue
        caption_id = f"{video_id}#{row['key']}"
        text = row["sentence"]
        if _caption_ok(source, caption_id, text, report):
            video_ids.append(video_id)
            captions.append(Caption(caption_id, video_id, text))
    _finish_text(source, report)
    return Split(MSRVTT_1K_SPLIT, video_ids, captions)


# --------------------------------------------------------------------------- VATEX reader


def _vatex_files(root: Path) -> dict[str, Path]:
    """Split name -> official VATEX JSON file."""
    files: dict[str, Path] = {}
    for path in sorted(root.glob("vatex_*.json")):
        name = _vatex_split(path.name)
        if name in files:
            raise DataValidationError(
                f"{root}: {files[name].name} and {path.name} both look like the {name!r} split. "
                f"Fix: keep one of them"
            )
        files[name] = path
    return files


def _vatex_split(filename: str) -> str:
    lowered = filename.lower()
    if "private" in lowered:
        return "private_test"
    for token, name in (("train", "train"), ("val", "val"), ("test", "test")):
        if token in lowered:
            return name
    return filename[len("vatex_") : -len(".json")]


def _read_vatex(
    root: Path, features: list[str] | None, report: ValidationReport
) -> tuple[Dataset, DataSources]:
    splits: dict[str, Split] = {}
    sources = DataSources()
    for split_name, path in _vatex_files(root).items():
        source = _read_text(path)
        items = _parse_json(source)
        if not isinstance(items, list):
            raise DataValidationError(
                f"{path}: expected a JSON list of {{'videoID', 'enCap', 'chCap'}}, found "
                f"{type(items).__name__}. Fix: use the official VATEX annotation file"
            )
        video_ids = []
        captions = []
        for index, item in enumerate(items):
            (video_id,) = _required(item, ("videoID",), path, f"item {index}")
            english = item.get("enCap") or []
            if not isinstance(english, list):
                raise DataValidationError(
                    f"{path}: video {video_id} has enCap of type {type(english).__name__}; "
                    f"expected a list of captions. Fix: use the official VATEX annotation file"
                )
            video_ids.append(video_id)
            for k, text in enumerate(english):
                caption_id = f"{video_id}#{k}"
                if _caption_ok(source, caption_id, text, report):
                    captions.append(Caption(caption_id, video_id, text))
        _finish_text(source, report)
        splits[split_name] = Split(split_name, video_ids, captions)
        sources.video_lists[split_name] = sources.captions[split_name] = path
    stores = _per_video_stores(root / "features", features)
    for split in splits.values():
        split.features = list(stores)
    return Dataset(root, "vatex", splits), sources


def _per_video_stores(features_dir: Path, features: list[str] | None) -> list[FeatureStore]:
    """Stores for ``<ft>/<video>.npy`` directories and ``<ft>.hdf5`` files (none: text only)."""
    if not features_dir.is_dir():
        if features:
            raise DataValidationError(
                f"{features_dir}: not found, but features {features} were requested. Fix: put "
                f"them there as <ft>/<video>.npy or <ft>.hdf5, or request none for text-only use"
            )
        return []
    found: dict[str, Path] = {}
    for child in sorted(features_dir.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            name = child.name
        elif child.suffix in (".hdf5", ".h5"):
            name = child.stem
        else:
            continue
        if name in found:
            raise DataValidationError(
                f"{features_dir}: feature type {name!r} is stored twice ({found[name].name} and "
                f"{child.name}). Fix: keep one"
            )
        found[name] = child
    return [
        NpyDirFeatureStore.scan(name, found[name])
        if found[name].is_dir()
        else HDF5FeatureStore.open(name, found[name])
        for name in _choose_features(found, features, features_dir)
    ]


_READERS: dict[
    str, Callable[[Path, list[str] | None, ValidationReport], tuple[Dataset, DataSources]]
] = {
    "hgr": _read_hgr,
    "bigfile": _read_bigfile,
    "msrvtt": _read_msrvtt,
    "vatex": _read_vatex,
}


# --------------------------------------------------------------------------- shared reading


@dataclass
class _Text:
    """A text file decoded as UTF-8; bytes that are not UTF-8 survive as lone surrogates."""

    label: Path
    raw: bytes
    text: str
    first_bad: int | None  # byte offset of the first byte that is not UTF-8
    rejected: int = 0  # captions rejected for such bytes


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _read_text(label: Path, raw: bytes | None = None) -> _Text:
    raw = label.read_bytes() if raw is None else raw
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte-order mark
    try:
        return _Text(label, raw, raw[start:].decode("utf-8"), None)
    except UnicodeDecodeError as error:
        text = raw[start:].decode("utf-8", "surrogateescape")
        return _Text(label, raw, text, start + error.start)


def _caption_ok(
    source: _Text, caption_id: str, text: object, report: ValidationReport, own_id: Any = None
) -> bool:
    """Whether a caption read from ``source`` is a string of valid UTF-8 (else reject it);
    ``own_id``, the data set's own id of the caption (MSR-VTT's ``sen_id``), is named too."""
    item = f"caption {caption_id}" + (f" (sen_id {own_id})" if own_id is not None else "")
    if not isinstance(text, str):
        reason = f"is {type(text).__name__}, not text"
        report.reject(source.label, item, reason, "write the caption as a string")
        return False
    if source.first_bad is not None and _UNDECODABLE.search(text):
        source.rejected += 1
        raw_text = text.encode("utf-8", "surrogateescape")
        start = source.raw.find(raw_text)
        bad_index = _UNDECODABLE.search(text).start()
        offset = (
            start + len(text[:bad_index].encode("utf-8", "surrogateescape"))
            if start >= 0
            else source.first_bad
        )
        reason = f"holds bytes that are not UTF-8 ({_position(source.raw, offset)})"
        report.reject(source.label, item, reason, "re-save the file as UTF-8")
        return False
    return True


def _finish_text(source: _Text, report: ValidationReport) -> None:
    """Reject non-UTF-8 bytes that lie outside every caption (ids, other fields)."""
    if source.first_bad is not None and source.rejected == 0:
        reason = "is not UTF-8 and lies outside any caption text"
        item = f"the byte at {_position(source.raw, source.first_bad)}"
        report.reject(source.label, item, reason, "re-save the file as UTF-8")


def _position(raw: bytes, offset: int) -> str:
    line = raw.count(b"\n", 0, offset) + 1
    return f"byte offset {offset}, line {line}"


def _parse_json(source: _Text) -> Any:
    try:
        return json.loads(source.text)
    except json.JSONDecodeError as error:
        raise DataValidationError(
            f"{source.label}: not valid JSON at line {error.lineno} column {error.colno} "
            f"({error.msg}). Fix: repair or re-download the file"
        ) from error


def _required(record: Any, keys: tuple[str, ...], label: Path, where: str = "top level") -> list:
    """The values of ``keys`` in a JSON object, with an error naming what is missing."""
    present = record if isinstance(record, dict) else {}
    missing = [key for key in keys if key not in present]
    if missing:
        raise DataValidationError(
            f"{label}: {where} lacks {missing}; expected an object with {list(keys)}. "
            f"Fix: use the official annotation file"
        )
    return [present[key] for key in keys]


def _choose_features(
    found: Mapping[str, Any] | set[str], wanted: list[str] | None, where: Path
) -> list[str]:
    """The requested feature types (all found, sorted, when None) in concatenation order."""
    available = sorted(found)
    if wanted is None:
        return available
    repeated = [name for name, count in Counter(wanted).items() if count > 1]
    missing = [name for name in wanted if name not in found]
    if repeated or missing:
        problem = f"{missing} not found" if missing else f"{repeated} requested twice"
        raise DataValidationError(
            f"{where}: feature type(s) {problem}; available: {available}. "
            f"Fix: choose from those (data.features)"
        )
    return list(wanted)


def _subdirectories(path: Path) -> set[str]:
    if not path.is_dir():
        return set()
    return {c.name for c in path.iterdir() if c.is_dir() and not c.name.startswith(".")}


def _existing_directory(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataValidationError(
            f"{root}: dataset directory not found. Fix: point data.root at an existing directory"
        )
    return root


# --------------------------------------------------------------------------- writing


def _check_writer_input(
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


def _feature_getter(name: str, source: FeatureSource) -> Callable[[str], np.ndarray]:
    if not isinstance(source, Mapping):
        return source

    def get(video_id: str) -> np.ndarray:
        if video_id not in source:
            raise ValueError(f"features[{name!r}] has no entry for video {video_id!r}")
        return source[video_id]

    return get


def _checked_frames(values: Any, name: str, video_id: str, dim: int | None) -> np.ndarray:
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


def _write_hgr_features(
    stage: Path,
    name: str,
    split: str,
    video_ids: list[str],
    get: Callable[[str], np.ndarray],
    write_mean_pooled: bool,
    progress: bool,
) -> None:
    """SA ``(frames, dim)`` per video into HDF5 and, optionally, MP rows ``(videos, dim)``."""
    prefix = HGR_SPLIT_FILES[split]
    frames_path = stage / "ordered_feature" / "SA" / name / f"{prefix}_ft.hdf5"
    pooled_path = stage / "ordered_feature" / "MP" / name / f"{prefix}_ft.npy"
    frames_path.parent.mkdir(parents=True, exist_ok=True)
    pooled = None
    dim = None
    with h5py.File(frames_path, "w") as file:
        for row, video_id in enumerate(
            tqdm(video_ids, desc=f"writing {name} {split}", unit="video", disable=not progress)
        ):
            values = _checked_frames(get(video_id), name, video_id, dim)  # (frames, dim)
            dim = values.shape[1]
            key = _hgr_key(video_id)
            if key in file:
                raise ValueError(f"videos {video_id!r} and another share the HDF5 key {key!r}")
            file.create_dataset(key, data=values)
            if write_mean_pooled:
                if pooled is None:
                    pooled_path.parent.mkdir(parents=True, exist_ok=True)
                    pooled = np.lib.format.open_memmap(
                        pooled_path, mode="w+", dtype=np.float32, shape=(len(video_ids), dim)
                    )
                pooled[row] = values.mean(axis=0)
    if pooled is not None:
        pooled.flush()
        del pooled


def _write_caption_txt(
    collection: Path, video_ids: list[str], captions: Mapping[str, list[str]]
) -> None:
    path = collection / "TextData" / f"{collection.name}.caption.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for video_id in video_ids:
            for k, text in enumerate(captions.get(video_id, [])):
                out.write(f"{video_id}#enc#{k} {text}\n")


def _write_bigfile_features(
    directory: Path,
    split: str,
    video_ids: list[str],
    get: Callable[[str], np.ndarray],
    progress: bool,
) -> None:
    """``feature.bin`` rows ``(frames of all videos, dim)``, ``id.txt``, ``shape.txt``,
    ``video2frames.txt`` (JSON, which is also a valid Python dict literal)."""
    name = directory.name
    directory.mkdir(parents=True, exist_ok=True)
    frame_ids: list[str] = []
    video_frames: dict[str, list[str]] = {}
    dim = None
    with open(directory / "feature.bin", "wb") as out:
        for video_id in tqdm(
            video_ids, desc=f"writing {name} {split}", unit="video", disable=not progress
        ):
            values = _checked_frames(get(video_id), name, video_id, dim)  # (frames, dim)
            dim = values.shape[1]
            out.write(values.astype("<f4", copy=False).tobytes())
            names = [f"{video_id}_{k}" for k in range(values.shape[0])]
            frame_ids += names
            video_frames[video_id] = names
    (directory / "id.txt").write_text(" ".join(frame_ids), encoding="utf-8")
    (directory / "shape.txt").write_text(f"{len(frame_ids)} {dim}\n")
    _write_json(directory / "video2frames.txt", video_frames)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out, ensure_ascii=False)


@contextmanager
def _staging_area(parent: Path, name: str) -> Iterator[Path]:
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


def _check_free(target: Path, overwrite: bool) -> None:
    occupied = target.exists() and (not target.is_dir() or any(target.iterdir()))
    if occupied and not overwrite:
        raise FileExistsError(
            f"{target} already exists and is not empty. Fix: choose another path or pass "
            f"overwrite=True"
        )


def _replace_directory(source: Path, target: Path, overwrite: bool) -> None:
    """Rename ``source`` to ``target``, replacing an empty or (``overwrite``) old target."""
    _check_free(target, overwrite)
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
