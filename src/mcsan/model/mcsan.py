"""MCSAN: the multi-level cross-modal semantic alignment network.

    video --VideoEncoder--> level -> (B, E) --L2--> v_l  \
                                                          cos_l = t_l . v_l,  s = sum_l w_l cos_l
    text  --TextEncoder---> level -> (B, E) --L2--> t_l  /
    v_l, t_l --AttributeProjection (shared weights)--> attribute logits per modality

The losses (``mcsan.model.losses.MCSANLoss``) read the rows of ``forward``'s output.

Because every level is L2-normalised, s equals one inner product of the concatenations
[sqrt(w_l) * v_l] and [sqrt(w_l) * t_l] (``fusion_scale`` / ``fuse_embeddings``), so a single
vector index reproduces the exact multi-level score.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mcsan import ATTRIBUTE_LEVELS
from mcsan.config import ModelConfig
from mcsan.data.batches import Batch
from mcsan.model.attributes import AttributeProjection
from mcsan.model.outputs import ModelOutput, SwapScores
from mcsan.model.text import TextEncoder
from mcsan.model.video import VideoEncoder


class MCSAN(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        video_dim: int,
        vocab_size: int,
        attribute_sizes: dict[str, int],
        region_dim: int = 0,
        attribute_heads: bool = True,
    ) -> None:
        """``attribute_heads``: build the attribute projection (the loss's attribute and KL
        terms read it; ``losses.uses_attribute_heads``)."""
        super().__init__()
        config.validate()
        self.config = config
        self.levels = config.active_levels
        self.level_weights = {level: float(config.level_weights[level]) for level in self.levels}

        self.video = VideoEncoder(video_dim, config, region_dim)
        self.text = TextEncoder(vocab_size, config)

        attribute_levels = [level for level in ATTRIBUTE_LEVELS if level in self.levels]
        self.attributes: AttributeProjection | None = None
        if attribute_heads and attribute_levels:
            missing = [level for level in attribute_levels if level not in attribute_sizes]
            if missing:
                raise KeyError(
                    f"no attribute vocabulary size for level(s) {missing}; build the vocabularies "
                    "for them or drop them from model.levels"
                )
            self.attributes = AttributeProjection(
                config.embed_dim,
                {level: attribute_sizes[level] for level in attribute_levels},
                shared=config.shared_attribute_projection,
            )

    # ----- embeddings and scores -----------------------------------------------------------
    def encode_video(
        self, video: torch.Tensor, video_mask: torch.Tensor, regions: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        # video (B, T, D), video_mask (B, T), regions (B, T, R, Dr) -> level -> (B, E), unit norm
        return {
            k: F.normalize(v, dim=-1) for k, v in self.video(video, video_mask, regions).items()
        }

    def encode_text(
        self,
        words: torch.Tensor,
        word_mask: torch.Tensor,
        level_masks: dict[str, torch.Tensor],
        role_masks: torch.Tensor | None = None,
        tokens: list[list[str]] | None = None,
        relation_orders: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        # words (B, L), word_mask (B, L), level_masks level -> (B, L), role_masks (B, R, 3, L),
        # relation_orders (B, R) -> level -> (B, E), unit norm
        embeddings = self.text(
            words, word_mask, level_masks, role_masks, tokens, relation_orders
        )
        return {k: F.normalize(v, dim=-1) for k, v in embeddings.items()}

    def level_similarities(
        self, text_emb: dict[str, torch.Tensor], video_emb: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        # text_emb level -> (N_t, E), video_emb level -> (N_v, E) -> level -> (N_t, N_v) cosine
        return {level: text_emb[level] @ video_emb[level].T for level in self.levels}

    def fused_similarity(
        self, text_emb: dict[str, torch.Tensor], video_emb: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        # -> (N_t, N_v) sum_l w_l cos_l over the active levels
        return self._weighted_sum(self.level_similarities(text_emb, video_emb))

    def _weighted_sum(self, similarities: dict[str, torch.Tensor]) -> torch.Tensor:
        # similarities level -> (N_t, N_v) (or (S,) pairs) -> the same shape
        return sum(self.level_weights[level] * similarities[level] for level in self.levels)

    def fusion_scale(self, weights: dict[str, float] | None = None) -> dict[str, float]:
        """sqrt(w_l) per active level (of the model's weights, or of ``weights``): scaling
        each unit vector by it makes the fused score one inner product of the concatenations."""
        weights = self.level_weights if weights is None else weights
        return {level: math.sqrt(weights[level]) for level in self.levels}

    def fuse_embeddings(
        self, embeddings: dict[str, torch.Tensor], weights: dict[str, float] | None = None
    ) -> torch.Tensor:
        # embeddings level -> (N, E) unit norm -> (N, L * E) = [sqrt(w_l) * e_l] in LEVELS order
        scale = self.fusion_scale(weights)
        return torch.cat([scale[level] * embeddings[level] for level in self.levels], dim=-1)

    def predict_attributes(
        self, embeddings: dict[str, torch.Tensor], modality: str
    ) -> dict[str, torch.Tensor]:
        # embeddings level -> (B, E); modality "video" | "text" -> level -> (B, V_level) logits
        if self.attributes is None:
            return {}
        return self.attributes(embeddings, modality)

    # ----- training ------------------------------------------------------------------------
    def forward(
        self, batch: Batch, role_swaps: bool = False, order_swaps: bool = False
    ) -> ModelOutput:
        """Both sides' embeddings and attribute logits of every row; with ``role_swaps`` /
        ``order_swaps`` also the scores of the captions' swapped readings with their videos
        (what ``MCSANLoss.swapped_readings`` asks for)."""
        video = self.encode_video(batch.video, batch.video_mask, batch.regions)
        text = self.encode_text(
            batch.words, batch.word_mask, batch.level_masks, batch.role_masks, batch.tokens,
            batch.relation_orders,
        )
        return ModelOutput(
            video=video,
            text=text,
            video_attributes=self.predict_attributes(video, "video"),
            text_attributes=self.predict_attributes(text, "text"),
            role_swap=self._role_swap(batch, video) if role_swaps else None,
            order_swap=self._order_swap(batch, video) if order_swaps else None,
        )

    def _encode_reading(
        self,
        batch: Batch,
        rows: torch.Tensor,
        words: torch.Tensor,
        tokens: list[list[str]],
        relation_orders: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        # another reading of the captions at rows (S,): their spans and masks, other words
        # (S, L) or event orders (S, R) -> level -> (S, E), unit norm
        return self.encode_text(
            words,
            batch.word_mask[rows],
            {level: mask[rows] for level, mask in batch.level_masks.items()},
            batch.role_masks[rows],
            tokens,
            relation_orders,
        )

    def _order_swap(self, batch: Batch, video: dict[str, torch.Tensor]) -> SwapScores | None:
        # video level -> (B, E) -> relationship cosine of each order-swapped caption with its
        # own video, for the captions with two event ranks or more
        if "relationship" not in self.levels:
            return None
        orders = batch.relation_orders  # (B, R)
        last = orders.max(dim=1).values  # (B,)
        first = orders.masked_fill(orders == 0, torch.iinfo(orders.dtype).max).min(dim=1).values
        present = last > first  # (B,)
        rows = present.nonzero().flatten()  # (S,)
        scores = video["relationship"].new_zeros(len(present))  # (B,)
        if rows.numel() == 0:
            return SwapScores(present, scores)
        ordered = orders[rows]  # (S, R)
        reversed_orders = torch.where(
            ordered > 0, first[rows, None] + last[rows, None] - ordered, ordered
        )  # (S, R): first and last rank exchanged, unordered triples left alone
        swapped = self._encode_reading(
            batch, rows, batch.words[rows], [batch.tokens[i] for i in rows.tolist()],
            reversed_orders,
        )["relationship"]  # (S, E)
        own_video = video["relationship"][rows]  # (S, E)
        return SwapScores(present, scores.index_put((rows,), (swapped * own_video).sum(-1)))

    def _role_swap(self, batch: Batch, video: dict[str, torch.Tensor]) -> SwapScores:
        # video level -> (B, E) -> sum_l w_l cos_l(role-swapped caption, its own video)
        scores = video[self.levels[0]].new_zeros(batch.words.shape[0])  # (B,)
        present = torch.zeros_like(scores, dtype=torch.bool)  # (B,)
        swaps = batch.role_swaps
        if swaps is None:
            return SwapScores(present, scores)
        rows = swaps.rows  # (S,)
        swapped = self._encode_reading(
            batch, rows, swaps.words, swaps.tokens, batch.relation_orders[rows]
        )  # level -> (S, E)
        fused = self._weighted_sum(
            {level: (swapped[level] * video[level][rows]).sum(-1) for level in self.levels}
        )  # (S,)
        return SwapScores(present.index_fill(0, rows, True), scores.index_put((rows,), fused))
