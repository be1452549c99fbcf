"""The ``vatex`` layout (official VATEX JSON): reader.

``vatex_*train*.json``, ``vatex_*val*.json``, ``vatex_*test*.json`` (lists of ``{"videoID",
"enCap": [...], "chCap": [...]}``; English captions are read, the public test file has none)
and features ``features/<ft>/<videoID>.npy`` of shape ``(frames, 1024)`` (a leading axis of 1
is dropped) or ``features/<ft>.hdf5``; a root without ``features/`` is read for text-only
work (``mcsan prepare``), its splits without stores.
"""

from __future__ import annotations

from pathlib import Path

from mcsan.data.dataset import Caption, Dataset, Split
from mcsan.data.layouts.annotation_text import (
    caption_ok,
    finish_text,
    parse_json,
    read_text,
    required,
)
from mcsan.data.layouts.feature_types import per_video_stores
from mcsan.data.validate import DataSources, DataValidationError, ValidationReport

VATEX_LOOKED_FOR = "vatex_*.json (e.g. vatex_training_v1.0.json)"


def looks_vatex(root: Path) -> bool:
    return bool(_vatex_files(root))


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


def read_vatex(
    root: Path, features: list[str] | None, report: ValidationReport
) -> tuple[Dataset, DataSources]:
    splits: dict[str, Split] = {}
    sources = DataSources()
    for split_name, path in _vatex_files(root).items():
        source = read_text(path)
        items = parse_json(source)
        if not isinstance(items, list):
            raise DataValidationError(
                f"{path}: expected a JSON list of {{'videoID', 'enCap', 'chCap'}}, found "
                f"{type(items).__name__}. Fix: use the official VATEX annotation file"
            )
        video_ids = []
        captions = []
        for index, item in enumerate(items):
            (video_id,) = required(item, ("videoID",), path, f"item {index}")
            english = item.get("enCap") or []
            if not isinstance(english, list):
                raise DataValidationError(
                    f"{path}: video {video_id} has enCap of type {type(english).__name__}; "
                    f"expected a list of captions. Fix: use the official VATEX annotation file"
                )
            video_ids.append(video_id)
            for k, text in enumerate(english):
                caption_id = f"{video_id}#{k}"
                if caption_ok(source, caption_id, text, report):
                    captions.append(Caption(caption_id, video_id, text))
        finish_text(source, report)
        splits[split_name] = Split(split_name, video_ids, captions)
        sources.video_lists[split_name] = sources.captions[split_name] = path
    stores = per_video_stores(root / "features", features)
    for split in splits.values():
        split.features = list(stores)
    return Dataset(root, "vatex", splits), sources
