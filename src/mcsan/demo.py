"""The main job: synthesize a benchmark → prepare → train → evaluate → index → search.

Runs on the built-in synthetic compositional benchmark, written to disk in the HGR layout and
read back by the same reader as real data. Everything it makes lands under one directory,
which must be new, empty or an earlier demo's: the demo replaces only what it wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from mcsan.config import Config, apply_overrides
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import prepare
from mcsan.data.synth import (
    INTRANSITIVE_ACTIONS,
    META_FILE,
    TRANSITIVE_ACTIONS,
    SynthConfig,
    write_synth,
)
from mcsan.evaluate import (
    encode_split,
    evaluate_encoded,
    load_trained,
    results_table,
    write_results,
)
from mcsan.index import build_index, open_index
from mcsan.retriever import load
from mcsan.runtime import configure_threads, resolve_device
from mcsan.search_output import format_results
from mcsan.sources import open_source
from mcsan.train import train

DEMO_MARKER = ".mcsan-demo"  # marks a directory the demo wrote

# Settings chosen on the validation split of the "small" preset; the demo's budget is a few
# minutes on 2 CPU cores.
DEMO_OVERRIDES = [
    "train.epochs=8",
    "train.batch_size=128",
    "train.lr=1e-3",
    "train.warmup_steps=50",
    "model.embed_dim=256",
    "model.hidden_dim=256",
    "model.word_dim=128",
    "vocab.min_count=2",
]


def demo_config(out: Path, seed: int, epochs: int | None = None, threads: int = 0) -> Config:
    config = apply_overrides(Config(), DEMO_OVERRIDES)
    config.train.threads = threads
    if epochs is not None:
        config.train.epochs = epochs
    config.data.root = str(out / "data")
    config.data.prepared = str(out / "prepared")
    config.train.out_dir = str(out / "run")
    config.train.seed = seed
    return config


def run_demo(
    out: Path,
    size: str = "small",
    seed: int = 0,
    epochs: int | None = None,
    threads: int = 0,
) -> dict:
    """Run the whole pipeline under ``out`` and return the test results. ``out`` must be new,
    empty, or an earlier demo's directory: nothing the demo did not write is replaced."""
    out = Path(out)
    claim_directory(out)
    started = time.perf_counter()
    threads = configure_threads(threads)
    cores = os.cpu_count() or 1
    if threads < cores:
        print(f"note: other processes keep {cores - threads} of this machine's {cores} cores "
              f"busy; training on {threads} thread(s), which is faster here than {cores}, but "
              "the demo will take longer than on an idle machine (a few minutes more)")
    config = demo_config(out, seed, epochs, threads)
    _banner(f"1/6 synthesize the '{size}' benchmark → {config.data.root}")
    write_synth(config.data.root, SynthConfig.preset(size, seed=seed), overwrite=True)

    _banner("2/6 read it back and prepare captions (spaCy parse, vocabularies)")
    dataset = read_dataset(config.data.root)
    for split in dataset:
        print(f"  {split}")
    prepared = prepare(dataset, Path(config.data.prepared), config.vocab)

    _banner("3/6 train MCSAN")
    run = Path(config.train.out_dir)
    if run.exists():  # the demo starts afresh each time; `mcsan train --resume` continues runs
        shutil.rmtree(run)
    result = train(config)

    _banner("4/6 evaluate the best checkpoint on the test split")
    device = resolve_device(config.train.device)
    model, config = load_trained(result.best_dir, prepared, device)
    encoded = encode_split(model, dataset["test"], prepared, config, device)
    results = evaluate_encoded(encoded, model, config, "test")
    print(results_table(results))
    write_results(results, out / "test_results.json")

    index_dir = out / "index"
    _banner(f"5/6 index the test videos → {index_dir}")
    if index_dir.exists():
        shutil.rmtree(index_dir)
    retriever = load(result.best_dir, config.train.device)
    build_index(retriever, open_source(config.data.root, ["test"]), index_dir)

    queries, truth = free_text_queries(Path(config.data.root), dataset)
    _banner("6/6 search it with free text (sentences that are no caption of the data)")
    for line in truth:
        print(f"  {line}")
    print()
    print(format_results(open_index(index_dir, retriever=retriever).search(queries, k=5)))
    print(f"\ndone in {time.perf_counter() - started:.0f} s; everything is under {out}; search "
          f'it again with: mcsan search {index_dir} "a dog chases a cat"')
    return results


def claim_directory(out: Path) -> None:
    """Mark ``out`` as the demo's, or refuse it when it holds files the demo did not write."""
    marker = out / DEMO_MARKER
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; choose another --out for the demo")
    if out.is_dir() and any(out.iterdir()) and not marker.is_file():
        raise FileExistsError(
            f"{out} already holds files that the demo did not write; the demo replaces its own "
            "data/, prepared/, run/ and index/ there, so choose a new or empty --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by `mcsan demo`: its data/, prepared/, run/ and index/ are "
                      "replaced on the next run\n", encoding="utf-8")


def free_text_queries(root: Path, dataset) -> tuple[list[str], list[str]]:
    """Three sentences about test videos, phrased as no caption of the benchmark is ("the dog
    chases the cat"): an event and its role-swapped reading, for a pair of role-swapped
    twins, and an intransitive action; with a line each saying which video shows it."""
    meta = json.loads((root / META_FILE).read_text(encoding="utf-8"))["videos"]
    test = dataset["test"].video_ids
    captions = {caption.text for split in dataset for caption in split.captions}
    verbs = dict(TRANSITIVE_ACTIONS + INTRANSITIVE_ACTIONS)
    twins = [v for v in test if meta[v].get("twin") in test]
    alone = [v for v in test if meta[v]["object"] is None]
    queries, truth = [], []
    if twins:
        video = twins[0]
        spec, twin = meta[video], meta[video]["twin"]
        third_person = verbs[spec["action"]][0][0]
        for subject, obj, shown_by in ((spec["subject"], spec["object"], video),
                                       (spec["object"], spec["subject"], twin)):
            queries.append(f"the {subject} {third_person} the {obj}")
            truth.append(f'"{queries[-1]}": shown by {shown_by}')
    if alone:
        spec = meta[alone[0]]
        queries.append(f"the {spec['subject']} {verbs[spec['action']][0][0]}")
        truth.append(f'"{queries[-1]}": shown by {alone[0]} (and maybe others)')
    return [q for q in queries if q not in captions], truth


def _banner(text: str) -> None:
    print(f"\n== {text}", flush=True)
