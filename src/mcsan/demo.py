"""The main job: synthesize a benchmark → prepare → train → evaluate → example queries.

Runs on the built-in synthetic compositional benchmark, written to disk in the HGR layout and
read back by the same reader as real data. Everything it makes lands under one directory.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from mcsan.config import Config, apply_overrides
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import PreparedData, prepare
from mcsan.data.synth import SynthConfig, write_synth
from mcsan.evaluate import (
    EncodedSplit,
    encode_split,
    evaluate_encoded,
    load_trained,
    results_table,
    write_results,
)
from mcsan.runtime import resolve_device
from mcsan.train import train

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
    queries: int = 3,
    epochs: int | None = None,
    threads: int = 0,
) -> dict:
    """Run the whole pipeline under ``out`` and return the test results."""
    out = Path(out)
    started = time.perf_counter()
    config = demo_config(out, seed, epochs, threads)
    _banner(f"1/5 synthesize the '{size}' benchmark → {config.data.root}")
    write_synth(config.data.root, SynthConfig.preset(size, seed=seed), overwrite=True)

    _banner("2/5 read it back and prepare captions (spaCy parse, vocabularies)")
    dataset = read_dataset(config.data.root)
    for split in dataset:
        print(f"  {split}")
    prepared = prepare(dataset, Path(config.data.prepared), config.vocab)

    _banner("3/5 train MCSAN")
    run = Path(config.train.out_dir)
    if run.exists():  # the demo starts afresh each time; `mcsan train --resume` continues runs
        shutil.rmtree(run)
    result = train(config)

    _banner("4/5 evaluate the best checkpoint on the test split")
    device = resolve_device(config.train.device)
    model, config = load_trained(result.best_dir, prepared, device)
    encoded = encode_split(model, dataset["test"], prepared, config, device)
    results = evaluate_encoded(encoded, model, config, "test")
    print(results_table(results))
    write_results(results, out / "test_results.json")

    _banner(f"5/5 example text queries (top-5 test videos of {len(encoded.video_ids)})")
    test_captions = {c.caption_id: c for c in dataset["test"].captions}
    step = max(1, len(encoded.caption_ids) // queries)
    for query_index in range(0, step * queries, step):
        caption = test_captions[encoded.caption_ids[query_index]]
        show_query(caption.text, query_index, encoded, model, prepared)
    print(f"\ndone in {time.perf_counter() - started:.0f} s; everything is under {out}")
    return results


def show_query(
    text: str, query_index: int, encoded: EncodedSplit, model, prepared: PreparedData, k: int = 5
) -> None:
    """Print one query's top-k videos with per-level scores and matching predicted attributes."""
    levels = list(encoded.text_emb)
    query = {lv: emb[query_index : query_index + 1] for lv, emb in encoded.text_emb.items()}
    per_level = {
        lv: sim[0] for lv, sim in model.level_similarities(query, encoded.video_emb).items()
    }  # level -> (N,)
    fused = model.fused_similarity(query, encoded.video_emb)[0]  # (N,)
    truth = int(encoded.caption_to_video[query_index])
    rank = int((fused >= fused[truth]).sum())
    print(f'\nquery: "{text}"   (its video {encoded.video_ids[truth]} ranks {rank})')
    parse = prepared.parses[encoded.caption_ids[query_index]]
    header = "  rank video         fused  " + "  ".join(f"{lv[:6]:>6}" for lv in levels)
    print(header + "   query attributes among the video's top-10 predicted")
    for position, video in enumerate(torch.topk(fused, k).indices.tolist(), start=1):
        marker = "*" if video == truth else " "
        scores = "  ".join(f"{per_level[lv][video]:6.3f}" for lv in levels)
        matches = matching_attributes(video, parse, encoded, prepared)
        print(f"  {position:>3}{marker} {encoded.video_ids[video]:<12} {fused[video]:6.3f}  "
              f"{scores}   {matches}")


def matching_attributes(
    video: int, parse, encoded: EncodedSplit, prepared: PreparedData, top: int = 10
) -> str:
    """The query's attributes among the video's ``top`` predicted ones per level (probability)."""
    shown = []
    for level, logits in encoded.video_attr_logits.items():
        vocab = prepared.vocabs[level]
        labels = vocab.labels
        probabilities = torch.sigmoid(logits[video])  # (V,)
        wanted = set(vocab.caption_labels(parse))
        for index in torch.topk(probabilities, min(top, len(labels))).indices.tolist():
            if labels[index] in wanted:
                shown.append(f"{labels[index]} {probabilities[index]:.2f}")
    return ", ".join(shown) or "-"


def _banner(text: str) -> None:
    print(f"\n== {text}", flush=True)
