"""Vocabularies: per-level attribute labels for the attribute losses, words for the text encoder.

Both are built from the *training* captions only and are deterministic: labels sorted by
count (most frequent first), ties by label. Attribute counts are caption counts (how many
training captions mention the label), which is what the multi-hot targets see.

:func:`imbalance_report` shows how skewed the attribute labels are (a few labels cover
most occurrences, most labels are rare): the reason the attribute loss is a focal BCE.

Relationship labels are whole triples (``dog|chase|cat``), and a triple is rare: most are seen
a handful of times, and with ``top_k`` the vocabulary fills with frequent ``man|in|shirt``
kinds while almost no subject-verb-object triple is kept. With ``relationship_halves`` each
triple with a subject and an object also gives its two role halves, ``dog|chase|`` (who does
it: the same label as an intransitive "a dog is chasing") and ``|chase|cat`` (to whom), which
are far more frequent and still tell "a dog chases a cat" from "a cat chases a dog".

Entity labels are nouns. With ``entity_modifiers`` the adjectives that modify them
(``CaptionParse.modifier``: "small", "brown", "red") are entity labels too: a noun says what
is there, its adjectives which one of its kind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mcsan import ATTRIBUTE_LEVELS

if TYPE_CHECKING:  # parses are only read here; importing semantics would load spaCy
    from mcsan.data.caption_parse import Attribute, CaptionParse

# Word ids of padding and of unknown words; batches and the text encoder use these.
WORD_PAD = 0
WORD_UNK = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"


def ranked(counts: Counter[str], min_count: int, limit: int | None) -> list[tuple[str, int]]:
    """``(label, count)`` with ``count >= min_count``, most frequent first, ties by label."""
    kept = sorted(
        ((label, n) for label, n in counts.items() if n >= min_count), key=lambda x: (-x[1], x[0])
    )
    return kept if limit is None else kept[:limit]


def role_halves(label: str) -> tuple[str, str] | None:
    """``subject|predicate|object`` -> (``subject|predicate|``, ``|predicate|object``); None
    for a triple without a subject or an object."""
    subject, predicate, obj = label.split("|")
    if not (subject and obj):
        return None
    return f"{subject}|{predicate}|", f"|{predicate}|{obj}"


def caption_labels(
    parse: CaptionParse, level: str, relationship_halves: bool, entity_modifiers: bool = False
) -> list[str]:
    """The labels a caption has at ``level``, without repeats; with ``relationship_halves``
    each relationship triple is followed by its role halves (:func:`role_halves`), with
    ``entity_modifiers`` the entities by the adjectives that modify them."""
    labels = parse.labels(level)
    if level == "relationship" and relationship_halves:
        labels = [x for label in labels for x in (label, *(role_halves(label) or ()))]
    if level == "entity" and entity_modifiers:
        labels = labels + [modifier.label for modifier in parse.modifier]
    return list(dict.fromkeys(labels))


@dataclass
class AttributeVocab:
    level: str  # "entity", "action" or "relationship"
    labels: list[str]
    counts: list[int]  # training captions that mention each label
    # relationship level: the labels include the triples' role halves (module docstring)
    relationship_halves: bool = False
    # entity level: the labels include the adjectives of the entities (module docstring)
    entity_modifiers: bool = False
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.level not in ATTRIBUTE_LEVELS:
            raise ValueError(
                f"unknown attribute level {self.level!r}; choose from {ATTRIBUTE_LEVELS}"
            )
        if self.relationship_halves and self.level != "relationship":
            raise ValueError(f"relationship_halves is for the relationship level, not {self.level!r}")
        if self.entity_modifiers and self.level != "entity":
            raise ValueError(f"entity_modifiers is for the entity level, not {self.level!r}")
        if len(self.labels) != len(self.counts):
            raise ValueError(
                f"{self.level} vocabulary has {len(self.labels)} labels but {len(self.counts)} counts"
            )
        self.index = {label: i for i, label in enumerate(self.labels)}
        if len(self.index) != len(self.labels):
            repeated = [label for label, n in Counter(self.labels).items() if n > 1]
            raise ValueError(f"{self.level} vocabulary repeats labels {repeated[:5]}")

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.index

    def encode(self, labels: Iterable[str]) -> list[int]:
        """Ids of the labels in the vocabulary, first occurrence order, no repeats.

        Labels outside the vocabulary (rarer than ``min_count`` or beyond ``top_k``) have no
        id and are left out: the vocabulary is the set of labels the model predicts.
        """
        index = self.index
        return list(dict.fromkeys(index[label] for label in labels if label in index))

    def caption_labels(self, parse: CaptionParse) -> list[str]:
        """The caption's labels at this level, in this vocabulary's terms (halves or not,
        modifiers or not)."""
        return caption_labels(parse, self.level, self.relationship_halves, self.entity_modifiers)

    def span_attributes(self, parse: CaptionParse) -> list[Attribute]:
        """The caption's attributes whose tokens the text encoder pools for this level: the
        level's own, and the entities' adjectives where the labels include them."""
        modifiers = parse.modifier if self.entity_modifiers else []
        return [*parse.level(self.level), *modifiers]

    def encode_caption(self, parse: CaptionParse) -> list[int]:
        """Ids of the caption's labels at this level (:meth:`encode` of :meth:`caption_labels`)."""
        return self.encode(self.caption_labels(parse))

    def to_json(self) -> dict[str, Any]:
        data = {"level": self.level, "labels": self.labels, "counts": self.counts}
        if self.relationship_halves:  # absent = False: vocab.json files from before read as such
            data["relationship_halves"] = True
        if self.entity_modifiers:  # absent = False, as above
            data["entity_modifiers"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttributeVocab:
        return cls(
            level=data["level"],
            labels=list(data["labels"]),
            counts=list(data["counts"]),
            relationship_halves=bool(data.get("relationship_halves", False)),
            entity_modifiers=bool(data.get("entity_modifiers", False)),
        )


def count_labels(
    parses: Iterable[CaptionParse], relationship_halves: bool = False,
    entity_modifiers: bool = False,
) -> dict[str, Counter[str]]:
    """Per attribute level, the number of captions that mention each label."""
    counts: dict[str, Counter[str]] = {level: Counter() for level in ATTRIBUTE_LEVELS}
    for parse in parses:
        for level in ATTRIBUTE_LEVELS:
            counts[level].update(
                caption_labels(parse, level, relationship_halves, entity_modifiers)
            )
    return counts


def vocabs_from_counts(
    counts: Mapping[str, Counter[str]],
    min_count: int,
    top_k: Mapping[str, int],
    relationship_halves: bool = False,
    entity_modifiers: bool = False,
) -> dict[str, AttributeVocab]:
    """Keep labels seen at least ``min_count`` times, at most ``top_k[level]`` per level (a
    level missing from ``top_k`` keeps them all). ``relationship_halves`` and
    ``entity_modifiers`` say what the counts include (:func:`count_labels` with the same
    flags)."""
    unknown = sorted(set(top_k) - set(ATTRIBUTE_LEVELS))
    if unknown:
        raise ValueError(f"top_k names unknown level(s) {unknown}; choose from {ATTRIBUTE_LEVELS}")
    vocabs = {}
    for level in ATTRIBUTE_LEVELS:
        kept = ranked(counts[level], min_count, top_k.get(level))
        vocabs[level] = AttributeVocab(
            level, [x[0] for x in kept], [x[1] for x in kept],
            relationship_halves=relationship_halves and level == "relationship",
            entity_modifiers=entity_modifiers and level == "entity",
        )
    return vocabs


def build_attribute_vocabs(
    parses: Iterable[CaptionParse],
    min_count: int,
    top_k: Mapping[str, int],
    relationship_halves: bool = False,
    entity_modifiers: bool = False,
) -> dict[str, AttributeVocab]:
    """One vocabulary per attribute level from (training) caption parses."""
    counts = count_labels(parses, relationship_halves, entity_modifiers)
    return vocabs_from_counts(counts, min_count, top_k, relationship_halves, entity_modifiers)


@dataclass
class WordVocab:
    """Word ids for the text encoder: ``WORD_PAD`` (0) and ``WORD_UNK`` (1) come first."""

    words: list[str]  # words[id]; "<pad>" at WORD_PAD, "<unk>" at WORD_UNK
    counts: list[int]  # training occurrences (0 for the two special tokens)
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        specials = {WORD_PAD: PAD_TOKEN, WORD_UNK: UNK_TOKEN}
        if any(self.words[i : i + 1] != [token] for i, token in specials.items()):
            raise ValueError(
                f"a word vocabulary holds {PAD_TOKEN!r} at id {WORD_PAD} and {UNK_TOKEN!r} at id "
                f"{WORD_UNK}; got {self.words[:2]}"
            )
        if len(self.words) != len(self.counts):
            raise ValueError(f"{len(self.words)} words but {len(self.counts)} counts")
        self.index = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_count: int = 1) -> WordVocab:
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        for special in (PAD_TOKEN, UNK_TOKEN):
            counts.pop(special, None)
        kept = ranked(counts, min_count, None)
        specials = sorted([(WORD_PAD, PAD_TOKEN), (WORD_UNK, UNK_TOKEN)])
        words = [token for _, token in specials] + [w for w, _ in kept]
        return cls(words, [0] * len(specials) + [n for _, n in kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index.get(token, WORD_UNK) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids]

    def to_json(self) -> dict[str, Any]:
        return {"words": self.words, "counts": self.counts}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WordVocab:
        return cls(words=list(data["words"]), counts=list(data["counts"]))


# ----- label imbalance ----------------------------------------------------------------------
def imbalance_stats(vocabs: Mapping[str, AttributeVocab]) -> dict[str, dict[str, float]]:
    """Per level: how much of all label occurrences the head holds and how thin the tail is."""
    stats = {}
    for level, vocab in vocabs.items():
        counts = np.sort(np.asarray(vocab.counts, dtype=np.int64))[::-1]
        if counts.size == 0:
            stats[level] = {"labels": 0, "occurrences": 0}
            continue
        total = int(counts.sum())
        top_decile = max(1, int(np.ceil(counts.size / 10)))
        stats[level] = {
            "labels": int(counts.size),
            "occurrences": total,
            "top1_share": float(counts[0] / total),
            "top10pct_share": float(counts[:top_decile].sum() / total),
            "max_count": int(counts[0]),
            "median_count": float(np.median(counts)),
            "min_count": int(counts[-1]),
            "max_min_ratio": float(counts[0] / counts[-1]),
            "pct_below_10": float(100.0 * (counts < 10).mean()),
        }
    return stats


def imbalance_report(vocabs: Mapping[str, AttributeVocab]) -> str:
    """A small table of :func:`imbalance_stats`, one row per level."""
    header = (
        f"{'level':<13}{'labels':>7}{'top-1 %':>9}{'top-10% %':>11}{'max':>8}{'median':>8}"
        f"{'min':>6}{'max/min':>9}{'<10 %':>7}"
    )
    rows = [header]
    for level, s in imbalance_stats(vocabs).items():
        if not s["labels"]:
            rows.append(f"{level:<13}{0:>7}  (no labels)")
            continue
        rows.append(
            f"{level:<13}{s['labels']:>7}{100 * s['top1_share']:>9.1f}"
            f"{100 * s['top10pct_share']:>11.1f}{s['max_count']:>8}{s['median_count']:>8.0f}"
            f"{s['min_count']:>6}{s['max_min_ratio']:>9.0f}{s['pct_below_10']:>7.1f}"
        )
    return "\n".join(rows)


@dataclass
class Vocabularies:
    """Everything a model's vocabularies are: what a checkpoint stores as ``vocab.json``."""

    vocabs: dict[str, AttributeVocab]  # attribute level -> its labels
    words: WordVocab  # the text encoder's words
    # the parser that made the labels: {"version": semantics.PARSER_VERSION, "model": spaCy
    # pipeline and lemminflect versions}; {} in checkpoints written before it was recorded
    parser: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vocabularies:
        """Read a checkpoint's ``vocab.json`` dict; ValueError names what is missing."""
        try:
            vocabs = {level: AttributeVocab.from_json(data["attributes"][level])
                      for level in ATTRIBUTE_LEVELS}
            words = WordVocab.from_json(data["words"])
        except (KeyError, TypeError) as error:
            raise ValueError(
                f"the vocabularies lack {error}; expected a checkpoint's vocab.json "
                '({"attributes": {level: ...}, "words": ..., "parser": ...})'
            ) from error
        return cls(vocabs, words, dict(data.get("parser") or {}))

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": {level: vocab.to_json() for level, vocab in self.vocabs.items()},
            "words": self.words.to_json(),
            "parser": dict(self.parser),
        }

    def same_labels(self, other: Vocabularies) -> bool:
        """The same words and attribute labels (what the model's shapes and outputs mean)."""
        mine, theirs = self.to_json(), other.to_json()
        return all(mine[key] == theirs[key] for key in ("attributes", "words"))
