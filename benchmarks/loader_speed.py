"""Training-loader throughput next to the model's training step: does the loader hold training
back?

On a synthetic benchmark (preset "default" unless told) this builds the data loader that
``mcsan train`` builds (``mcsan.train.training_loader``: read each pair's frames from the HDF5
file, look up its parse, collate padded tensors, masks and multi-hot targets) and times it
for each ``--workers`` value (``train.num_workers``): the median over ``--repeats`` passes of
``--batches`` batches, each pass after one warm-up batch (which starts the worker processes).
Beside it, the full model's training step (forward, loss, backward, AdamW) on the same batches
on this CPU, with the demo's settings. A loader slower than the step it feeds leaves the
model waiting when ``train.num_workers=0``; for a GPU, compare with the step times in
``results/train_speed-cuda*.json``.

    .venv/bin/python benchmarks/loader_speed.py                        # preset "default"
    .venv/bin/python benchmarks/loader_speed.py --preset small --synth-set feature_dim=2048 \\
        --tag 2048d                                                    # MSR-VTT feature size
    .venv/bin/python benchmarks/loader_speed.py --prepared DIR         # reuse a prepared dir

Writes benchmarks/results/loader_speed[-TAG].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from mcsan.config import Config, apply_overrides
from mcsan.data.batches import CaptionPairs
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import load_prepared, prepare
from mcsan.data.synth import synth_config, write_synth
from mcsan.demo import DEMO_OVERRIDES
from mcsan.evaluate import build_model
from mcsan.train import parameter_groups, training_loader


def time_loader(pairs, config: Config, sizes: dict[str, int], batches: int, repeats: int) -> dict:
    """Median wall and training-process CPU seconds per batch of the training loader over
    ``repeats`` passes. Each batch's frames are read once, as the model (or a copy to the GPU)
    would: with workers, that is where the training process pays for the shared memory."""
    per_batch, cpu_per_batch = [], []
    for repeat in range(repeats):
        loader = training_loader(pairs, config, sizes, torch.Generator().manual_seed(repeat))
        iterator = iter(loader)
        next(iterator)  # warm-up: starts the workers, fills their prefetch queues
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(iterator).video.sum()
        per_batch.append((time.perf_counter() - started) / batches)
        cpu_per_batch.append((time.process_time() - cpu_started) / batches)
        del iterator
    seconds = statistics.median(per_batch)
    return {
        "workers": config.train.num_workers,
        "ms_per_batch": round(seconds * 1000, 2),
        "samples_per_s": round(config.train.batch_size / seconds, 1),
        "training_process_cpu_ms_per_batch": round(statistics.median(cpu_per_batch) * 1000, 2),
        "ms_per_batch_each_pass": [round(s * 1000, 2) for s in per_batch],
    }


def time_model_step(pairs, config: Config, sizes: dict[str, int], prepared, steps: int) -> dict:
    """Median seconds of one training step of the full model on this CPU."""
    torch.manual_seed(0)
    model = build_model(config, prepared, pairs.videos.split.feature_dim)
    optimizer = torch.optim.AdamW(parameter_groups(model, config), lr=config.train.lr)
    batches = iter(training_loader(pairs, config, sizes, torch.Generator().manual_seed(0)))
    seconds = []
    for step in range(steps + 1):  # the first step warms up
        batch = next(batches)
        started = time.perf_counter()
        loss, _ = model.compute_loss(batch, hardest_negatives=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:
            seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {"ms_per_step": round(median * 1000, 1),
            "samples_per_s": round(config.train.batch_size / median, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--synth-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="synthetic-benchmark settings (e.g. feature_dim=2048)")
    parser.add_argument("--prepared", type=Path, help="reuse this prepared directory")
    parser.add_argument("--work", type=Path, default=Path("runs/loader_speed"))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=40, help="timed batches per pass")
    parser.add_argument("--batch-size", type=int, help="default: the demo's train.batch_size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/loader_speed[-TAG].json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data_root = args.work / "data"
    write_synth(data_root, synth_config(args.preset, args.synth_set, seed=0), overwrite=True,
                progress=False)
    dataset = read_dataset(data_root, progress=False)
    config = apply_overrides(Config(), DEMO_OVERRIDES)
    if args.batch_size:
        config.train.batch_size = args.batch_size
    if args.prepared is None:
        prepared = prepare(dataset, args.work / "prepared", config.vocab, progress=False)
    else:
        prepared = load_prepared(args.prepared, dataset)  # checks these are its captions
    sizes = {level: len(vocab) for level, vocab in prepared.vocabs.items()}
    pairs = CaptionPairs(dataset["train"], prepared, config.data.max_frames,
                         config.data.max_words)
    available = len(pairs) // config.train.batch_size
    if available < max(args.batches, args.model_steps) + 1:
        raise SystemExit(
            f"the {args.preset!r} training split makes {available} batches of "
            f"{config.train.batch_size}; --batches and --model-steps need one more each. "
            "Lower them, --batch-size, or choose a larger --preset"
        )

    loaders = []
    for workers in args.workers:
        config.train.num_workers = workers
        loaders.append(time_loader(pairs, config, sizes, args.batches, args.repeats))
        timing = loaders[-1]
        print(f"loader, {workers} worker(s): {timing['ms_per_batch']:.1f} ms/batch, "
              f"{timing['samples_per_s']:.0f} samples/s, training process "
              f"{timing['training_process_cpu_ms_per_batch']:.1f} ms CPU/batch", flush=True)
    config.train.num_workers = 0
    step = time_model_step(pairs, config, sizes, prepared, args.model_steps)
    print(f"full model training step on this CPU ({args.threads} thread(s)): "
          f"{step['ms_per_step']:.0f} ms, {step['samples_per_s']:.0f} samples/s")

    report = {
        "benchmark": "loader_speed",
        "command": " ".join(["python benchmarks/loader_speed.py", *(argv or sys.argv[1:])]),
        "preset": args.preset,
        "synth_settings": args.synth_set,
        "batch_size": config.train.batch_size,
        "feature_dim": dataset["train"].feature_dim,
        "train_captions": len(pairs),
        "loader": loaders,
        "model_step_cpu": step,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": args.threads, "torch": torch.__version__},
    }
    name = f"loader_speed-{args.tag}.json" if args.tag else "loader_speed.json"
    out = args.out or Path(__file__).parent / "results" / name
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
