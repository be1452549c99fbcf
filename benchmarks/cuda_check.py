"""The CUDA paths of training and evaluation, checked where a GPU is (CI has none).

On a synthetic benchmark (preset "tiny" unless told) the same seed is trained four times on
``--device`` (CUDA: mixed precision, as ``mcsan train`` does there):

1. ``amp``: train.amp=true, straight through;
2. ``amp_again``: the same run again: is training on this device repeatable?
3. ``amp_resumed``: the same run stopped after its first epoch's checkpoint and resumed;
4. ``fp32``: train.amp=false, for the accuracy mixed precision costs.

Each best checkpoint is evaluated on the device and on the CPU (the path CI tests). Required
(non-zero exit otherwise): every run finishing (training stops on a non-finite loss), and device
and CPU evaluation of one checkpoint agreeing (largest fused-score difference below 1e-3). Reported only, since GPU kernels are not
promised to be bit-repeatable: the weight differences between the repeated, the resumed and the
straight run, and the rsum of each.

    python benchmarks/cuda_check.py [--device cuda] [--preset tiny] [--epochs 3]
        [--prepared DIR]   # reuse prepared data (no spaCy needed, e.g. on a GPU image)

Writes benchmarks/results/cuda_check.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import mcsan.train as training
from mcsan.config import Config, apply_overrides
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import load_prepared, prepare
from mcsan.data.synth import synth_config, write_synth
from mcsan.demo import DEMO_OVERRIDES
from mcsan.evaluate import encode_split, evaluate_encoded, load_trained
from mcsan.runtime import resolve_device

SCORE_TOLERANCE = 1e-3  # fused cosine scores, device vs CPU evaluation of one checkpoint


class _StopAfterFirstEpoch(Exception):
    """Raised right after the first 'last' checkpoint is written: a process killed there."""


def train_interrupted_then_resumed(config: Config) -> training.TrainResult:
    """Train until the first epoch's checkpoint, stop as a killed process would, resume."""
    real_save = training._save

    def save_then_stop(run, directory, *args, **kwargs):
        real_save(run, directory, *args, **kwargs)
        if directory.name == "last":
            raise _StopAfterFirstEpoch

    training._save = save_then_stop
    try:
        training.train(config, progress=False)
    except _StopAfterFirstEpoch:
        pass
    finally:
        training._save = real_save
    return training.train(config, resume=True, progress=False)


def largest_weight_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between two checkpoints' weights (0.0 = identical)."""
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


def evaluate_on(
    best_dir: Path, dataset, prepared, device: torch.device
) -> tuple[dict, torch.Tensor]:
    """Test-split fused metrics and the fused score matrix (M, N), on the CPU, of one
    checkpoint."""
    model, config = load_trained(best_dir, prepared, device)
    encoded = encode_split(model, dataset["test"], prepared, config, device, progress=False)
    metrics = evaluate_encoded(encoded, model, config, "test")["fused"]
    scores = model.fused_similarity(encoded.text_emb, encoded.video_emb).float().cpu()
    return metrics, scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/cuda_check"))
    parser.add_argument("--prepared", type=Path, metavar="DIR",
                        help="prepared directory of the same synthetic data (default: prepare "
                        "into WORK/prepared, which needs spaCy)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "cuda_check.json")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)

    data_root = args.work / "data"
    write_synth(data_root, synth_config(args.preset, (), seed=0), overwrite=True, progress=False)
    dataset = read_dataset(data_root, progress=False)
    base = apply_overrides(Config(), [*DEMO_OVERRIDES, f"train.epochs={args.epochs}"])
    if args.prepared is None:
        prepared_dir = args.work / "prepared"
        prepared = prepare(dataset, prepared_dir, base.vocab, progress=False)
    else:
        prepared_dir = args.prepared
        prepared = load_prepared(prepared_dir, dataset)

    def config_for(name: str, amp: bool) -> Config:
        config = apply_overrides(base, [f"train.device={device}", f"train.amp={str(amp).lower()}"])
        config.data.root, config.data.prepared = str(data_root), str(prepared_dir)
        config.data.check_values = False  # the synthetic features are finite by construction
        config.train.seed = args.seed
        config.train.out_dir = str(args.work / "runs" / name)
        return config

    runs: dict[str, dict] = {}
    results: dict[str, training.TrainResult] = {}
    for name, amp in (("amp", True), ("amp_again", True), ("amp_resumed", True), ("fp32", False)):
        started = time.perf_counter()
        config = config_for(name, amp)
        if name == "amp_resumed":
            result = train_interrupted_then_resumed(config)
        else:
            result = training.train(config, progress=False)
        seconds = time.perf_counter() - started
        results[name] = result
        device_metrics, device_scores = evaluate_on(result.best_dir, dataset, prepared, device)
        cpu_metrics, cpu_scores = evaluate_on(result.best_dir, dataset, prepared,
                                              torch.device("cpu"))
        runs[name] = {
            "amp": amp and device.type == "cuda",
            "train_seconds": seconds,
            "val_rsum": result.best_rsum,
            "test_rsum_device": device_metrics["rsum"],
            "test_rsum_cpu": cpu_metrics["rsum"],
            "largest_score_difference_device_vs_cpu": float(
                (device_scores - cpu_scores).abs().max()),
        }
        print(f"{name:<12} val rsum {result.best_rsum:6.1f}  test rsum {device} "
              f"{device_metrics['rsum']:6.1f} / cpu {cpu_metrics['rsum']:6.1f}  "
              f"({seconds:.0f} s)", flush=True)

    straight = results["amp"].last_dir
    comparisons = {
        "repeat_largest_weight_difference": largest_weight_difference(
            straight, results["amp_again"].last_dir),
        "resume_largest_weight_difference": largest_weight_difference(
            straight, results["amp_resumed"].last_dir),
        "resume_history_equal": results["amp"].history == results["amp_resumed"].history,
        "amp_minus_fp32_test_rsum": runs["amp"]["test_rsum_device"]
        - runs["fp32"]["test_rsum_device"],
    }
    failures = [
        f"{name}: device and CPU scores differ by {run['largest_score_difference_device_vs_cpu']:.2e}"
        f" (> {SCORE_TOLERANCE})"
        for name, run in runs.items()
        if run["largest_score_difference_device_vs_cpu"] > SCORE_TOLERANCE
    ]
    for key, value in comparisons.items():
        print(f"{key}: {value}")
    report = {
        "command": "python benchmarks/cuda_check.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "preset": args.preset,
        "epochs": args.epochs,
        "runs": runs,
        "comparisons": comparisons,
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
