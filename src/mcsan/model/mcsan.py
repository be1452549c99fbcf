"""MCSAN: the multi-level cross-modal semantic alignment network.

    video --VideoEncoder--> level -> (B, E) --L2--> v_l  \
                                                          cos_l = t_l . v_l,  s = sum_l w_l cos_l
    text  --TextEncoder---> level -> (B, E) --L2--> t_l  /
    v_l, t_l --AttributeProjection (shared weights)--> attribute logits per modality

Losses (each switchable in LossConfig, each level switchable in ModelConfig.levels):

    rank/<level>            bidirectional hinge with hardest negatives on cos_l (with
                            loss.level_aware_negatives, not against videos that have every
                            attribute the caption names at that level)
    rank/fused              the same on s / sum_l w_l (the mean, so the margin means the same)
    rank/role_swap          with loss.role_swap_negatives: hinge [margin - s(v, t) + s(v, t~)]_+
                            on the mean fused score, t~ the caption with subject and object
                            exchanged (``batches.role_swap``), v its own video
    rank/order_swap         with loss.order_swap_negatives: the same hinge on the relationship
                            cosine, t~ the caption with its events' order reversed (its
                            ordered triples' ranks turned round: "X and then Y" read as "Y
                            and then X"), for captions that state an order
    attr/video/<level>      focal (or plain) BCE of the video's attribute logits vs the union of
                            its captions' attributes
    attr/text/<level>       the same for the caption against its own attributes
    kl/<level>              KL between the video's and the caption's attribute distributions

    total = sum rank + attribute_weight * sum attr + kl_weight * sum kl

Because every level is L2-normalised, s equals one inner product of the concatenations
[sqrt(w_l) * v_l] and [sqrt(w_l) * t_l] (``fusion_scale`` / ``fuse_embeddings``), so a single
vector index reproduces the exact multi-level score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mcsan import ATTRIBUTE_LEVELS, LEVELS
from mcsan.config import LossConfig, ModelConfig
from mcsan.data.batches import Batch
from mcsan.model.attributes import AttributeProjection
from mcsan.model.losses import (
    attribute_kl,
    focal_bce,
    plain_bce,
    ranking_loss,
    same_at_level,
)
from mcsan.model.text import TextEncoder
from mcsan.model.video import VideoEncoder


@dataclass
class ModelOutput:
    video: dict[str, torch.Tensor]  # level -> (B, E) L2-normalised
    text: dict[str, torch.Tensor]  # level -> (B, E) L2-normalised
    similarities: dict[str, torch.Tensor]  # level -> (B_t, B_v) cosine
    fused: torch.Tensor  # (B_t, B_v) sum_l w_l cos_l
    video_attributes: dict[str, torch.Tensor]  # attribute level -> (B, V_level) logits
    text_attributes: dict[str, torch.Tensor]  # attribute level -> (B, V_level) logits
    # with loss.role_swap_negatives: fused score of each role-swapped caption with its own
    # video, (S,), for the batch rows batch.role_swaps.rows; None otherwise
    role_swap_fused: torch.Tensor | None = None
    # with loss.order_swap_negatives: the batch rows that state an order (S,) and the
    # relationship cosine of each order-swapped caption with its own video (S,); else None
    order_swap: tuple[torch.Tensor, torch.Tensor] | None = None


class MCSAN(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        loss_config: LossConfig,
        video_dim: int,
        vocab_size: int,
        attribute_sizes: dict[str, int],
        region_dim: int = 0,
    ) -> None:
        super().__init__()
        unknown = [level for level in config.levels if level not in LEVELS]
        if unknown or not config.levels:
            raise ValueError(f"model.levels={config.levels}; choose a non-empty subset of {LEVELS}")
        if loss_config.attribute_loss not in ("focal", "bce", "none"):
            raise ValueError(
                f"loss.attribute_loss={loss_config.attribute_loss!r}; choose focal, bce or none"
            )
        self.config = config
        self.loss_config = loss_config
        self.levels = tuple(level for level in LEVELS if level in config.levels)
        self.level_weights = self._checked_weights(config)

        self.video = VideoEncoder(video_dim, config, region_dim)
        self.text = TextEncoder(vocab_size, config)

        attribute_levels = [level for level in ATTRIBUTE_LEVELS if level in self.levels]
        uses_attributes = loss_config.attribute_loss != "none" or loss_config.kl
        self.attributes: AttributeProjection | None = None
        if uses_attributes and attribute_levels:
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
        has_ranking = loss_config.ranking_per_level or loss_config.ranking_fused
        if not has_ranking and self.attributes is None:
            raise ValueError(
                "every loss term is switched off for these levels; turn on loss.ranking_per_level, "
                "loss.ranking_fused, loss.attribute_loss or loss.kl"
            )

    @staticmethod
    def _checked_weights(config: ModelConfig) -> dict[str, float]:
        weights = {}
        for level in LEVELS:
            if level not in config.levels:
                continue
            if level not in config.level_weights:
                raise KeyError(f"model.level_weights has no weight for active level {level!r}")
            weight = float(config.level_weights[level])
            if weight < 0 or not math.isfinite(weight):
                raise ValueError(f"model.level_weights[{level!r}]={weight}; weights must be >= 0")
            weights[level] = weight
        if sum(weights.values()) <= 0:
            raise ValueError(f"model.level_weights are all zero for the levels {list(weights)}")
        return weights

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
    def forward(self, batch: Batch) -> ModelOutput:
        video = self.encode_video(batch.video, batch.video_mask, batch.regions)
        text = self.encode_text(
            batch.words, batch.word_mask, batch.level_masks, batch.role_masks, batch.tokens,
            batch.relation_orders,
        )
        similarities = self.level_similarities(text, video)
        return ModelOutput(
            video=video,
            text=text,
            similarities=similarities,
            fused=self._weighted_sum(similarities),
            video_attributes=self.predict_attributes(video, "video"),
            text_attributes=self.predict_attributes(text, "text"),
            role_swap_fused=self._role_swap_fused(batch, video),
            order_swap=self._order_swap(batch, video),
        )

    def _order_swap(
        self, batch: Batch, video: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        # video level -> (B, E) -> rows (S,), cos_relationship(order-swapped caption, video) (S,)
        if not self.loss_config.order_swap_negatives or "relationship" not in self.levels:
            return None
        orders = batch.relation_orders  # (B, R)
        last = orders.max(dim=1).values  # (B,)
        first = orders.masked_fill(orders == 0, torch.iinfo(orders.dtype).max).min(dim=1).values
        rows = (last > first).nonzero().flatten()  # (S,) captions with two ranks or more
        if rows.numel() == 0:
            return None
        ordered = orders[rows]  # (S, R)
        reversed_orders = torch.where(
            ordered > 0, first[rows, None] + last[rows, None] - ordered, ordered
        )  # (S, R): first and last rank exchanged, unordered triples left alone
        swapped = self.encode_text(
            batch.words[rows],
            batch.word_mask[rows],
            {level: mask[rows] for level, mask in batch.level_masks.items()},
            batch.role_masks[rows],
            [batch.tokens[i] for i in rows.tolist()],
            reversed_orders,
        )["relationship"]  # (S, E)
        return rows, (swapped * video["relationship"][rows]).sum(-1)

    def _role_swap_fused(
        self, batch: Batch, video: dict[str, torch.Tensor]
    ) -> torch.Tensor | None:
        # video level -> (B, E) -> (S,) sum_l w_l cos_l(swapped caption, its own video)
        swaps = batch.role_swaps
        if not self.loss_config.role_swap_negatives or swaps is None:
            return None
        rows = swaps.rows  # (S,)
        swapped = self.encode_text(
            swaps.words,
            batch.word_mask[rows],
            {level: mask[rows] for level, mask in batch.level_masks.items()},
            batch.role_masks[rows],
            swaps.tokens,
            batch.relation_orders[rows],
        )  # level -> (S, E)
        return self._weighted_sum(
            {level: (swapped[level] * video[level][rows]).sum(-1) for level in self.levels}
        )

    def loss_terms(
        self, output: ModelOutput, batch: Batch, hardest_negatives: bool | None = None
    ) -> dict[str, torch.Tensor]:
        """Every active loss term, unweighted, each a scalar that still carries its graph.
        ``hardest_negatives`` overrides ``loss.max_violation`` (the trainer's warm-up)."""
        lc = self.loss_config
        hardest = lc.max_violation if hardest_negatives is None else hardest_negatives
        terms: dict[str, torch.Tensor] = {}
        positives = batch.positive_mask.to(output.fused.device)  # (B_t, B_v)
        if lc.ranking_per_level:
            for level in self.levels:
                not_negative = None  # (B_t, B_v) or None: global has no attributes
                if lc.level_aware_negatives and level in batch.text_targets:
                    not_negative = same_at_level(
                        batch.text_targets[level], batch.video_targets[level]
                    ).to(positives.device)
                terms[f"rank/{level}"] = ranking_loss(
                    output.similarities[level], positives, lc.margin, hardest, not_negative
                )
        if lc.ranking_fused:
            mean_score = output.fused / sum(self.level_weights.values())  # (B_t, B_v)
            terms["rank/fused"] = ranking_loss(mean_score, positives, lc.margin, hardest)
        if output.role_swap_fused is not None:
            rows = batch.role_swaps.rows.to(output.fused.device)  # (S,)
            total_weight = sum(self.level_weights.values())
            own = output.fused[rows, rows] / total_weight  # (S,) caption i with video i
            swapped = output.role_swap_fused / total_weight  # (S,)
            terms["rank/role_swap"] = (lc.margin - own + swapped).clamp(min=0).mean()
        if output.order_swap is not None:
            rows, swapped = output.order_swap  # (S,), (S,)
            own = output.similarities["relationship"][rows, rows]  # (S,)
            terms["rank/order_swap"] = (lc.margin - own + swapped).clamp(min=0).mean()
        for level in output.video_attributes:
            video_logits = output.video_attributes[level]  # (B, V)
            text_logits = output.text_attributes[level]  # (B, V)
            if lc.attribute_loss != "none":
                for modality, logits, targets in (
                    ("video", video_logits, batch.video_targets),
                    ("text", text_logits, batch.text_targets),
                ):
                    target = self._checked_target(targets, level, modality, logits)
                    terms[f"attr/{modality}/{level}"] = self._attribute_loss(logits, target)
            if lc.kl:
                terms[f"kl/{level}"] = attribute_kl(video_logits, text_logits)
        return terms

    def compute_loss(
        self, batch: Batch, hardest_negatives: bool | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the unweighted terms (detached), named as in the module docstring."""
        terms = self.loss_terms(self(batch), batch, hardest_negatives)
        weight = {
            "rank": 1.0,
            "attr": self.loss_config.attribute_weight,
            "kl": self.loss_config.kl_weight,
        }
        total = sum(weight[name.split("/")[0]] * value for name, value in terms.items())
        return total, {name: value.detach() for name, value in terms.items()}

    def _attribute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # logits (B, V), targets (B, V) multi-hot -> scalar
        if self.loss_config.attribute_loss == "focal":
            return focal_bce(
                logits, targets, self.loss_config.focal_alpha, self.loss_config.focal_gamma
            )
        return plain_bce(logits, targets)

    @staticmethod
    def _checked_target(
        targets: dict[str, torch.Tensor], level: str, modality: str, logits: torch.Tensor
    ) -> torch.Tensor:
        # -> (B, V) float targets on the logits' device
        if level not in targets:
            raise KeyError(f"the batch has no {modality} attribute targets for level {level!r}")
        target = targets[level]
        if target.shape != logits.shape:
            raise ValueError(
                f"{modality} {level} targets have shape {tuple(target.shape)} but the model "
                f"predicts {tuple(logits.shape)}; the attribute vocabulary differs from the one "
                "the model was built with"
            )
        return target.to(device=logits.device, dtype=logits.dtype)
