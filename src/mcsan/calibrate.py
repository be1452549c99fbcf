"""Fusion weights chosen on validation: the w_l of s = Σ_l w_l·cos_l, picked from a grid by rsum.

A model trains with the weights of its config (``model.level_weights``, 1 for every level by
default), which its fused ranking loss uses. At inference the levels can be weighted again
without retraining: calibration encodes the validation split once, scores every combination of
grid weights (the global level, or the first active level in a model without it, fixed at 1:
only the ratios matter) and keeps the combination with the highest validation rsum. The
trained weights are scored first and win ties, so a checkpoint whose levels are best as trained
keeps its weights.

``calibrate_checkpoint`` writes the chosen weights into the checkpoint's ``config.json``, so
``mcsan evaluate`` and everything else that loads the checkpoint uses them, and records the
trained weights, the chosen ones and every combination's rsum in ``calibration.json`` beside
it. Calibrating a checkpoint again starts from the trained weights recorded there. Test splits
are never read here: choose on validation, read on test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from mcsan.checkpoint import load_checkpoint, read_checkpoint_note, update_checkpoint
from mcsan.data.dataset import Dataset
from mcsan.data.prepare import PreparedData
from mcsan.evaluate import EncodedSplit, encode_split, load_checkpoint_with_data, load_trained
from mcsan.metrics import retrieval_metrics
from mcsan.runtime import resolve_device

CALIBRATION_FILE = "calibration.json"
# the grid measured in benchmarks/README.md ("Fusion weights at inference"): 64 combinations
# for the four levels, about 30 s on one CPU thread for the synthetic default validation split
DEFAULT_GRID = (0.0, 0.5, 1.0, 2.0)


@dataclass
class FusionCalibration:
    split: str  # the split the weights were chosen on
    grid: list[float]
    trained: dict[str, float]  # level -> w_l the model trained with
    trained_rsum: float  # rsum on ``split`` with the trained weights
    weights: dict[str, float]  # level -> the chosen w_l (the trained ones if nothing beat them)
    rsum: float  # rsum on ``split`` with the chosen weights
    candidates: list[dict]  # every scored combination: {"weights": {...}, "rsum": float}

    @property
    def changed(self) -> bool:
        return self.weights != self.trained

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        def shown(weights: Mapping[str, float]) -> str:
            return ", ".join(f"{level} {w:g}" for level, w in weights.items())

        lines = [f"fusion weights on the {self.split} split ({len(self.candidates)} combinations "
                 f"of {', '.join(f'{g:g}' for g in self.grid)}):",
                 f"  trained  {shown(self.trained):<48} rsum {self.trained_rsum:.2f}"]
        if self.changed:
            lines.append(f"  chosen   {shown(self.weights):<48} rsum {self.rsum:.2f} "
                         f"({self.rsum - self.trained_rsum:+.2f})")
        else:
            lines.append("  no combination beats the trained weights; they stay")
        return "\n".join(lines)


def weight_candidates(levels: Sequence[str], grid: Sequence[float]) -> list[dict[str, float]]:
    """Every combination of ``grid`` values for the levels other than the anchor (global, or
    the first level without it), the anchor at 1; one-level models have the anchor alone."""
    anchor = "global" if "global" in levels else levels[0]
    others = [level for level in levels if level != anchor]
    return [{anchor: 1.0, **dict(zip(others, map(float, combo), strict=True))}
            for combo in itertools.product(grid, repeat=len(others))]


def check_grid(grid: Sequence[float]) -> list[float]:
    """``grid`` as sorted distinct floats, or a ValueError naming the bad value."""
    values = sorted({float(g) for g in grid})
    if not values:
        raise ValueError("the fusion-weight grid is empty; give values such as 0 0.5 1 2")
    bad = [g for g in values if not math.isfinite(g) or g < 0]
    if bad:
        raise ValueError(f"fusion weights must be finite and >= 0; the grid has {bad}")
    return values


def fused_rsum(
    encoded: EncodedSplit, weights: Mapping[str, float], chunk_size: int = 1024
) -> float:
    """rsum of the fused score s = Σ_l w_l·cos_l with ``weights`` on one encoded split."""
    return retrieval_metrics(encoded.text_emb, encoded.video_emb, encoded.caption_to_video,
                             weights, chunk_size)["rsum"]


def calibrate_fusion(
    encoded: EncodedSplit,
    trained: Mapping[str, float],
    *,
    grid: Sequence[float] = DEFAULT_GRID,
    split: str = "val",
    chunk_size: int = 1024,
    progress: bool = True,
) -> FusionCalibration:
    """Choose the fusion weights with the highest rsum on ``encoded`` (a validation split).

    trained: level -> w_l of every active level, scored first; a combination replaces the best
    so far only with a strictly higher rsum.
    """
    grid = check_grid(grid)
    trained = {level: float(w) for level, w in trained.items()}

    trained_rsum = fused_rsum(encoded, trained, chunk_size)
    best, best_rsum = trained, trained_rsum
    candidates = [{"weights": trained, "rsum": trained_rsum}]
    combos = [w for w in weight_candidates(list(trained), grid) if w != trained]
    for weights in tqdm(combos, desc=f"fusion weights on {split}", disable=not progress,
                        leave=False):
        score = fused_rsum(encoded, weights, chunk_size)
        candidates.append({"weights": weights, "rsum": score})
        if score > best_rsum:
            best, best_rsum = weights, score
    return FusionCalibration(split, grid, trained, trained_rsum, best, best_rsum, candidates)


def calibrate_checkpoint(
    checkpoint_dir: Path,
    *,
    split: str = "val",
    grid: Sequence[float] = DEFAULT_GRID,
    data_root: Path | None = None,
    prepared_dir: Path | None = None,
    dataset: Dataset | None = None,
    prepared: PreparedData | None = None,
    device: str = "auto",
    write: bool = True,
    progress: bool = True,
) -> FusionCalibration:
    """Choose a checkpoint's fusion weights on ``split`` and, with ``write``, store them in its
    config (module docstring). The data is the checkpoint's own unless ``data_root`` /
    ``prepared_dir`` name others, or ``dataset`` and ``prepared`` are given already read."""
    if split.startswith("test"):  # "test" and the MSR-VTT 1k-A "test_1k" alike
        raise ValueError("fusion weights are chosen on validation, never on the test split "
                         f"({split!r}); pass --split val (or another held-out split that is "
                         "not reported)")
    checkpoint_dir = Path(checkpoint_dir)
    torch_device = resolve_device(device)
    checkpoint = load_checkpoint(checkpoint_dir)
    if dataset is None or prepared is None:
        model, config, dataset, prepared = load_checkpoint_with_data(
            checkpoint, data_root=data_root, prepared_dir=prepared_dir, device=torch_device,
            progress=progress, splits=[split])
    else:
        model, config = load_trained(checkpoint, prepared, torch_device)
    previous = read_checkpoint_note(checkpoint_dir, CALIBRATION_FILE)
    trained = previous["trained"] if previous else dict(model.level_weights)
    encoded = encode_split(model, dataset[split], prepared, config, torch_device, progress)
    calibration = calibrate_fusion(encoded, trained, grid=grid, split=split,
                                   chunk_size=config.eval.chunk_size, progress=progress)
    if write:
        config.model.level_weights = {**config.model.level_weights, **calibration.weights}
        update_checkpoint(checkpoint_dir, config=config,
                          notes={CALIBRATION_FILE: calibration.to_json()})
    return calibration
