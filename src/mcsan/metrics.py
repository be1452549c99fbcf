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
pass). Each chunk's product ``t_l @ v_l.T`` is computed once per level; the fused score is the
weighted sum of those products (each ``w_l * cos_l`` rounded, then summed in level order, as
``MCSAN.fused_similarity`` computes it), so the fused score and every level alone are ranked
from one set of products (``fused_and_level_metrics``).

* text->video ranks come from each row alone: count the entries ``>=`` the row's ground truth.
* video->text needs each video's best correct score before the pass over its column is done.
  A cheap pre-pass computes every caption's ground-truth score as a row-wise dot product,
  with a probabilistic bound on the float rounding of both computations, which gives each
  video an interval ``[lo, hi]`` that holds its best score. During the pass, wrong captions
  scoring ``>= hi`` are counted at once; the few scoring inside ``[lo, hi)`` are kept (value
  and video) and compared with the exact best score (taken from the very same products) at
  the end. Once a chunk has held every caption of a video (datasets list a video's captions
  together, so usually its first chunk does), its best score is known and later chunks count
  against it exactly. The result is exact for the scores the pass computed. A video whose
  interval turns out not to hold its best score is ranked again exactly by a second pass
  over its row; every video is when too many scores fall inside the intervals (a collapsed
  model with near-constant scores).

Counts are taken as float indicators (``torch.ge`` into a float buffer) summed by a
matrix-vector product with a vector of ones: several times faster on the CPU than comparisons
into bool tensors and their sums, and exact (integer sums below 2**24).

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
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

Embeddings = Mapping[str, torch.Tensor] | torch.Tensor
FUSED = "fused"  # the level name used when plain tensors (one level) are given
RECALL_AT = (1, 5, 10)


# ----- inputs ------------------------------------------------------------------------------
@dataclass
class _ScoringInputs:
    text: dict[str, torch.Tensor]  # level -> (M, E_l), on its original device
    video: dict[str, torch.Tensor]  # level -> (N, E_l), on the compute device, compute dtype
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

    def total_dim(self, levels: Collection[str]) -> int:
        return sum(self.text[level].shape[1] for level in levels)

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
) -> tuple[_ScoringInputs, dict[str, float]]:
    """The checked inputs and the weight of each level (1 where ``level_weights`` is None)."""
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
        if not bool(torch.isfinite(v).all()):  # text is checked by the ground-truth pre-pass
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
    inputs = _ScoringInputs(
        text=text,
        video={level: v.to(device=compute_device, dtype=dtype) for level, v in video.items()},
        caption_to_video=caption_to_video.to(device=compute_device, dtype=torch.int64),
        device=compute_device,
        dtype=dtype,
    )
    return inputs, weights


# ----- scores ------------------------------------------------------------------------------
# A score is a weighted sum of level scores, ``Weights``: level -> w_l (one level alone: {l: 1}).
Weights = Mapping[str, float]


def _weighted_sum(
    products: Mapping[str, torch.Tensor], weights: Weights, out: torch.Tensor
) -> torch.Tensor:
    """``out = sum_l w_l * products[l]``, each term rounded, then summed in the order of
    ``weights`` (as ``MCSAN.fused_similarity`` computes it).  (r, C) each"""
    total = None
    for level, weight in weights.items():
        term = products[level] if weight == 1 else products[level] * weight
        total = term if total is None else torch.add(total, term, out=out)
    if total is not out:  # one level
        out.copy_(total)
    return out


def _video_scores(
    inputs: _ScoringInputs, weights: Weights, videos: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """Scores of ``videos`` (b,) against every caption.  # -> (b, M)

    Text already on the compute device is used whole (one product per level); text elsewhere
    is brought over ``chunk_size`` captions at a time.
    """
    num_captions = inputs.num_captions
    scores = torch.empty(len(videos), num_captions, device=inputs.device, dtype=inputs.dtype)
    rows = {level: inputs.video[level].index_select(0, videos) for level in weights}  # (b, E)
    step = num_captions if inputs.text_on_device else chunk_size
    for first in range(0, num_captions, step):
        last = min(first + step, num_captions)
        products = {  # level -> (videos, E) @ (E, captions) = (videos, captions)
            level: rows[level] @ inputs.text_chunk(level, first, last).T for level in weights
        }
        _weighted_sum(products, weights, scores[:, first:last])
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


@dataclass
class _GroundTruths:
    """Per level, each caption's score with its own video as a row-wise dot product (its
    products rounded, their sum taken in float64), and the size ``|t_l| |v_l|`` that bounds
    the rounding of a score."""

    score: dict[str, torch.Tensor]  # level -> (M,) float64
    size: dict[str, torch.Tensor]  # level -> (M,) float64


def _ground_truths(inputs: _ScoringInputs) -> _GroundTruths:
    """The pre-pass over every caption (module docstring); it also rejects NaN / Inf text."""
    num_captions = inputs.num_captions
    wide = {"dtype": torch.float64, "device": inputs.device}
    truths = _GroundTruths(
        {level: torch.empty(num_captions, **wide) for level in inputs.text},
        {level: torch.empty(num_captions, **wide) for level in inputs.text},
    )
    video_norms = {level: v.norm(dim=1) for level, v in inputs.video.items()}  # (N,)
    rows = max(1, (1 << 20) // inputs.total_dim(inputs.text))  # ~1M entries a step
    for start in range(0, num_captions, rows):
        stop = min(start + rows, num_captions)
        own_video = inputs.caption_to_video[start:stop]  # (r,)
        for level in inputs.text:
            text = inputs.text_chunk(level, start, stop)  # (r, E)
            video = inputs.video[level].index_select(0, own_video)  # (r, E)
            truths.score[level][start:stop] = (text * video).sum(1, dtype=torch.float64)
            truths.size[level][start:stop] = text.norm(dim=1) * video_norms[level][own_video]
    for size in truths.size.values():
        if not bool(torch.isfinite(size).all()):
            row = int((~torch.isfinite(size)).nonzero()[0])
            levels = [name for name, text in inputs.text.items()
                      if not bool(text[row].isfinite().all())]
            raise ValueError(
                f"text embeddings of level(s) {levels} contain NaN or Inf (caption row {row}); "
                "the model diverged or an input is broken"
            )
    return truths


# How far the probabilistic rounding bound reaches (``_best_score_intervals``)
ROUNDING_LAMBDA = 8.0


def _best_score_intervals(
    inputs: _ScoringInputs, weights: Weights, truths: _GroundTruths
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per video, an interval [lo, hi] that should hold its best correct caption's computed score.

    The pass computes each score as a dot product of K terms (all levels' dimensions, plus
    the weighting and summing), rounded in some order. Higham and Mary's probabilistic bound
    (SIAM J. Sci. Comput. 41(5), 2019) puts it within ``lambda * sqrt(K) * u * sum_l |w_l|
    |t_l| |v_l|`` of the exact value (with Cauchy-Schwarz) with probability at least
    ``1 - 2K exp(-lambda^2 / 2)``: about 5e-11 for K = 2,048 and lambda = 8, where the
    worst-case bound ``K * u`` is up to 45 times wider. The pre-pass rounds each product
    once and sums in float64: within ``(u + K eps_64)`` of that. Where the interval misses a
    video's best score, the caller ranks that video again exactly, so the bound decides
    speed, never correctness.  # -> lo (N,), hi (N,) in the compute dtype
    """
    terms = inputs.total_dim(weights) + 2 * len(weights) + 2  # products, weights and sums
    unit = _rounding_unit(inputs)
    pass_error = ROUNDING_LAMBDA * math.sqrt(terms) * unit
    prepass_error = unit + terms * torch.finfo(torch.float64).eps
    centre = torch.zeros_like(next(iter(truths.score.values())))  # (M,) float64
    spread = torch.zeros_like(centre)  # sum_l |w_l| |t_l| |v_l| >= sum |w t v|
    for level, weight in weights.items():
        centre.add_(truths.score[level], alpha=weight)
        spread.add_(truths.size[level], alpha=abs(weight))
    margin = (pass_error + prepass_error + 2 * unit) * spread  # and lo / hi rounded
    lo = torch.full((inputs.num_videos,), math.inf, dtype=torch.float64, device=inputs.device)
    hi = lo.clone()
    lo.scatter_reduce_(0, inputs.caption_to_video, centre - margin, "amax", include_self=False)
    hi.scatter_reduce_(0, inputs.caption_to_video, centre + margin, "amax", include_self=False)
    return lo.to(inputs.dtype), hi.to(inputs.dtype)


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
    inputs, weights = _prepare(text_emb, video_emb, caption_to_video, level_weights, device)
    return _ranks(inputs, [weights], chunk_size, band_budget, force_second_pass)[0]


# Counts of float 0/1 indicators are exact below this (float32 sums of integers)
_EXACT_FLOAT32_COUNT = 1 << 24


@torch.no_grad()
def _ranks(
    inputs: _ScoringInputs,
    scorings: list[dict[str, float]],
    chunk_size: int,
    band_budget: int | None = None,
    force_second_pass: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """t2v (M,) and v2t (N,) ranks of each scoring, all from one pass over caption chunks.

    Each chunk's product ``text_l @ video_l.T`` is computed once per level and used while it
    is in cache: added into the scorings of several levels (as ``_weighted_sum`` adds), then
    ranked in place for a scoring of that level alone (so no level may have two). The
    scorings of several levels are ranked once every level was added.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    num_captions, num_videos = inputs.num_captions, inputs.num_videos
    budget = chunk_size * num_videos if band_budget is None else band_budget
    truths = _ground_truths(inputs)
    rankings = [
        _Ranking(inputs, weights, truths, -1 if force_second_pass else budget)
        for weights in scorings
    ]
    rows = min(chunk_size, num_captions)
    # score indicators (1.0 / 0.0) are counted by matrix-vector products: far faster than
    # comparisons into bool tensors and their sums, and exact for integer sums below 2**24
    exact = max(rows, num_videos) < _EXACT_FLOAT32_COUNT
    count_dtype = inputs.dtype if exact else torch.float64

    def buffer(dtype: torch.dtype = inputs.dtype) -> torch.Tensor:
        return torch.empty(rows, num_videos, dtype=dtype, device=inputs.device)  # (c, N)

    product = buffer()
    sums = [buffer() if len(weights) > 1 else None for weights in scorings]
    scratch = _Scratch(buffer(count_dtype), buffer(count_dtype))
    # the first row of the chunk that holds each video's last caption: from that chunk on the
    # video's best score is known exactly (its captions usually lie in one chunk); -1 for a
    # video without captions, which is no video->text query
    last_chunk = torch.full((num_videos,), -1, device=inputs.device)  # (N,)
    captions = torch.arange(num_captions, device=inputs.device)
    last_chunk.scatter_reduce_(0, inputs.caption_to_video, captions // chunk_size * chunk_size,
                               "amax", include_self=False)
    for start in range(0, num_captions, chunk_size):
        stop = min(start + chunk_size, num_captions)
        own_video = inputs.caption_to_video[start:stop, None]  # (c, 1)
        complete = last_chunk <= start  # (N,) every caption of the video scored by now
        open_columns = (~complete).nonzero()[:, 0]  # (n,) in a dataset's order the last videos
        open_videos = slice(int(open_columns[0]), int(open_columns[-1]) + 1) if len(
            open_columns) else slice(0, 0)
        for level in inputs.text:
            scores = torch.mm(inputs.text_chunk(level, start, stop), inputs.video[level].T,
                              out=product[: stop - start])  # (c, E) @ (E, N) -> (c, N)
            # the sums first: ranking a level alone overwrites its scores
            for alone in (False, True):
                for weights, ranking, total in zip(scorings, rankings, sums, strict=True):
                    if level not in weights or (total is None) != alone:
                        continue
                    term = scores if weights[level] == 1 else scores * weights[level]
                    if alone:
                        ranking.add(term, start, own_video, complete, open_videos, scratch)
                    elif level == next(iter(weights)):
                        total[: stop - start].copy_(term)
                    else:
                        torch.add(total[: stop - start], term, out=total[: stop - start])
        for ranking, total in zip(rankings, sums, strict=True):
            if total is not None:
                ranking.add(total[: stop - start], start, own_video, complete, open_videos,
                            scratch)
    has_caption = torch.bincount(inputs.caption_to_video, minlength=num_videos) > 0  # (N,)
    return [
        (ranking.t2v.cpu(), ranking.v2t(inputs, has_caption, chunk_size).cpu())
        for ranking in rankings
    ]


class _Scratch:
    """Buffers each chunk's ranking overwrites: two (c, N) indicators, and vectors of ones that
    count them by rows (N,) and by columns (c,)."""

    def __init__(self, indicator: torch.Tensor, at_least_lo: torch.Tensor) -> None:
        rows, num_videos = indicator.shape
        self.indicator, self.at_least_lo = indicator, at_least_lo  # (c, N) each
        self.ones_videos = indicator.new_ones(num_videos)  # (N,)
        self.ones_rows = indicator.new_ones(rows)  # (c,)


class _Ranking:
    """The ranks of one scoring, gathered chunk by chunk over the caption rows."""

    def __init__(
        self, inputs: _ScoringInputs, weights: Weights, truths: _GroundTruths, budget: int
    ) -> None:
        num_videos, device = inputs.num_videos, inputs.device
        self.weights = dict(weights)
        self.budget = budget  # near-tie scores the pass may keep; -1: always the second pass
        self.lo, self.hi = _best_score_intervals(inputs, weights, truths)  # (N,), (N,)
        self.t2v = torch.empty(inputs.num_captions, dtype=torch.int64, device=device)
        self.best = torch.full((num_videos,), -math.inf, dtype=inputs.dtype, device=device)
        self.surely_above = torch.zeros(num_videos, dtype=torch.int64, device=device)
        self.band_videos: list[torch.Tensor] = []  # each (n,) video index of a near-tie score
        self.band_scores: list[torch.Tensor] = []  # each (n,) that score
        self.band_size = 0

    @property
    def overflowed(self) -> bool:
        """Too many near ties kept: video->text comes from the second pass."""
        return self.band_size > self.budget

    def add(self, scores: torch.Tensor, start: int, own_video: torch.Tensor,
            complete: torch.Tensor, open_videos: slice, scratch: _Scratch) -> None:
        """Count one chunk: scores (c, N) of captions ``start:start + c`` (overwritten),
        own_video (c, 1) the column of each caption's video, complete (N,) the videos whose
        captions have all been scored, this chunk included, and open_videos the columns that
        hold every other video."""
        size = scores.shape[0]
        indicator, at_least_lo = scratch.indicator[:size], scratch.at_least_lo[:size]
        ones_rows = scratch.ones_rows[:size]
        truth = scores.gather(1, own_video)  # (c, 1)
        torch.ge(scores, truth, out=indicator)  # the ground truth counts itself: 1 + others
        self.t2v[start : start + size] = torch.mv(indicator, scratch.ones_videos).long()
        self.best.scatter_reduce_(0, own_video[:, 0], truth[:, 0], "amax")
        if self.overflowed:
            self.band_videos, self.band_scores = [], []
            return
        scores.scatter_(1, own_video, -math.inf)  # keep only captions of other videos
        # a complete video's best score is known: counted against it, with no near ties
        hi = torch.where(complete, self.best, self.hi)  # (N,)
        torch.ge(scores, hi, out=indicator)  # (c, N)
        above = torch.mv(indicator.T, ones_rows).long()  # (N,)
        self.surely_above += above
        if open_videos.start >= open_videos.stop:
            return
        # near ties only where a video is still open: scores in [lo, hi) of those columns
        lo = torch.where(complete, self.best, self.lo)[open_videos]  # (n,)
        torch.ge(scores[:, open_videos], lo, out=at_least_lo[:, open_videos])  # (c, n)
        near_counts = torch.mv(at_least_lo[:, open_videos].T, ones_rows).long() - above[
            open_videos]  # (n,)
        near = int(near_counts.sum())
        if near:  # kept with their video, found in the columns that hold one
            columns = near_counts.nonzero()[:, 0] + open_videos.start  # (k,)
            candidates = scores[:, columns]  # (c, k)
            rows, where = torch.nonzero((candidates >= self.lo[columns])
                                        & (candidates < self.hi[columns]), as_tuple=True)
            self.band_videos.append(columns[where])
            self.band_scores.append(candidates[rows, where])
            self.band_size += near

    def v2t(self, inputs: _ScoringInputs, has_caption: torch.Tensor, chunk_size: int
            ) -> torch.Tensor:
        """Video->text ranks (N,) once every chunk was added; 0 for a video without captions.
        Videos whose interval missed their best score are ranked again by a second pass over
        their rows; all of them when the pass kept too many near ties."""
        missed = has_caption & ~((self.lo <= self.best) & (self.best <= self.hi))  # (N,)
        if self.overflowed:
            return _v2t_ranks_by_video_rows(inputs, self.weights, chunk_size)
        near_ties = torch.zeros_like(self.surely_above)  # (N,)
        if self.band_videos:
            band_video = torch.cat(self.band_videos)
            above_best = torch.cat(self.band_scores) >= self.best[band_video]
            near_ties = torch.bincount(band_video[above_best], minlength=inputs.num_videos)
        v2t = torch.where(has_caption, 1 + self.surely_above + near_ties, 0)
        if bool(missed.any()):
            videos = missed.nonzero()[:, 0]
            v2t[videos] = _v2t_ranks_by_video_rows(inputs, self.weights, chunk_size, videos)
        return v2t


def _v2t_ranks_by_video_rows(
    inputs: _ScoringInputs, weights: Weights, chunk_size: int, videos: torch.Tensor | None = None
) -> torch.Tensor:
    """Exact video->text ranks of ``videos`` (default all) from their whole rows of scores,
    ``chunk_size // 4`` rows at a time; 0 for a video without captions.  # -> (len(videos),)

    Each block holds ``chunk_size // 4 x M`` scores: blocks of that height keep the products
    efficient (every block reads all caption embeddings once).
    """
    if videos is None:
        videos = torch.arange(inputs.num_videos, device=inputs.device)
    rows_per_block = min(len(videos), max(1, chunk_size // 4))
    v2t = torch.zeros(len(videos), dtype=torch.int64, device=inputs.device)
    for start in range(0, len(videos), rows_per_block):
        block = videos[start : start + rows_per_block]  # (b,)
        scores = _video_scores(inputs, weights, block, chunk_size)  # (b, M)
        correct = inputs.caption_to_video[None, :] == block[:, None]  # (b, M)
        best = scores.masked_fill(~correct, -math.inf).amax(1, keepdim=True)  # (b, 1)
        above = (scores >= best) & ~correct  # (b, M)
        v2t[start : start + len(block)] = torch.where(correct.any(1), 1 + above.sum(1), 0)
    return v2t


# ----- summaries ---------------------------------------------------------------------------
def rank_summary(ranks: torch.Tensor, prefix: str) -> dict[str, float]:
    """R@1/5/10 (percent), MedR and MnR of 1-based ranks.  ranks: (Q,) int"""
    if ranks.numel() == 0:
        raise ValueError(f"no {prefix} queries to summarise")
    ranks = ranks.cpu()
    count = ranks.numel()
    summary = {f"{prefix}_r{k}": 100.0 * int((ranks <= k).sum()) / count for k in RECALL_AT}
    ordered = ranks.sort().values
    low, high = int(ordered[(count - 1) // 2]), int(ordered[count // 2])  # equal when odd
    summary[f"{prefix}_medr"] = float((low + high) / 2)
    summary[f"{prefix}_mnr"] = int(ranks.sum()) / count  # the mean, rounded once
    return summary


def _metrics(t2v: torch.Tensor, v2t: torch.Tensor) -> dict[str, float | int]:
    """``retrieval_metrics`` of t2v ranks (M,) and v2t ranks (N,) (0: no query)."""
    results: dict[str, float | int] = {}
    results.update(rank_summary(t2v, "t2v"))
    results.update(rank_summary(v2t[v2t > 0], "v2t"))
    results["rsum"] = sum(results[f"{d}_r{k}"] for d in ("t2v", "v2t") for k in RECALL_AT)
    results["num_captions"] = int(t2v.numel())
    results["num_videos"] = int(v2t.numel())
    results["num_v2t_queries"] = int((v2t > 0).sum())
    return results


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
    return _metrics(*retrieval_ranks(
        text_emb, video_emb, caption_to_video, level_weights, chunk_size, device
    ))


def per_level_metrics(
    text_emb: Mapping[str, torch.Tensor],
    video_emb: Mapping[str, torch.Tensor],
    caption_to_video: torch.Tensor,
    chunk_size: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, dict[str, float | int]]:
    """``retrieval_metrics`` of each level alone, all from one pass over the scores.
    text: level -> (M, E_l), video: level -> (N, E_l)"""
    inputs, _ = _prepare(text_emb, video_emb, caption_to_video, None, device)
    ranks = _ranks(inputs, [{level: 1.0} for level in inputs.text], chunk_size)
    return {level: _metrics(*pair) for level, pair in zip(inputs.text, ranks, strict=True)}


def fused_and_level_metrics(
    text_emb: Mapping[str, torch.Tensor],
    video_emb: Mapping[str, torch.Tensor],
    caption_to_video: torch.Tensor,
    level_weights: Mapping[str, float] | None = None,
    chunk_size: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, dict]:
    """``{"fused": retrieval_metrics(...), "levels": per_level_metrics(...)}`` from one pass:
    each level's products are computed once and serve its own ranks and the fused score's.
    text: level -> (M, E_l), video: level -> (N, E_l)"""
    inputs, weights = _prepare(text_emb, video_emb, caption_to_video, level_weights, device)
    levels = list(inputs.text)
    fused, *alone = _ranks(inputs, [weights, *({level: 1.0} for level in levels)], chunk_size)
    return {
        "fused": _metrics(*fused),
        "levels": {level: _metrics(*pair) for level, pair in zip(levels, alone, strict=True)},
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

    logits: (M, V) scores, targets: (M, V) in {0, 1} (or bool). Tied scores enter together
    (module docstring). Each column's scores are sorted (values only) and each positive's
    precision read off by binary search: ``#positives >= s / #items >= s`` at its score ``s``.
    Columns are processed ``column_chunk`` at a time (default: about 1M entries), the chunks
    on ``torch.get_num_threads()`` threads; inputs are checked chunk by chunk too, so no
    (M, V) temporary is made.  # -> (V,) float64
    """
    if logits.shape != targets.shape or logits.dim() != 2:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must both be (items, attributes)"
        )
    logits, targets = logits.detach().cpu(), targets.detach().cpu()
    num_items, num_attributes = logits.shape
    step = column_chunk or max(1, (1 << 20) // max(1, num_items))
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:  # numpy sorts without the GIL
        parts = pool.map(
            lambda start: _columns_average_precision(
                logits[:, start : start + step], targets[:, start : start + step]
            ),
            range(0, num_attributes, step),
        )
        return torch.from_numpy(np.concatenate([np.empty(0), *parts]))


def _columns_average_precision(logits: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """AP of each column of logits (M, v) with targets (M, v).  # -> (v,) float64"""
    wide = torch.float64 if logits.dtype == torch.float64 else torch.float32  # keeps every tie
    scores = logits.T.to(wide).contiguous().numpy()  # (v, M)
    if not np.isfinite(scores).all():
        raise ValueError("attribute logits contain NaN or Inf")
    hits = targets.T.contiguous().numpy()  # (v, M)
    if hits.dtype != np.bool_:
        if not ((hits == 0) | (hits == 1)).all():
            raise ValueError("attribute targets must be 0 or 1")
        hits = hits > 0.5
    ascending = np.sort(scores, axis=1)  # (v, M)
    num_items = scores.shape[1]
    ap = np.full(scores.shape[0], np.nan)
    for column in range(scores.shape[0]):
        found = scores[column, hits[column]]  # (k,) the positives' scores
        if not found.size:
            continue
        items_at_least = num_items - np.searchsorted(ascending[column], found, side="left")
        found_ascending = np.sort(found)
        hits_at_least = found.size - np.searchsorted(found_ascending, found, side="left")
        # the precisions summed exactly, then rounded once: the same AP in any order
        ap[column] = math.fsum(hits_at_least / items_at_least) / found.size
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
