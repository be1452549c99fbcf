"""The ``hgr`` layout (HGR, CVPR 2020): reader and writer.

``annotation/RET/ref_captions.json`` (``{video: [captions]}``),
``public_split/{trn,val,tst}_names.npy`` (splits train / val / test),
``ordered_feature/SA/<ft>/{trn,val,tst}_ft.hdf5`` (one ``(frames, dim)`` dataset per video,
key = video name with ``/`` -> ``_``) and, used only for a feature type without SA files,
``ordered_feature/MP/<ft>/{trn,val,tst}_ft.npy`` (mean-pooled rows in split-file order, read
as one frame per video).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from mcsan.data.dataset import Caption, Dataset, FeatureStore, Split
from mcsan.data.layouts.annotation_text import caption_ok, finish_text, parse_json, read_text
from mcsan.data.layouts.feature_stores import HDF5FeatureStore, RowFeatureStore
from mcsan.data.layouts.feature_types import choose_features, subdirectories
from mcsan.data.layouts.writing import (
    FeatureSource,
    check_free,
    check_writer_input,
    checked_frames,
    feature_getter,
    replace_directory,
    staging_area,
    write_json,
)
from mcsan.data.validate import DataSources, DataValidationError, ValidationReport

HGR_CAPTIONS = Path("annotation", "RET", "ref_captions.json")
HGR_SPLIT_FILES = {"train": "trn", "val": "val", "test": "tst"}  # split -> file prefix
HGR_LOOKED_FOR = f"{HGR_CAPTIONS} or public_split/*_names.npy"


def looks_hgr(root: Path) -> bool:
    return (root / HGR_CAPTIONS).is_file() or any((root / "public_split").glob("*_names.npy"))


# --------------------------------------------------------------------------- reading


def read_hgr(
    root: Path, features: list[str] | None, report: ValidationReport
) -> tuple[Dataset, DataSources]:
    caption_path = root / HGR_CAPTIONS
    if not caption_path.is_file():
        raise DataValidationError(
            f"{caption_path}: not found; an HGR dataset keeps its captions there as "
            f"{{video: [captions]}}. Fix: add the file or point data.root at the dataset root"
        )
    source = read_text(caption_path)
    references = parse_json(source)
    if not isinstance(references, dict):
        raise DataValidationError(
            f"{caption_path}: expected a JSON object {{video: [captions]}}, found "
            f"{type(references).__name__}. Fix: write the captions in that form"
        )
    frame_types = subdirectories(root / "ordered_feature" / "SA")
    pooled_types = subdirectories(root / "ordered_feature" / "MP")
    chosen = choose_features(frame_types | pooled_types, features, root / "ordered_feature")

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
                if caption_ok(source, caption_id, text, report):
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
    finish_text(source, report)
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


# --------------------------------------------------------------------------- writing


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
    check_writer_input(split_video_ids, captions, features)
    check_free(root, overwrite)
    with staging_area(root.parent, root.name) as stage:
        references = {
            video_id: list(captions.get(video_id, []))
            for video_ids in split_video_ids.values()
            for video_id in video_ids
        }
        write_json(stage / HGR_CAPTIONS, references)
        for name, text in (extra_files or {}).items():
            if Path(name).name != name or name.startswith("."):
                raise ValueError(f"extra file name {name!r} must be a plain file name")
            (stage / name).write_text(text, encoding="utf-8")
        for split, video_ids in split_video_ids.items():
            names_path = stage / "public_split" / f"{HGR_SPLIT_FILES[split]}_names.npy"
            names_path.parent.mkdir(parents=True, exist_ok=True)
            np.save(names_path, np.array(video_ids, dtype=str))
        for feature_name, source in features.items():
            get = feature_getter(feature_name, source)
            for split, video_ids in split_video_ids.items():
                _write_hgr_features(
                    stage, feature_name, split, video_ids, get, write_mean_pooled, progress
                )
        replace_directory(stage, root, overwrite)
    return root


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
            values = checked_frames(get(video_id), name, video_id, dim)  # (frames, dim)
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
