"""Evaluation of a trained checkpoint: encoding a split once, then metrics from the encodings."""

from __future__ import annotations

import statistics

import pytest
import torch

from mcsan.config import Config, ModelConfig
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import load_prepared
from mcsan.data.vocab import WORD_PAD
from mcsan.evaluate import (
    FULL_TEST_PROTOCOL,
    ONE_K_A_PROTOCOL,
    _Rows,
    encode_split,
    evaluate_encoded,
    load_trained,
    protocol_name,
)
from mcsan.model.text import TextEncoder


@pytest.fixture(scope="module")
def trained(tiny_checkpoint, tiny_prepared):
    root, prepared_dir = tiny_prepared
    dataset = read_dataset(root, progress=False)
    prepared = load_prepared(prepared_dir, dataset)
    model, config = load_trained(tiny_checkpoint.best_dir, prepared)
    return model, config, dataset, prepared


def encode(trained, split: str, batch_size: int):
    model, config, dataset, prepared = trained
    config = Config.from_dict(config.to_dict())
    config.eval.batch_size = batch_size
    return encode_split(model, dataset[split], prepared, config, torch.device("cpu"), False)


def test_encoding_holds_every_caption_and_video_in_split_order(trained, one_thread):
    _, _, dataset, prepared = trained
    split = dataset["test"]
    encoded = encode(trained, "test", batch_size=7)  # batches that do not divide the counts
    assert encoded.video_ids == split.video_ids
    assert encoded.caption_ids == [c.caption_id for c in split.captions]
    assert [encoded.video_ids[i] for i in encoded.caption_to_video] == [
        c.video_id for c in split.captions
    ]
    for level, emb in encoded.text_emb.items():
        assert emb.shape[0] == len(split.captions)
        assert encoded.video_emb[level].shape[0] == len(split.video_ids)
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(emb)))
    for level, targets in encoded.text_targets.items():
        assert targets.dtype == torch.bool
        for row, caption in enumerate(split.captions):
            expected = set(prepared.targets(caption.caption_id)[level])
            assert set(targets[row].nonzero().flatten().tolist()) == expected
        union = torch.zeros_like(encoded.video_targets[level])
        union.index_add_(0, encoded.caption_to_video, targets.to(union.dtype))
        assert torch.equal(encoded.video_targets[level], union)


def test_batch_size_does_not_change_the_encoding(trained, one_thread):
    small, large = encode(trained, "val", batch_size=3), encode(trained, "val", batch_size=64)
    for field in ("video_emb", "text_emb", "video_attr_logits", "text_attr_logits"):
        for level, values in getattr(small, field).items():
            torch.testing.assert_close(values, getattr(large, field)[level])


def test_metrics_match_a_dense_sort_based_reference(trained, one_thread):
    model, config, _, _ = trained
    encoded = encode(trained, "test", batch_size=16)
    results = evaluate_encoded(encoded, model, config, "test")
    scores = model.fused_similarity(encoded.text_emb, encoded.video_emb)  # (M, N)
    truth = scores.gather(1, encoded.caption_to_video[:, None])  # (M, 1)
    # DESIGN.md's rules: ties count against the model; a video's v2t rank is the best of its
    # captions', counting the captions of other videos that score at least as high
    t2v = (scores >= truth).sum(1).tolist()
    v2t = []
    for video in range(scores.shape[1]):
        own = encoded.caption_to_video == video
        if own.any():
            best = scores[own, video].max()
            v2t.append(1 + int((scores[~own, video] >= best).sum()))
    for name, ranks in (("t2v", t2v), ("v2t", v2t)):
        for k in (1, 5, 10):
            expected = 100 * sum(r <= k for r in ranks) / len(ranks)
            assert results["fused"][f"{name}_r{k}"] == pytest.approx(expected)
        assert results["fused"][f"{name}_medr"] == statistics.median(ranks)
        assert results["fused"][f"{name}_mnr"] == pytest.approx(statistics.fmean(ranks))
    assert set(results["levels"]) == set(encoded.text_emb)
    assert set(results["attributes"]) == set(encoded.text_targets)


def test_rows_refuse_a_loader_that_gave_too_few_rows():
    rows = _Rows(5)
    rows.add({"global": torch.ones(3, 2)})
    with pytest.raises(RuntimeError, match="expected 5 rows, the loader gave 3"):
        rows.filled()
    rows.add({"global": torch.zeros(2, 2)})
    assert rows.filled()["global"].sum() == 6
    nothing = _Rows(4)  # a model without attribute heads predicts {} for every batch
    nothing.add({})
    assert nothing.filled() == {}


def test_results_name_their_protocol(trained, one_thread):
    model, config, _, _ = trained
    encoded = encode(trained, "test", batch_size=32)
    assert evaluate_encoded(encoded, model, config, "test")["protocol"] == "all-captions"
    assert evaluate_encoded(encoded, model, config, "test", "msrvtt")["protocol"] == (
        FULL_TEST_PROTOCOL)
    assert protocol_name(config, "test_1k", "msrvtt") == ONE_K_A_PROTOCOL
    assert protocol_name(config, "val", "msrvtt") == "all-captions"  # no named protocol
    assert protocol_name(config, "val", "vatex").startswith("vatex-val")
    assert protocol_name(config, "test", "hgr") == config.eval.protocol


def test_the_1k_a_split_names_its_protocol(trained, one_thread):
    model, config, _, _ = trained
    encoded = encode(trained, "test", batch_size=32)
    assert evaluate_encoded(encoded, model, config, "test_1k")["protocol"].startswith(
        "msrvtt-1k-A")


def test_the_gru_without_autograd_gives_the_packed_gru_states(one_thread):
    """Without autograd on the CPU the text encoder's BiGRU computes each distinct word's input
    gates once per batch; its states are those of torch's packed GRU (bit for bit with MKL)."""
    torch.manual_seed(0)
    encoder = TextEncoder(50, ModelConfig(hidden_dim=16, word_dim=8)).eval()
    lengths = torch.tensor([3, 7, 1, 7, 5])
    words = torch.randint(2, 50, (5, 9))
    words[torch.arange(9)[None, :] >= lengths[:, None]] = WORD_PAD
    with torch.enable_grad():
        packed = encoder._gru_states(words, lengths).detach()  # (5, 9, 16)
    with torch.inference_mode():
        by_word = encoder._gru_states(words, lengths)
    torch.testing.assert_close(by_word, packed)
    assert not by_word[torch.arange(9)[None, :] >= lengths[:, None]].any()  # padding is zero
