"""Dataset checks whose errors name the file, the item id and what to do about it.

Two places find bad data. The readers in :mod:`mcsan.data.layouts` check what only the raw
files show (bytes that are not UTF-8, truncated binaries, malformed records) and record it in
a :class:`ValidationReport`. :func:`validate_dataset` then checks the in-memory
:class:`~mcsan.data.dataset.Dataset` every reader produces:

- duplicate video ids within a split, duplicate caption ids within the dataset;
- empty or whitespace-only captions, and captions naming a video their split does not list;
- captions whose video has no features, and split entries with neither captions nor features;
- feature dimensions that differ between videos of one feature type, zero-frame sequences;
- NaN or Inf feature values (a streaming pass over every video, ``check_values=True``);
- videos with features but no captions (a warning with the count, never an error).

By default the first problem raises :class:`DataValidationError`. With ``skip_invalid=True``
each bad item is removed from the dataset, and listed with its file and reason in the report,
whose summary is logged: data is never dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mcsan.data.dataset import Caption, Dataset, FeatureStore, Split

log = logging.getLogger(__name__)

SKIP_HINT = "or pass --skip-invalid (data.skip_invalid=true) to skip and report such items"


class DataValidationError(ValueError):
    """Bad input data; the message names the file, the item and the fix."""


@dataclass(frozen=True)
class SkippedItem:
    file: str  # the file the item came from
    item_id: str  # e.g. "video video12" or "caption video12#3"
    reason: str


@dataclass
class DataSources:
    """Which file each split's video list and captions came from, so errors can name it.

    Splits missing here are named by the dataset root.
    """

    video_lists: dict[str, Path] = field(default_factory=dict)  # split -> file listing its videos
    captions: dict[str, Path] = field(default_factory=dict)  # split -> file holding its captions

    def video_list(self, split: str, root: Path) -> Path:
        return self.video_lists.get(split, root)

    def caption_file(self, split: str, root: Path) -> Path:
        return self.captions.get(split, root)


@dataclass
class ValidationReport:
    """What a read or a validation found: counts kept, items skipped, warnings."""

    skip_invalid: bool = False
    videos: dict[str, int] = field(default_factory=dict)  # split -> videos kept
    captions: dict[str, int] = field(default_factory=dict)  # split -> captions kept
    skipped: list[SkippedItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    values_checked: bool = False  # whether every feature value was scanned for NaN/Inf

    def reject(self, file: str | Path, item_id: str, reason: str, fix: str) -> None:
        """Record an invalid item under ``skip_invalid``; otherwise raise at once."""
        if not self.skip_invalid:
            raise DataValidationError(f"{file}: {item_id} {reason}. Fix: {fix}, {SKIP_HINT}.")
        self.skipped.append(SkippedItem(str(file), item_id, reason))

    def note_skipped(self, file: str | Path, item_id: str, reason: str) -> None:
        """Record an item removed as a consequence of another rejection (no raise)."""
        self.skipped.append(SkippedItem(str(file), item_id, reason))

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    @property
    def clean(self) -> bool:
        return not self.skipped and not self.warnings

    def summary(self) -> str:
        kept = ", ".join(
            f"{name}: {self.videos[name]:,} videos / {self.captions.get(name, 0):,} captions"
            for name in self.videos
        )
        lines = [f"dataset check: {kept or 'no splits'}"]
        if not self.values_checked:
            lines.append("  feature values were not scanned for NaN/Inf (check_values=False)")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped):,} invalid items:")
            shown = self.skipped[:10]
            lines += [f"    {item.file}: {item.item_id} {item.reason}" for item in shown]
            if len(self.skipped) > len(shown):
                lines.append(f"    ... and {len(self.skipped) - len(shown):,} more")
        lines += [f"  warning: {message}" for message in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "videos": dict(self.videos),
            "captions": dict(self.captions),
            "values_checked": self.values_checked,
            "skipped": [vars(item) for item in self.skipped],
            "warnings": list(self.warnings),
        }


def validate_dataset(
    dataset: Dataset,
    skip_invalid: bool = False,
    *,
    check_values: bool = True,
    progress: bool = True,
    report: ValidationReport | None = None,
    sources: DataSources | None = None,
) -> ValidationReport:
    """Check every split of ``dataset``; with ``skip_invalid`` remove bad items in place.

    ``check_values`` reads every video's features once (streaming, one video at a time) to
    find NaN/Inf; shapes are checked either way from file metadata. ``report`` continues a
    report a reader started; ``sources`` names the files errors should point at.
    """
    report = report if report is not None else ValidationReport()
    report.skip_invalid = skip_invalid
    report.values_checked = check_values
    sources = sources if sources is not None else DataSources()

    bad_videos = {
        split.name: _structural_problems(split, dataset.root, report, sources) for split in dataset
    }
    if check_values:
        _scan_values(dataset, bad_videos, report, progress)
    seen_captions: dict[str, tuple[str, str, str]] = {}
    for split in dataset:
        _apply(split, bad_videos[split.name], seen_captions, dataset.root, report, sources)
    _warn_unused_features(dataset, report)
    _warn_overlapping_splits(dataset, report)

    if report.skipped or report.warnings:
        log.warning(report.summary())
    else:
        log.info(report.summary())
    return report


def _structural_problems(
    split: Split, root: Path, report: ValidationReport, sources: DataSources
) -> dict[str, str]:
    """Videos of ``split`` with missing, empty or wrongly shaped features -> reason."""
    if not split.features:
        return {}
    video_file = sources.video_list(split.name, root)
    caption_file = sources.caption_file(split.name, root)
    captions_of: dict[str, list[Caption]] = {}
    for caption in split.captions:
        captions_of.setdefault(caption.video_id, []).append(caption)

    bad: dict[str, str] = {}
    for store in split.features:
        dim = store.dim
        for video_id in dict.fromkeys(split.video_ids):
            if video_id in bad:
                continue
            if video_id not in store:
                own = captions_of.get(video_id, [])
                if own:
                    reason = (
                        f"has {len(own)} caption(s) (e.g. {own[0].caption_id} in {caption_file}) "
                        f"but no {store.name} features in this file"
                    )
                    fix = "extract features for this video, or delete its captions"
                    report.reject(store.path, f"video {video_id}", reason, fix)
                    bad[video_id] = f"no {store.name} features in {store.path}"
                else:
                    reason = (
                        f"is listed in split {split.name!r} but has no captions and no "
                        f"{store.name} features (in {store.path}): an unknown video"
                    )
                    fix = "remove it from the split file, or add its captions and features"
                    report.reject(video_file, f"video {video_id}", reason, fix)
                    bad[video_id] = "unknown video (no captions, no features)"
                continue
            problem = _shape_problem(store, video_id, dim)
            if problem:
                file = store.file_of(video_id)
                report.reject(file, f"video {video_id}", problem, "re-extract its features")
                bad[video_id] = f"{problem} in {file}"
    return bad


def _shape_problem(store: FeatureStore, video_id: str, dim: int) -> str:
    """Empty string when the video's ``(frames, dim)`` shape fits the store, else the reason."""
    try:
        shape = _stored_shape(store, video_id)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"has {store.name} features that cannot be read ({error})"
    if len(shape) != 2:
        return f"has {store.name} features of shape {shape}; expected (frames, dim)"
    if shape[0] == 0:
        return f"has a zero-length {store.name} sequence (0 frames)"
    if shape[1] != dim:
        return (
            f"has {store.name} features of dimension {shape[1]}, but the other videos "
            f"of this feature type have {dim}"
        )
    return ""


def _stored_shape(store: FeatureStore, video_id: str) -> tuple[int, ...]:
    """Shape from metadata when the store offers it (no feature read), else from the data."""
    shape_of = getattr(store, "shape", None)
    if callable(shape_of):
        return tuple(shape_of(video_id))
    return tuple(store.get(video_id).shape)


def _scan_values(
    dataset: Dataset,
    bad_videos: dict[str, dict[str, str]],
    report: ValidationReport,
    progress: bool,
) -> None:
    """Read every video of every split once and reject those with NaN or Inf values."""
    work: dict[tuple[int, str], tuple[FeatureStore, str, list[str]]] = {}
    for split in dataset:
        for store in split.features:
            for video_id in dict.fromkeys(split.video_ids):
                if video_id not in bad_videos[split.name]:
                    entry = work.setdefault((id(store), video_id), (store, video_id, []))
                    entry[2].append(split.name)
    for store, video_id, split_names in tqdm(
        work.values(),
        desc="checking feature values",
        unit="video",
        disable=not progress or not work,
        mininterval=1.0,
    ):
        problem = _value_problem(store, video_id)
        if problem:
            file = store.file_of(video_id)
            report.reject(file, f"video {video_id}", problem, "re-extract its features")
            for name in split_names:
                bad_videos[name][video_id] = f"{problem} in {file}"


def _value_problem(store: FeatureStore, video_id: str) -> str:
    """Empty string when every value of the video's features is finite, else the reason."""
    try:
        values = store.get(video_id)  # (frames, dim)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"has {store.name} features that cannot be read ({error})"
    if np.isfinite(values).all():
        return ""
    nan = int(np.isnan(values).sum())
    inf = int(np.isinf(values).sum())
    return f"has {nan} NaN and {inf} Inf values in its {store.name} features"


def _apply(
    split: Split,
    bad_videos: dict[str, str],
    seen_captions: dict[str, tuple[str, str, str]],
    root: Path,
    report: ValidationReport,
    sources: DataSources,
) -> None:
    """Check ids and captions of one split, then keep only the valid videos and captions."""
    video_file = sources.video_list(split.name, root)
    caption_file = sources.caption_file(split.name, root)

    video_ids: list[str] = []
    listed: set[str] = set()
    for video_id in split.video_ids:
        if video_id in listed:
            fix = "remove the duplicate entry"
            report.reject(
                video_file, f"video {video_id}", f"is listed twice in split {split.name!r}", fix
            )
            continue
        listed.add(video_id)
        if video_id not in bad_videos:
            video_ids.append(video_id)

    captions: list[Caption] = []
    for caption in split.captions:
        item = f"caption {caption.caption_id}"
        previous = seen_captions.get(caption.caption_id)
        if previous is not None and (
            previous[0] == split.name or previous[1:] != (caption.video_id, caption.text)
        ):
            reason = f"is a duplicate caption id (first seen in split {previous[0]!r})"
            report.reject(caption_file, item, reason, "give every caption its own id")
            continue
        if not caption.text.strip():
            reason = f"of video {caption.video_id} is empty or whitespace only"
            report.reject(caption_file, item, reason, "write the caption or delete the entry")
            continue
        if caption.video_id not in listed:
            reason = f"names video {caption.video_id}, which split {split.name!r} does not list"
            fix = f"add the video to the split file {video_file} or delete the caption"
            report.reject(caption_file, item, reason, fix)
            continue
        seen_captions[caption.caption_id] = (split.name, caption.video_id, caption.text)
        if caption.video_id in bad_videos:
            reason = (
                f"was skipped with its video {caption.video_id} ({bad_videos[caption.video_id]})"
            )
            report.note_skipped(caption_file, item, reason)
            continue
        captions.append(caption)

    split.video_ids = video_ids
    split.captions = captions
    report.videos[split.name] = len(video_ids)
    report.captions[split.name] = len(captions)
    _warn_videos_without_captions(split, video_file, report)


def _warn_videos_without_captions(split: Split, video_file: Path, report: ValidationReport) -> None:
    if not split.video_ids:
        return
    if not split.captions:
        report.warn(
            f"split {split.name!r} has {len(split.video_ids):,} videos and no captions "
            f"(from {video_file}); use it for video-side inference only"
        )
        return
    with_captions = {caption.video_id for caption in split.captions}
    without = [video_id for video_id in split.video_ids if video_id not in with_captions]
    if without:
        report.warn(
            f"split {split.name!r}: {len(without):,} videos (e.g. {without[0]}, listed in "
            f"{video_file}) have no captions; they take part only as retrieval candidates"
        )


def _warn_unused_features(dataset: Dataset, report: ValidationReport) -> None:
    """Count videos that have features in a store but belong to no split (videos skipped as
    invalid are reported as such, not here)."""
    in_splits: set[str] = {item.item_id.removeprefix("video ") for item in report.skipped
                           if item.item_id.startswith("video ")}
    stores: dict[int, FeatureStore] = {}
    for split in dataset:
        in_splits.update(split.video_ids)
        stores.update((id(store), store) for store in split.features)
    for store in stores.values():
        unused = [video_id for video_id in store.video_ids() if video_id not in in_splits]
        if unused:
            report.warn(
                f"{store.path}: {len(unused):,} videos have {store.name} features but no "
                f"captions in any split (e.g. {unused[0]}); they are not used"
            )


def _warn_overlapping_splits(dataset: Dataset, report: ValidationReport) -> None:
    """Videos shared by the training split and an evaluation split leak into evaluation."""
    if "train" not in dataset.splits:
        return
    train = set(dataset.splits["train"].video_ids)
    for split in dataset:
        if split.name == "train":
            continue
        shared = [video_id for video_id in split.video_ids if video_id in train]
        if shared:
            report.warn(
                f"{len(shared):,} videos of split {split.name!r} are also in 'train' "
                f"(e.g. {shared[0]}); evaluation on {split.name!r} would see training videos"
            )
