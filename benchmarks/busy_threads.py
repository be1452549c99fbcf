"""Torch threads on a shared machine: a demo-size training step with 1 thread and with one per
core, while 0, 1 or 2 other processes keep cores busy.

The model and batch are the demo's sizes (256-d levels and hidden size, 128-d words, 128-d
frame features, 20 frames, batch 128). The busy processes are plain Python loops started by
this script and stopped when it ends. Prints and writes the median step time of each case.

    .venv/bin/python benchmarks/busy_threads.py [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path


def spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def median_step(threads: int, steps: int) -> float:
    """In a fresh process state: median seconds of ``steps`` training steps."""
    import torch

    from mcsan import LEVELS
    from mcsan.config import ModelConfig
    from mcsan.model.mcsan import MCSAN

    torch.set_num_threads(threads)
    speed = load_train_speed()  # its random batch and timed step, at the demo's sizes
    speed.BATCH, speed.FRAMES, speed.VIDEO_DIM, speed.WORDS = 128, 20, 128, 20
    speed.VOCAB, speed.ATTRIBUTES = 2_000, {"entity": 200, "action": 100, "relationship": 500}
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=256, hidden_dim=256, word_dim=128, levels=list(LEVELS))
    model = MCSAN(config, speed.VIDEO_DIM, speed.VOCAB, speed.ATTRIBUTES)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batch = speed.random_batch(torch.device("cpu"))
    device = torch.device("cpu")
    speed.step(model, optimizer, scaler, batch, device)  # warm-up
    return statistics.median(speed.step(model, optimizer, scaler, batch, device)
                             for _ in range(steps))


def measure(threads: int, steps: int, queue) -> None:
    queue.put(median_step(threads, steps))


def load_train_speed():
    """benchmarks/train_speed.py as a module."""
    import importlib.util

    path = Path(__file__).with_name("train_speed.py")
    spec = importlib.util.spec_from_file_location("train_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "busy_threads.json")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("fork")
    cores = os.cpu_count() or 1
    rows = []
    for busy in range(0, min(2, cores) + 1):
        for threads in sorted({1, cores}):
            spinners = [context.Process(target=spin, args=(time.time() + 600,))
                        for _ in range(busy)]
            for spinner in spinners:
                spinner.start()
            queue = context.Queue()
            worker = context.Process(target=measure, args=(threads, args.steps, queue))
            worker.start()
            seconds = queue.get()
            worker.join()
            for spinner in spinners:
                spinner.terminate()
                spinner.join()
            rows.append({"busy_processes": busy, "threads": threads,
                         "median_step_s": round(seconds, 4)})
            print(f"{busy} busy process(es), {threads} thread(s): median step {seconds:.3f} s",
                  flush=True)
    result = {"command": "python benchmarks/busy_threads.py --steps " + str(args.steps),
              "cpu_count": cores, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
