"""The cross-modal parameter-shared attribute projection.

For each attribute level (entity, action, relationship; global has none) one linear layer maps
that level's joint-space embedding (B, E) to attribute logits (B, V_level). With
``shared=True`` the very same layer scores the video and the text embedding, so both modalities
are read by one set of attribute detectors: the statistical constraint that ties the two
embedding spaces together. ``shared=False`` (the ablation) gives each modality its own layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mcsan import ATTRIBUTE_LEVELS

MODALITIES = ("video", "text")

# Attribute labels are sparse (a caption names a handful of a vocabulary of hundreds), so the
# logits start at the log-odds of a rare label, as in focal-loss detectors (RetinaNet).
PRIOR_PROBABILITY = 0.01


class AttributeProjection(nn.Module):
    """Unit-norm level embedding (B, E) -> attribute logits (B, V_level), shared or not."""

    def __init__(
        self, embed_dim: int, attribute_sizes: dict[str, int], shared: bool = True
    ) -> None:
        super().__init__()
        unknown = [level for level in attribute_sizes if level not in ATTRIBUTE_LEVELS]
        if unknown:
            raise ValueError(f"attribute levels {unknown} unknown; choose from {ATTRIBUTE_LEVELS}")
        empty = [level for level, size in attribute_sizes.items() if size < 1]
        if empty:
            raise ValueError(
                f"attribute vocabulary of {empty} is empty; lower vocab.min_count or drop the "
                "level from model.levels"
            )
        self.shared = shared
        # unit-norm embeddings have coordinates of size 1/sqrt(E); rescaling them to size 1 lets
        # the logits reach confident values at the usual learning rates
        self.input_scale = math.sqrt(embed_dim)
        self.levels = tuple(level for level in ATTRIBUTE_LEVELS if level in attribute_sizes)
        groups = ("shared",) if shared else MODALITIES
        self.projections = nn.ModuleDict(
            {
                group: nn.ModuleDict(
                    {level: self._layer(embed_dim, attribute_sizes[level]) for level in self.levels}
                )
                for group in groups
            }
        )

    @staticmethod
    def _layer(embed_dim: int, size: int) -> nn.Linear:
        layer = nn.Linear(embed_dim, size)
        nn.init.constant_(layer.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))
        return layer

    def projection(self, modality: str, level: str) -> nn.Linear:
        """The layer that scores ``modality``'s ``level`` embedding (one object when shared)."""
        if modality not in MODALITIES:
            raise ValueError(f"modality {modality!r}; choose from {MODALITIES}")
        if level not in self.levels:
            raise KeyError(f"no attribute projection for level {level!r}; have {self.levels}")
        return self.projections["shared" if self.shared else modality][level]

    def forward(
        self, embeddings: dict[str, torch.Tensor], modality: str
    ) -> dict[str, torch.Tensor]:
        # embeddings level -> (B, E) -> logits level -> (B, V_level), for the attribute levels
        return {
            level: self.projection(modality, level)(embeddings[level] * self.input_scale)
            for level in self.levels
            if level in embeddings
        }
