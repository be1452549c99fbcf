import json
import math

import pytest
import torch

from mcsan import metrics
from mcsan.metrics import (
    attribute_average_precision,
    attribute_map,
    attribute_map_report,
    format_table,
    fused_and_level_metrics,
    per_level_metrics,
    retrieval_metrics,
    retrieval_ranks,
    role_swap_accuracy,
)


# ----- a plain sort-based reference ----------------------------------------------------------
def full_scores(text, video, weights):
    # level -> (M, E), level -> (N, E) -> (M, N)
    return sum(weights[level] * text[level] @ video[level].T for level in text)


def sorted_first_correct(scores, correct):
    """1-based position of the first correct item per row, rows sorted by decreasing score,
    tied wrong items before correct ones.  scores, correct: (Q, C) -> (Q,)"""
    by_correct = torch.argsort(correct.int(), dim=1, stable=True)  # wrong first
    by_score = torch.argsort(-scores.gather(1, by_correct), dim=1, stable=True)
    order = by_correct.gather(1, by_score)
    return correct.gather(1, order).int().argmax(1) + 1


def reference_ranks(text, video, caption_to_video, weights):
    scores = full_scores(text, video, weights)  # (M, N)
    num_videos = scores.shape[1]
    correct = caption_to_video[:, None] == torch.arange(num_videos)[None, :]  # (M, N)
    t2v = sorted_first_correct(scores, correct)
    has_caption = correct.any(0)
    v2t = torch.where(has_caption, sorted_first_correct(scores.T, correct.T), 0)
    return t2v, v2t


def reference_metrics(t2v, v2t):
    out = {}
    for name, ranks in (("t2v", t2v), ("v2t", v2t[v2t > 0])):
        values = sorted(ranks.tolist())
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * sum(v <= k for v in values) / len(values)
        n = len(values)
        out[f"{name}_medr"] = (values[(n - 1) // 2] + values[n // 2]) / 2
        out[f"{name}_mnr"] = sum(values) / n
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("t2v", "v2t") for k in (1, 5, 10))
    return out


def make_captions(num_videos, generator, max_captions=4, empty_every=7):
    """Several captions per video (1..max_captions), every empty_every-th video without any,
    captions shuffled so a video's captions fall into different chunks.  -> (M,)"""
    owners = []
    for video in range(num_videos):
        if video % empty_every == 3:
            continue
        count = int(torch.randint(1, max_captions + 1, (1,), generator=generator))
        owners += [video] * count
    owners = torch.tensor(owners)
    return owners[torch.randperm(len(owners), generator=generator)]


def random_levels(count, dims, generator, dtype=torch.float64, integer=False):
    out = {}
    for level, dim in dims.items():
        if integer:
            out[level] = torch.randint(-1, 2, (count, dim), generator=generator).to(dtype)
        else:
            out[level] = torch.nn.functional.normalize(
                torch.randn(count, dim, generator=generator, dtype=dtype), dim=1
            )
    return out


DIMS = {"global": 8, "entity": 5, "action": 6}
WEIGHTS = {"global": 1.0, "entity": 0.5, "action": 2.0, "relationship": 7.0}  # extra ignored


def assert_matches_reference(text, video, caption_to_video, weights, **kwargs):
    used = {level: weights[level] for level in text}
    ref_t2v, ref_v2t = reference_ranks(text, video, caption_to_video, used)
    t2v, v2t = retrieval_ranks(text, video, caption_to_video, weights, **kwargs)
    assert torch.equal(t2v, ref_t2v)
    assert torch.equal(v2t, ref_v2t)
    got = retrieval_metrics(text, video, caption_to_video, weights, kwargs.get("chunk_size", 1024))
    want = reference_metrics(ref_t2v, ref_v2t)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


# ----- equivalence with the sort-based reference ---------------------------------------------
@pytest.mark.parametrize("chunk_size", [1, 13, 64, 5000])
def test_random_scores_match_sort_reference(chunk_size):
    generator = torch.Generator().manual_seed(0)
    caption_to_video = make_captions(60, generator)
    assert caption_to_video.numel() % 13 != 0
    text = random_levels(caption_to_video.numel(), DIMS, generator)
    video = random_levels(60, DIMS, generator)
    assert_matches_reference(text, video, caption_to_video, WEIGHTS, chunk_size=chunk_size)


@pytest.mark.parametrize("chunk_size", [1, 7, 50, 4096])
def test_heavy_ties_match_sort_reference(chunk_size):
    # integer embeddings in {-1, 0, 1}, few dims: scores are small integers, ties everywhere
    generator = torch.Generator().manual_seed(1)
    caption_to_video = make_captions(40, generator, max_captions=5)
    dims = {"global": 3, "entity": 2}
    text = random_levels(caption_to_video.numel(), dims, generator, torch.float32, integer=True)
    video = random_levels(40, dims, generator, torch.float32, integer=True)
    video["global"][5] = video["global"][6]  # duplicate videos tie exactly
    video["entity"][5] = video["entity"][6]
    scores = full_scores(text, video, {"global": 1.0, "entity": 0.5})
    assert scores.unique().numel() < 20  # really heavy ties
    assert_matches_reference(text, video, caption_to_video, WEIGHTS, chunk_size=chunk_size)


@pytest.mark.parametrize("chunk_size", [1, 6, 25])
def test_captions_in_video_order_match_sort_reference(chunk_size, monkeypatch):
    # each video's captions in a row, as datasets list them: once a chunk holds a video's last
    # caption its best score is known and later chunks count against it exactly
    calls = count_second_passes(monkeypatch)
    generator = torch.Generator().manual_seed(12)
    caption_to_video = make_captions(40, generator, max_captions=5).sort().values
    text = random_levels(caption_to_video.numel(), DIMS, generator, torch.float32)
    video = random_levels(40, DIMS, generator, torch.float32)
    assert_matches_reference(text, video, caption_to_video, WEIGHTS, chunk_size=chunk_size)
    assert not calls


def test_float32_normalised_embeddings_match_reference():
    generator = torch.Generator().manual_seed(2)
    caption_to_video = make_captions(120, generator)
    text = random_levels(caption_to_video.numel(), DIMS, generator, torch.float32)
    video = random_levels(120, DIMS, generator, torch.float32)
    assert_matches_reference(text, video, caption_to_video, WEIGHTS, chunk_size=37)


def test_single_pass_is_used_on_ordinary_scores(monkeypatch):
    def second_pass(*args, **kwargs):
        raise AssertionError("the single pass should have resolved video->text")

    monkeypatch.setattr(metrics, "_v2t_ranks_by_video_rows", second_pass)
    generator = torch.Generator().manual_seed(3)
    caption_to_video = make_captions(50, generator)
    text = random_levels(caption_to_video.numel(), DIMS, generator, torch.float32)
    video = random_levels(50, DIMS, generator, torch.float32)
    retrieval_ranks(text, video, caption_to_video, WEIGHTS, chunk_size=16)


def count_second_passes(monkeypatch):
    calls = []
    second_pass = metrics._v2t_ranks_by_video_rows
    monkeypatch.setattr(
        metrics, "_v2t_ranks_by_video_rows", lambda *a: calls.append(1) or second_pass(*a)
    )
    return calls


def test_second_pass_when_band_overflows(monkeypatch):
    calls = count_second_passes(monkeypatch)
    generator = torch.Generator().manual_seed(4)
    caption_to_video = make_captions(30, generator)
    dims = {"global": 2}
    text = random_levels(caption_to_video.numel(), dims, generator, torch.float32, integer=True)
    video = random_levels(30, dims, generator, torch.float32, integer=True)
    retrieval_ranks(text, video, caption_to_video, WEIGHTS, chunk_size=9, band_budget=0)
    assert calls == [1]
    assert_matches_reference(text, video, caption_to_video, WEIGHTS, chunk_size=9, band_budget=0)


def test_forced_second_pass_matches_reference(monkeypatch):
    calls = count_second_passes(monkeypatch)
    generator = torch.Generator().manual_seed(8)
    caption_to_video = make_captions(40, generator)
    text = random_levels(caption_to_video.numel(), DIMS, generator)
    video = random_levels(40, DIMS, generator)
    retrieval_ranks(text, video, caption_to_video, WEIGHTS, chunk_size=16, force_second_pass=True)
    assert calls == [1]
    assert_matches_reference(
        text, video, caption_to_video, WEIGHTS, chunk_size=16, force_second_pass=True
    )


def test_second_pass_when_interval_misses_best(monkeypatch):
    generator = torch.Generator().manual_seed(5)
    caption_to_video = make_captions(30, generator)
    text = random_levels(caption_to_video.numel(), DIMS, generator)
    video = random_levels(30, DIMS, generator)
    expected = retrieval_ranks(text, video, caption_to_video, WEIGHTS, chunk_size=8)

    def wrong_intervals(inputs, *_):  # an interval that cannot hold the best score
        high = torch.full((inputs.num_videos,), 10.0, dtype=inputs.dtype)
        return high, high + 1

    monkeypatch.setattr(metrics, "_best_score_intervals", wrong_intervals)
    calls = count_second_passes(monkeypatch)
    got = retrieval_ranks(text, video, caption_to_video, WEIGHTS, chunk_size=8)
    assert calls == [1]
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_only_the_videos_whose_interval_missed_are_ranked_again(monkeypatch):
    generator = torch.Generator().manual_seed(9)
    caption_to_video = make_captions(30, generator)
    text = random_levels(caption_to_video.numel(), DIMS, generator)
    video = random_levels(30, DIMS, generator)
    intervals = metrics._best_score_intervals

    def two_wrong(*args):  # videos 4 and 9 get an interval that cannot hold their best score
        lo, hi = intervals(*args)
        lo[[4, 9]], hi[[4, 9]] = 10.0, 11.0
        return lo, hi

    monkeypatch.setattr(metrics, "_best_score_intervals", two_wrong)
    ranked_again = []
    second_pass = metrics._v2t_ranks_by_video_rows
    monkeypatch.setattr(metrics, "_v2t_ranks_by_video_rows", lambda inputs, weights, chunk,
                        videos=None: ranked_again.append(videos.tolist())
                        or second_pass(inputs, weights, chunk, videos))
    assert_matches_reference(text, video, caption_to_video, WEIGHTS, chunk_size=8)
    assert ranked_again and all(videos == [4, 9] for videos in ranked_again)


def test_fused_and_level_metrics_equal_the_separate_passes():
    generator = torch.Generator().manual_seed(10)
    caption_to_video = make_captions(40, generator)
    text = random_levels(caption_to_video.numel(), DIMS, generator, torch.float32)
    video = random_levels(40, DIMS, generator, torch.float32)
    together = fused_and_level_metrics(text, video, caption_to_video, WEIGHTS, chunk_size=11)
    assert together["fused"] == retrieval_metrics(text, video, caption_to_video, WEIGHTS, 11)
    assert together["levels"] == per_level_metrics(text, video, caption_to_video, 11)
    assert list(together["levels"]) == list(DIMS)


# ----- hand-computed cases and degenerate models ---------------------------------------------
def test_hand_computed_ranks():
    # 3 videos, 4 captions: captions 0, 1 -> video 0; caption 2 -> video 1; caption 3 -> video 2
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.2],  # t2v rank 1
            [0.5, 0.5, 0.7],  # tie with video 1 and video 2 above: rank 3
            [0.3, 0.4, 0.4],  # tie with video 2: rank 2
            [0.0, 0.8, 0.6],  # video 1 above: rank 2
        ]
    )
    caption_to_video = torch.tensor([0, 0, 1, 2])
    # with one-hot video embeddings the text embeddings are the score rows
    t2v, v2t = retrieval_ranks(scores, torch.eye(3), caption_to_video, chunk_size=3)
    assert t2v.tolist() == [1, 2 + 1, 2, 2]
    # v2t video 0: best correct 0.9, wrong captions 0.3, 0.0 -> rank 1
    # video 1: best 0.4 (caption 2); wrong 0.1, 0.5, 0.8 above -> rank 3
    # video 2: best 0.6; wrong 0.2, 0.7, 0.4 -> 0.7 above -> rank 2
    assert v2t.tolist() == [1, 3, 2]
    results = retrieval_metrics(scores, torch.eye(3), caption_to_video, chunk_size=2)
    assert results["t2v_r1"] == 25.0 and results["t2v_r5"] == 100.0
    assert results["t2v_medr"] == 2.0 and results["t2v_mnr"] == 2.0
    assert results["v2t_r1"] == pytest.approx(100 / 3) and results["v2t_medr"] == 2.0
    assert results["rsum"] == pytest.approx(25 + 100 + 100 + 100 / 3 + 100 + 100)


def test_constant_scores_get_the_worst_ranks():
    caption_to_video = torch.tensor([0, 0, 1, 2, 2, 2])
    text = {"global": torch.zeros(6, 4), "entity": torch.ones(6, 3)}
    video = {"global": torch.zeros(3, 4), "entity": torch.ones(3, 3)}
    t2v, v2t = retrieval_ranks(text, video, caption_to_video, chunk_size=4)
    assert t2v.tolist() == [3] * 6
    assert v2t.tolist() == [4 + 1, 5 + 1, 3 + 1]  # every caption of another video ties
    results = retrieval_metrics(text, video, caption_to_video)
    assert results["t2v_r1"] == 0.0 and results["v2t_r1"] == 0.0


def test_perfect_retrieval_and_json():
    caption_to_video = torch.tensor([0, 1, 1, 2, 3, 3, 3])
    video = {"global": torch.eye(4)}
    text = {"global": torch.eye(4)[caption_to_video]}
    results = retrieval_metrics(text, video, caption_to_video, {"global": 3.0}, chunk_size=3)
    assert results["t2v_r1"] == 100.0 and results["v2t_r1"] == 100.0
    assert results["t2v_medr"] == 1.0 and results["rsum"] == 600.0
    assert results["num_captions"] == 7 and results["num_v2t_queries"] == 4
    assert json.loads(json.dumps(results)) == results
    assert all(isinstance(v, (int, float)) for v in results.values())


def test_video_without_captions_is_a_t2v_distractor_only():
    caption_to_video = torch.tensor([0, 0, 2])
    video = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # video 1 beats video 0
    text = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    results = retrieval_metrics(text, video, caption_to_video)
    assert results["t2v_r1"] == pytest.approx(100 / 3)
    assert results["num_v2t_queries"] == 2 and results["num_videos"] == 3


def test_per_level_metrics_scores_each_level_alone():
    generator = torch.Generator().manual_seed(6)
    caption_to_video = make_captions(25, generator)
    text = random_levels(caption_to_video.numel(), DIMS, generator)
    video = random_levels(25, DIMS, generator)
    per_level = per_level_metrics(text, video, caption_to_video, chunk_size=10)
    assert set(per_level) == set(DIMS)
    for level in DIMS:
        alone = retrieval_metrics(text[level], video[level], caption_to_video)
        assert per_level[level] == alone
    table = format_table({"fused": retrieval_metrics(text, video, caption_to_video), **per_level})
    assert "entity" in table and "R@10" in table and "rsum" in table
    assert f"{per_level['action']['rsum']:6.1f}" in table
    assert len(format_table(per_level["global"]).splitlines()) == 4


def test_bad_inputs_are_named():
    caption_to_video = torch.tensor([0, 1])
    good = {"global": torch.randn(2, 3)}
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(
            {"global": torch.tensor([[math.nan] * 3, [0.0] * 3])}, good, caption_to_video
        )
    with pytest.raises(ValueError, match="outside"):
        retrieval_metrics(good, good, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="differ"):
        retrieval_metrics(good, {"entity": torch.randn(2, 3)}, caption_to_video)
    with pytest.raises(KeyError, match="entity"):
        retrieval_metrics(
            {**good, "entity": torch.randn(2, 3)},
            {**good, "entity": torch.randn(2, 3)},
            caption_to_video,
            {"global": 1.0},
        )
    with pytest.raises(ValueError, match="caption_to_video"):
        retrieval_metrics(good, good, torch.tensor([0, 1, 1]))


# ----- attribute mAP -------------------------------------------------------------------------
def reference_ap(scores, labels):
    """AP = mean over positives of precision among items scoring >= the positive."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    if not positives:
        return math.nan
    precisions = []
    for s in positives:
        above = [y for t, y in zip(scores, labels, strict=True) if t >= s]
        precisions.append(sum(above) / len(above))
    return sum(precisions) / len(precisions)


def test_attribute_ap_hand_computed():
    logits = torch.tensor([[3.0, 1.0], [2.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    targets = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 0]])
    ap = attribute_average_precision(logits, targets)
    # column 0: positives at ranks 1 and 3 -> (1 + 2/3) / 2; column 1: a 3-way tie -> 1/3
    assert ap[0].item() == pytest.approx((1 + 2 / 3) / 2)
    assert ap[1].item() == pytest.approx(1 / 3)
    assert attribute_map(logits, targets) == pytest.approx(100 * ((1 + 2 / 3) / 2 + 1 / 3) / 2)


def test_attribute_ap_matches_reference_with_ties_and_empty_columns():
    generator = torch.Generator().manual_seed(7)
    logits = torch.randint(0, 4, (50, 9), generator=generator).float()
    targets = (torch.rand(50, 9, generator=generator) < 0.2).float()
    targets[:, 4] = 0  # no positive: left out
    ap = attribute_average_precision(logits, targets, column_chunk=2)
    for column in range(9):
        want = reference_ap(logits[:, column].tolist(), targets[:, column].tolist())
        if math.isnan(want):
            assert math.isnan(ap[column].item())
        else:
            assert ap[column].item() == pytest.approx(want)
    report = attribute_map_report(logits, targets)
    assert report["num_attributes"] == 8 and report["num_without_positive"] == 1
    assert report["map"] == pytest.approx(100 * float(ap[~ap.isnan()].mean()))
    with pytest.raises(ValueError, match="0 or 1"):
        attribute_map(logits, targets * 2)


def test_attribute_ap_takes_bool_targets_and_names_broken_logits():
    generator = torch.Generator().manual_seed(11)
    logits = torch.randint(0, 5, (40, 7), generator=generator).float()
    targets = torch.rand(40, 7, generator=generator) < 0.3
    as_bool = attribute_average_precision(logits, targets, column_chunk=3)
    assert torch.equal(as_bool, attribute_average_precision(logits, targets.float()))
    logits[17, 5] = math.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        attribute_average_precision(logits, targets, column_chunk=3)


def test_role_swap_accuracy_counts_own_video_strictly_above_its_twin():
    # videos 0 and 1 are twins, video 2 has none; two captions each for videos 0 and 1
    scores = torch.tensor(
        [[0.9, 0.1, 0.0], [0.2, 0.3, 0.0], [0.5, 0.5, 0.0], [0.1, 0.8, 0.0], [0.0, 0.0, 1.0]]
    )  # (M, N)
    caption_to_video = torch.tensor([0, 0, 1, 1, 2])
    twin_of = torch.tensor([1, 0, -1])
    # right: caption 0 and 3; wrong: caption 1; a tie (caption 2) counts as wrong
    assert role_swap_accuracy(scores, caption_to_video, twin_of) == 0.5
    assert math.isnan(role_swap_accuracy(scores, caption_to_video, torch.tensor([-1, -1, -1])))


def test_map_of_a_level_without_any_positive_label_is_undefined_not_an_error():
    from mcsan.evaluate import results_table

    logits = torch.randn(5, 3)
    assert attribute_map(logits, torch.zeros(5, 3)) is None
    assert attribute_map_report(logits, torch.zeros(5, 3))["num_without_positive"] == 3
    fused = {"t2v_r1": 1.0, "t2v_r5": 2.0, "t2v_r10": 3.0, "t2v_medr": 1.0, "t2v_mnr": 1.0,
             "v2t_r1": 1.0, "v2t_r5": 2.0, "v2t_r10": 3.0, "v2t_medr": 1.0, "v2t_mnr": 1.0,
             "rsum": 12.0}
    table = results_table({"split": "test", "protocol": "all-captions", "captions": 5,
                           "videos": 5, "fused": fused, "levels": {},
                           "attributes": {"action": {"video_map": None, "text_map": 12.5}}})
    assert "video undefined (no positive label in this split)" in table and "12.5" in table
