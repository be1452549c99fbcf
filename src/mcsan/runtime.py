"""Device choice and seeding, shared by training, evaluation, search and extraction."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; an explicit CUDA request without CUDA fails."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use cpu")
    return device


GPU_LOADER_WORKERS = 4  # at MSR-VTT sizes 4 hid the loader behind a GPU step (benchmarks/)


def loader_workers(requested: int, device: torch.device) -> int:
    """``train.num_workers`` for a run on ``device``: as given, or for -1 (automatic) 4 worker
    processes on CUDA, at most one fewer than the machine's cores, and none on the CPU."""
    if requested >= 0:
        return requested
    if device.type != "cuda":
        return 0
    return max(0, min(GPU_LOADER_WORKERS, (os.cpu_count() or 1) - 1))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_threads(threads: int) -> int:
    """Use ``threads`` CPU threads in torch; 0 = one per idle core (``idle_cores``), or what
    ``OMP_NUM_THREADS`` says where it is set. Returns the number in use.

    On a machine whose cores are busy with other work, fewer threads than cores is much faster:
    torch's threads wait for each other at every operation (``benchmarks/busy_threads.py``: a
    demo-size training step took 0.45 s with 2 threads and 0.56 s with 1 on an idle 2-core
    machine, but 1.07 s with 2 and 0.48 s with 1 while another process kept a core busy).
    """
    if threads < 0:
        raise ValueError(f"train.threads={threads}; use 0 (one per idle core) or a positive count")
    if not threads and os.environ.get("OMP_NUM_THREADS"):  # the environment has chosen
        return torch.get_num_threads()
    chosen = threads or idle_cores()
    torch.set_num_threads(chosen)
    return chosen


def idle_cores() -> int:
    """Cores not taken by other processes: the core count less the 1-minute load average
    (rounded), at least 1."""
    cores = os.cpu_count() or 1
    try:
        busy = round(os.getloadavg()[0])
    except OSError:  # no load average on this platform
        busy = 0
    return max(1, min(cores, cores - busy))
