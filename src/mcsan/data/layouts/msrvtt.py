"""The ``msrvtt`` layout (official MSR-VTT JSON): reader.

``*videodatainfo*.json`` files, or zips holding them (``train_val_annotation.zip``,
``test_videodatainfo.json.zip``): each video's ``split`` field (train / validate / test)
gives train / val / test. ``MSRVTT_JSFUSION_test.csv`` (columns ``key,vid_key,video_id,
sentence``) gives the extra split ``test_1k``, one caption per video, joined on ``video_id``.
Features: ``features/<ft>/<video_id>.npy`` or ``features/<ft>.hdf5``; a root without
``features/`` is read for text-only work (``mcsan prepare``), its splits without stores.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import zipfile
from collections import Counter
from dataclasses import dataclass
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

MSRVTT_SPLITS = {"train": "train", "validate": "val", "test": "test"}  # "split" field -> split
MSRVTT_1K_CSV = "MSRVTT_JSFUSION_test.csv"
MSRVTT_1K_SPLIT = "test_1k"
MSRVTT_LOOKED_FOR = f"*videodatainfo*.json, a .zip holding one, or {MSRVTT_1K_CSV}"


def looks_msrvtt(root: Path) -> bool:
    return bool(_msrvtt_annotations(root)) or (root / MSRVTT_1K_CSV).is_file()


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


def read_msrvtt(
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
            f"{root}: no MSR-VTT videos found in {MSRVTT_LOOKED_FOR}. Fix: add the "
            f"official annotation (train_val_videodatainfo.json or its zip)"
        )
    stores = per_video_stores(root / "features", features)
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
    source = read_text(label, member.read())
    data = parse_json(source)
    videos, sentences = required(data, ("videos", "sentences"), label)
    known: set[str] = set()
    for index, video in enumerate(videos):
        video_id, split_value = required(video, ("video_id", "split"), label, f"videos[{index}]")
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
            required(sentence, ("video_id", "caption"), label, f"sentences[{index}]")
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
        if caption_ok(source, caption_id, text, report, sentence.get("sen_id")):
            captions_of.setdefault(video_id, []).append(Caption(caption_id, video_id, text))
    finish_text(source, report)


def _read_msrvtt_1k(
    path: Path, test_videos: set[str] | None, sources: DataSources, report: ValidationReport
) -> Split:
    """The 1k-A test list: one caption per video, joined to the test split on ``video_id``."""
    source = read_text(path)
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
        if caption_ok(source, caption_id, text, report):
            video_ids.append(video_id)
            captions.append(Caption(caption_id, video_id, text))
    finish_text(source, report)
    return Split(MSRVTT_1K_SPLIT, video_ids, captions)
