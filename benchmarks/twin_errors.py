"""How much of a checkpoint's missing rsum is role-swapped twins on the synthetic benchmark?

Scores each checkpoint's validation and test splits twice: as usual, and *twin-blind*, with
each caption's role-swapped twin video removed from its candidates (text->video) and each
video's twin's captions removed from its candidates (video->text). The difference is the rsum
that twin confusions cost; ``600 - twin-blind rsum`` is what every other error costs. If two
models have the same twin-blind rsum, the whole gap between them is twins, and the gap can
grow at most to what the weaker model loses on twins. Also reports the role-swap accuracy
(share of twin-video captions that score their own video above its twin, 0.5 = chance), of
the fused score and of each level alone.

    .venv/bin/python benchmarks/twin_errors.py runs/ablation/runs/full-seed0/best ...

Twins come from the dataset's ``synth_meta.json`` (analysis only; training never sees it).
The standard rsum is recomputed here from the dense score matrix and checked against
``mcsan.metrics.retrieval_metrics`` (same tie rules), so the two columns are comparable.
Writes benchmarks/results/twin_errors.json (or --out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from mcsan import LEVELS
from mcsan.data.synth import read_synth_meta, twin_indices
from mcsan.evaluate import EncodedSplit, encode_split, load_checkpoint_with_data
from mcsan.metrics import RECALL_AT, rank_summary, retrieval_metrics, role_swap_accuracy
from mcsan.model import MCSAN

SPLITS = ("val", "test")


def dense_rsum(
    scores: torch.Tensor, caption_to_video: torch.Tensor, blocked: torch.Tensor | None = None
) -> float:
    """rsum of a dense score matrix under the module rules of ``mcsan.metrics``.

    scores (M, N), caption_to_video (M,), blocked (M, N) bool: candidates that do not compete
    (a blocked caption-video pair is neither a text->video nor a video->text candidate).
    """
    if blocked is not None:
        scores = scores.masked_fill(blocked, -math.inf)
    truth = scores.gather(1, caption_to_video[:, None])  # (M, 1)
    t2v = (scores >= truth).sum(1)  # (M,) the ground truth counts itself
    by_video = scores.T  # (N, M)
    own = caption_to_video[None, :] == torch.arange(scores.shape[1])[:, None]  # (N, M)
    best = by_video.masked_fill(~own, -math.inf).amax(1, keepdim=True)  # (N, 1)
    v2t = 1 + ((by_video >= best) & ~own).sum(1)  # (N,)
    summary = {**rank_summary(t2v, "t2v"), **rank_summary(v2t[own.any(1)], "v2t")}
    return sum(summary[f"{d}_r{k}"] for d in ("t2v", "v2t") for k in RECALL_AT)


def twin_study(encoded: EncodedSplit, model: MCSAN, meta: dict) -> dict[str, float]:
    """Standard and twin-blind rsum and the role-swap accuracy of one encoded split."""
    # (N,) index of each video's twin, -1 without one in this split
    twin_of = torch.tensor(twin_indices(meta, encoded.video_ids))
    scores = model.fused_similarity(encoded.text_emb, encoded.video_emb)  # (M, N)
    caption_to_video = encoded.caption_to_video
    caption_twin = twin_of[caption_to_video]  # (M,)
    has_twin = caption_twin >= 0  # (M,)
    rows = has_twin.nonzero().flatten()
    blocked = torch.zeros_like(scores, dtype=torch.bool)
    blocked[rows, caption_twin[rows]] = True  # symmetric: v's twin's captions are blocked for v

    standard = dense_rsum(scores, caption_to_video)
    reference = retrieval_metrics(
        encoded.text_emb, encoded.video_emb, caption_to_video, model.level_weights
    )["rsum"]
    if abs(standard - reference) > 1e-6:
        raise AssertionError(f"dense rsum {standard} differs from retrieval_metrics {reference}")
    by_level = model.level_similarities(encoded.text_emb, encoded.video_emb)  # level -> (M, N)
    return {
        "rsum": standard,
        "twin_blind_rsum": dense_rsum(scores, caption_to_video, blocked),
        "role_swap_acc": role_swap_accuracy(scores, caption_to_video, twin_of),
        "role_swap_acc_by_level": {
            level: role_swap_accuracy(level_scores, caption_to_video, twin_of)
            for level, level_scores in by_level.items()
        },
        "twin_captions": int(len(rows)),
        "captions": int(len(caption_to_video)),
    }


def study_checkpoint(
    checkpoint_dir: Path, data_root: Path | None, prepared_dir: Path | None, progress: bool
) -> dict:
    model, config, dataset, prepared = load_checkpoint_with_data(
        checkpoint_dir, data_root=data_root, prepared_dir=prepared_dir, progress=progress
    )
    meta = read_synth_meta(Path(data_root or config.data.root))
    result = {"checkpoint": str(checkpoint_dir), "levels": list(model.levels)}
    with torch.no_grad():
        for split in SPLITS:
            encoded = encode_split(
                model, dataset[split], prepared, config, torch.device("cpu"), progress=progress
            )
            result[split] = twin_study(encoded, model, meta)
    return result


def markdown(studies: list[dict]) -> str:
    levels = [lv for lv in LEVELS if any(lv in s["test"]["role_swap_acc_by_level"] for s in studies)]
    head = ["run", "split", "rsum", "twin-blind rsum", "lost to twins", "lost to the rest",
            "role-swap acc", *[f"role-swap {level}" for level in levels]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for study in studies:
        for split in SPLITS:
            s = study[split]
            cells = [
                Path(study["checkpoint"]).parent.name,
                split,
                f"{s['rsum']:.1f}",
                f"{s['twin_blind_rsum']:.1f}",
                f"{s['twin_blind_rsum'] - s['rsum']:.1f}",
                f"{600 - s['twin_blind_rsum']:.1f}",
                f"{s['role_swap_acc']:.3f}",
                *[f"{s['role_swap_acc_by_level'].get(level, math.nan):.3f}" for level in levels],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="checkpoint directories")
    parser.add_argument("--data", type=Path, help="dataset root (default: the checkpoint's)")
    parser.add_argument("--prepared", type=Path, help="prepared dir (default: the checkpoint's)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "twin_errors.json"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    studies = [
        study_checkpoint(path, args.data, args.prepared, not args.no_progress)
        for path in args.checkpoints
    ]
    table = markdown(studies)
    print(table)
    report = {
        "command": "python benchmarks/twin_errors.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "seconds": time.perf_counter() - started,
        "mean_lost_to_twins": {
            split: statistics.fmean(s[split]["twin_blind_rsum"] - s[split]["rsum"] for s in studies)
            for split in SPLITS
        },
        "studies": studies,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
