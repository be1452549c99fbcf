import math

import pytest
import torch
from torch.nn import functional as F

from mcsan.model.losses import (
    attribute_kl,
    focal_bce,
    plain_bce,
    ranking_loss,
    same_at_level,
)


# ----- ranking loss --------------------------------------------------------------------------
def test_ranking_loss_hand_computed():
    sim = torch.tensor([[0.8, 0.5, 0.1], [0.6, 0.4, 0.3], [0.2, 0.7, 0.9]])
    positives = torch.eye(3, dtype=torch.bool)
    margin = 0.2
    # hardest negatives: pair (0,0): row max 0.5, column max 0.6 -> [0.2-0.8+0.5]+ + [0.2-0.8+0.6]+
    pair0 = max(0.0, margin - 0.8 + 0.5) + max(0.0, margin - 0.8 + 0.6)  # 0 + 0
    pair1 = max(0.0, margin - 0.4 + 0.6) + max(0.0, margin - 0.4 + 0.7)  # 0.4 + 0.5
    pair2 = max(0.0, margin - 0.9 + 0.7) + max(0.0, margin - 0.9 + 0.3)  # 0 + 0
    hardest = ranking_loss(sim, positives, margin, max_violation=True)
    assert hardest.item() == pytest.approx((pair0 + pair1 + pair2) / 3)
    # sum over negatives
    summed = 0.0
    for i in range(3):
        for k in range(3):
            if k != i:
                summed += max(0.0, margin - sim[i, i].item() + sim[i, k].item())
                summed += max(0.0, margin - sim[i, i].item() + sim[k, i].item())
    total = ranking_loss(sim, positives, margin, max_violation=False)
    assert total.item() == pytest.approx(summed / 3)


def test_ranking_loss_zero_when_positives_win_by_margin():
    sim = torch.full((4, 4), 0.1) + torch.eye(4) * 0.3  # positives 0.4, negatives 0.1
    positives = torch.eye(4, dtype=torch.bool)
    assert ranking_loss(sim, positives, margin=0.29).item() == 0.0
    assert ranking_loss(sim, positives, margin=0.29, max_violation=False).item() == 0.0
    assert ranking_loss(sim, positives, margin=0.31).item() == pytest.approx(2 * 0.01, abs=1e-6)


def test_two_captions_of_one_video_are_not_negatives():
    # captions 0 and 1 describe video 0 (listed twice as columns 0 and 1); caption 2 -> video 2
    sim = torch.tensor([[0.9, 0.9, 0.1], [0.8, 0.8, 0.2], [0.1, 0.1, 0.9]])
    positives = torch.tensor([[True, True, False], [True, True, False], [False, False, True]])
    assert ranking_loss(sim, positives, margin=0.5).item() == 0.0
    # the same scores with a diagonal-only mask treat the duplicate as a hard negative
    assert ranking_loss(sim, torch.eye(3, dtype=torch.bool), margin=0.5).item() > 0.3


def test_same_at_level_marks_videos_having_all_the_captions_attributes():
    # caption 0 names {a, b}; caption 1 names {c}; caption 2 names nothing at this level
    text = torch.tensor([[1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float)
    # video 0 has {a, b}, video 1 {a, b, c} (its other captions name c), video 2 {a}
    video = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.float)
    expected = torch.tensor([[True, True, False], [False, True, False], [False, False, False]])
    assert torch.equal(same_at_level(text, video), expected)


def test_not_negative_pairs_leave_the_ranking_loss():
    generator = torch.Generator().manual_seed(0)
    sim = torch.rand(5, 5, generator=generator)
    positives = torch.eye(5, dtype=torch.bool)
    not_negative = torch.rand(5, 5, generator=generator) < 0.4
    for hardest in (True, False):
        # the same as scoring those pairs so low that they violate nothing
        lowered = sim.masked_fill(not_negative & ~positives, -10.0)
        expected = ranking_loss(lowered, positives, 0.2, hardest)
        got = ranking_loss(sim, positives, 0.2, hardest, not_negative)
        assert got.item() == pytest.approx(expected.item())
        assert got.item() != pytest.approx(ranking_loss(sim, positives, 0.2, hardest).item())


def test_ranking_loss_gradients_and_errors():
    generator = torch.Generator().manual_seed(0)
    sim = torch.randn(5, 4, generator=generator, requires_grad=True)
    positives = torch.zeros(5, 4, dtype=torch.bool)
    positives[torch.arange(5), torch.tensor([0, 1, 2, 3, 3])] = True
    for max_violation in (True, False):
        loss = ranking_loss(sim, positives, 0.2, max_violation)
        (grad,) = torch.autograd.grad(loss, sim)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="no positive"):
        ranking_loss(sim, torch.zeros(5, 4, dtype=torch.bool), 0.2)
    with pytest.raises(TypeError, match="bool"):
        ranking_loss(sim, positives.float(), 0.2)
    with pytest.raises(ValueError, match="shape|must both"):
        ranking_loss(sim, positives[:3], 0.2)


# ----- focal / plain BCE ---------------------------------------------------------------------
def naive_focal(logits, targets, alpha, gamma):
    p = torch.sigmoid(logits.double())
    t = targets.double()
    p_t = t * p + (1 - t) * (1 - p)
    alpha_t = t * alpha + (1 - t) * (1 - alpha)
    return (-alpha_t * (1 - p_t) ** gamma * torch.log(p_t)).sum() / t.sum().clamp(min=1)


def test_focal_matches_the_formula():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 10, generator=generator) * 3
    targets = (torch.rand(6, 10, generator=generator) < 0.3).float()
    got = focal_bce(logits, targets, alpha=0.25, gamma=2.0)
    assert got.item() == pytest.approx(naive_focal(logits, targets, 0.25, 2.0).item(), rel=1e-5)


def test_focal_with_gamma_zero_is_bce():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 7, generator=generator) * 2
    targets = (torch.rand(4, 7, generator=generator) < 0.4).float()
    bce_sum = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    positives = targets.sum()
    assert plain_bce(logits, targets).item() == pytest.approx((bce_sum / positives).item())
    assert focal_bce(logits, targets, alpha=None, gamma=0.0).item() == pytest.approx(
        plain_bce(logits, targets).item()
    )
    assert focal_bce(logits, targets, alpha=0.5, gamma=0.0).item() == pytest.approx(
        0.5 * plain_bce(logits, targets).item()
    )
    # focusing down-weights easy examples: strictly below BCE when gamma > 0
    assert focal_bce(logits, targets, alpha=None, gamma=2.0) < plain_bce(logits, targets)


def test_focal_hand_computed_single_entry():
    # one positive with logit 0: p_t = 0.5 -> 0.25 * 0.5**2 * log 2 over one positive
    loss = focal_bce(torch.zeros(1, 1), torch.ones(1, 1), alpha=0.25, gamma=2.0)
    assert loss.item() == pytest.approx(0.25 * 0.25 * math.log(2))
    # no positive at all: divided by 1, not 0
    loss = focal_bce(torch.zeros(1, 2), torch.zeros(1, 2), alpha=0.25, gamma=0.0)
    assert loss.item() == pytest.approx(2 * 0.75 * math.log(2))


def test_attribute_losses_finite_at_extreme_logits():
    logits = torch.tensor([[80.0, -80.0, 1e4, -1e4]], requires_grad=True)
    targets = torch.tensor([[0.0, 1.0, 0.0, 1.0]])  # confidently wrong everywhere
    for loss in (focal_bce(logits, targets), plain_bce(logits, targets)):
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        assert loss.item() > 100
    right = focal_bce(logits.detach(), 1 - targets)
    assert right.item() == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError, match="vocabulary"):
        focal_bce(torch.zeros(2, 3), torch.zeros(2, 4))


# ----- attribute KL --------------------------------------------------------------------------
def test_attribute_kl_hand_computed_and_direction():
    video = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    text = torch.log(torch.tensor([[0.8, 0.1, 0.1]]))
    p_text = torch.tensor([0.8, 0.1, 0.1])
    p_video = torch.tensor([0.5, 0.25, 0.25])
    expected = (p_text * (p_text / p_video).log()).sum()
    assert attribute_kl(video, text).item() == pytest.approx(expected.item(), rel=1e-6)
    reverse = (p_video * (p_video / p_text).log()).sum()
    assert attribute_kl(video, text).item() != pytest.approx(reverse.item(), rel=1e-3)
    # temperature: logits scaled by 2 with temperature 2 give the same distributions
    assert attribute_kl(2 * video, 2 * text, temperature=2.0).item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def test_attribute_kl_zero_for_equal_and_batch_mean():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 8, generator=generator)
    assert attribute_kl(logits, logits).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(5, 8, generator=generator)
    rows = [attribute_kl(logits[i : i + 1], other[i : i + 1]).item() for i in range(5)]
    assert attribute_kl(logits, other).item() == pytest.approx(sum(rows) / 5, rel=1e-5)


def test_attribute_kl_finite_with_extreme_logits_and_gradients_reach_both():
    video = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 50.0]], requires_grad=True)
    text = torch.tensor([[-1e4, 1e4, 0.0], [1e4, -1e4, -50.0]], requires_grad=True)
    loss = attribute_kl(video, text)
    grad_video, grad_text = torch.autograd.grad(loss, (video, text))
    assert torch.isfinite(loss) and loss.item() > 1e3
    assert torch.isfinite(grad_video).all() and torch.isfinite(grad_text).all()
    assert grad_video.abs().sum() > 0  # a saturated text distribution has no gradient itself
    generator = torch.Generator().manual_seed(4)
    video = torch.randn(3, 6, generator=generator, requires_grad=True)
    text = torch.randn(3, 6, generator=generator, requires_grad=True)
    grad_video, grad_text = torch.autograd.grad(attribute_kl(video, text), (video, text))
    assert grad_video.abs().sum() > 0 and grad_text.abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        attribute_kl(video, text, temperature=0.0)
