"""Training throughput at MSR-VTT dimensions: the full model against the global-only one.

Batch 128, 20 frames of 2,048-d features, 1,024-d embeddings and hidden size, 20 words from a
10,000-word vocabulary, attribute vocabularies of 1,000 / 500 / 500. One step = forward, loss,
backward and an AdamW update. The two configurations are timed interleaved (global, full,
global, full, ...) so machine load hits both alike; the figure that matters is their ratio
(goal: full costs at most 2.5x global-only per sample).

    .venv/bin/python benchmarks/train_speed.py [--steps 6] [--threads N] [--device cpu|cuda] [--amp]

``--amp`` runs the forward pass under float16 autocast with a gradient scaler, as ``mcsan train``
does on CUDA. Writes benchmarks/results/train_speed[-cuda][-amp].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from mcsan import LEVELS
from mcsan.config import LossConfig, ModelConfig
from mcsan.data.batches import SPAN_LEVELS, Batch
from mcsan.model.mcsan import MCSAN

BATCH, FRAMES, VIDEO_DIM, WORDS, EMBED, VOCAB = 128, 20, 2048, 20, 1024, 10_000
ATTRIBUTES = {"entity": 1000, "action": 500, "relationship": 500}


def random_batch(device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(6, WORDS + 1, (BATCH,), generator=g)
    word_mask = torch.arange(WORDS)[None] < lengths[:, None]  # (B, L)
    return Batch(
        video=torch.randn(BATCH, FRAMES, VIDEO_DIM, generator=g),
        video_mask=torch.ones(BATCH, FRAMES, dtype=torch.bool),
        words=torch.randint(2, VOCAB, (BATCH, WORDS), generator=g) * word_mask,
        word_mask=word_mask,
        level_masks={k: (torch.rand(BATCH, WORDS, generator=g) < 0.3) & word_mask
                     for k in SPAN_LEVELS},
        # three relationships per caption (MSR-VTT captions have 1-3)
        role_masks=(torch.rand(BATCH, 3, 3, WORDS, generator=g) < 0.1) & word_mask[:, None, None],
        relation_orders=torch.randint(0, 3, (BATCH, 3), generator=g),
        video_targets={k: (torch.rand(BATCH, n, generator=g) < 0.005).float()
                       for k, n in ATTRIBUTES.items()},
        text_targets={k: (torch.rand(BATCH, n, generator=g) < 0.003).float()
                      for k, n in ATTRIBUTES.items()},
        tokens=[["w"] * int(n) for n in lengths],
        video_ids=[f"v{i}" for i in range(BATCH)],
        caption_ids=[str(i) for i in range(BATCH)],
    ).to(device)


def build(levels: list[str], device: torch.device):
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=EMBED, hidden_dim=EMBED, word_dim=300, levels=levels)
    model = MCSAN(config, LossConfig(), VIDEO_DIM, VOCAB, ATTRIBUTES).to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4)


def step(model, optimizer, scaler, batch: Batch, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.autocast(device.type, enabled=scaler.is_enabled()):
        loss, _ = model.compute_loss(batch)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0, help="0 = torch default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.amp and args.device == "cpu":
        parser.error("--amp is for CUDA (mcsan train uses it there only)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batch = random_batch(device)
    models = {"global_only": build(["global"], device), "full": build(list(LEVELS), device)}
    scalers = {name: torch.amp.GradScaler(device.type, enabled=args.amp) for name in models}
    for name, (model, optimizer) in models.items():
        step(model, optimizer, scalers[name], batch, device)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.steps):
        for name, (model, optimizer) in models.items():
            times[name].append(step(model, optimizer, scalers[name], batch, device))
    options = [f"--steps {args.steps}", f"--threads {args.threads}", f"--device {args.device}"]
    result = {"command": "python benchmarks/train_speed.py " + " ".join(
        options + (["--amp"] if args.amp else [])),
        "device": str(device), "amp": args.amp,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(), "batch": BATCH, "configs": {}}
    for name, samples in times.items():
        median = statistics.median(samples)
        params = sum(p.numel() for p in models[name][0].parameters())
        result["configs"][name] = {"median_step_s": median, "min_step_s": min(samples),
                                   "samples_per_s": BATCH / median, "parameters": params}
        print(f"{name:<12} {params / 1e6:6.1f}M params  median step {median:.3f} s  "
              f"{BATCH / median:7.1f} samples/s")
    ratio = result["configs"]["full"]["median_step_s"] / result["configs"]["global_only"][
        "median_step_s"]
    result["full_over_global_cost"] = ratio
    print(f"full / global-only cost per sample: {ratio:.2f}x (goal <= 2.5x)")
    suffix = ("" if device.type == "cpu" else f"-{device.type}") + ("-amp" if args.amp else "")
    out = args.out or Path(__file__).parent / "results" / f"train_speed{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
