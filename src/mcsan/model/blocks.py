"""Blocks both encoders use: dropout with cheap masks on the CPU, attention pooling, and the
triple encoder that maps a (subject, predicate, object) trio of states to one relationship state
in role order."""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Module):
    """``nn.Dropout`` whose masks cost a quarter of the random draws on the CPU.

    torch's CPU dropout draws one 32-bit number per element from its Mersenne Twister, one
    thread at a time: a tenth of a training step at the default size. Here every 64-bit draw
    gives four 16-bit numbers and an element is dropped when its number falls below ``p``, so
    ``p`` is rounded to a multiple of 1/65,536 and the kept elements are scaled by
    1 / (1 - that rate). Same global generator, so ``torch.manual_seed`` makes masks repeat.
    On other devices it is ``nn.functional.dropout`` (their generators are fast).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        dropped = round(p * 65536)  # how many of the 65,536 16-bit values drop an element
        self.threshold = dropped - 32768  # keep an element when its number is >= this
        self.scale = 65536 / (65536 - dropped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        draws = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), None)
        numbers = draws.view(torch.int16)[: x.numel()].view(x.shape)  # uniform 16-bit
        return x * (numbers >= self.threshold).to(x.dtype).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class AttentionPool(nn.Module):
    """Weighted mean of tokens with learned scores."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1, bias=False)  # a bias would cancel in the softmax

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # tokens (B, N, H), mask (B, N) bool with at least one True per row -> (B, H)
        scores = self.score(tokens).squeeze(-1)  # (B, N)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)  # (B, N)
        return torch.einsum("bn,bnh->bh", weights, tokens)


class TripleEncoder(nn.Module):
    """(subject, predicate, object) states -> one relationship state per triple.

    The three are concatenated in role order before the MLP, so swapping subject and object
    changes the result (a sum or a pooling would not).
    """

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(3 * dim, 2 * dim), nn.GELU(), Dropout(dropout), nn.Linear(2 * dim, dim)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, roles: torch.Tensor) -> torch.Tensor:
        # roles (B, K, 3, H) in subject, predicate, object order -> triples (B, K, H)
        return self.norm(self.mlp(roles.flatten(-2)))
