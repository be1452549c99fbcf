"""Losses of MCSAN: bidirectional hinge ranking, focal / plain BCE on attributes, attribute KL,
and :class:`MCSANLoss`, which combines them as ``LossConfig`` says:

    rank/<level>            bidirectional hinge with hardest negatives on cos_l (with
                            loss.level_aware_negatives, not against videos that have every
                            attribute the caption names at that level)
    rank/fused              the same on the mean fused score s / sum_l w_l, s = sum_l w_l cos_l
    rank/role_swap          with loss.role_swap_negatives: hinge [margin - s(v, t) + s(v, t~)]_+
                            on the mean fused score, t~ the caption with subject and object
                            exchanged (``batches.role_swap``), v its own video
    rank/order_swap         with loss.order_swap_negatives: the same hinge on the relationship
                            cosine, t~ the caption with its events' order reversed ("X and then
                            Y" read as "Y and then X"), for captions that state an order
    attr/video/<level>      focal (or plain) BCE of the video's attribute logits vs the union of
                            its captions' attributes
    attr/text/<level>       the same for the caption against its own attributes
    kl/<level>              KL between the video's and the caption's attribute distributions

    total = sum rank + attribute_weight * sum attr + kl_weight * sum kl

The loss reads the rows of a :class:`~mcsan.model.outputs.ModelOutput` and makes every score
between captions and videos itself, so the rows of several micro-batches or processes,
concatenated, give the loss of the whole batch.

Choices made here (the paper's abstract names the losses, not their exact form):

* ``ranking_loss`` averages over positive pairs (not the sum of VSE++), so its scale does not
  depend on the batch size and the margin keeps its meaning as the batch grows.
* ``focal_bce`` and ``plain_bce`` sum over all (item, attribute) entries and divide by the
  number of positive entries (at least 1), as RetinaNet does: with a large, imbalanced
  vocabulary the easy negatives contribute almost nothing under focusing, and a mean over all
  entries would shrink the loss with the vocabulary size. Both use the same normalisation, so
  switching ``loss.attribute_loss`` between ``focal`` and ``bce`` changes only the focusing and
  class weighting: ``focal_bce(alpha=None, gamma=0) == plain_bce`` exactly, and with
  ``alpha=0.5`` it is half of it.
* ``attribute_kl`` treats each side's attribute logits as a distribution over the vocabulary
  (softmax with a temperature) and computes ``KL(text || video)``: a caption names only part of
  what a video shows (the video's targets are the union over its captions), so the video's
  distribution must cover the caption's attributes (mode-covering direction), while it may keep
  mass on attributes other captions mention. The reverse direction would instead push the video
  to drop everything this particular caption does not say.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from mcsan.config import LossConfig
from mcsan.model.outputs import LossTargets, ModelOutput


def uses_attribute_heads(config: LossConfig) -> bool:
    """Whether the loss reads attribute logits (the model then needs its attribute projection)."""
    return config.attribute_loss != "none" or config.kl


class MCSANLoss:
    """The training loss of MCSAN, from ``LossConfig`` and the model's fusion weights."""

    def __init__(self, config: LossConfig, level_weights: dict[str, float]) -> None:
        if config.attribute_loss not in ("focal", "bce", "none"):
            raise ValueError(
                f"loss.attribute_loss={config.attribute_loss!r}; choose focal, bce or none"
            )
        has_attributes = uses_attribute_heads(config) and set(level_weights) - {"global"}
        if not (config.ranking_per_level or config.ranking_fused or has_attributes):
            raise ValueError(
                "every loss term is switched off for these levels; turn on loss.ranking_per_level, "
                "loss.ranking_fused, loss.attribute_loss or loss.kl"
            )
        self.config = config
        self.level_weights = level_weights  # active level -> w_l, in LEVELS order
        self.total_weight = sum(level_weights.values())

    @property
    def swapped_readings(self) -> dict[str, bool]:
        """What ``MCSAN.forward`` must score besides the batch itself for this loss."""
        return {"role_swaps": self.config.role_swap_negatives,
                "order_swaps": self.config.order_swap_negatives}

    def __call__(
        self, output: ModelOutput, targets: LossTargets, hardest_negatives: bool | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the unweighted terms (detached)."""
        terms = self.terms(output, targets, hardest_negatives)
        weights = {"rank": 1.0, "attr": self.config.attribute_weight, "kl": self.config.kl_weight}
        total = sum(weights[name.split("/")[0]] * value for name, value in terms.items())
        return total, {name: value.detach() for name, value in terms.items()}

    def terms(
        self, output: ModelOutput, targets: LossTargets, hardest_negatives: bool | None = None
    ) -> dict[str, torch.Tensor]:
        """Every active term, unweighted, each a scalar that still carries its graph.
        ``hardest_negatives`` overrides ``loss.max_violation`` (the trainer's warm-up)."""
        lc = self.config
        hardest = lc.max_violation if hardest_negatives is None else hardest_negatives
        terms: dict[str, torch.Tensor] = {}
        positives = targets.positive_mask  # (B, B)
        similarities = {  # level -> (B_t, B_v) cosine
            level: output.text[level] @ output.video[level].T for level in self.level_weights
        }
        if lc.ranking_per_level:
            for level, similarity in similarities.items():
                not_negative = None  # (B_t, B_v) or None: global has no attributes
                if lc.level_aware_negatives and level in targets.text_targets:
                    not_negative = same_at_level(
                        targets.text_targets[level], targets.video_targets[level]
                    )
                terms[f"rank/{level}"] = ranking_loss(
                    similarity, positives, lc.margin, hardest, not_negative
                )
        if lc.ranking_fused:
            mean_score = self._fused(similarities) / self.total_weight  # (B_t, B_v)
            terms["rank/fused"] = ranking_loss(mean_score, positives, lc.margin, hardest)
        if output.role_swap is not None and output.role_swap.present.any():
            own = self._fused({  # (B,) caption i with video i
                level: (output.text[level] * output.video[level]).sum(-1)
                for level in self.level_weights
            })
            terms["rank/role_swap"] = swap_hinge(
                own / self.total_weight, output.role_swap.score / self.total_weight,
                output.role_swap.present, lc.margin,
            )
        if output.order_swap is not None and output.order_swap.present.any():
            own = (output.text["relationship"] * output.video["relationship"]).sum(-1)  # (B,)
            terms["rank/order_swap"] = swap_hinge(
                own, output.order_swap.score, output.order_swap.present, lc.margin
            )
        for level in output.video_attributes:
            video_logits = output.video_attributes[level]  # (B, V)
            text_logits = output.text_attributes[level]  # (B, V)
            if lc.attribute_loss != "none":
                for modality, logits, labelled in (
                    ("video", video_logits, targets.video_targets),
                    ("text", text_logits, targets.text_targets),
                ):
                    target = _checked_target(labelled, level, modality, logits)
                    terms[f"attr/{modality}/{level}"] = self._attribute_loss(logits, target)
            if lc.kl:
                terms[f"kl/{level}"] = attribute_kl(video_logits, text_logits)
        return terms

    def _fused(self, similarities: dict[str, torch.Tensor]) -> torch.Tensor:
        # level -> any shape -> the same shape, sum_l w_l sim_l
        return sum(self.level_weights[level] * similarities[level] for level in self.level_weights)

    def _attribute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # logits (B, V), targets (B, V) multi-hot -> scalar
        if self.config.attribute_loss == "focal":
            return focal_bce(logits, targets, self.config.focal_alpha, self.config.focal_gamma)
        return plain_bce(logits, targets)


def swap_hinge(
    own: torch.Tensor, swapped: torch.Tensor, present: torch.Tensor, margin: float
) -> torch.Tensor:
    """Mean over the rows with a swapped reading of ``[margin - own + swapped]_+``: each caption
    scored with its own video above its swapped reading. own, swapped (B,), present (B,) bool."""
    return (margin - own[present] + swapped[present]).clamp(min=0).mean()


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


def ranking_loss(
    sim: torch.Tensor,
    positive_mask: torch.Tensor,
    margin: float,
    max_violation: bool = True,
    not_negative: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bidirectional hinge ranking loss over a batch of captions x videos.

    sim: (B_t, B_v) scores; positive_mask: (B_t, B_v) bool, True where caption i describes
    video j (a batch may hold several captions of one video: those are never negatives).
    For every positive pair (i, j) the text->video term uses the negatives of row i (other
    videos) and the video->text term the negatives of column j (other captions):
    ``[margin - s_ij + s_ik]_+`` and ``[margin - s_ij + s_kj]_+``, the hardest negative of
    each when ``max_violation`` (VSE++), else summed over negatives. ``not_negative``
    (B_t, B_v) bool marks further pairs that are no negatives (see ``same_at_level``).
    Returns the mean over positive pairs of the two terms' sum.  # -> ()
    """
    if sim.dim() != 2 or positive_mask.shape != sim.shape:
        raise ValueError(
            f"sim {tuple(sim.shape)} and positive_mask {tuple(positive_mask.shape)} must both "
            "be (captions, videos)"
        )
    if positive_mask.dtype != torch.bool:
        raise TypeError(f"positive_mask must be bool, got {positive_mask.dtype}")
    captions, videos = torch.nonzero(positive_mask, as_tuple=True)  # (P,), (P,)
    if captions.numel() == 0:
        raise ValueError("positive_mask has no positive pair; every batch needs matched pairs")
    skip = positive_mask if not_negative is None else positive_mask | not_negative  # (B_t, B_v)
    positive_score = sim[captions, videos][:, None]  # (P, 1)
    # text -> video: row i against the videos that are negatives for caption i
    row_cost = (margin - positive_score + sim[captions]).clamp(min=0)  # (P, B_v)
    row_cost = row_cost.masked_fill(skip[captions], 0.0)
    # video -> text: column j against the captions that are negatives for video j
    column_cost = (margin - positive_score + sim.T[videos]).clamp(min=0)  # (P, B_t)
    column_cost = column_cost.masked_fill(skip.T[videos], 0.0)
    if max_violation:
        per_pair = row_cost.amax(1) + column_cost.amax(1)  # (P,)
    else:
        per_pair = row_cost.sum(1) + column_cost.sum(1)  # (P,)
    return per_pair.mean()


def same_at_level(text_targets: torch.Tensor, video_targets: torch.Tensor) -> torch.Tensor:
    """(B_t, B_v) bool: video j has every attribute that caption i names at this level, and
    caption i names at least one. At that level j then says what i says ("a dog chases a cat"
    and the video of "a cat chases a dog" have the same entities and action), so a level's
    ranking loss that counted j as a negative for i would ask for a difference the level cannot
    see. text_targets (B_t, V), video_targets (B_v, V) multi-hot (a video's: union over its
    captions)."""
    text_targets, video_targets = text_targets.float(), video_targets.float()
    missing = text_targets @ (1.0 - video_targets).T  # (B_t, B_v) named but not in the video
    names_some = text_targets.sum(dim=1, keepdim=True) > 0  # (B_t, 1)
    return (missing < 0.5) & names_some


def _check_attribute_inputs(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.shape != targets.shape:
        raise ValueError(
            f"attribute logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ "
            "in shape; the vocabulary of the targets is not the model's"
        )


def focal_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Focal binary cross-entropy (Lin et al., 2017) over multi-hot attribute targets.

    logits: (B, V), targets: (B, V) in {0, 1}. Per entry
    ``-alpha_t * (1 - p_t)**gamma * log(p_t)`` with ``p_t`` the probability of the true label
    and ``alpha_t = alpha`` for positives, ``1 - alpha`` for negatives (no weighting when
    ``alpha`` is None); summed and divided by the number of positives (at least 1).
    Computed from ``logsigmoid`` so extreme logits stay finite.  # -> ()
    """
    _check_attribute_inputs(logits, targets)
    targets = targets.to(logits.dtype)
    log_p = F.logsigmoid(logits)  # (B, V) log P(label = 1)
    log_not_p = F.logsigmoid(-logits)  # (B, V) log P(label = 0)
    log_p_true = targets * log_p + (1 - targets) * log_not_p  # (B, V) log p_t
    log_p_false = targets * log_not_p + (1 - targets) * log_p  # (B, V) log(1 - p_t)
    loss = -log_p_true * torch.exp(gamma * log_p_false)  # (B, V)
    if alpha is not None:
        loss = loss * (targets * alpha + (1 - targets) * (1 - alpha))
    return loss.sum() / targets.sum().clamp(min=1)


def plain_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy, normalised like ``focal_bce``.  logits, targets: (B, V)  # -> ()"""
    _check_attribute_inputs(logits, targets)
    targets = targets.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    return loss / targets.sum().clamp(min=1)


def attribute_kl(
    video_logits: torch.Tensor, text_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``KL(text || video)`` between the attribute distributions of matched pairs.

    video_logits, text_logits: (B, V), row i of each from the same (video, caption) pair.
    Each row becomes a distribution over the V attributes by ``softmax(logits / temperature)``;
    the loss is the sum over attributes, mean over pairs. Computed from ``log_softmax`` on
    both sides, so it stays finite for extreme (finite) logits. Gradients reach both
    modalities.  # -> ()
    """
    if video_logits.shape != text_logits.shape or video_logits.dim() != 2:
        raise ValueError(
            f"video logits {tuple(video_logits.shape)} and text logits "
            f"{tuple(text_logits.shape)} must both be (pairs, attributes)"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_video = F.log_softmax(video_logits / temperature, dim=1)  # (B, V)
    log_text = F.log_softmax(text_logits / temperature, dim=1)  # (B, V)
    return F.kl_div(log_video, log_text, reduction="batchmean", log_target=True)
