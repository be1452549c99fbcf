"""Blocks both encoders use: attention pooling, and the triple encoder that maps a (subject,
predicate, object) trio of states to one relationship state in role order."""

from __future__ import annotations

import torch
from torch import nn


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
            nn.Linear(3 * dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, roles: torch.Tensor) -> torch.Tensor:
        # roles (B, K, 3, H) in subject, predicate, object order -> triples (B, K, H)
        return self.norm(self.mlp(roles.flatten(-2)))
