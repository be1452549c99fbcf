"""What the model gives the loss, row by row, and what the loss compares it with.

Every tensor here has one row per (video, caption) pair of a batch, so the rows of several
micro-batches (gradient accumulation) or of several processes (distributed training) join by
concatenation (:func:`concat_rows`, or :func:`map_rows` over a gather): the loss then sees the
whole global batch as one process would. Scores between rows (caption i with video j) are
made by the loss from these rows, never stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from mcsan.data.batches import Batch


@dataclass
class SwapScores:
    """The score of each caption's swapped reading with its own video (role-swapped: the fused
    score; order-swapped: the relationship cosine), for the rows that have such a reading."""

    present: torch.Tensor  # (B,) bool, True where the caption has a swapped reading
    score: torch.Tensor  # (B,) the swapped reading's score with its own video; 0 elsewhere


@dataclass
class ModelOutput:
    video: dict[str, torch.Tensor]  # level -> (B, E) L2-normalised
    text: dict[str, torch.Tensor]  # level -> (B, E) L2-normalised
    video_attributes: dict[str, torch.Tensor]  # attribute level -> (B, V_level) logits
    text_attributes: dict[str, torch.Tensor]  # attribute level -> (B, V_level) logits
    role_swap: SwapScores | None = None  # when asked for (loss.role_swap_negatives)
    order_swap: SwapScores | None = None  # when asked for (loss.order_swap_negatives)


@dataclass
class LossTargets:
    """The labels of a batch's rows that the loss needs."""

    video_keys: torch.Tensor  # (B,) int64; two rows with one key show the same video
    video_targets: dict[str, torch.Tensor]  # attribute level -> (B, V) multi-hot, the video's
    text_targets: dict[str, torch.Tensor]  # attribute level -> (B, V) multi-hot, the caption's

    @classmethod
    def of(cls, batch: Batch) -> LossTargets:
        keys = batch.video_keys  # (B,) from the loader: the same numbers in every process
        if keys is None:  # a batch made by hand (one process): its ids, numbered in order
            number = {video_id: i for i, video_id in enumerate(dict.fromkeys(batch.video_ids))}
            keys = torch.tensor([number[v] for v in batch.video_ids], device=batch.video.device)
        return cls(keys, batch.video_targets, batch.text_targets)

    @property
    def positive_mask(self) -> torch.Tensor:
        """(B, B) bool: True where caption i and video j are of the same video."""
        return self.video_keys[:, None] == self.video_keys[None, :]


def map_rows(apply: Callable[..., torch.Tensor], *items: Any) -> Any:
    """``items`` of one type (ModelOutput, LossTargets, SwapScores, dict, tensor or None) with
    ``apply`` called on each tensor, given the matching tensors of every item at once."""
    first = items[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return apply(*items)
    if isinstance(first, dict):
        return {key: map_rows(apply, *(item[key] for item in items)) for key in first}
    if is_dataclass(first):
        return type(first)(**{
            f.name: map_rows(apply, *(getattr(item, f.name) for item in items))
            for f in fields(first)
        })
    raise TypeError(f"cannot map the rows of a {type(first).__name__}")


def concat_rows(items: list[Any]) -> Any:
    """The rows of several micro-batches' outputs (or targets) as one, in order."""
    return map_rows(lambda *tensors: torch.cat(tensors), *items)
