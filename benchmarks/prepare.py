"""Benchmark `mcsan prepare` on the 140,200 MSR-VTT train/val captions.

Default run: parse every caption with a fresh parse cache (first run), then prepare again
(second run, everything cached), then read the result back with ``load_prepared``. Writes
``benchmarks/results/prepare.json``.

``--measure-repairs`` instead measures what the repairs of ``mcsan.data.semantics`` change
on the same captions (spaCy's verb lemmas against lemminflect, nouns that should be verbs,
captions left without an action) and writes ``benchmarks/results/semantics_repairs.json``.

``--measure-synth-roles PRESET`` parses the transitive captions of a synthetic benchmark's
validation and test splits and counts how often the parse reads who does what to whom
(``mcsan.data.synth.event_roles``): the most the relationship level can get from the text side
on role-swapped twins. Writes ``benchmarks/results/synth_roles-PRESET.json``.

    python benchmarks/prepare.py [--n-process 1] [--batch-size 256]
    python benchmarks/prepare.py --measure-repairs [--n-process 1]
    python benchmarks/prepare.py --measure-synth-roles default
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import spacy
from lemminflect import getAllLemmas, getLemma
from tqdm import tqdm

from mcsan.config import VocabConfig
from mcsan.data.dataset import Caption, Dataset, Split
from mcsan.data.events import extract, is_action
from mcsan.data.layouts import read_dataset
from mcsan.data.parse_tree import NOUN_POS, SINGULAR_NOUN_TAGS, Tree, verb_form
from mcsan.data.prepare import load_prepared, prepare
from mcsan.data.repairs import repair_tree
from mcsan.data.semantics import PARSER_VERSION, CaptionParser, load_spacy, model_identity
from mcsan.data.synth import event_roles, generate, synth_config

REPO = Path(__file__).resolve().parents[1]
ANNOTATION = REPO.parent / "shared" / "data" / "msrvtt" / "train_val_annotation.zip"
RESULTS = REPO / "benchmarks" / "results"


def msrvtt_train_val(path: Path = ANNOTATION) -> Dataset:
    """The official MSR-VTT train and val splits as a caption-only Dataset."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; the MSR-VTT annotation zip is expected there")
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("train_val_videodatainfo.json"))
    split_of = {video["video_id"]: video["split"] for video in data["videos"]}
    splits = {
        name: Split(name, [v for v, s in split_of.items() if s == name], [])
        for name in ("train", "validate")
    }
    for sentence in data["sentences"]:
        video_id = sentence["video_id"]
        caption = Caption(f"{video_id}#{sentence['sen_id']}", video_id, sentence["caption"])
        splits[split_of[video_id]].captions.append(caption)
    return Dataset(path, "msrvtt", {"train": splits["train"], "val": splits["validate"]})


def machine() -> dict:
    load = os.getloadavg()
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "spacy": spacy.__version__,
        "load_average_1_5_15min": [round(x, 2) for x in load],
    }


def benchmark_prepare(n_process: int, batch_size: int) -> dict:
    start = time.perf_counter()
    read_dataset(ANNOTATION.parent, progress=False)  # the msrvtt layout reader, all 4 splits
    read_seconds = time.perf_counter() - start
    dataset = msrvtt_train_val()
    captions = len(dataset.all_captions())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp) / "prepared"
        start = time.perf_counter()
        first = prepare(dataset, out_dir, VocabConfig(), n_process=n_process, batch_size=batch_size)
        first_seconds = time.perf_counter() - start
        start = time.perf_counter()
        second = prepare(
            dataset, out_dir, VocabConfig(), n_process=n_process, batch_size=batch_size,
            progress=False,
        )  # fmt: skip
        second_seconds = time.perf_counter() - start
        start = time.perf_counter()
        load_prepared(out_dir, dataset)
        load_seconds = time.perf_counter() - start
        sizes = {p.name: p.stat().st_size for p in out_dir.iterdir()}
    return {
        "benchmark": "prepare",
        "captions": captions,
        "read_msrvtt_layout_seconds": round(read_seconds, 2),
        "unique_texts": first.stats["parsing"]["unique_texts"],
        "n_process": n_process,
        "batch_size": batch_size,
        "first_run_seconds": round(first_seconds, 2),
        "first_run_captions_per_second": round(captions / first_seconds, 1),
        "first_run_parsed_by_spacy": first.stats["parsing"]["parsed_by_spacy"],
        "cached_run_seconds": round(second_seconds, 2),
        "cached_run_parsed_by_spacy": second.stats["parsing"]["parsed_by_spacy"],
        "load_prepared_seconds": round(load_seconds, 2),
        "file_bytes": sizes,
        "vocab_sizes": {level: len(v) for level, v in first.vocabs.items()},
        "load_average_at_start": round(load_before, 2),
        "machine": machine(),
    }


# ----- the role measurement on the synthetic benchmark ----------------------------------------
def measure_synth_roles(preset: str, n_process: int, batch_size: int, samples: int = 5) -> dict:
    """How the parse reads the event of each transitive val/test caption of ``preset``."""
    benchmark = generate(synth_config(preset))
    captions = [
        caption
        for split in ("val", "test")
        for video in benchmark.splits[split]
        for caption in benchmark.captions[video]
        if caption.patient is not None
    ]
    start = time.perf_counter()
    parser = CaptionParser(load_spacy(), n_process=n_process, batch_size=batch_size)
    parses = parser.parse_many([c.text for c in captions])
    seconds = time.perf_counter() - start
    by_template: dict[str, Counter[str]] = {}
    examples: dict[str, list[dict]] = {}
    for caption, parse in zip(captions, parses, strict=True):
        reading = event_roles(caption, parse)
        by_template.setdefault(caption.template, Counter())[reading] += 1
        if reading != "right" and len(examples.setdefault(reading, [])) < samples:
            examples[reading].append(
                {"caption": caption.text, "relationships": parse.labels("relationship")}
            )
    total = sum(by_template.values(), Counter())
    return {
        "benchmark": "synth_roles",
        "preset": preset,
        "parser_version": PARSER_VERSION,
        "model": model_identity(parser.nlp),
        "transitive_captions": len(captions),
        "share": {k: round(v / len(captions), 4) for k, v in total.most_common()},
        "right_by_template": {
            template: round(counts["right"] / sum(counts.values()), 4)
            for template, counts in sorted(by_template.items())
        },
        "examples": examples,
        "seconds": round(seconds, 1),
        "machine": machine(),
    }


# ----- the repair measurement ---------------------------------------------------------------
def dictionary_verb_lemmas(word: str) -> tuple[str, ...]:
    return getAllLemmas(word, upos="VERB").get("VERB", ())


def measure_repairs(n_process: int, batch_size: int, samples: int = 20) -> dict:
    """Compare spaCy alone with spaCy + repairs over every MSR-VTT train/val caption."""
    texts = [c.text for c in msrvtt_train_val().all_captions()]
    nlp = load_spacy()
    rng = random.Random(0)
    spacy_disagree: Counter[tuple[str, str, str]] = Counter()
    repaired_disagree_known = 0
    repaired_out_of_dictionary = 0
    verb_tokens_spacy = verb_tokens_repaired = 0
    be_ing_nouns_before = be_ing_nouns_after = 0
    subject_vbz_nouns_before = subject_vbz_nouns_after = 0
    no_action_before = no_action_after = repaired_captions = 0
    fired: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    start = time.perf_counter()
    docs = nlp.pipe(texts, batch_size=batch_size, n_process=n_process)
    for doc in tqdm(docs, total=len(texts), desc="measuring", unit="cap"):
        tree = Tree.from_doc(doc)
        kept = [t for t in doc if not t.is_space]
        for token in kept:
            if token.pos_ == "VERB":
                verb_tokens_spacy += 1
                word, spacy_lemma = token.text.lower(), token.lemma_.lower()
                reference = getLemma(word, upos="VERB")[0]
                if spacy_lemma != reference:
                    spacy_disagree[(word, spacy_lemma, reference)] += 1
        before = {
            "be_ing": be_ing_nouns(tree),
            "subject_vbz": subject_vbz_nouns(tree),
            "no_action": not any(is_action(tree, n) for n in tree.nodes),
        }
        names = repair_tree(tree)
        repaired_captions += bool(names)
        parse = extract(tree)
        be_ing_nouns_before += len(before["be_ing"])
        subject_vbz_nouns_before += len(before["subject_vbz"])
        be_ing_nouns_after += sum(tree[i].pos in NOUN_POS for i in before["be_ing"])
        subject_vbz_nouns_after += sum(tree[i].pos in NOUN_POS for i in before["subject_vbz"])
        no_action_before += before["no_action"]
        no_action_after += not parse.action
        for node in tree.nodes:
            if node.pos != "VERB":
                continue
            verb_tokens_repaired += 1
            known = dictionary_verb_lemmas(node.text)
            if not known:
                repaired_out_of_dictionary += 1
            elif node.lemma not in known:
                repaired_disagree_known += 1
        for name in sorted(set(names)):
            fired[name] += 1
            bucket = examples.setdefault(name, [])
            # reservoir sample of captions where the rule fired
            if len(bucket) < samples:
                bucket.append(doc.text)
            elif (j := rng.randrange(fired[name])) < samples:
                bucket[j] = doc.text
    seconds = time.perf_counter() - start
    known_disagree = sum(n for (w, _, _), n in spacy_disagree.items() if dictionary_verb_lemmas(w))
    return {
        "benchmark": "semantics_repairs",
        "captions": len(texts),
        "model": model_identity(nlp),
        "seconds": round(seconds, 1),
        "lemmas": {
            "spacy_verb_tokens": verb_tokens_spacy,
            "spacy_vs_lemminflect_disagreements": sum(spacy_disagree.values()),
            "spacy_vs_lemminflect_distinct_forms": len(spacy_disagree),
            "spacy_disagreements_on_dictionary_forms": known_disagree,
            "most_frequent": [
                {"word": w, "spacy": s, "lemminflect": li, "count": n}
                for (w, s, li), n in spacy_disagree.most_common(25)
            ],
            "repaired_verb_tokens": verb_tokens_repaired,
            "repaired_dictionary_forms_off_dictionary": repaired_disagree_known,
            "repaired_out_of_dictionary_tokens": repaired_out_of_dictionary,
        },
        "pos": {
            "be_ing_tagged_noun_before": be_ing_nouns_before,
            "be_ing_tagged_noun_after": be_ing_nouns_after,
            "singular_noun_then_vbz_form_tagged_noun_before": subject_vbz_nouns_before,
            "singular_noun_then_vbz_form_tagged_noun_after": subject_vbz_nouns_after,
            "captions_without_action_before": no_action_before,
            "captions_without_action_after": no_action_after,
            "repaired_captions": repaired_captions,
            "rule_fired_captions": dict(fired.most_common()),
            "rule_examples": examples,
        },
        "machine": machine(),
    }


def be_ing_nouns(tree: Tree) -> list[int]:
    """'is/are <X>ing' with the -ing word tagged as a noun."""
    return [
        n.i
        for n in tree.nodes
        if n.pos in NOUN_POS
        and n.text.endswith("ing")
        and n.i > 0
        and tree[n.i - 1].text in ("is", "are", "was", "were", "am")
        and dictionary_verb_lemmas(n.text)
    ]


def subject_vbz_nouns(tree: Tree) -> list[int]:
    """A singular noun followed by a 3rd-person -s verb form that is tagged as a noun."""
    return [
        n.i
        for n in tree.nodes
        if n.pos in NOUN_POS
        and n.tag == "NNS"
        and n.i > 0
        and tree[n.i - 1].tag in SINGULAR_NOUN_TAGS
        and verb_form(n.text) == "VBZ"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-process", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--measure-repairs", action="store_true")
    parser.add_argument("--measure-synth-roles", metavar="PRESET")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.measure_synth_roles:
        result = measure_synth_roles(args.measure_synth_roles, args.n_process, args.batch_size)
        path = RESULTS / f"synth_roles-{args.measure_synth_roles}.json"
    elif args.measure_repairs:
        result = measure_repairs(args.n_process, args.batch_size)
        path = RESULTS / "semantics_repairs.json"
    else:
        result = benchmark_prepare(args.n_process, args.batch_size)
        path = RESULTS / "prepare.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    shown = {k: v for k, v in result.items() if k not in ("pos", "lemmas")}
    print(json.dumps(shown, indent=2))
    for key in ("lemmas", "pos"):
        if key in result:
            compact = {
                k: v for k, v in result[key].items() if k not in ("most_frequent", "rule_examples")
            }
            print(key, json.dumps(compact, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
