"""The synthetic benchmark on disk: written in the HGR layout (read back through
:func:`mcsan.data.layouts.read_dataset` like any other dataset, no side door), with its ground
truth in ``synth_meta.json`` beside the data, for analysis only."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mcsan.data.synth.benchmark import FEATURE_TYPE, generate
from mcsan.data.synth.config import SynthConfig

META_FILE = "synth_meta.json"


def write_synth(
    root: str | Path, config: SynthConfig, *, overwrite: bool = False, progress: bool = True
) -> Path:
    """Generate the benchmark and write it in the HGR layout, plus ``synth_meta.json``.

    The data is read back with :func:`mcsan.data.layouts.read_dataset` like any other dataset;
    the meta file is ground truth for analysis and is not read by training.
    """
    from mcsan.data.layouts import write_hgr

    benchmark = generate(config)
    root = write_hgr(
        root,
        benchmark.splits,
        benchmark.caption_texts(),
        {FEATURE_TYPE: benchmark.features},
        write_mean_pooled=True,
        progress=progress,
        overwrite=overwrite,
        extra_files={META_FILE: json.dumps(benchmark.meta(), indent=1) + "\n"},
    )
    return Path(root)


def read_synth_meta(root: str | Path) -> dict[str, Any]:
    """The ground truth written beside a synthetic dataset (for analysis, not for training)."""
    path = Path(root) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; {root} was not written by `mcsan synth` (or the file was "
            "removed). Regenerate it with `mcsan synth`."
        )
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != "mcsan-synth":
        raise ValueError(f"{path} is not a synthetic-benchmark meta file (format field missing)")
    return meta


def twin_indices(
    meta: Mapping[str, Any], video_ids: Sequence[str], kind: str | None = "role"
) -> list[int]:
    """For each of ``video_ids``, the position of its twin of ``kind`` ("role": subject and
    object exchanged; "order": the same two events the other way round; None: either) in
    ``video_ids`` (-1 when it has none there), from the ground truth of
    :func:`read_synth_meta`."""
    index = {video: i for i, video in enumerate(video_ids)}
    specs = meta["videos"]
    found = []
    for video in video_ids:
        spec = specs.get(video, {})
        # data written before order twins existed has role twins only
        matches = kind is None or spec.get("twin_kind", "role") == kind
        found.append(index.get(spec.get("twin") or "", -1) if matches else -1)
    return found
