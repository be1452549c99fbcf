"""Training in several processes: the process group, each process's share of a batch, and the
gather that lets every process's loss see the whole global batch.

Launched by ``torchrun`` (or ``mcsan train --processes N``, which calls it), every process
reads its place from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)
and joins the group: gloo on the CPU, NCCL on CUDA, one GPU per process (``cuda:LOCAL_RANK``).

``train.batch_size`` is the global batch: every process collates its contiguous share of each
batch the one sampler draws (the same order in every process, :class:`ShardedBatches`).
The gradient is that of one process on the global batch: every process gathers the rows of
all processes' outputs with an all-gather that carries gradients
(``all_gather_single`` of torch's functional collectives) and computes the same loss ``L`` of the whole
batch; the gather's backward sums what each process's ``L`` sends to a process's own rows,
``W * dL/d(rows)``, and DistributedDataParallel averages the ``W`` processes' parameter
gradients, which leaves ``dL/d(parameters)`` exactly. Hardest negatives, the swap negatives
and the attribute losses so see what one process sees with the same batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed._functional_collectives import all_gather_single, wait_tensor

from mcsan.model.outputs import map_rows

# rank 0 validates and saves while the others wait at a barrier: generous, so that a long
# validation is not taken for a hung process
GROUP_TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that logs, validates and writes files."""
        return self.rank == 0


SINGLE = Processes()


def processes_from_environment() -> Processes:
    """Where torchrun put this process (one process when it did not start it)."""
    try:
        return Processes(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )
    except ValueError as error:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK in the environment: {error}") from None


def join(processes: Processes, device: torch.device) -> torch.device:
    """Join the process group (when there are several processes) and return this process's
    device: on CUDA its own GPU, ``cuda:LOCAL_RANK``."""
    if not processes.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=GROUP_TIMEOUT)
    return device


def leave(processes: Processes) -> None:
    """Leave the process group joined by :func:`join`."""
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()


def gather_rows(item: Any, processes: Processes) -> Any:
    """The rows of every process's ``item`` (a ModelOutput or LossTargets), concatenated in
    rank order; floating tensors keep their gradients (see the module docstring)."""
    if not processes.distributed:
        return item
    return map_rows(_gather, item)


def _gather(tensor: torch.Tensor) -> torch.Tensor:
    # (B, ...) in each of W processes -> (W * B, ...), differentiable
    return wait_tensor(all_gather_single(tensor.contiguous(), 0, dist.group.WORLD))


def process_share(batch_size: int, processes: Processes, accumulate_steps: int = 1) -> int:
    """Pairs per micro-batch in each process for a global batch of ``batch_size``."""
    parts = processes.world_size * accumulate_steps
    if batch_size % parts:
        raise ValueError(
            f"train.batch_size={batch_size} does not divide into {processes.world_size} "
            f"process(es) x train.accumulate_steps={accumulate_steps}; choose a batch size that "
            f"is a multiple of {parts}"
        )
    return batch_size // parts


class ShardedBatches(torch.utils.data.Sampler):
    """This process's contiguous share of every batch that ``batches`` (the same sampler, drawn
    from the same seed in every process) yields."""

    def __init__(self, batches: torch.utils.data.Sampler, processes: Processes) -> None:
        self.batches = batches
        self.processes = processes

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        rank, world = self.processes.rank, self.processes.world_size
        for batch in self.batches:
            if len(batch) % world:
                raise ValueError(
                    f"a batch of {len(batch)} pairs does not divide into {world} processes; "
                    f"choose a train.batch_size that is a multiple of {world}"
                )
            share = len(batch) // world
            yield batch[rank * share:(rank + 1) * share]
