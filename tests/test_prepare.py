"""`prepare` on small in-memory datasets: files, train-only vocabularies, reloading, checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mcsan.config import VocabConfig
from mcsan.data.batches import CaptionItems
from mcsan.data.dataset import Caption, Dataset, Split
from mcsan.data.prepare import (
    CACHE_FILE,
    PARSES_FILE,
    STATS_FILE,
    VOCAB_FILE,
    caption_fingerprint,
    load_prepared,
    prepare,
)

TRAIN = {
    "v0": ["a man is riding a horse", "a man rides a horse on a beach"],
    "v1": ["a woman sits on a bench", "a woman is sitting on a bench in a park"],
    "v2": ["a dog chases a cat", "a cat is chased by a dog"],
}
VAL = {"v3": ["a man plays the guitar", "a giraffe eats leaves"]}


def split(name: str, videos: dict[str, list[str]]) -> Split:
    captions = [
        Caption(f"{video}#{i}", video, text)
        for video, texts in videos.items()
        for i, text in enumerate(texts)
    ]
    return Split(name, list(videos), captions)


def dataset(train=TRAIN, val=VAL) -> Dataset:
    return Dataset(
        Path("/data/toy"), "test", {"train": split("train", train), "val": split("val", val)}
    )


CONFIG = VocabConfig(min_count=1, top_k={"entity": 100, "action": 100, "relationship": 100})


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare(dataset(), out, CONFIG, progress=False)
    return out


def test_prepare_writes_every_file(prepared_dir):
    for name in (PARSES_FILE, VOCAB_FILE, STATS_FILE, CACHE_FILE):
        assert (prepared_dir / name).is_file(), name
    records = [json.loads(line) for line in (prepared_dir / PARSES_FILE).read_text().splitlines()]
    assert [r["caption_id"] for r in records] == [c.caption_id for c in dataset().all_captions()]
    assert {r["split"] for r in records} == {"train", "val"}
    assert records[0]["parse"]["tokens"] == "a man is riding a horse"


def test_vocabularies_come_from_training_captions_only(prepared_dir):
    prepared = load_prepared(prepared_dir)
    entity = prepared.vocabs["entity"]
    assert entity.labels == ["bench", "cat", "dog", "horse", "man", "woman", "beach", "park"]
    assert entity.counts == [2, 2, 2, 2, 2, 2, 1, 1]
    assert "giraffe" not in entity  # only in val
    assert "giraffe" not in prepared.words.index
    assert (
        prepared.vocabs["relationship"].counts[
            prepared.vocabs["relationship"].index["dog|chase|cat"]
        ]
        == 2
    )


def test_targets_encode_each_caption(prepared_dir):
    prepared = load_prepared(prepared_dir)
    targets = prepared.targets("v2#1")  # "a cat is chased by a dog"
    relationship = prepared.vocabs["relationship"]
    assert [relationship.labels[i] for i in targets["relationship"]] == [
        "dog|chase|cat", "dog|chase|", "|chase|cat"  # the triple and its role halves
    ]
    assert targets["entity"] and targets["action"]
    assert prepared.targets("v3#1")["entity"] == []  # "giraffe"/"leaf" never seen in training
    with pytest.raises(KeyError, match="prepare"):
        prepared.targets("nope#0")


def test_relationship_halves_reach_the_targets_and_the_vocab_file(tmp_path):
    config = VocabConfig(min_count=1, top_k={}, relationship_halves=True)
    whole_config = dataclasses.replace(config, relationship_halves=False)
    returned = prepare(dataset(), tmp_path, config, progress=False)
    loaded = load_prepared(tmp_path, dataset())
    assert loaded.vocabs == returned.vocabs
    relationship = loaded.vocabs["relationship"]
    assert relationship.relationship_halves
    assert relationship.counts[relationship.index["|chase|cat"]] == 2
    assert relationship.counts[relationship.index["man|ride|"]] == 2
    targets = loaded.targets("v2#1")  # "a cat is chased by a dog"
    assert [relationship.labels[i] for i in targets["relationship"]] == [
        "dog|chase|cat", "dog|chase|", "|chase|cat"
    ]
    written = json.loads((tmp_path / VOCAB_FILE).read_text())
    assert written["vocab_config"]["relationship_halves"] is True
    assert written["attributes"]["relationship"]["relationship_halves"] is True
    whole = prepare(dataset(), tmp_path / "whole", whole_config, progress=False)
    assert [whole.vocabs["relationship"].labels[i] for i in whole.targets("v2#1")["relationship"]] == [
        "dog|chase|cat"
    ]
    assert "|chase|cat" not in whole.vocabs["relationship"]
    # a trained model's vocabularies carry their own setting, whatever the config says
    again = prepare(dataset(), tmp_path / "again", whole_config, progress=False,
                    vocabularies={"attributes": {lv: v.to_json() for lv, v in loaded.vocabs.items()},
                                  "words": loaded.words.to_json()})
    assert again.targets("v2#1") == targets


def test_entity_modifiers_reach_the_targets_the_spans_and_the_vocab_file(tmp_path):
    data = dataset(train={**TRAIN, "v4": ["a small dog chases a big cat", "a small dog runs"]})
    config = VocabConfig(min_count=1, top_k={}, entity_modifiers=True)
    returned = prepare(data, tmp_path, config, progress=False)
    loaded = load_prepared(tmp_path, data)
    assert loaded.vocabs == returned.vocabs
    entity = loaded.vocabs["entity"]
    assert entity.entity_modifiers
    assert entity.counts[entity.index["small"]] == 2
    assert [entity.labels[i] for i in loaded.targets("v4#0")["entity"]] == [
        "dog", "cat", "small", "big"
    ]
    written = json.loads((tmp_path / VOCAB_FILE).read_text())
    assert written["vocab_config"]["entity_modifiers"] is True
    assert written["attributes"]["entity"]["entity_modifiers"] is True
    items = CaptionItems(data["train"], loaded, max_words=32)
    first = next(i for i in range(len(items)) if items[i]["caption_id"] == "v4#0")
    assert items[first]["level_tokens"]["entity"] == [1, 2, 5, 6]  # small dog, big cat
    plain = prepare(data, tmp_path / "plain", dataclasses.replace(config, entity_modifiers=False),
                    progress=False)
    assert "small" not in plain.vocabs["entity"]
    plain_items = CaptionItems(data["train"], plain, max_words=32)
    assert plain_items[first]["level_tokens"]["entity"] == [2, 6]  # the nouns alone


def test_load_prepared_round_trips_what_prepare_returned(tmp_path):
    returned = prepare(dataset(), tmp_path, CONFIG, progress=False)
    loaded = load_prepared(tmp_path, dataset())
    assert loaded.parses == returned.parses
    assert loaded.caption_splits == returned.caption_splits
    assert loaded.vocabs == returned.vocabs
    assert loaded.words == returned.words
    assert loaded.stats == json.loads(json.dumps(returned.stats))
    assert loaded.caption_hash == caption_fingerprint(dataset())


def test_load_prepared_can_build_the_parses_of_some_splits_only(prepared_dir):
    everything = load_prepared(prepared_dir)
    val_only = load_prepared(prepared_dir, dataset(), splits=["val"])
    assert set(val_only.parses) == {"v3#0", "v3#1"}
    assert val_only.parses["v3#0"] == everything.parses["v3#0"]
    assert val_only.targets("v3#0") == everything.targets("v3#0")
    assert val_only.caption_splits == everything.caption_splits  # still knows every caption
    assert set(load_prepared(prepared_dir, splits="val").parses) == set(val_only.parses)
    assert val_only.vocabs == everything.vocabs and val_only.words == everything.words
    with pytest.raises(KeyError, match="in split 'train', whose parses were not loaded"):
        val_only.targets("v0#0")
    with pytest.raises(ValueError, match=r"no captions of split\(s\) \['tst'\]; it has \['train', 'val'\]"):
        load_prepared(prepared_dir, splits=["val", "tst"])


def test_stats_describe_splits_vocabularies_and_imbalance(prepared_dir):
    stats = json.loads((prepared_dir / STATS_FILE).read_text())
    assert stats["splits"]["train"]["videos"] == 3
    assert stats["splits"]["train"]["captions"] == 6
    assert stats["splits"]["val"]["captions"] == 2
    assert stats["splits"]["train"]["action"]["captions_without_pct"] == 0.0
    assert stats["vocabulary"]["entity"]["size"] == stats["imbalance"]["entity"]["labels"]
    seen = stats["vocabulary"]["relationship"]["distinct_in_train"]
    assert stats["imbalance_seen"]["relationship"]["labels"] == seen
    assert stats["parsing"]["captions"] == 8


def test_second_run_parses_nothing(tmp_path):
    first = prepare(dataset(), tmp_path, CONFIG, progress=False)
    assert first.stats["parsing"]["parsed_by_spacy"] == 8
    smaller = VocabConfig(min_count=2, top_k={"entity": 1})
    second = prepare(dataset(), tmp_path, smaller, progress=False)
    assert second.stats["parsing"]["parsed_by_spacy"] == 0
    assert second.parses == first.parses
    assert second.vocabs["entity"].labels == ["bench"]


def test_prepare_prints_the_statistics(tmp_path, capsys):
    prepare(dataset(), tmp_path, CONFIG, progress=True)
    out = capsys.readouterr().out
    assert "parsed 8 captions" in out and "label imbalance" in out and "train" in out


def test_other_captions_are_refused(prepared_dir):
    changed = dataset(val={"v3": ["a man plays the drums", "a giraffe eats leaves"]})
    with pytest.raises(ValueError, match="prepared for other captions"):
        load_prepared(prepared_dir, changed)
    assert load_prepared(prepared_dir, dataset()).parses


def test_missing_or_stale_directories_are_refused(prepared_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="run `mcsan prepare`"):
        load_prepared(tmp_path / "nowhere")
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in (PARSES_FILE, VOCAB_FILE, STATS_FILE):
        (stale / name).write_bytes((prepared_dir / name).read_bytes())
    meta = json.loads((stale / VOCAB_FILE).read_text())
    (stale / VOCAB_FILE).write_text(json.dumps({**meta, "parser_version": "0"}))
    with pytest.raises(ValueError, match="another mcsan version"):
        load_prepared(stale)
    (stale / VOCAB_FILE).write_text(json.dumps(meta))
    lines = (stale / PARSES_FILE).read_text().splitlines()
    (stale / PARSES_FILE).write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="incomplete"):
        load_prepared(stale)


def test_bad_datasets_are_refused(tmp_path):
    duplicate = dataset()
    duplicate["val"].captions.append(Caption("v0#0", "v3", "a man"))
    with pytest.raises(ValueError, match="'v0#0' appears in split 'train' and again in 'val'"):
        prepare(duplicate, tmp_path, CONFIG, progress=False)
    no_train = Dataset(Path("/data/toy"), "test", {"val": split("val", VAL)})
    with pytest.raises(KeyError, match="no split 'train'"):
        prepare(no_train, tmp_path, CONFIG, progress=False)
    empty_train = dataset(train={"v0": []})
    with pytest.raises(ValueError, match="no captions"):
        prepare(empty_train, tmp_path, CONFIG, progress=False)
