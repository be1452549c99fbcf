"""Batches from a split and its prepared parses: padding, masks, attribute targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcsan.data.batches import (
    SPAN_LEVELS,
    CaptionItems,
    CaptionPairs,
    VideoItems,
    collate_captions,
    collate_pairs,
    collate_videos,
    multi_hot,
    role_swap,
)
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import load_prepared
from mcsan.data.vocab import WORD_PAD
from mcsan.model.outputs import LossTargets


@pytest.fixture(scope="module")
def train_pairs(tiny_prepared):
    root, prepared_dir = tiny_prepared
    dataset = read_dataset(root, progress=False)
    prepared = load_prepared(prepared_dir, dataset)
    return dataset["train"], prepared


def test_pairs_collate_to_a_padded_batch(train_pairs):
    split, prepared = train_pairs
    pairs = CaptionPairs(split, prepared, max_frames=5, max_words=6)
    sizes = {level: len(vocab) for level, vocab in prepared.vocabs.items()}
    batch = collate_pairs([pairs[i] for i in range(7)], sizes)
    assert batch.video.shape == (7, 5, split.feature_dim)  # frames resampled 8 -> 5
    assert batch.video_mask.all()
    assert batch.words.shape[0] == 7 and batch.words.shape[1] <= 6
    assert torch.equal(batch.word_mask, batch.words != WORD_PAD)
    for level, size in sizes.items():
        assert batch.video_targets[level].shape == (7, size)
        assert batch.text_targets[level].shape == (7, size)
        # a caption's own labels are a subset of its video's union
        assert (batch.text_targets[level] <= batch.video_targets[level]).all()
    assert set(batch.level_masks) == set(SPAN_LEVELS)
    for mask in batch.level_masks.values():
        assert not (mask & ~batch.word_mask).any()
    assert not (batch.role_masks & ~batch.word_mask[:, None, None]).any()
    assert batch.caption_ids == [c.caption_id for c in split.captions[:7]]


def positions(row: torch.Tensor) -> set[int]:
    return set(torch.nonzero(row).flatten().tolist())


def test_each_row_of_a_batch_holds_exactly_its_items_positions(train_pairs):
    split, prepared = train_pairs
    pairs = CaptionPairs(split, prepared, max_frames=8, max_words=7)  # some captions cut
    sizes = {level: len(vocab) for level, vocab in prepared.vocabs.items()}
    items = [pairs[i] for i in range(0, len(pairs), 3)]
    batch = collate_pairs(items, sizes)
    for i, item in enumerate(items):
        n_words = len(item["words"])
        assert batch.words[i, :n_words].tolist() == item["words"]
        assert positions(batch.word_mask[i]) == set(range(n_words))
        for level in SPAN_LEVELS:
            assert positions(batch.level_masks[level][i]) == set(item["level_tokens"][level])
        for level in sizes:
            assert positions(batch.text_targets[level][i]) == set(item["text_labels"][level])
            assert positions(batch.video_targets[level][i]) == set(item["video_labels"][level])
        for r in range(batch.role_masks.shape[1]):
            parts = item["roles"][r] if r < len(item["roles"]) else [[], [], []]
            for role in range(3):
                assert positions(batch.role_masks[i, r, role]) == set(parts[role])
    assert any(len(item["roles"]) > 1 for item in items)  # several relationships are padded


def test_captions_collate_multi_token_spans_and_several_relationships():
    def item(words, entity, action, roles, labels):
        return {"tokens": [str(w) for w in words], "words": words, "caption_id": "c",
                "level_tokens": {"entity": entity, "action": action}, "roles": roles,
                "text_labels": {"entity": labels}, "video_id": "v"}

    # "the police officer runs after a cat on a bike": two relationships, multi-token roles
    first = item([5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [1, 2, 6, 9], [3, 4],
                 [[[1, 2], [3, 4], [6]], [[6], [7], [9]]], [0, 2])
    first["orders"] = [2, 0]  # the chase is the caption's second event
    second = item([5, 6, 7], [2], [], [], [1])
    batch = collate_captions([first, second], {"entity": 3})
    assert batch["relation_orders"].tolist() == [[2, 0], [0, 0]]  # no "orders": none stated
    assert batch["words"].tolist() == [first["words"], [5, 6, 7] + [WORD_PAD] * 7]
    assert batch["word_mask"].sum(1).tolist() == [10, 3]
    assert positions(batch["level_masks"]["entity"][0]) == {1, 2, 6, 9}
    assert positions(batch["level_masks"]["action"][0]) == {3, 4}
    assert not batch["level_masks"]["action"][1].any()
    assert batch["role_masks"].shape == (2, 2, 3, 10)
    assert [positions(batch["role_masks"][0, 0, role]) for role in range(3)] == [{1, 2}, {3, 4}, {6}]
    assert [positions(batch["role_masks"][0, 1, role]) for role in range(3)] == [{6}, {7}, {9}]
    assert not batch["role_masks"][1].any()
    assert batch["text_targets"]["entity"].tolist() == [[1, 0, 1], [0, 1, 0]]


@pytest.mark.parametrize("lengths", [(3, 3), (3, 1)])
def test_videos_collate_with_and_without_padding(lengths):
    clips = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 10 * i
             for i, n in enumerate(lengths)]
    batch = collate_videos([{"video": clip, "video_id": f"v{i}"} for i, clip in enumerate(clips)])
    assert batch["video"].dtype == torch.float32 and batch["video"].shape == (2, 3, 2)
    for i, clip in enumerate(clips):
        n = len(clip)
        assert batch["video_mask"][i].tolist() == [True] * n + [False] * (3 - n)
        assert np.array_equal(batch["video"][i, :n].numpy(), clip)
        assert not batch["video"][i, n:].any()
    assert batch["video_ids"] == ["v0", "v1"]


def test_multi_hot_rows_and_empty_rows():
    hot = multi_hot([[0, 2], [], [3]], 4)
    assert hot.dtype == torch.float32
    assert hot.tolist() == [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert not multi_hot([[], []], 3, torch.bool).any()


def test_video_targets_are_the_union_over_captions(train_pairs):
    split, prepared = train_pairs
    captions = CaptionItems(split, prepared, max_words=32)
    video_id = split.video_ids[0]
    union = captions.video_labels()[video_id]
    expected = {level: set() for level in prepared.vocabs}
    for caption in split.captions:
        if caption.video_id == video_id:
            for level, ids in prepared.targets(caption.caption_id).items():
                expected[level].update(ids)
    assert {level: set(ids) for level, ids in union.items()} == expected
    assert any(union.values())


def test_positive_mask_marks_captions_of_the_same_video(train_pairs):
    split, prepared = train_pairs
    pairs = CaptionPairs(split, prepared, max_frames=8, max_words=32)
    sizes = {level: len(vocab) for level, vocab in prepared.vocabs.items()}
    batch = collate_pairs([pairs[i] for i in range(6)], sizes)  # 5 captions of video 0, 1 of 1
    mask = LossTargets.of(batch).positive_mask  # what the loss reads, from batch.video_keys
    same = torch.tensor([[a == b for b in batch.video_ids] for a in batch.video_ids])
    assert torch.equal(mask, same) and mask[:5, :5].all() and not mask[5, 0]


def test_video_items_and_missing_parses(train_pairs):
    split, prepared = train_pairs
    videos = VideoItems(split, max_frames=3)
    assert videos[0]["video"].shape == (3, split.feature_dim)
    parses = dict(prepared.parses)
    del parses[split.captions[0].caption_id]
    prepared_missing = type(prepared)(**{**prepared.__dict__, "parses": parses})
    with pytest.raises(KeyError, match="mcsan prepare"):
        CaptionItems(split, prepared_missing, max_words=8)


def test_neighbour_batches_pair_role_swapped_twins(train_pairs, tiny_prepared):
    from mcsan.data.batches import NeighbourBatches
    from mcsan.data.synth import read_synth_meta

    split, prepared = train_pairs
    pairs = CaptionPairs(split, prepared, max_frames=8, max_words=32)
    sampler = NeighbourBatches(pairs, batch_size=16, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(pairs) // 8
    assert all(len(b) == 16 for b in batches)
    anchors = [i for b in batches for i in b[:8]]
    assert len(set(anchors)) == len(anchors)  # every caption at most once as an anchor
    # the twins of the synthetic benchmark share entities and action: they are neighbours
    meta = read_synth_meta(tiny_prepared[0])
    twins = {v: s["twin"] for v, s in meta["videos"].items() if s.get("twin") in split.video_ids}
    assert twins
    ids = split.video_ids
    found = sum(ids[sampler.neighbour[ids.index(v)]] == twin for v, twin in twins.items())
    assert found / len(twins) >= 0.6
    for batch in batches:  # the partner caption belongs to the anchor's neighbour video
        for anchor, partner in zip(batch[:8], batch[8:], strict=True):
            expected = sampler.neighbour[sampler.caption_video[anchor]]
            assert sampler.caption_video[partner] == expected



def caption_item(tokens: str, roles: list, actions: list[int]) -> dict:
    """A caption item as CaptionItems gives it; word ids are the token positions + 2."""
    words = tokens.split()
    return {
        "tokens": words,
        "words": [2 + i for i in range(len(words))],
        "roles": roles,
        "level_tokens": {"entity": [], "action": actions},
    }


def swapped_text(item: dict) -> str:
    return " ".join(item["tokens"][i] for i in role_swap(item))


def test_role_swap_exchanges_the_event_subject_and_object():
    # "a cat is chased by a dog": dog|chase|cat (the passive's agent is the subject)
    passive = caption_item("a cat is chased by a dog", [[[6], [3], [1]]], actions=[3])
    assert swapped_text(passive) == "a dog is chased by a cat"
    # the first verb triple, not a preposition's: person|in|jacket is no event
    item = caption_item(
        "a person in a jacket attacks a girl", [[[1], [2], [4]], [[1], [5], [7]]], actions=[5]
    )
    assert swapped_text(item) == "a girl in a jacket attacks a person"
    # compounds swap when both sides have as many tokens
    item = caption_item("a police officer chases a bank robber", [[[1, 2], [3], [5, 6]]], [3])
    assert swapped_text(item) == "a bank robber chases a police officer"


@pytest.mark.parametrize(
    ("tokens", "roles", "actions"),
    [
        ("a man is dancing", [[[1], [3], []]], [3]),  # no object
        ("a man in a park", [[[1], [2], [4]]], []),  # a preposition, not a verb
        ("a police officer chases a dog", [[[1, 2], [3], [5]]], [3]),  # 2 tokens vs 1
        ("a creature bites a creature", [[[1], [2], [4]]], [2]),  # the same words
        ("a man", [], []),
    ],
)
def test_captions_without_a_swappable_event_have_no_role_swap(tokens, roles, actions):
    item = caption_item(tokens, roles, actions)
    item["words"] = [{"creature": 5}.get(t, 2 + i) for i, t in enumerate(item["tokens"])]
    assert role_swap(item) is None


def test_batches_carry_the_role_swapped_captions(train_pairs):
    split, prepared = train_pairs
    pairs = CaptionPairs(split, prepared, max_frames=5, max_words=32)
    sizes = {level: len(vocab) for level, vocab in prepared.vocabs.items()}
    items = [pairs[i] for i in range(16)]
    assert collate_pairs(items, sizes).role_swaps is None  # only when the loss asks
    batch = collate_pairs(items, sizes, role_swaps=True)
    swaps = batch.role_swaps
    expected = [i for i, item in enumerate(items) if role_swap(item) is not None]
    assert expected and swaps.rows.tolist() == expected
    assert swaps.words.shape == (len(expected), batch.words.shape[1])
    for row, words, tokens in zip(swaps.rows.tolist(), swaps.words, swaps.tokens, strict=True):
        assert torch.equal(words != WORD_PAD, batch.word_mask[row])  # same length and padding
        assert sorted(words.tolist()) == sorted(batch.words[row].tolist())  # same words
        assert not torch.equal(words, batch.words[row])  # in another order
        assert sorted(tokens) == sorted(batch.tokens[row]) and tokens != batch.tokens[row]


def test_pinning_and_moving_a_batch_reach_every_tensor(train_pairs, monkeypatch):
    split, prepared = train_pairs
    pairs = CaptionPairs(split, prepared, max_frames=5, max_words=32)
    sizes = {level: len(vocab) for level, vocab in prepared.vocabs.items()}
    batch = collate_pairs([pairs[i] for i in range(16)], sizes, role_swaps=True)
    seen: list[torch.Tensor] = []

    def fake_pin(tensor: torch.Tensor) -> torch.Tensor:  # no accelerator here to pin for
        seen.append(tensor)
        return tensor.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    pinned = batch.pin_memory()
    tensors = [batch.video, batch.video_mask, batch.words, batch.word_mask, batch.role_masks,
               batch.relation_orders, *batch.level_masks.values(), *batch.video_targets.values(),
               *batch.text_targets.values(), batch.role_swaps.rows, batch.role_swaps.words,
               batch.video_keys]
    assert len(seen) == len(tensors) and all(any(t is s for s in seen) for t in tensors)
    moved = pinned.to("cpu")
    for name in ("video", "video_mask", "words", "word_mask", "role_masks", "relation_orders"):
        assert torch.equal(getattr(moved, name), getattr(batch, name)), name
        assert getattr(pinned, name) is not getattr(batch, name), name  # a copy, not the same
    for name in ("level_masks", "video_targets", "text_targets"):
        assert getattr(moved, name).keys() == getattr(batch, name).keys()
        assert all(torch.equal(getattr(moved, name)[k], v) for k, v in getattr(batch, name).items())
    assert torch.equal(moved.role_swaps.words, batch.role_swaps.words)
    assert moved.role_swaps.tokens == batch.role_swaps.tokens and moved.tokens == batch.tokens
    assert moved.video_ids == batch.video_ids and moved.caption_ids == batch.caption_ids
    assert moved.regions is None
