"""Attribute and word vocabularies and the label imbalance report."""

from __future__ import annotations

import json

import pytest

from mcsan.data.caption_parse import Attribute, CaptionParse
from mcsan.data.vocab import (
    PAD_TOKEN,
    UNK_TOKEN,
    WORD_PAD,
    WORD_UNK,
    AttributeVocab,
    WordVocab,
    build_attribute_vocabs,
    caption_labels,
    imbalance_report,
    imbalance_stats,
    role_halves,
)


def parse(tokens: str, entity=(), action=(), relationship=()) -> CaptionParse:
    def attrs(labels):
        return [Attribute(label, [0]) for label in labels]

    return CaptionParse(tokens.split(), attrs(entity), attrs(action), attrs(relationship))


PARSES = [
    parse("a man rides a horse", ["man", "horse"], ["ride"], ["man|ride|horse"]),
    parse("a man rides a bike", ["man", "bike"], ["ride"], ["man|ride|bike"]),
    parse("a woman rides a horse", ["woman", "horse"], ["ride"], ["woman|ride|horse"]),
    parse("a man sings", ["man"], ["sing"], ["man|sing|"]),
    parse("a dog", ["dog"]),
]


def test_labels_are_sorted_by_caption_count_then_label():
    vocabs = build_attribute_vocabs(PARSES, min_count=1, top_k={})
    assert vocabs["entity"].labels == ["man", "horse", "bike", "dog", "woman"]
    assert vocabs["entity"].counts == [3, 2, 1, 1, 1]
    assert vocabs["action"].labels == ["ride", "sing"]
    assert vocabs["relationship"].labels == [
        "man|ride|bike",
        "man|ride|horse",
        "man|sing|",
        "woman|ride|horse",
    ]


def test_a_label_repeated_in_one_caption_counts_once():
    repeated = parse("a man and a man", ["man", "man"])
    assert build_attribute_vocabs([repeated], 1, {})["entity"].counts == [1]


def test_min_count_and_top_k():
    vocabs = build_attribute_vocabs(PARSES, min_count=2, top_k={"entity": 1})
    assert vocabs["entity"].labels == ["man"]
    assert vocabs["action"].labels == ["ride"]
    assert vocabs["relationship"].labels == []
    with pytest.raises(ValueError, match="unknown level"):
        build_attribute_vocabs(PARSES, 1, {"global": 10})


def test_vocabulary_does_not_depend_on_caption_order():
    forward = build_attribute_vocabs(PARSES, 1, {"entity": 3})
    backward = build_attribute_vocabs(PARSES[::-1], 1, {"entity": 3})
    assert forward == backward


def test_encode_keeps_known_labels_once_in_order():
    vocab = AttributeVocab("action", ["ride", "sing", "walk"], [5, 3, 1])
    assert vocab.encode(["walk", "fly", "ride", "walk"]) == [2, 0]
    assert vocab.encode([]) == []
    assert "sing" in vocab and "fly" not in vocab
    assert len(vocab) == 3


def test_attribute_vocab_json_round_trip_and_validation():
    vocab = AttributeVocab("entity", ["man", "horse"], [3, 2])
    assert AttributeVocab.from_json(json.loads(json.dumps(vocab.to_json()))) == vocab
    with pytest.raises(ValueError, match="unknown attribute level"):
        AttributeVocab("global", [], [])
    with pytest.raises(ValueError, match="2 labels but 1 counts"):
        AttributeVocab("entity", ["a", "b"], [1])
    with pytest.raises(ValueError, match="repeats labels"):
        AttributeVocab("entity", ["a", "a"], [1, 1])


def test_role_halves_of_a_triple():
    assert role_halves("dog|chase|cat") == ("dog|chase|", "|chase|cat")
    assert role_halves("man|in|shirt") == ("man|in|", "|in|shirt")
    assert role_halves("man|sing|") is None  # no object: the triple is its own subject half
    assert role_halves("|chase|cat") is None


def test_role_halves_tell_a_role_swap_apart():
    active = parse("a dog chases a cat", ["dog", "cat"], ["chase"], ["dog|chase|cat"])
    swapped = parse("a cat chases a dog", ["cat", "dog"], ["chase"], ["cat|chase|dog"])
    assert caption_labels(active, "relationship", True) == [
        "dog|chase|cat", "dog|chase|", "|chase|cat"
    ]
    assert set(caption_labels(swapped, "relationship", True)) == {
        "cat|chase|dog", "cat|chase|", "|chase|dog"
    }
    assert caption_labels(active, "relationship", False) == ["dog|chase|cat"]
    assert caption_labels(active, "entity", True) == ["dog", "cat"]  # other levels unchanged


def test_caption_labels_repeat_no_label():
    both = parse("a dog is chasing and chases a cat", ["dog"], ["chase"],
                 ["dog|chase|", "dog|chase|cat"])
    assert caption_labels(both, "relationship", True) == ["dog|chase|", "dog|chase|cat", "|chase|cat"]


def test_vocabularies_with_relationship_halves_count_each_half_once_per_caption():
    vocabs = build_attribute_vocabs(PARSES, min_count=1, top_k={}, relationship_halves=True)
    relationship = vocabs["relationship"]
    assert relationship.relationship_halves
    assert dict(zip(relationship.labels, relationship.counts, strict=True)) == {
        "man|ride|": 2,  # man rides a horse, man rides a bike
        "|ride|horse": 2,  # man and woman ride a horse
        "man|ride|bike": 1, "man|ride|horse": 1, "man|sing|": 1, "woman|ride|horse": 1,
        "|ride|bike": 1, "woman|ride|": 1,
    }
    assert not vocabs["entity"].relationship_halves
    assert relationship.encode_caption(PARSES[2]) == [
        relationship.index[x] for x in ("woman|ride|horse", "woman|ride|", "|ride|horse")
    ]
    assert build_attribute_vocabs(PARSES, 1, {}, relationship_halves=False)["relationship"].labels == [
        "man|ride|bike", "man|ride|horse", "man|sing|", "woman|ride|horse"
    ]


def test_relationship_halves_survive_json_and_older_files_read_without_them():
    vocab = AttributeVocab("relationship", ["dog|chase|", "|chase|cat"], [2, 1], True)
    assert AttributeVocab.from_json(json.loads(json.dumps(vocab.to_json()))) == vocab
    plain = AttributeVocab("relationship", ["dog|chase|cat"], [1])
    assert "relationship_halves" not in plain.to_json()  # checkpoints saved before compare equal
    assert not AttributeVocab.from_json(plain.to_json()).relationship_halves
    with pytest.raises(ValueError, match="relationship level"):
        AttributeVocab("entity", ["dog"], [1], relationship_halves=True)


def test_entity_modifiers_join_the_entity_labels_and_spans_only_when_asked():
    small_dog = CaptionParse(
        ["a", "small", "brown", "dog", "chases", "a", "cat"],
        [Attribute("dog", [3]), Attribute("cat", [6])], [Attribute("chase", [4])],
        [Attribute("dog|chase|cat", [3, 4, 6])], [Attribute("small", [1]), Attribute("brown", [2])],
    )
    big_dog = CaptionParse(["a", "big", "dog"], [Attribute("dog", [2])],
                           modifier=[Attribute("big", [1])])
    assert caption_labels(small_dog, "entity", False) == ["dog", "cat"]
    assert caption_labels(small_dog, "entity", False, entity_modifiers=True) == [
        "dog", "cat", "small", "brown"
    ]
    assert caption_labels(small_dog, "action", False, entity_modifiers=True) == ["chase"]
    vocabs = build_attribute_vocabs([small_dog, big_dog], 1, {}, entity_modifiers=True)
    entity = vocabs["entity"]
    assert entity.entity_modifiers and not vocabs["action"].entity_modifiers
    assert dict(zip(entity.labels, entity.counts, strict=True)) == {
        "dog": 2, "big": 1, "brown": 1, "cat": 1, "small": 1
    }
    assert [a.label for a in entity.span_attributes(small_dog)] == ["dog", "cat", "small", "brown"]
    plain = build_attribute_vocabs([small_dog, big_dog], 1, {})["entity"]
    assert plain.labels == ["dog", "cat"]
    assert [a.label for a in plain.span_attributes(small_dog)] == ["dog", "cat"]
    assert AttributeVocab.from_json(json.loads(json.dumps(entity.to_json()))) == entity
    assert "entity_modifiers" not in plain.to_json()  # files from before read as without
    with pytest.raises(ValueError, match="entity level"):
        AttributeVocab("action", ["run"], [1], entity_modifiers=True)


def test_word_vocab_ids_match_the_batch_contract():
    words = WordVocab.build([p.tokens for p in PARSES], min_count=2)
    assert words.words[WORD_PAD] == PAD_TOKEN
    assert words.words[WORD_UNK] == UNK_TOKEN
    assert words.words[2:] == ["a", "man", "rides", "horse"]
    assert words.encode(["a", "zebra", "horse"]) == [2, WORD_UNK, 5]
    assert words.decode([3, 4]) == ["man", "rides"]
    assert WordVocab.from_json(json.loads(json.dumps(words.to_json()))) == words
    with pytest.raises(ValueError, match="<pad>"):
        WordVocab(["x", "y"], [0, 0])


def test_word_vocab_min_count_one_keeps_every_word():
    words = WordVocab.build([p.tokens for p in PARSES], min_count=1)
    assert len(words) == 2 + len({t for p in PARSES for t in p.tokens})


def test_imbalance_stats_on_a_known_distribution():
    counts = [100, 50, 10, 5, 5, 4, 3, 2, 1, 1]
    vocab = AttributeVocab("entity", [f"l{i}" for i in range(10)], counts)
    stats = imbalance_stats({"entity": vocab, "action": AttributeVocab("action", [], [])})
    entity = stats["entity"]
    assert entity["labels"] == 10
    assert entity["occurrences"] == 181
    assert entity["top1_share"] == pytest.approx(100 / 181)
    assert entity["top10pct_share"] == pytest.approx(100 / 181)
    assert entity["median_count"] == pytest.approx(4.5)
    assert entity["max_min_ratio"] == pytest.approx(100.0)
    assert entity["pct_below_10"] == pytest.approx(70.0)
    assert stats["action"] == {"labels": 0, "occurrences": 0}
    report = imbalance_report({"entity": vocab, "action": AttributeVocab("action", [], [])})
    assert "entity" in report and "(no labels)" in report and "55.2" in report
