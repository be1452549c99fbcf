"""One training step of a small float64 MCSAN on a fixed global batch, in this process's share of
it: run by tests/test_distributed.py in 2 processes under torchrun, and in the test's own
process (``step_gradients``) as the one-process reference.

    torchrun --standalone --nproc-per-node 2 tests/distributed_step.py OUT.pt ACCUMULATE_STEPS...

writes ``{accumulate_steps: step_gradients(...)}`` to OUT.pt from the first process.
"""

from __future__ import annotations

import sys

import torch

from mcsan.config import Config, LossConfig, ModelConfig
from mcsan.data.batches import Batch, RoleSwaps
from mcsan.distributed import SINGLE, Processes, join, leave, processes_from_environment
from mcsan.model import MCSAN, MCSANLoss
from mcsan.train import training_step

GLOBAL_BATCH = 8
VIDEO_DIM, VOCAB, ATTRIBUTES = 6, 30, {"entity": 7, "action": 5, "relationship": 4}
# every term the loss has: hardest negatives, level-aware negatives, both swap negatives
LOSS = LossConfig(role_swap_negatives=True, order_swap_negatives=True, level_aware_negatives=True)


def global_batch() -> Batch:
    """8 pairs, two of them captions of videos that appear twice (positives across the two
    processes' shares), with role-swapped readings and stated event orders."""
    g = torch.Generator().manual_seed(3)
    b, frames, length = GLOBAL_BATCH, 4, 6
    video_ids = ["v0", "v1", "v2", "v3", "v0", "v5", "v2", "v7"]  # rows 0/4 and 2/6 share
    words = torch.randint(2, VOCAB, (b, length), generator=g)
    word_mask = torch.ones(b, length, dtype=torch.bool)
    word_mask[1, 4:] = word_mask[5, 3:] = False
    words[~word_mask] = 0
    role_masks = torch.zeros(b, 2, 3, length, dtype=torch.bool)
    role_masks[:, 0, 0, 0] = role_masks[:, 0, 1, 1] = role_masks[:, 0, 2, 2] = True
    role_masks[:, 1, 0, 2] = role_masks[:, 1, 1, 3] = True
    orders = torch.zeros(b, 2, dtype=torch.long)
    orders[0], orders[5], orders[6] = torch.tensor([1, 2]), torch.tensor([2, 1]), torch.tensor([1, 2])
    targets = {lv: (torch.rand(b, n, generator=g) < 0.4).double() for lv, n in ATTRIBUTES.items()}
    video_targets = {lv: t.clone() for lv, t in targets.items()}
    for level in ATTRIBUTES:  # a video's targets: the union over its captions
        for first, second in ((0, 4), (2, 6)):
            union = torch.maximum(targets[level][first], targets[level][second])
            video_targets[level][first] = video_targets[level][second] = union
    video = torch.randn(b, frames, VIDEO_DIM, generator=g, dtype=torch.float64)
    for first, second in ((0, 4), (2, 6)):
        video[second] = video[first]
    swap_rows = torch.tensor([1, 4, 7])
    return Batch(
        video=video,
        video_mask=torch.ones(b, frames, dtype=torch.bool),
        words=words,
        word_mask=word_mask,
        level_masks={"entity": role_masks[:, 0, 0] | role_masks[:, 0, 2],
                     "action": role_masks[:, :, 1].any(1)},
        role_masks=role_masks,
        relation_orders=orders,
        video_targets=video_targets,
        text_targets=targets,
        tokens=[[f"w{i}" for i in row[mask].tolist()]
                for row, mask in zip(words, word_mask, strict=True)],
        video_ids=video_ids,
        caption_ids=[f"c{i}" for i in range(b)],
        role_swaps=RoleSwaps(swap_rows, words[swap_rows].flip(1),
                             [[f"s{i}"] * length for i in swap_rows.tolist()]),
        video_keys=torch.tensor([int(v[1:]) for v in video_ids]),
    )


def build_model(dropout: float = 0.0) -> MCSAN:
    torch.manual_seed(0)
    config = ModelConfig(embed_dim=8, hidden_dim=8, word_dim=6, num_entity_queries=2,
                         num_action_queries=2, num_relationship_queries=2, dropout=dropout)
    return MCSAN(config, VIDEO_DIM, VOCAB, ATTRIBUTES).double()


def step_gradients(processes: Processes = SINGLE, accumulate_steps: int = 1,
                   pairs: int = GLOBAL_BATCH) -> dict:
    """The loss terms and every parameter's gradient after one ``training_step`` on this
    process's share of the first ``pairs`` of the global batch (learning rate 0: the weights
    stay as built)."""
    torch.set_default_dtype(torch.float64)
    model = build_model()
    stepped = model
    if processes.distributed:
        stepped = torch.nn.parallel.DistributedDataParallel(model)
    share = pairs // processes.world_size
    batch = global_batch().rows(processes.rank * share, (processes.rank + 1) * share)
    config = Config()
    config.train.accumulate_steps, config.train.grad_clip = accumulate_steps, 1e9
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    values, _ = training_step(stepped, MCSANLoss(LOSS, model.level_weights), batch, optimizer,
                              scheduler, scaler, config, hardest_negatives=True,
                              processes=processes)
    return {"values": values,
            "grads": {name: p.grad.clone() for name, p in model.named_parameters()}}


if __name__ == "__main__":
    out, accumulate = sys.argv[1], [int(steps) for steps in sys.argv[2:]]
    torch.set_num_threads(1)
    processes = processes_from_environment()
    join(processes, torch.device("cpu"))
    try:
        results = {steps: step_gradients(processes, steps) for steps in accumulate}
        if processes.is_main:
            torch.save(results, out)
    finally:
        leave(processes)
