"""Extraction recipes: how a feature type was made, as ``mcsan extract`` records it.

A recipe is a JSON dict (backbone, weights fingerprint, preprocessing, sampling, and an
``informational`` part that is never compared: library versions, where the weights came
from). ``mcsan extract`` writes it as the ``mcsan_extract_recipe`` attribute of its HDF5 file
and as ``recipe.json`` beside the features of the layouts it writes. Training records the
recipes of its features in the checkpoint, and ``mcsan index`` refuses features made
another way: a model only understands features made the way it was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py

if TYPE_CHECKING:
    from mcsan.data.dataset import FeatureStore

RECIPE_ATTRIBUTE = "mcsan_extract_recipe"
RECIPE_FILE = "recipe.json"
# not compared: library versions and where the weights came from
INFORMATIONAL = "informational"
FEATURES_NOTE = "features.json"  # the checkpoint note of features_record


def read_recipe(path: str | Path) -> dict[str, Any] | None:
    """The recipe of the features at ``path`` (an HDF5 file, a directory of features, or a
    file inside one), or None where ``mcsan extract`` left none."""
    path = Path(path)
    if path.is_file() and path.suffix in (".hdf5", ".h5"):
        try:
            with h5py.File(path, "r") as file:
                found = file.attrs.get(RECIPE_ATTRIBUTE)
        except OSError:
            found = None
        if found is not None:
            return json.loads(found)
    directory = path if path.is_dir() else path.parent
    beside = directory / RECIPE_FILE
    if beside.is_file():
        return json.loads(beside.read_text(encoding="utf-8"))
    return None


def essential(recipe: dict[str, Any]) -> dict[str, Any]:
    """The parts of a recipe that decide the features (everything but ``informational``)."""
    return {key: value for key, value in recipe.items() if key != INFORMATIONAL}


def same_recipe(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(essential(a), sort_keys=True) == json.dumps(essential(b), sort_keys=True)


def differing_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(essential(a)) | set(essential(b)) if a.get(key) != b.get(key))


def describe_recipe(recipe: dict[str, Any] | None) -> str:
    """One line: backbone, weights fingerprint and sampling."""
    if recipe is None:
        return "unknown (no recipe recorded)"
    sampling = recipe.get("sampling") or {}
    how = ", ".join(f"{key}={value}" for key, value in sampling.items() if value is not None)
    weights = str(recipe.get("weights_sha1", "?"))[:12]
    return f"{recipe.get('backbone', '?')} (weights sha1 {weights}), sampling {how or '?'}"


def features_record(stores: Iterable[FeatureStore]) -> dict[str, Any]:
    """What a checkpoint records of its input features (``FEATURES_NOTE``): their total size
    and each feature type's name, size and recipe (None where none was recorded)."""
    features = [
        {"name": store.name, "dim": store.dim, "recipe": read_recipe(store.path)}
        for store in stores
    ]
    return {"dim": sum(f["dim"] for f in features), "features": features}
