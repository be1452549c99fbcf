"""Readers and writers for the dataset layouts users already have, with auto-detection.

Every reader produces the one in-memory form, :class:`~mcsan.data.dataset.Dataset`, with
splits ``train`` / ``val`` / ``test`` (plus extra splits where a layout has them) and caption
ids ``<video>#<k>``; features stay on disk and are read one video at a time.

Modules:

``detection``
    :func:`read_dataset`, :func:`read_dataset_with_report` and :func:`detect_layout`: which
    layout a root has, read with that layout's reader, then validated.
``hgr``, ``bigfile``, ``msrvtt``, ``vatex``
    one layout each (its files are described there): how it is recognised, its reader, and
    its writer (:func:`write_hgr`, :func:`write_bigfile`) where it has one.
``feature_stores``
    lazy per-video feature access: :class:`HDF5FeatureStore`, :class:`NpyDirFeatureStore`,
    :class:`RowFeatureStore`.
``feature_types``
    the feature types a root holds and the caller's choice among them.
``annotation_text``
    what every reader does with annotation files: UTF-8 decoding, caption checks, JSON.
``writing``
    what the writers share: input checks and a staging directory renamed into place when
    complete, so an interrupted write never looks like a dataset.
"""

from mcsan.data.layouts.bigfile import write_bigfile
from mcsan.data.layouts.detection import (
    LAYOUTS,
    detect_layout,
    read_dataset,
    read_dataset_with_report,
)
from mcsan.data.layouts.feature_stores import (
    HDF5FeatureStore,
    NpyDirFeatureStore,
    RowFeatureStore,
)
from mcsan.data.layouts.hgr import HGR_CAPTIONS, HGR_SPLIT_FILES, write_hgr
from mcsan.data.layouts.msrvtt import MSRVTT_1K_CSV, MSRVTT_1K_SPLIT, MSRVTT_SPLITS
from mcsan.data.layouts.writing import WRITABLE_SPLITS, FeatureSource

__all__ = [
    "LAYOUTS",
    "WRITABLE_SPLITS",
    "HGR_CAPTIONS",
    "HGR_SPLIT_FILES",
    "MSRVTT_SPLITS",
    "MSRVTT_1K_CSV",
    "MSRVTT_1K_SPLIT",
    "FeatureSource",
    "HDF5FeatureStore",
    "NpyDirFeatureStore",
    "RowFeatureStore",
    "detect_layout",
    "read_dataset",
    "read_dataset_with_report",
    "write_hgr",
    "write_bigfile",
]
