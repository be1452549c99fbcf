"""Evaluation speed: chunked rank counting against the floor of the score matmul itself.

Shape of the full MSR-VTT test split: 59,800 captions x 2,990 videos (20 captions each),
4 levels of 1,024-d L2-normalised embeddings. Timed, each on the same random data:

* ``matmul_full``     the floor: one plain ``text_l @ video_l.T`` per level, nothing else
* ``matmul_chunked``  the same products in the chunks ``retrieval_metrics`` uses, summed over
                      levels, nothing else
* ``metrics``         ``mcsan.metrics.retrieval_metrics`` (both directions, all six recalls,
                      MedR, MnR: one pass over the scores)
* ``metrics_two_pass`` the same ranks with the single-pass video->text shortcut disabled
                      (``force_second_pass``: a second pass over video rows, as a collapsed
                      model with near-constant scores would need)
* ``sort_reference``  sort-based ranks as HGR-style code computes them: score chunks,
                      ``argsort`` of every caption row and of every video row, position of the
                      first correct item (ties not handled)

Two embedding sets: ``matched`` (each caption a noisy copy of its video's embedding, so the
ranking is meaningful, as for a trained model) and ``iid`` (independent random vectors).
The sort reference runs on ``matched`` only; its ranks are compared with ours: they differ
only where two scores tie to float rounding, which the reference breaks arbitrarily and we
count against the model.

    .venv/bin/python benchmarks/eval_speed.py            # full shape (a few minutes on 2 cores)
    .venv/bin/python benchmarks/eval_speed.py --quick    # 6,000 x 300, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from mcsan import LEVELS
from mcsan.metrics import retrieval_metrics, retrieval_ranks


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6,000 captions x 300 videos")
    parser.add_argument("--captions", type=int, default=59_800)
    parser.add_argument("--videos", type=int, default=2_990)
    parser.add_argument("--dim", type=int, default=1_024)
    parser.add_argument("--chunk-size", type=int, default=1_024)
    parser.add_argument("--noise", type=float, default=15.0, help="caption noise norm (matched)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N (sort reference: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/eval_speed.json"))
    args = parser.parse_args()
    if args.quick:
        args.captions, args.videos, args.repeats = 6_000, 300, 3
    if args.captions % args.videos:
        parser.error("--captions must be a multiple of --videos (equal captions per video)")
    return args


def machine_info() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "load_average_at_start": list(os.getloadavg()),
    }


def embeddings(
    args: argparse.Namespace, matched: bool
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """-> text level -> (M, E), video level -> (N, E), caption_to_video (M,)"""
    generator = torch.Generator().manual_seed(args.seed)
    caption_to_video = torch.arange(args.captions) // (args.captions // args.videos)
    text, video = {}, {}
    for level in LEVELS:
        video[level] = F.normalize(torch.randn(args.videos, args.dim, generator=generator), dim=1)
        noise = torch.randn(args.captions, args.dim, generator=generator)
        if matched:  # video row + noise of norm ~ args.noise, built in place to save memory
            noise.mul_(args.noise / args.dim**0.5).add_(video[level][caption_to_video])
        text[level] = F.normalize(noise, dim=1, out=noise)
    return text, video, caption_to_video


def matmul_full(text: dict[str, torch.Tensor], video: dict[str, torch.Tensor]) -> None:
    for level in text:
        torch.mm(text[level], video[level].T)  # (M, N), dropped at once


def matmul_chunked(
    text: dict[str, torch.Tensor], video: dict[str, torch.Tensor], chunk_size: int
) -> None:
    num_captions, num_videos = (
        next(iter(text.values())).shape[0],
        next(iter(video.values())).shape[0],
    )
    for start in range(0, num_captions, chunk_size):
        stop = min(start + chunk_size, num_captions)
        scores = torch.zeros(stop - start, num_videos)  # (c, N)
        for level in text:
            scores.addmm_(text[level][start:stop], video[level].T)


def sort_reference_ranks(
    text: dict[str, torch.Tensor],
    video: dict[str, torch.Tensor],
    caption_to_video: torch.Tensor,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks from argsort of each caption row and each video row.  -> (M,), (N,)"""
    num_captions = caption_to_video.numel()
    num_videos = next(iter(video.values())).shape[0]
    t2v = torch.empty(num_captions, dtype=torch.int64)
    for start in range(0, num_captions, chunk_size):
        stop = min(start + chunk_size, num_captions)
        scores = sum(text[level][start:stop] @ video[level].T for level in text)  # (c, N)
        order = scores.argsort(1, descending=True)  # (c, N)
        t2v[start:stop] = (order == caption_to_video[start:stop, None]).int().argmax(1) + 1
    v2t = torch.empty(num_videos, dtype=torch.int64)
    rows = max(1, chunk_size * num_videos // num_captions)
    for start in range(0, num_videos, rows):
        stop = min(start + rows, num_videos)
        scores = sum(video[level][start:stop] @ text[level].T for level in text)  # (b, M)
        order = scores.argsort(1, descending=True)  # (b, M)
        correct = caption_to_video[None, :] == torch.arange(start, stop)[:, None]  # (b, M)
        v2t[start:stop] = correct.gather(1, order).int().argmax(1) + 1
    return t2v, v2t


def run_scenario(args: argparse.Namespace, name: str) -> dict[str, object]:
    """Time every method ``args.repeats`` times, interleaved (the sort reference once), and
    keep the best time of each: the run least disturbed by other processes."""
    print(f"[{name}] generating embeddings", flush=True)
    text, video, caption_to_video = embeddings(args, matched=name == "matched")
    chunk = args.chunk_size
    methods: dict[str, Callable[[], object]] = {
        "matmul_full": lambda: matmul_full(text, video),
        "matmul_chunked": lambda: matmul_chunked(text, video, chunk),
        "metrics": lambda: retrieval_metrics(text, video, caption_to_video, chunk_size=chunk),
        "metrics_two_pass": lambda: retrieval_ranks(
            text, video, caption_to_video, chunk_size=chunk, force_second_pass=True
        ),
    }
    if name == "matched":
        methods["sort_reference"] = lambda: sort_reference_ranks(
            text, video, caption_to_video, chunk
        )
    runs: dict[str, list[float]] = {key: [] for key in methods}
    outputs: dict[str, object] = {}
    for round_index in range(args.repeats):
        for key, method in methods.items():
            if key == "sort_reference" and round_index > 0:
                continue
            start = time.perf_counter()
            outputs[key] = method()
            runs[key].append(time.perf_counter() - start)
            print(f"  round {round_index + 1}  {key:<18} {runs[key][-1]:8.2f} s", flush=True)
    timings = {key: min(values) for key, values in runs.items()}
    single_pass = retrieval_ranks(text, video, caption_to_video, chunk_size=chunk)
    two_pass = outputs["metrics_two_pass"]
    checks: dict[str, object] = {
        "two_pass_ranks_equal": torch.equal(single_pass[0], two_pass[0])
        and torch.equal(single_pass[1], two_pass[1])
    }
    if "sort_reference" in outputs:
        reference = outputs["sort_reference"]
        # the reference breaks exact ties arbitrarily (and sums the levels in another order),
        # so ranks may differ where two scores are equal to float rounding
        checks["ranks_differing_from_sort_reference"] = {
            "t2v": int((reference[0] != single_pass[0]).sum()),
            "v2t": int((reference[1] != single_pass[1]).sum()),
        }
    floor = min(timings["matmul_full"], timings["matmul_chunked"])
    ratios = {key: value / floor for key, value in timings.items()}
    print("  best: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    print("  ratios to the matmul floor: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    print(f"  checks: {checks}; rsum {outputs['metrics']['rsum']:.1f}", flush=True)
    return {
        "timings_s": timings,
        "all_runs_s": runs,
        "ratios_to_matmul_floor": ratios,
        "metrics": outputs["metrics"],
        "checks": checks,
    }


def main() -> None:
    args = parse_args()
    info = machine_info()
    print(
        f"eval speed: {args.captions} captions x {args.videos} videos, {len(LEVELS)} levels "
        f"x {args.dim}-d, chunk {args.chunk_size}, {info['torch_threads']} threads"
    )
    shape = {
        "captions": args.captions,
        "videos": args.videos,
        "levels": len(LEVELS),
        "dim": args.dim,
        "chunk_size": args.chunk_size,
        "repeats": args.repeats,
        "caption_noise_matched": args.noise,
    }
    runs = {name: run_scenario(args, name) for name in ("matched", "iid")}
    info["load_average_at_end"] = list(os.getloadavg())
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "shape": shape,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
