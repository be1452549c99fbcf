"""Training-loader throughput next to the model's training step: does the loader hold training
back?

On a synthetic benchmark (preset "default" unless told) this builds the data loader that
``mcsan train`` builds (``mcsan.train.training_loader``: read each pair's frames from the HDF5
file, look up its parse, collate padded tensors, masks and multi-hot targets) and times it
for each ``--workers`` value (``train.num_workers``): the median over ``--repeats`` passes of
``--batches`` batches, each pass after one warm-up batch (which starts the worker processes).
Beside it, the full model's training step (``mcsan.train.training_step``: forward, loss,
backward, clipping, AdamW) on ``--device`` with the demo's settings, on batches moved there
beforehand; and with ``--fed-steps N``, the training loop as ``mcsan train`` runs it (loader ->
device -> step) for each ``--workers`` value. A loader slower than the step it feeds leaves the
model waiting when ``train.num_workers=0``; the fed steps measure whether workers win it back.

    .venv/bin/python benchmarks/loader_speed.py                        # preset "default"
    .venv/bin/python benchmarks/loader_speed.py --preset small --synth-set feature_dim=2048 \\
        --tag 2048d                                                    # MSR-VTT feature size
    .venv/bin/python benchmarks/loader_speed.py --prepared DIR         # reuse a prepared dir
    .venv/bin/python benchmarks/loader_speed.py --preset msrvtt --synth-set feature_dim=2048 \
        --set model.embed_dim=512 model.hidden_dim=512 model.word_dim=300 --tag msrvtt
                              # MSR-VTT's size: a 1.6 GB feature file, the default model size
    python benchmarks/loader_speed.py --device cuda --fed-steps 30 --workers 0 2 4 8 --threads 4

Writes benchmarks/results/loader_speed[-TAG].json, with the peak resident memory of the
process while it loads and trains (the high-water mark is reset after the data is written and
prepared; Linux) and of its largest loader worker, beside the size of the feature file: the
loader reads each pair's frames from the file when the batch needs them, never the whole file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
from mcsan.factory import build_loss, build_model
from mcsan.train import build_optimizer, training_loader, training_step


def time_loader(pairs, config: Config, sizes: dict[str, int], batches: int, repeats: int,
                device: torch.device) -> dict:
    """Median wall and training-process CPU seconds per batch of the training loader over
    ``repeats`` passes. Each batch's frames are read once, as the model (or a copy to the GPU)
    would: with workers, that is where the training process pays for the shared memory."""
    per_batch, cpu_per_batch = [], []
    for repeat in range(repeats):
        loader = training_loader(pairs, config, sizes, torch.Generator().manual_seed(repeat),
                                 device)
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


def training_setup(config: Config, prepared, feature_dim: int, device: torch.device):
    """The model (seed 0), loss, optimizer, schedule and gradient scaler ``mcsan train``
    builds."""
    torch.manual_seed(0)
    model = build_model(config, prepared, feature_dim).to(device)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=config.train.amp and device.type == "cuda")
    return model, build_loss(config, model), optimizer, scheduler, scaler


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model_step(pairs, config: Config, sizes: dict[str, int], prepared, steps: int,
                    device: torch.device) -> dict:
    """Median seconds of ``mcsan.train.training_step`` (the full model) on ``device``, on
    batches moved there beforehand: the step alone, no loader."""
    model, loss, optimizer, scheduler, scaler = training_setup(
        config, prepared, pairs.videos.split.feature_dim, device)
    loader = training_loader(pairs, config, sizes, torch.Generator().manual_seed(0), device)
    batches = [batch.to(device) for batch, _ in zip(loader, range(steps + 1), strict=False)]
    seconds = []
    for index, batch in enumerate(batches):  # the first step warms up
        synchronize(device)
        started = time.perf_counter()
        training_step(model, loss, batch, optimizer, scheduler, scaler, config, hardest_negatives=True)
        synchronize(device)
        if index:
            seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {"ms_per_step": round(median * 1000, 1),
            "samples_per_s": round(config.train.batch_size / median, 1)}


def time_fed_steps(pairs, config: Config, sizes: dict[str, int], prepared, steps: int,
                   device: torch.device) -> dict:
    """Seconds per step of the training loop as ``mcsan train`` runs it with
    ``config.train.num_workers``: next batch from the loader, copy to ``device``,
    ``training_step``; timed over ``steps`` steps after 3 warm-up steps (workers started)."""
    model, loss, optimizer, scheduler, scaler = training_setup(
        config, prepared, pairs.videos.split.feature_dim, device)
    iterator = iter(training_loader(pairs, config, sizes, torch.Generator().manual_seed(0),
                                    device))
    for _ in range(3):
        training_step(model, loss, next(iterator).to(device), optimizer, scheduler, scaler, config,
                      hardest_negatives=True)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        training_step(model, loss, next(iterator).to(device), optimizer, scheduler, scaler, config,
                      hardest_negatives=True)
    synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    del iterator
    return {"workers": config.train.num_workers, "ms_per_step": round(seconds * 1000, 1),
            "samples_per_s": round(config.train.batch_size / seconds, 1)}


def peak_rss_gb(who: int) -> float:
    """Peak resident memory in GB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(who).ru_maxrss * 1024 / 1e9, 3)


def reset_peak_rss() -> bool:
    """Restart this process's resident-memory high-water mark (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def status_gb(field: str) -> float | None:
    """A memory figure of /proc/self/status (VmRSS: now, VmHWM: the high-water mark) in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) * 1024 / 1e9, 3)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--synth-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="synthetic-benchmark settings (e.g. feature_dim=2048)")
    parser.add_argument("--prepared", type=Path, help="reuse this prepared directory")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides after the demo's (e.g. model.embed_dim=512)")
    parser.add_argument("--work", type=Path, default=Path("runs/loader_speed"))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=40, help="timed batches per pass")
    parser.add_argument("--batch-size", type=int, help="default: the demo's train.batch_size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-steps", type=int, default=5)
    parser.add_argument("--fed-steps", type=int, default=0,
                        help="also time this many steps of the training loop fed by the loader, "
                        "per --workers value (0: skip)")
    parser.add_argument("--device", default="cpu", help="where the model steps run")
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/loader_speed[-TAG].json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    data_root = args.work / "data"
    write_synth(data_root, synth_config(args.preset, args.synth_set, seed=0), overwrite=True,
                progress=False)
    dataset = read_dataset(data_root, progress=False)
    config = apply_overrides(Config(), [*DEMO_OVERRIDES, *args.set])
    if args.batch_size:
        config.train.batch_size = args.batch_size
    config.train.amp = args.amp
    if args.prepared is None:
        prepared = prepare(dataset, args.work / "prepared", config.vocab, progress=False)
    else:
        prepared = load_prepared(args.prepared, dataset)  # checks these are its captions
    sizes = {level: len(vocab) for level, vocab in prepared.vocabs.items()}
    pairs = CaptionPairs(dataset["train"], prepared, config.data.max_frames,
                         config.data.max_words)
    available = len(pairs) // config.train.batch_size
    if available < max(args.batches + 1, args.model_steps + 1, args.fed_steps + 3):
        raise SystemExit(
            f"the {args.preset!r} training split makes {available} batches of "
            f"{config.train.batch_size}; --batches and --model-steps need one more each, "
            "--fed-steps three more. Lower them, --batch-size, or choose a larger --preset"
        )

    peak_was_reset = reset_peak_rss()  # measure the loader and the steps, not the preparation
    rss_before_loading = status_gb("VmRSS")  # the dataset index and the parsed captions
    loaders = []
    for workers in args.workers:
        config.train.num_workers = workers
        loaders.append(time_loader(pairs, config, sizes, args.batches, args.repeats, device))
        timing = loaders[-1]
        print(f"loader, {workers} worker(s): {timing['ms_per_batch']:.1f} ms/batch, "
              f"{timing['samples_per_s']:.0f} samples/s, training process "
              f"{timing['training_process_cpu_ms_per_batch']:.1f} ms CPU/batch", flush=True)
    config.train.num_workers = 0
    step = time_model_step(pairs, config, sizes, prepared, args.model_steps, device)
    print(f"full model training step on {device} ({args.threads} thread(s), amp={args.amp}): "
          f"{step['ms_per_step']:.1f} ms, {step['samples_per_s']:.0f} samples/s", flush=True)
    fed = []
    for workers in args.workers if args.fed_steps else []:
        config.train.num_workers = workers
        fed.append(time_fed_steps(pairs, config, sizes, prepared, args.fed_steps, device))
        print(f"training loop fed by the loader, {workers} worker(s): "
              f"{fed[-1]['ms_per_step']:.1f} ms/step, {fed[-1]['samples_per_s']:.0f} samples/s",
              flush=True)

    report = {
        "benchmark": "loader_speed",
        "command": " ".join(["python benchmarks/loader_speed.py", *(argv or sys.argv[1:])]),
        "preset": args.preset,
        "synth_settings": args.synth_set,
        "batch_size": config.train.batch_size,
        "feature_dim": dataset["train"].feature_dim,
        "train_captions": len(pairs),
        "loader": loaders,
        "device": str(device),
        "amp": args.amp,
        "model_step": step,
        "fed_steps": fed,
        "feature_files_gb": round(sum(f.stat().st_size for f in data_root.rglob("*.hdf5")) / 1e9, 3),
        "peak_rss_gb": {
            "before_loading": rss_before_loading,
            "loading_and_training": status_gb("VmHWM") if peak_was_reset else None,
            "whole_process": peak_rss_gb(resource.RUSAGE_SELF),
            "largest_loader_worker": peak_rss_gb(resource.RUSAGE_CHILDREN)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": args.threads, "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
    }
    name = f"loader_speed-{args.tag}.json" if args.tag else "loader_speed.json"
    out = args.out or Path(__file__).parent / "results" / name
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"feature files {report['feature_files_gb']} GB; peak RSS {report['peak_rss_gb']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
