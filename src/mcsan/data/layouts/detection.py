"""Reading any dataset root: recognise its layout, read it with that layout's reader, validate.

Each layout module says how its layout is recognised (``looks_<layout>``), what detection
looks for (named when nothing matches) and how it is read (``read_<layout>``). Exactly one
layout must match a root, or the caller names it (``data.layout``). Reading ends with
:func:`~mcsan.data.validate.validate_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mcsan.data.dataset import Dataset
from mcsan.data.layouts.bigfile import BIGFILE_LOOKED_FOR, looks_bigfile, read_bigfile
from mcsan.data.layouts.hgr import HGR_LOOKED_FOR, looks_hgr, read_hgr
from mcsan.data.layouts.msrvtt import MSRVTT_LOOKED_FOR, looks_msrvtt, read_msrvtt
from mcsan.data.layouts.vatex import VATEX_LOOKED_FOR, looks_vatex, read_vatex
from mcsan.data.validate import (
    DataSources,
    DataValidationError,
    ValidationReport,
    validate_dataset,
)


@dataclass(frozen=True)
class _Layout:
    looks_like: Callable[[Path], bool]
    looked_for: str  # what ``looks_like`` checks, named when no layout matches
    read: Callable[[Path, list[str] | None, ValidationReport], tuple[Dataset, DataSources]]


_LAYOUTS = {
    "hgr": _Layout(looks_hgr, HGR_LOOKED_FOR, read_hgr),
    "bigfile": _Layout(looks_bigfile, BIGFILE_LOOKED_FOR, read_bigfile),
    "msrvtt": _Layout(looks_msrvtt, MSRVTT_LOOKED_FOR, read_msrvtt),
    "vatex": _Layout(looks_vatex, VATEX_LOOKED_FOR, read_vatex),
}
LAYOUTS = tuple(_LAYOUTS)


def detect_layout(root: str | Path) -> str:
    """Name the layout of the dataset at ``root``: "hgr", "bigfile", "msrvtt" or "vatex"."""
    root = _existing_directory(root)
    found = [name for name, layout in _LAYOUTS.items() if layout.looks_like(root)]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataValidationError(
            f"{root}: looks like several dataset layouts at once ({', '.join(found)}). "
            f"Fix: pass the layout explicitly (data.layout=...)"
        )
    listing = ", ".join(sorted(child.name for child in root.iterdir())[:20]) or "nothing"
    looked_for = "; ".join(f"{name}: {layout.looked_for}" for name, layout in _LAYOUTS.items())
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
    if name not in _LAYOUTS:
        raise ValueError(f"unknown dataset layout {layout!r}; expected 'auto' or one of {LAYOUTS}")
    report = ValidationReport(skip_invalid=skip_invalid)
    dataset, sources = _LAYOUTS[name].read(root, list(features) if features else None, report)
    validate_dataset(
        dataset,
        skip_invalid,
        check_values=check_values,
        progress=progress,
        report=report,
        sources=sources,
    )
    return dataset, report


def _existing_directory(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataValidationError(
            f"{root}: dataset directory not found. Fix: point data.root at an existing directory"
        )
    return root
