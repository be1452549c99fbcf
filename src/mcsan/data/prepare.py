"""``mcsan prepare``: parse every caption once, build the vocabularies, write them to disk.

Files written to the output directory:

- ``parses.jsonl``: one record per caption (``caption_id``, ``split``, ``video_id``, ``text``
  and its :class:`~mcsan.data.semantics.CaptionParse`), in dataset order;
- ``vocab.json``: attribute vocabularies per level with counts, the word vocabulary, and what
  they were built from (parser version, spaCy model, a fingerprint of the captions);
- ``stats.json``: dataset, parsing and vocabulary statistics, label imbalance included;
- ``parse_cache.jsonl``: the parse cache, so a second run parses nothing;
- ``skipped.json``: with ``--skip-invalid``, every item left out (file, item, reason).

Vocabularies come from the training split only; parses exist for every split.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcsan import ATTRIBUTE_LEVELS
from mcsan.atomic import replace_json, replace_lines
from mcsan.config import VocabConfig
from mcsan.data.caption_parse import CaptionParse
from mcsan.data.dataset import Caption, Dataset
from mcsan.data.semantics import (
    PARSER_VERSION,
    CaptionParser,
    ParseCache,
    paused_gc,
    read_json_lines,
)
from mcsan.data.vocab import (
    AttributeVocab,
    Vocabularies,
    WordVocab,
    count_labels,
    imbalance_report,
    imbalance_stats,
    vocabs_from_counts,
)

PARSES_FILE = "parses.jsonl"
VOCAB_FILE = "vocab.json"
STATS_FILE = "stats.json"
CACHE_FILE = "parse_cache.jsonl"
SKIPPED_FILE = "skipped.json"  # `mcsan prepare --skip-invalid`: every item left out, and why
FORMAT_VERSION = 1


@dataclass
class PreparedData:
    out_dir: Path
    parses: dict[str, CaptionParse]  # caption_id -> parse
    caption_splits: dict[str, str]  # caption_id -> split name
    vocabs: dict[str, AttributeVocab]  # attribute level -> vocabulary
    words: WordVocab
    stats: dict[str, Any]
    caption_hash: str  # fingerprint of (split, caption_id, text) of every caption
    # the parser that made the parses: {"version": PARSER_VERSION, "model": spaCy pipeline}
    parser: dict[str, str]
    loaded_splits: frozenset[str] | None = None  # splits whose parses were read; None = all

    def vocabularies(self) -> Vocabularies:
        """The vocabularies and parser a model trained on this data keeps (``vocab.json``)."""
        return Vocabularies(dict(self.vocabs), self.words, dict(self.parser))

    def targets(self, caption_id: str) -> dict[str, list[int]]:
        """Attribute ids of one caption per level (labels outside a vocabulary have none)."""
        parse = self.parse(caption_id)
        return {level: self.vocabs[level].encode_caption(parse) for level in ATTRIBUTE_LEVELS}

    def parse(self, caption_id: str) -> CaptionParse:
        if caption_id not in self.parses:
            split = self.caption_splits.get(caption_id)
            if split is not None and self.loaded_splits is not None:
                raise KeyError(
                    f"caption {caption_id!r} is in split {split!r}, whose parses were not loaded "
                    f"(load_prepared(..., splits={sorted(self.loaded_splits)}))"
                )
            raise KeyError(
                f"caption {caption_id!r} is not in the prepared data at {self.out_dir}; "
                "run `mcsan prepare` again for this dataset"
            )
        return self.parses[caption_id]


def caption_fingerprint(dataset: Dataset) -> str:
    """sha1 over every caption's split, id and text (order-independent)."""
    lines = sorted(f"{s.name}\t{c.caption_id}\t{c.text}" for s in dataset for c in s.captions)
    digest = hashlib.sha1()
    for line in lines:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def check_caption_ids(dataset: Dataset) -> None:
    seen: dict[str, str] = {}
    for split in dataset:
        for caption in split.captions:
            if caption.caption_id in seen:
                raise ValueError(
                    f"dataset at {dataset.root}: caption id {caption.caption_id!r} appears in split "
                    f"{seen[caption.caption_id]!r} and again in {split.name!r}; caption ids must be "
                    "unique across the dataset (fix the annotation file)"
                )
            seen[caption.caption_id] = split.name


def prepare(
    dataset: Dataset,
    out_dir: str | Path,
    vocab_config: VocabConfig,
    *,
    n_process: int = 1,
    batch_size: int = 256,
    progress: bool = True,
    train_split: str = "train",
    vocabularies: Mapping[str, Any] | None = None,
) -> PreparedData:
    """Parse all captions (through the cache in ``out_dir``), build vocabularies from
    ``train_split`` and write parses, vocabularies and statistics to ``out_dir``.

    ``vocabularies`` (a checkpoint's ``vocab.json``: ``{"attributes": ..., "words": ...}``)
    replaces the built ones, so a trained model can be evaluated on another dataset; the
    train split is then only used for statistics and may be empty or absent.
    With ``progress`` a progress bar runs while parsing and the statistics are printed.
    """
    out_dir = Path(out_dir)
    check_caption_ids(dataset)
    given = None if vocabularies is None else Vocabularies.from_json(vocabularies)
    train = dataset[train_split] if given is None or train_split in dataset.splits else None
    if given is None and not train.captions:
        raise ValueError(
            f"dataset at {dataset.root}: split {train_split!r} has no captions to build "
            "vocabularies from (or prepare with the vocabularies of a trained model)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    parser = CaptionParser(
        batch_size=batch_size, n_process=n_process, cache=ParseCache(out_dir / CACHE_FILE)
    )
    captions = dataset.all_captions()
    parse_list = parser.parse_many([c.text for c in captions], progress=progress)
    parse_seconds = time.perf_counter() - start
    with paused_gc():  # millions of small objects from here on
        parses = {c.caption_id: p for c, p in zip(captions, parse_list, strict=True)}
        caption_splits = {c.caption_id: s.name for s in dataset for c in s.captions}

        train_parses = [parses[c.caption_id] for c in train.captions] if train else []
        halves = (vocab_config.relationship_halves if given is None
                  else given.vocabs["relationship"].relationship_halves)
        modifiers = (vocab_config.entity_modifiers if given is None
                     else given.vocabs["entity"].entity_modifiers)
        label_counts = count_labels(train_parses, halves, modifiers)
        if given is None:
            vocabs = vocabs_from_counts(
                label_counts, vocab_config.min_count, vocab_config.top_k, halves, modifiers
            )
            words = WordVocab.build((p.tokens for p in train_parses), vocab_config.word_min_count)
        else:
            vocabs, words = given.vocabs, given.words
        caption_hash = caption_fingerprint(dataset)
        stats = {
            "parsing": {
                "captions": len(captions),
                "unique_texts": len(set(c.text for c in captions)),
                "parsed_by_spacy": parser.parsed_count,
                "seconds": round(parse_seconds, 2),
                "parser_version": PARSER_VERSION,
                "model": parser.identity,
            },
            "splits": {s.name: split_stats(s.captions, parses, vocabs) for s in dataset},
            "vocabulary": vocabulary_stats(label_counts, vocabs, words, vocab_config),
            "imbalance": imbalance_stats(vocabs),
            # the same over every label seen in training, before min_count and top_k
            "imbalance_seen": imbalance_stats(
                vocabs_from_counts(label_counts, 1, {}, halves, modifiers)
            ),
        }
        write_jsonl(
            out_dir / PARSES_FILE,
            (
                {
                    "caption_id": c.caption_id,
                    "split": s.name,
                    "video_id": c.video_id,
                    "text": c.text,
                    "parse": parses[c.caption_id].to_dict(),
                }
                for s in dataset
                for c in s.captions
            ),
        )
        write_json(out_dir / STATS_FILE, stats)
        write_json(
            out_dir / VOCAB_FILE,
            {
                "format": FORMAT_VERSION,
                "parser_version": PARSER_VERSION,
                "model": parser.identity,
                "caption_hash": caption_hash,
                "captions": len(captions),
                "train_split": train_split,
                "vocab_config": asdict(vocab_config),
                "vocab_given": given is not None,
                "attributes": {level: vocab.to_json() for level, vocab in vocabs.items()},
                "words": words.to_json(),
            },
        )
    if progress:
        print(format_stats(stats, vocabs))
    parser_info = {"version": PARSER_VERSION, "model": parser.identity}
    return PreparedData(out_dir, parses, caption_splits, vocabs, words, stats, caption_hash,
                        parser_info)


def split_stats(
    captions: list[Caption], parses: dict[str, CaptionParse], vocabs: dict[str, AttributeVocab]
) -> dict[str, Any]:
    """Caption, token and attribute figures of one split."""
    if not captions:
        return {"videos": 0, "captions": 0}
    split_parses = [parses[c.caption_id] for c in captions]
    lengths = np.array([len(p.tokens) for p in split_parses])
    result: dict[str, Any] = {
        "videos": len({c.video_id for c in captions}),
        "captions": len(captions),
        "tokens_mean": round(float(lengths.mean()), 2),
        "tokens_max": int(lengths.max()),
    }
    for level in ATTRIBUTE_LEVELS:
        index = vocabs[level].index
        per_caption = [vocabs[level].caption_labels(p) for p in split_parses]
        counts = np.array([len(labels) for labels in per_caption])
        covered = np.array([any(label in index for label in labels) for labels in per_caption])
        result[level] = {
            "per_caption_mean": round(float(counts.mean()), 3),
            "captions_without_pct": round(100 * float((counts == 0).mean()), 2),
            "captions_covered_pct": round(100 * float(covered.mean()), 2),
        }
    return result


def vocabulary_stats(
    label_counts: dict[str, Counter[str]],
    vocabs: dict[str, AttributeVocab],
    words: WordVocab,
    config: VocabConfig,
) -> dict[str, Any]:
    """Vocabulary sizes against the labels seen in training, and the share of label
    occurrences the vocabularies keep."""
    result: dict[str, Any] = {
        level: {
            "size": len(vocabs[level]),
            "distinct_in_train": len(label_counts[level]),
            "min_count": config.min_count,
            "top_k": config.top_k.get(level),
            "occurrences_kept_pct": round(
                100 * sum(vocabs[level].counts) / max(1, sum(label_counts[level].values())), 2
            ),
        }
        for level in ATTRIBUTE_LEVELS
    }
    result["words"] = {"size": len(words), "min_count": config.word_min_count}
    return result


def format_stats(stats: dict[str, Any], vocabs: dict[str, AttributeVocab]) -> str:
    parsing = stats["parsing"]
    lines = [
        f"parsed {parsing['captions']} captions ({parsing['unique_texts']} distinct texts, "
        f"{parsing['parsed_by_spacy']} through spaCy, the rest cached) in {parsing['seconds']} s "
        f"[{parsing['model']}, parser {parsing['parser_version']}]",
        "",
        f"{'split':<10}{'videos':>8}{'captions':>10}{'tokens':>8}"
        + "".join(f"{'no ' + level:>17}" for level in ATTRIBUTE_LEVELS),
    ]
    for name, s in stats["splits"].items():
        if not s["captions"]:
            lines.append(f"{name:<10}{0:>8}{0:>10}")
            continue
        lines.append(
            f"{name:<10}{s['videos']:>8}{s['captions']:>10}{s['tokens_mean']:>8.1f}"
            + "".join(f"{s[level]['captions_without_pct']:>16.1f}%" for level in ATTRIBUTE_LEVELS)
        )
    lines += ["", "vocabularies (training captions):"]
    for level in ATTRIBUTE_LEVELS:
        v = stats["vocabulary"][level]
        lines.append(
            f"  {level:<13}{v['size']:>6} labels of {v['distinct_in_train']} seen "
            f"(min_count {v['min_count']}, top_k {v['top_k']}), "
            f"{v['occurrences_kept_pct']:.1f}% of occurrences kept"
        )
    lines.append(f"  {'words':<13}{stats['vocabulary']['words']['size']:>6}")
    lines += ["", "label imbalance (caption counts per label):", imbalance_report(vocabs)]
    return "\n".join(lines)


# ----- reading it back ----------------------------------------------------------------------
def load_prepared(
    out_dir: str | Path, dataset: Dataset | None = None, splits: Collection[str] | None = None
) -> PreparedData:
    """Read what :func:`prepare` wrote; with ``dataset``, check it was prepared for exactly
    these captions. With ``splits``, build the parses of those splits' captions only: the
    parses are most of the memory (MSR-VTT's 200,000 captions: about 1.2 GB)."""
    out_dir = Path(out_dir)
    if splits is not None:  # one name is a split, not a collection of letters
        splits = frozenset([splits] if isinstance(splits, str) else splits)
    for name in (VOCAB_FILE, PARSES_FILE, STATS_FILE):
        if not (out_dir / name).is_file():
            raise FileNotFoundError(
                f"{out_dir} holds no prepared data ({name} is missing); run "
                f"`mcsan prepare` with this directory as output first"
            )
    meta = json.loads((out_dir / VOCAB_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION or meta.get("parser_version") != PARSER_VERSION:
        raise ValueError(
            f"{out_dir / VOCAB_FILE} was written by another mcsan version (format "
            f"{meta.get('format')}, parser {meta.get('parser_version')}; this one reads format "
            f"{FORMAT_VERSION}, parser {PARSER_VERSION}); run `mcsan prepare` again"
        )
    if dataset is not None:
        expected = caption_fingerprint(dataset)
        if meta["caption_hash"] != expected:
            raise ValueError(
                f"{out_dir} was prepared for other captions (fingerprint {meta['caption_hash'][:12]} "
                f"for {meta['captions']} captions; dataset at {dataset.root} has "
                f"{expected[:12]} for {len(dataset.all_captions())}); run `mcsan prepare` again "
                "for this dataset or point data.prepared at the right directory"
            )
    parses: dict[str, CaptionParse] = {}
    caption_splits: dict[str, str] = {}
    path = out_dir / PARSES_FILE
    try:
        with paused_gc():
            for record in read_json_lines(path):
                caption_splits[record["caption_id"]] = record["split"]
                if splits is None or record["split"] in splits:
                    parses[record["caption_id"]] = CaptionParse.from_dict(record["parse"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path} holds a broken parse record ({error!r}); run `mcsan prepare` again"
        ) from error
    unknown = sorted(set(splits or ()) - set(caption_splits.values()))
    if unknown:
        raise ValueError(
            f"{out_dir} has no captions of split(s) {unknown}; it has "
            f"{sorted(set(caption_splits.values()))}"
        )
    if len(caption_splits) != meta["captions"]:
        raise ValueError(
            f"{path} holds {len(caption_splits)} captions but {out_dir / VOCAB_FILE} expects "
            f"{meta['captions']}; the directory is incomplete, run `mcsan prepare` again"
        )
    vocabs = {
        level: AttributeVocab.from_json(meta["attributes"][level]) for level in ATTRIBUTE_LEVELS
    }
    stats = json.loads((out_dir / STATS_FILE).read_text(encoding="utf-8"))
    return PreparedData(
        out_dir=out_dir,
        parses=parses,
        caption_splits=caption_splits,
        vocabs=vocabs,
        words=WordVocab.from_json(meta["words"]),
        stats=stats,
        caption_hash=meta["caption_hash"],
        parser={"version": meta["parser_version"], "model": meta["model"]},
        loaded_splits=splits,
    )


def write_json(path: Path, data: Any) -> None:
    replace_json(path, data, indent=1)


def write_jsonl(path: Path, records: Iterable[Any]) -> None:
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    replace_lines(path, (encode(record) + "\n" for record in records))
