"""Batches of tensors: the contract between the data layer and the model.

A :class:`Batch` holds B matched (video, caption) pairs, padded, with masks and attribute
targets. Padding value 0 in ``words`` is the pad id; ``WORD_UNK`` is the unknown-word id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

WORD_PAD = 0
WORD_UNK = 1


@dataclass
class Batch:
    video: torch.Tensor  # (B, T, D) float32 frame features
    video_mask: torch.Tensor  # (B, T) bool, True = real frame
    words: torch.Tensor  # (B, L) int64 word ids, WORD_PAD = padding
    word_mask: torch.Tensor  # (B, L) bool, True = real token
    # token membership in each attribute level's spans, level -> (B, L) bool
    # ("entity", "action", "relationship"); all False when a caption has none of that level
    level_masks: dict[str, torch.Tensor]
    # attribute targets per level, level -> (B, V_level) float32 multi-hot
    video_targets: dict[str, torch.Tensor]  # union over all captions of the video
    text_targets: dict[str, torch.Tensor]  # this caption's own attributes
    tokens: list[list[str]]  # the caption tokens (spaCy tokenisation, lower-cased), B lists
    video_ids: list[str]  # B video ids (a video may repeat; see positive_mask)
    caption_ids: list[str]  # B caption ids
    regions: torch.Tensor | None = None  # (B, T, R, D_r) optional region features
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def positive_mask(self) -> torch.Tensor:
        """(B, B) bool: True where caption i and video j belong to the same video id."""
        index = {vid: i for i, vid in enumerate(dict.fromkeys(self.video_ids))}
        ids = torch.tensor([index[v] for v in self.video_ids])
        return ids[:, None] == ids[None, :]

    def to(self, device: torch.device | str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            video=move(self.video),
            video_mask=move(self.video_mask),
            words=move(self.words),
            word_mask=move(self.word_mask),
            level_masks={k: move(v) for k, v in self.level_masks.items()},
            video_targets={k: move(v) for k, v in self.video_targets.items()},
            text_targets={k: move(v) for k, v in self.text_targets.items()},
            tokens=self.tokens,
            video_ids=self.video_ids,
            caption_ids=self.caption_ids,
            regions=move(self.regions),
            extras={k: move(v) for k, v in self.extras.items()},
        )
