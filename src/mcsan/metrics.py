"""Retrieval metrics (R@k, MedR, MnR, rsum) and attribute mAP: pure tensor code.

Protocol
--------
``M`` captions are scored against ``N`` videos. Each caption belongs to exactly one video
(``caption_to_video``); a video may have several captions, or none (a distractor: it still
competes in text->video, but cannot be a video->text query). The fused score is
``s(c, v) = sum_l w_l * (t_l[c] . v_l[v])`` over the levels given.

Ranks are 1-based and **ties count against the model**:

* text->video: ``rank(c) = 1 + #{videos v' != video(c) : s(c, v') >= s(c, video(c))}``.
* video->text: a video's rank is the best (smallest) rank of any of its captions in the video's
  column, where a caption is ranked only against the captions of *other* videos:
  ``rank(v) = 1 + #{captions c' of other videos : s(c', v) >= max_{c of v} s(c, v)}``.
  This is the position of the first correct caption in the column sorted by decreasing score
  when tied wrong captions are placed before correct ones (the usual "first correct item"
  rule, made pessimistic for ties).

A model whose scores are all equal therefore gets the worst ranks (N, resp. the number of
captions of other videos plus 1), never the best. MedR is the median rank (the mean of the two
middle ranks when the count is even, as ``numpy.median``); MnR the mean rank. R@k are
percentages; rsum is the sum of the six recalls.

How ranks are computed
----------------------
Never by sorting rows, never by materialising the M x N score matrix. Captions are scored in
chunks of ``chunk_size`` rows against all videos (``chunk_size x N`` scores at a time, one
pass, the same matrix products as the plain score computation):

* text->video ranks come from each row alone: count the entries ``>=`` the row's ground truth.
* video->text needs each video's best correct score before the pass over its column is done.
  A cheap pre-pass computes every caption's ground-truth score as a row-wise dot product,
  with a bound on the float rounding of both computations, which gives each video an interval
  ``[lo, hi]`` holding its best score. During the pass, wrong captions scoring ``>= hi`` are
  counted at once; the few scoring inside ``[lo, hi)`` are kept (value and video) and compared
  with the exact best score (taken from the very same products) at the end. The result is
  exact for the scores the pass computed. If the interval turns out not to hold the best
  score, or too many scores fall inside it (a collapsed model with near-constant scores), the
  video->text ranks are recomputed exactly by a second pass over video rows.

Attribute mAP
-------------
``attribute_map`` is the mean over attributes (columns) that have at least one positive of the
average precision of that column: ``AP = mean over positives p of precision(>= score(p))``,
where ``precision(>= s)`` counts every item scoring ``>= s`` (tied items enter together, as in
scikit-learn's ``average_precision_score``). Attributes without positives are left out of the
mean (their AP is undefined); the count used is returned by ``attribute_map_report``. Where
no attribute has a positive the mAP itself is undefined: None. The mAP is given in percent,
like the recalls.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import torch

Embeddings = Mapping[str, torch.Tensor] | torch.Tensor
FUSED = "fused"  # the level name used when plain tensors (one level) are given
RECALL_AT = (1, 5, 10)


# ----- inputs ------------------------------------------------------------------------------
@dataclass
class _ScoringInputs:
    text: dict[str, torch.Tensor]  # level -> (M, E_l), on its original device
    video: dict[str, torch.Tensor]  # level -> (N, E_l), on the compute device, compute dtype
    weights: dict[str, float]  # level -> weight
    caption_to_video: torch.Tensor  # (M,) int64 on the compute device
    device: torch.device
    dtype: torch.dtype  # the dtype scores are computed in

    @property
    def num_captions(self) -> int:
        return self.caption_to_video.numel()

    @property
    def num_videos(self) -> int:
        return next(iter(self.video.values())).shape[0]

    @property
    def text_on_device(self) -> bool:
        return all(t.device == self.device and t.dtype == self.dtype for t in self.text.values())

    @property
    def total_dim(self) -> int:
        return sum(t.shape[1] for t in self.text.values())

    def text_chunk(self, level: str, start: int, stop: int) -> torch.Tensor:
        # -> (stop - start, E_l) on the compute device
        return self.text[level][start:stop].to(device=self.device, dtype=self.dtype)


def _as_levels(embeddings: Embeddings, side: str) -> dict[str, torch.Tensor]:
    if isinstance(embeddings, torch.Tensor):
        return {FUSED: embeddings}
    if not isinstance(embeddings, Mapping) or not embeddings:
        raise TypeError(f"{side} embeddings must be a tensor or a non-empty dict level -> tensor")
    return dict(embeddings)


def _prepare(
    text_emb: Embeddings,
    video_emb: Embeddings,
    caption_to_video: torch.Tensor,
    level_weights: Mapping[str, float] | None,
    device: torch.device | str | None,
) -> _ScoringInputs:
    if isinstance(text_emb, torch.Tensor) != isinstance(video_emb, torch.Tensor):
        raise TypeError("give text and video embeddings both as tensors or both as dicts")
    if isinstance(text_emb, torch.Tensor) and level_weights is not None:
        raise TypeError("level_weights needs embeddings given as dicts level -> tensor")
    if caption_to_video.dtype not in (torch.int32, torch.int64) or caption_to_video.dim() != 1:
        raise TypeError("caption_to_video must be a 1-D integer tensor (video index per caption)")
    text = _as_levels(text_emb, "text")
    video = _as_levels(video_emb, "video")
    if set(text) != set(video):
        raise ValueError(
            f"text levels {sorted(text)} differ from video levels {sorted(video)}; "
            "score both modalities with the same levels"
        )
    if level_weights is None:
        weights = {level: 1.0 for level in text}
    else:
        missing = [level for level in text if level not in level_weights]
        if missing:
            raise KeyError(f"level_weights has no weight for level(s) {missing}; add them")
        weights = {level: float(level_weights[level]) for level in text}
    num_captions = caption_to_video.shape[0]
    num_videos = next(iter(video.values())).shape[0]
    for level in text:
        t, v = text[level], video[level]
        if t.dim() != 2 or v.dim() != 2 or t.shape[1] != v.shape[1]:
            raise ValueError(
                f"level {level!r}: text {tuple(t.shape)} and video {tuple(v.shape)} must be "
                "(captions, dim) and (videos, dim) with the same dim"
            )
        if t.shape[0] != num_captions or v.shape[0] != num_videos:
            raise ValueError(
                f"level {level!r}: {t.shape[0]} captions and {v.shape[0]} videos, but "
                f"caption_to_video has shape {tuple(caption_to_video.shape)} and other levels "
                f"have {num_videos} videos; every level must cover the same items"
            )
        for side, tensor in (("text", t), ("video", v)):
            if not tensor.is_floating_point():
                raise TypeError(f"{side} embeddings of level {level!r} must be floating point")
        if not bool(torch.isfinite(v).all()):  # text is checked chunk by chunk while scoring
            raise ValueError(
                f"video embeddings of level {level!r} contain NaN or Inf; "
                "the model diverged or an input feature is broken"
            )
    if num_captions == 0 or num_videos == 0:
        raise ValueError(
            f"need at least one caption and one video, got {num_captions}, {num_videos}"
        )
    low, high = int(caption_to_video.min()), int(caption_to_video.max())
    if low < 0 or high >= num_videos:
        raise ValueError(
            f"caption_to_video holds video index {low if low < 0 else high}, outside "
            f"[0, {num_videos}); it must index the rows of video_emb"
        )
    compute_device = (
        torch.device(device) if device is not None else next(iter(text.values())).device
    )
    dtype = torch.promote_types(next(iter(text.values())).dtype, torch.float32)
    return _ScoringInputs(
        text=text,
        video={level: v.to(device=compute_device, dtype=dtype) for level, v in video.items()},
        weights=weights,
        caption_to_video=caption_to_video.to(device=compute_device, dtype=torch.int64),
        device=compute_device,
        dtype=dtype,
    )


# ----- scores ------------------------------------------------------------------------------
def _caption_scores(inputs: _ScoringInputs, start: int, stop: int) -> torch.Tensor:
    """Fused scores of captions ``start:stop`` against every video.  # -> (stop - start, N)"""
    scores = torch.empty(stop - start, inputs.num_videos, device=inputs.device, dtype=inputs.dtype)
    for index, (level, weight) in enumerate(inputs.weights.items()):
        # scores = (scores if index else 0) + weight * (text chunk (c, E) @ video (E, N))
        scores.addmm_(
            inputs.text_chunk(level, start, stop),
            inputs.video[level].T,
            beta=1 if index else 0,
            alpha=weight,
        )
    return scores


def _video_scores(inputs: _ScoringInputs, start: int, stop: int, chunk_size: int) -> torch.Tensor:
    """Fused scores of videos ``start:stop`` against every caption.  # -> (stop - start, M)

    Text already on the compute device is used whole (one product per level); text elsewhere
    is brought over ``chunk_size`` captions at a time.
    """
    num_captions = inputs.num_captions
    scores = torch.empty(stop - start, num_captions, device=inputs.device, dtype=inputs.dtype)
    step = num_captions if inputs.text_on_device else chunk_size
    for first in range(0, num_captions, step):
        last = min(first + step, num_captions)
        for index, (level, weight) in enumerate(inputs.weights.items()):
            # (videos, E) @ (E, captions) -> (videos, captions), summed over levels
            scores[:, first:last].addmm_(
                inputs.video[level][start:stop],
                inputs.text_chunk(level, first, last).T,
                beta=1 if index else 0,
                alpha=weight,
            )
    return scores


def _rounding_unit(inputs: _ScoringInputs) -> float:
    """Relative rounding of one product term in the matrix product (inputs and accumulation)."""
    unit = torch.finfo(inputs.dtype).eps / 2
    if inputs.dtype == torch.float32:
        precision = torch.get_float32_matmul_precision()
        cuda_tf32 = inputs.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
        if precision == "medium":  # inputs may be rounded to bfloat16
            unit = max(unit, 2.0**-8)
        elif precision == "high" or cuda_tf32:  # inputs may be rounded to TensorFloat-32
            unit = max(unit, 2.0**-11)
    return unit


def _best_score_intervals(
    inputs: _ScoringInputs, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per video, an interval [lo, hi] that should hold its best correct caption's computed score.

    Each caption's ground-truth score is computed as a row-wise dot product; it and the matrix
    product each differ from the exact value by at most ``gamma * sum_l |w_l| |t_l| |v_l|``
    (Higham's bound for a dot product of K terms in any summation order, with Cauchy-Schwarz,
    plus the rounding of inputs, weights and sums; underflow is not covered). The caller
    checks that the interval held, so the bound decides speed, never correctness. This pass
    also rejects NaN / Inf text embeddings.  # -> lo (N,), hi (N,) in the compute dtype
    """
    terms = inputs.total_dim + 2 * len(inputs.weights) + 2
    unit = _rounding_unit(inputs)
    gamma = terms * unit / (1 - terms * unit) + 2 * unit
    video_norms = {level: v.norm(dim=1) for level, v in inputs.video.items()}  # (N,)
    centre = torch.zeros(inputs.num_captions, dtype=inputs.dtype, device=inputs.device)
    spread = torch.zeros_like(centre)  # sum_l |w_l| |t_l| |v_l| >= sum |w t v|
    rows = max(chunk_size, (1 << 24) // inputs.total_dim)  # few, large steps: ~16M entries each
    for start in range(0, inputs.num_captions, rows):
        stop = min(start + rows, inputs.num_captions)
        own_video = inputs.caption_to_video[start:stop]  # (r,)
        for level, weight in inputs.weights.items():
            text = inputs.text_chunk(level, start, stop)  # (r, E)
            video = inputs.video[level].index_select(0, own_video)  # (r, E)
            centre[start:stop].add_(torch.linalg.vecdot(text, video), alpha=weight)
            spread[start:stop].addcmul_(
                text.norm(dim=1), video_norms[level][own_video], value=abs(weight)
            )
    if not bool(torch.isfinite(spread).all()):
        row = int((~torch.isfinite(spread)).nonzero()[0])
        levels = [
            level for level, text in inputs.text.items() if not bool(text[row].isfinite().all())
        ]
        raise ValueError(
            f"text embeddings of level(s) {levels} contain NaN or Inf (caption row {row}); "
            "the model diverged or an input is broken"
        )
    margin = (2 * gamma + 4 * unit) * spread  # both computations, and the +/- below
    lo = torch.full((inputs.num_videos,), math.inf, dtype=inputs.dtype, device=inputs.device)
    hi = lo.clone()
    lo.scatter_reduce_(0, inputs.caption_to_video, centre - margin, "amax", include_self=False)
    hi.scatter_reduce_(0, inputs.caption_to_video, centre + margin, "amax", include_self=False)
    return lo, hi


# ----- ranks -------------------------------------------------------------------------------
def retrieval_ranks(
    text_emb: Embeddings,
    video_emb: Embeddings,
    caption_to_video: torch.Tensor,
    level_weights: Mapping[str, float] | None = None,
    chunk_size: int = 1024,
    device: torch.device | str | None = None,
    band_budget: int | None = None,
    force_second_pass: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text->video rank of every caption and video->text rank of every video (module rules).

    text_emb: level -> (M, E_l) or (M, E); video_emb: level -> (N, E_l) or (N, E);
    caption_to_video: (M,) video index of each caption. ``band_budget`` bounds how many
    near-tie scores the single pass may keep (default ``chunk_size * N``) before it falls back
    to a second pass for video->text; ``force_second_pass`` always takes that pass (exact as
    well, about twice the work: for checks and benchmarks).
    Returns t2v ranks (M,) int64 and v2t ranks (N,) int64 on the CPU; a video without
    captions gets v2t rank 0 (it is no query).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    inputs = _prepare(text_emb, video_emb, caption_to_video, level_weights, device)
    with torch.no_grad():
        return _ranks(inputs, chunk_size, band_budget, force_second_pass)


def _ranks(
    inputs: _ScoringInputs, chunk_size: int, band_budget: int | None, force_second_pass: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    num_captions, num_videos = inputs.num_captions, inputs.num_videos
    budget = chunk_size * num_videos if band_budget is None else band_budget
    if force_second_pass:
        budget = -1
    lo, hi = _best_score_intervals(inputs, chunk_size)  # (N,), (N,)
    t2v = torch.empty(num_captions, dtype=torch.int64, device=inputs.device)
    best = torch.full((num_videos,), -math.inf, dtype=inputs.dtype, device=inputs.device)
    surely_above = torch.zeros(num_videos, dtype=torch.int64, device=inputs.device)
    band_videos: list[torch.Tensor] = []  # each (n,) video index of a near-tie score
    band_scores: list[torch.Tensor] = []  # each (n,) that score
    band_size = 0
    for start in range(0, num_captions, chunk_size):
        stop = min(start + chunk_size, num_captions)
        scores = _caption_scores(inputs, start, stop)  # (c, N)
        own_video = inputs.caption_to_video[start:stop, None]  # (c, 1)
        truth = scores.gather(1, own_video)  # (c, 1)
        t2v[start:stop] = (scores >= truth).sum(1)  # the ground truth counts itself: 1 + others
        best.scatter_reduce_(0, own_video[:, 0], truth[:, 0], "amax")
        scores.scatter_(1, own_video, -math.inf)  # keep only captions of other videos
        if band_size > budget:  # overflowed: video->text comes from the second pass
            band_videos, band_scores = [], []
            continue
        at_least_lo = scores >= lo  # (c, N)
        at_least_hi = scores >= hi  # (c, N), a subset of at_least_lo
        surely_above += at_least_hi.sum(0)
        rows, cols = torch.nonzero(at_least_lo ^ at_least_hi, as_tuple=True)
        band_videos.append(cols)
        band_scores.append(scores[rows, cols])
        band_size += cols.numel()
    has_caption = torch.bincount(inputs.caption_to_video, minlength=num_videos) > 0  # (N,)
    interval_holds = bool(((lo <= best) & (best <= hi))[has_caption].all())
    if band_size > budget or not interval_holds:
        v2t = _v2t_ranks_by_video_rows(inputs, chunk_size)
    else:
        band_video = torch.cat(band_videos)
        above_best = torch.cat(band_scores) >= best[band_video]
        near_ties = torch.bincount(band_video[above_best], minlength=num_videos)
        v2t = torch.where(has_caption, 1 + surely_above + near_ties, 0)
    return t2v.cpu(), v2t.cpu()


def _v2t_ranks_by_video_rows(inputs: _ScoringInputs, chunk_size: int) -> torch.Tensor:
    """Exact video->text ranks from whole video rows, ``chunk_size // 4`` rows at a time.

    Each block holds ``chunk_size // 4 x M`` scores: blocks of that height keep the products
    efficient (every block reads all caption embeddings once).  # -> (N,)
    """
    num_videos = inputs.num_videos
    rows_per_block = min(num_videos, max(1, chunk_size // 4))
    v2t = torch.zeros(num_videos, dtype=torch.int64, device=inputs.device)
    for start in range(0, num_videos, rows_per_block):
        stop = min(start + rows_per_block, num_videos)
        scores = _video_scores(inputs, start, stop, chunk_size)  # (b, M)
        videos = torch.arange(start, stop, device=inputs.device)  # (b,)
        correct = inputs.caption_to_video[None, :] == videos[:, None]  # (b, M)
        best = scores.masked_fill(~correct, -math.inf).amax(1, keepdim=True)  # (b, 1)
        above = (scores >= best) & ~correct  # (b, M)
        v2t[start:stop] = torch.where(correct.any(1), 1 + above.sum(1), 0)
    return v2t


# ----- summaries ---------------------------------------------------------------------------
def rank_summary(ranks: torch.Tensor, prefix: str) -> dict[str, float]:
    """R@1/5/10 (percent), MedR and MnR of 1-based ranks.  ranks: (Q,) int"""
    if ranks.numel() == 0:
        raise ValueError(f"no {prefix} queries to summarise")
    ranks_list = ranks.tolist()
    summary = {
        f"{prefix}_r{k}": 100.0 * sum(r <= k for r in ranks_list) / len(ranks_list)
        for k in RECALL_AT
    }
    summary[f"{prefix}_medr"] = float(statistics.median(ranks_list))
    summary[f"{prefix}_mnr"] = float(statistics.fmean(ranks_list))
    return summary


def retrieval_metrics(
    text_emb: Embeddings,
    video_emb: Embeddings,
    caption_to_video: torch.Tensor,
    level_weights: Mapping[str, float] | None = None,
    chunk_size: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, float | int]:
    """t2v and v2t R@1, R@5, R@10, MedR, MnR and rsum of the fused score (module rules).

    text_emb: level -> (M, E_l) or (M, E); video_emb: level -> (N, E_l) or (N, E);
    caption_to_video: (M,) video index of each caption; level_weights: level -> w_l
    (default 1 for each level; weights of levels not given are ignored).
    Videos without captions compete in t2v but are no v2t queries: ``num_v2t_queries`` says
    how many videos were.
    """
    t2v, v2t = retrieval_ranks(
        text_emb, video_emb, caption_to_video, level_weights, chunk_size, device
    )
    results: dict[str, float | int] = {}
    results.update(rank_summary(t2v, "t2v"))
    results.update(rank_summary(v2t[v2t > 0], "v2t"))
    results["rsum"] = sum(results[f"{d}_r{k}"] for d in ("t2v", "v2t") for k in RECALL_AT)
    results["num_captions"] = int(t2v.numel())
    results["num_videos"] = int(v2t.numel())
    results["num_v2t_queries"] = int((v2t > 0).sum())
    return results


def per_level_metrics(
    text_emb: Mapping[str, torch.Tensor],
    video_emb: Mapping[str, torch.Tensor],
    caption_to_video: torch.Tensor,
    chunk_size: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, dict[str, float | int]]:
    """``retrieval_metrics`` of each level alone.  text: level -> (M, E_l), video: level -> (N, E_l)"""
    return {
        level: retrieval_metrics(
            {level: text_emb[level]},
            {level: video_emb[level]},
            caption_to_video,
            None,
            chunk_size,
            device,
        )
        for level in text_emb
    }


def role_swap_accuracy(
    scores: torch.Tensor, caption_to_video: torch.Tensor, twin_of: torch.Tensor
) -> float:
    """Share of the captions whose video has a twin that score their own video strictly above
    the twin (0.5 = chance; NaN when no caption's video has one).

    scores (M, N) caption-video scores, caption_to_video (M,), twin_of (N,) index of each
    video's twin, -1 for none (``mcsan.data.synth.twin_indices``).
    """
    caption_twin = twin_of[caption_to_video]  # (M,)
    rows = (caption_twin >= 0).nonzero().flatten()  # (n,)
    if not len(rows):
        return math.nan
    own = scores[rows, caption_to_video[rows]]  # (n,)
    twin = scores[rows, caption_twin[rows]]  # (n,)
    return float((own > twin).float().mean())


# ----- attribute mAP -----------------------------------------------------------------------
def attribute_average_precision(
    logits: torch.Tensor, targets: torch.Tensor, column_chunk: int | None = None
) -> torch.Tensor:
    """AP of every attribute column (NaN where a column has no positive).

    logits: (M, V) scores, targets: (M, V) in {0, 1}. Tied scores enter together (module
    docstring). Columns are processed ``column_chunk`` at a time (default: about 4M
    entries).  # -> (V,) float64
    """
    if logits.shape != targets.shape or logits.dim() != 2:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must both be (items, attributes)"
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("attribute logits contain NaN or Inf")
    positive = targets > 0.5
    if not bool(((targets == 0) | (targets == 1)).all()):
        raise ValueError("attribute targets must be 0 or 1")
    num_items, num_attributes = logits.shape
    step = column_chunk or max(1, (1 << 22) // max(1, num_items))
    ap = torch.full((num_attributes,), math.nan, dtype=torch.float64)
    position = torch.arange(num_items, device=logits.device)[:, None]  # (M, 1)
    for start in range(0, num_attributes, step):
        stop = min(start + step, num_attributes)
        scores, order = logits[:, start:stop].sort(0, descending=True)  # (M, v)
        hits = positive[:, start:stop].gather(0, order)  # (M, v) sorted like scores
        true_positives = hits.cumsum(0)  # (M, v)
        # the last position of each run of tied scores: precision is taken there
        run_ends = torch.ones_like(hits)
        run_ends[:-1] = scores[:-1] != scores[1:]
        end_index = torch.where(run_ends, position, num_items)  # (M, v)
        end_index = end_index.flip(0).cummin(0).values.flip(0)  # next run end at or below
        precision = true_positives.gather(0, end_index).double() / (end_index + 1)  # (M, v)
        num_positive = hits.sum(0)  # (v,)
        column_ap = (precision * hits).sum(0) / num_positive.clamp(min=1)
        ap[start:stop] = torch.where(num_positive > 0, column_ap, math.nan).cpu()
    return ap


def attribute_map(logits: torch.Tensor, targets: torch.Tensor) -> float | None:
    """Mean AP (percent) over attributes with at least one positive, None when no attribute
    has one (a split whose captions name nothing of that level).  logits, targets: (M, V)"""
    return attribute_map_report(logits, targets)["map"]


def attribute_map_report(
    logits: torch.Tensor, targets: torch.Tensor
) -> dict[str, float | int | None]:
    """mAP (None where no attribute has a positive: undefined) with the number of attributes
    averaged over and left out (no positive).  (M, V)"""
    ap = attribute_average_precision(logits, targets)
    defined = ~torch.isnan(ap)
    return {
        "map": 100.0 * float(ap[defined].mean()) if bool(defined.any()) else None,
        "num_attributes": int(defined.sum()),
        "num_without_positive": int((~defined).sum()),
    }


# ----- tables ------------------------------------------------------------------------------
_COLUMNS = [f"{d}_{m}" for d in ("t2v", "v2t") for m in ("r1", "r5", "r10", "medr", "mnr")]


def format_table(results: Mapping[str, object]) -> str:
    """A fixed-width table of retrieval results.

    ``results`` is one ``retrieval_metrics`` dict, or a mapping name -> such dict (e.g. the
    output of ``per_level_metrics``, or {"fused": ..., **per_level}); one row per name.
    """
    if all(isinstance(value, Mapping) for value in results.values()):
        rows = {str(name): value for name, value in results.items()}
    else:
        rows = {"": results}
    name_width = max([len(name) for name in rows] + [5])
    header_top = f"{'':{name_width}} | {'text -> video':^34} | {'video -> text':^34} |"
    labels = ("R@1", "R@5", "R@10", "MedR", "MnR")
    sub = "  ".join(f"{label:>5}" for label in labels)
    header = f"{'':{name_width}} | {sub} | {sub} | {'rsum':>6}"
    lines = [header_top, header, "-" * len(header)]
    for name, row in rows.items():
        missing = [key for key in [*_COLUMNS, "rsum"] if key not in row]
        if missing:
            raise KeyError(f"results row {name!r} lacks {missing}; pass retrieval_metrics output")
        cells = [f"{float(row[key]):5.1f}" for key in _COLUMNS]
        lines.append(
            f"{name:{name_width}} | {'  '.join(cells[:5])} | {'  '.join(cells[5:])} | "
            f"{float(row['rsum']):6.1f}"
        )
    return "\n".join(lines)
