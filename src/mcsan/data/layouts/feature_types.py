"""Which feature types a dataset holds, and which of them the caller chose.

Every layout keeps one directory (or file) per feature type; :func:`choose_features` turns
what was found and what was requested into the concatenation order, and
:func:`per_video_stores` opens the ``features/`` directory that the MSR-VTT and VATEX layouts
share: ``<ft>/<video>.npy`` directories and ``<ft>.hdf5`` files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcsan.data.dataset import FeatureStore
from mcsan.data.layouts.feature_stores import HDF5FeatureStore, NpyDirFeatureStore
from mcsan.data.validate import DataValidationError


def choose_features(
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


def subdirectories(path: Path) -> set[str]:
    """Names of the visible subdirectories of ``path`` (none when it is not a directory)."""
    if not path.is_dir():
        return set()
    return {c.name for c in path.iterdir() if c.is_dir() and not c.name.startswith(".")}


def per_video_stores(features_dir: Path, features: list[str] | None) -> list[FeatureStore]:
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
        for name in choose_features(found, features, features_dir)
    ]
