"""The ``bigfile`` layout (dual encoding / hybrid space "VisualSearch"): reader and writer.

``<root>/<collection>/TextData/<collection>.caption.txt`` (``<video>#enc#<k> <caption>`` per
line) and ``<root>/<collection>/FeatureData/<ft>/`` with ``feature.bin`` (float32 rows),
``shape.txt`` ("N D"), ``id.txt`` (space-separated frame ids) and ``video2frames.txt`` (a
Python dict literal or JSON ``{video: [frame ids]}``; without it every id is a video of one
frame). A caption file ``<name>train|val|test.caption.txt`` gives split train / val / test,
any other name a split of that name. ``root`` may also be a single collection.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mcsan.data.dataset import Caption, Dataset, Split
from mcsan.data.layouts.annotation_text import caption_ok, finish_text, read_text
from mcsan.data.layouts.feature_stores import RowFeatureStore
from mcsan.data.layouts.feature_types import choose_features, subdirectories
from mcsan.data.layouts.writing import (
    WRITABLE_SPLITS,
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

BIGFILE_LOOKED_FOR = "TextData/ or FeatureData/ in the root or in its subdirectories (collections)"


def looks_bigfile(root: Path) -> bool:
    return bool(_bigfile_collections(root))


def _bigfile_collections(root: Path) -> list[Path]:
    """``root`` itself when it is a collection, else its collection subdirectories."""

    def is_collection(path: Path) -> bool:
        return (path / "TextData").is_dir() or (path / "FeatureData").is_dir()

    if is_collection(root):
        return [root]
    children = sorted(c for c in root.iterdir() if c.is_dir() and not c.name.startswith("."))
    return [child for child in children if is_collection(child)]


# --------------------------------------------------------------------------- reading


def read_bigfile(
    root: Path, features: list[str] | None, report: ValidationReport
) -> tuple[Dataset, DataSources]:
    collections = _bigfile_collections(root)
    available = {
        name: collection / "FeatureData" / name
        for collection in collections
        for name in subdirectories(collection / "FeatureData")
    }
    chosen = choose_features(available, features, root)
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
    source = read_text(path)
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
        if caption_ok(source, caption_id, text, report):
            video_ids.setdefault(video_id)
            captions.append(Caption(caption_id, video_id, text))
    finish_text(source, report)
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
    frame_ids = read_text(id_path).text.split()
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
    source = read_text(path)
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


# --------------------------------------------------------------------------- writing


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
    Inputs are as for :func:`~mcsan.data.layouts.hgr.write_hgr`. Other collections under
    ``root`` are left alone.
    """
    root = Path(root)
    if not collection_prefix or re.search(r"[\s/\\]", collection_prefix):
        raise ValueError(f"collection_prefix {collection_prefix!r} must be a non-empty name")
    check_writer_input(split_video_ids, captions, features)
    for video_ids in split_video_ids.values():
        for video_id in video_ids:
            if re.search(r"[\s#]", video_id):
                raise ValueError(
                    f"video id {video_id!r} holds whitespace or '#'; BigFile forbids it"
                )
    targets = {split: root / f"{collection_prefix}{split}" for split in split_video_ids}
    for target in targets.values():
        check_free(target, overwrite)
    with staging_area(root, collection_prefix) as stage:
        for split, video_ids in split_video_ids.items():
            collection = stage / targets[split].name
            _write_caption_txt(collection, video_ids, captions)
            for feature_name, source in features.items():
                get = feature_getter(feature_name, source)
                directory = collection / "FeatureData" / feature_name
                _write_bigfile_features(directory, split, video_ids, get, progress)
        for target in targets.values():
            replace_directory(stage / target.name, target, overwrite)
    return root


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
            values = checked_frames(get(video_id), name, video_id, dim)  # (frames, dim)
            dim = values.shape[1]
            out.write(values.astype("<f4", copy=False).tobytes())
            names = [f"{video_id}_{k}" for k in range(values.shape[0])]
            frame_ids += names
            video_frames[video_id] = names
    (directory / "id.txt").write_text(" ".join(frame_ids), encoding="utf-8")
    (directory / "shape.txt").write_text(f"{len(frame_ids)} {dim}\n")
    write_json(directory / "video2frames.txt", video_frames)
