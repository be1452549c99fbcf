"""Batches from a split and its prepared parses: padding, masks, attribute targets."""

from __future__ import annotations

import pytest
import torch

from mcsan.data.batches import SPAN_LEVELS, CaptionItems, CaptionPairs, VideoItems, collate_pairs
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import load_prepared
from mcsan.data.vocab import WORD_PAD


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
    mask = batch.positive_mask
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

