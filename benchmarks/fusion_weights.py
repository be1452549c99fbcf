"""Does re-weighting the levels at inference help? Validation and test rsum of trained
checkpoints over a grid of fusion weights w_l in s = sum_l w_l cos_l.

Each checkpoint's validation and test splits are encoded once; every combination of grid
weights for the non-global levels (global fixed at 1: only the ratios matter) is then scored.
The weights that are best on validation (``mcsan.calibrate``'s choice: what ``mcsan calibrate``
and ``train.calibrate_fusion`` write into a checkpoint) are reported with their test rsum
(choose on validation, read on test), next to the trained weights and to each level dropped at
inference (its weight 0, the others as trained). If dropping a level at inference does not
raise the validation rsum, a variant trained without it that scores higher gets its edge from
training, not from the fusion.

    .venv/bin/python benchmarks/fusion_weights.py runs/ablation/runs/full-seed0/best ...

Data and prepared directories are the ones in each checkpoint's config unless given.
Writes benchmarks/results/fusion_weights.json (or --out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from mcsan.calibrate import DEFAULT_GRID, calibrate_fusion, fused_rsum
from mcsan.evaluate import EncodedSplit, encode_split, load_checkpoint_with_data

SPLITS = ("val", "test")


def split_rsums(encoded: dict[str, EncodedSplit], weights: dict[str, float]) -> dict[str, float]:
    """rsum of the fused score with ``weights`` on each split."""
    return {split: fused_rsum(e, weights) for split, e in encoded.items()}


def weight_study(encoded: dict[str, EncodedSplit], trained: dict[str, float],
                 grid: list[float], progress: bool = True) -> dict:
    """Trained weights, best-on-validation grid weights and each level dropped, for one model.

    encoded: split -> its encoded embeddings; trained: level -> w_l of the model's active levels.
    The weights best on validation are the ones ``mcsan calibrate`` would write (the trained
    weights win ties); every grid combination is scored on test too, for the table.
    """
    calibration = calibrate_fusion(encoded["val"], trained, grid=grid, progress=progress)
    grid_rows = [
        {"weights": c["weights"], "val": c["rsum"],
         "test": fused_rsum(encoded["test"], c["weights"])}
        for c in tqdm(calibration.candidates, desc="test rsum", disable=not progress, leave=False)
    ]
    best = next(row for row in grid_rows if row["weights"] == calibration.weights)
    levels = list(trained)
    dropped = {}  # a one-level model has no level to drop
    if len(levels) > 1:
        dropped = {level: split_rsums(encoded, {**trained, level: 0.0}) for level in levels}
    return {
        "trained": grid_rows[0],  # calibrate_fusion scores the trained weights first
        "best_on_val": best,
        "drop_level": dropped,
        "grid": grid_rows,
    }


def study_checkpoint(checkpoint_dir: Path, grid: list[float], data_root: Path | None,
                     prepared_dir: Path | None, progress: bool) -> dict:
    model, config, dataset, prepared = load_checkpoint_with_data(
        checkpoint_dir, data_root=data_root, prepared_dir=prepared_dir, progress=progress)
    encoded = {split: encode_split(model, dataset[split], prepared, config, torch.device("cpu"),
                                   progress=progress) for split in SPLITS}
    trained = {level: model.level_weights[level] for level in model.levels}
    return {"checkpoint": str(checkpoint_dir), **weight_study(encoded, trained, grid, progress)}


def markdown(studies: list[dict]) -> str:
    levels = list(studies[0]["drop_level"])
    head = ["checkpoint", "trained val", "trained test", "best-on-val weights", "its val",
            "its test", *[f"without {level} val / test" for level in levels]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for study in studies:
        best = study["best_on_val"]
        weights = " ".join(f"{k[:3]}={v:g}" for k, v in best["weights"].items())
        cells = [Path(study["checkpoint"]).parent.name, f"{study['trained']['val']:.1f}",
                 f"{study['trained']['test']:.1f}", weights, f"{best['val']:.1f}",
                 f"{best['test']:.1f}"]
        cells += [f"{study['drop_level'][lv]['val']:.1f} / {study['drop_level'][lv]['test']:.1f}"
                  for lv in levels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(studies: list[dict]) -> dict:
    """Mean over checkpoints of the validation gain of the best grid weights and of each drop."""
    return {
        "best_on_val_minus_trained": {
            split: statistics.fmean([s["best_on_val"][split] - s["trained"][split] for s in studies])
            for split in SPLITS
        },
        "drop_minus_trained": {
            level: {
                split: statistics.fmean(
                    [s["drop_level"][level][split] - s["trained"][split] for s in studies]
                )
                for split in SPLITS
            }
            for level in studies[0]["drop_level"]
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="checkpoint directories")
    parser.add_argument("--grid", type=float, nargs="+", default=list(DEFAULT_GRID))
    parser.add_argument("--data", type=Path, help="dataset root (default: the checkpoint's)")
    parser.add_argument("--prepared", type=Path, help="prepared dir (default: the checkpoint's)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "fusion_weights.json")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    studies = [study_checkpoint(path, args.grid, args.data, args.prepared, not args.no_progress)
               for path in args.checkpoints]
    table = markdown(studies)
    print(table)
    report = {
        "command": "python benchmarks/fusion_weights.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "grid": args.grid,
        "seconds": time.perf_counter() - started,
        "summary": summary(studies),
        "studies": studies,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
