"""Evaluation at MSR-VTT size, end to end: encode every video and caption, score, rank, write.

The shape of MSR-VTT's full test split: 2,990 videos x 59,800 captions (20 each), the default
model (``Config()``: four levels of 512-d, ``mcsan.factory.build_model``), videos of 20 frames
x 2,048 float32 features (ResNet-152 size) read from an HDF5 file one video at a time as
``mcsan evaluate`` reads them, and captions of about 10 words with the entity / action spans,
relationship roles, event orders and attribute labels that ``mcsan prepare`` gives a caption.

The data is random (features) and generated (captions: a small grammar over a Zipf-distributed
lexicon, no spaCy), and the model is untrained, so the recalls are at chance: the figure is
the time and memory, which do not depend on the weights, but for one part of the ranking:
the scores that fall near a video's best one are kept and compared at the end
(``mcsan.metrics``), and an untrained model's scores crowd together, so there are more of
them than a trained model's would give.

Stages, each timed once, in this order:

* model build             ``build_model`` for the generated vocabularies, in eval mode
* video encoding          every video through the video encoder and the attribute heads
* caption encoding        every caption through the text encoder and the attribute heads
* scoring + ranking       the fused score and each level alone, both directions
                          (``mcsan.evaluate.retrieval_results``)
* attribute mAP           per level, videos and captions (``attribute_results``)
* JSON writing            the results JSON, as ``mcsan evaluate --out`` writes it
* bare matmul             not part of the total: the floor under scoring, ``text_l @ video_l.T``
                          for every level in chunks of the evaluation's chunk size and nothing
                          else, on the same embeddings, twice just before and twice just after
                          scoring; ``scoring_over_bare_matmul`` divides by their median (other
                          jobs on a shared machine move single runs by 10-20 %)

Peak memory is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end of the evaluation (the
features file and the captions are made before; the bare matmul adds one chunk of scores).

    .venv/bin/python benchmarks/eval_scale.py --threads 2     # full size (about 1.5 minutes)
    .venv/bin/python benchmarks/eval_scale.py --quick         # 150 videos x 3,000 captions
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import torch

from mcsan.config import Config, apply_overrides
from mcsan.data.caption_parse import Attribute, CaptionParse, relationship
from mcsan.data.dataset import Caption, Split
from mcsan.data.layouts import HDF5FeatureStore
from mcsan.data.prepare import PreparedData
from mcsan.data.vocab import Vocabularies, WordVocab, build_attribute_vocabs
from mcsan.evaluate import (
    EncodedSplit,
    attribute_results,
    encode_captions,
    encode_videos,
    results_header,
    results_table,
    retrieval_results,
    write_results,
)
from mcsan.factory import build_model

GOALS = {"total_s": 60.0, "peak_rss_gb": 3.0, "scoring_over_bare_matmul": 1.3}
BUSY_LOAD = 2.5  # a 1-minute load average above this on 2 cores: other jobs are running
FEATURE_NAME = "resnet152"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 videos x 20 captions, seconds")
    parser.add_argument("--videos", type=int, default=2_990)
    parser.add_argument("--captions-per-video", type=int, default=20)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--feature-dim", type=int, default=2_048)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides (eval.batch_size=512, model.embed_dim=256, ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the features file here (made once, reused); default: a "
                             "temporary directory removed at the end")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/eval_scale.json"))
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.videos = 150
    return args


def machine_info(threads: int) -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "device": "cpu",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB


# ----- generated data ------------------------------------------------------------------------
def write_features(path: Path, video_ids: list[str], frames: int, dim: int, seed: int) -> None:
    """One (frames, dim) float32 dataset per video, standard normal."""
    generator = np.random.default_rng(seed)
    with h5py.File(path, "w") as file:
        for video_id in video_ids:
            file.create_dataset(
                video_id, data=generator.standard_normal((frames, dim), dtype=np.float32)
            )


def feature_store(work: Path, video_ids: list[str], args: argparse.Namespace) -> HDF5FeatureStore:
    """The features file of this shape in ``work``, written unless already there."""
    path = work / f"features-{args.videos}x{args.frames}x{args.feature_dim}-seed{args.seed}.hdf5"
    if not path.is_file():
        partial = path.with_suffix(".partial")
        write_features(partial, video_ids, args.frames, args.feature_dim, args.seed)
        partial.rename(path)
    return HDF5FeatureStore.open(FEATURE_NAME, path, video_ids)


class CaptionGrammar:
    """Captions of about 10 tokens with the parse ``mcsan prepare`` would give them.

    Each video has a subject, an action, an object and a place; each of its captions names
    them, or with some chance another word of a Zipf-distributed lexicon (made-up words such
    as ``n17``: only the structure matters here). Forms: "a [adj] S [in a [adj] N] is V a
    [adj] O [P the X]", "a [adj] S [in a [adj] N] is V [P the X]" (intransitive) and "a S V a O
    and then V2 [P the X]" (two events in order).
    """

    SIZES = {"noun": 4_000, "verb": 1_000, "adjective": 300, "preposition": 20}

    def __init__(self, generator: np.random.Generator) -> None:
        self.generator = generator
        self.words = {kind: [f"{kind[0]}{i}" for i in range(n)] for kind, n in self.SIZES.items()}
        self.cumulative = {  # Zipf: the word of rank r drawn with probability ~ 1 / r
            kind: np.cumsum(weights := 1.0 / np.arange(1, n + 1)) / weights.sum()
            for kind, n in self.SIZES.items()
        }

    def draw(self, kind: str) -> str:
        rank = int(np.searchsorted(self.cumulative[kind], self.generator.random(), side="right"))
        return self.words[kind][min(rank, self.SIZES[kind] - 1)]

    def video(self) -> dict[str, str]:
        return {"subject": self.draw("noun"), "action": self.draw("verb"),
                "object": self.draw("noun"), "place": self.draw("noun"),
                "worn": self.draw("noun")}

    def caption(self, video: dict[str, str]) -> CaptionParse:
        random = self.generator.random

        def word(role: str, kind: str) -> str:  # the video's word, or sometimes another
            return video[role] if random() < 0.7 else self.draw(kind)

        tokens: list[str] = []
        entities, actions, relations = [], [], []

        def noun_phrase(role: str, adjective: bool = True) -> int:  # -> the noun's index
            tokens.append("a")
            if adjective and random() < 0.5:
                tokens.append(self.draw("adjective"))
            tokens.append(word(role, "noun"))
            entities.append(Attribute(tokens[-1], [len(tokens) - 1]))
            return len(tokens) - 1

        def verb(role: str) -> int:
            tokens.append(word(role, "verb"))
            actions.append(Attribute(tokens[-1], [len(tokens) - 1]))
            return len(tokens) - 1

        form = random()
        subject = noun_phrase("subject", adjective=form < 0.8)
        if form < 0.8 and random() < 0.3:  # what the subject wears: "in a red shirt"
            tokens.append("in")
            preposition, worn = len(tokens) - 1, noun_phrase("worn")
            relations.append(relationship(f"{tokens[subject]}|in|{tokens[worn]}",
                                          ([subject], [preposition], [worn])))
        if form < 0.6:  # transitive
            tokens.append("is")
            action = verb("action")
            obj = noun_phrase("object")
            relations.append(relationship(f"{tokens[subject]}|{tokens[action]}|{tokens[obj]}",
                                          ([subject], [action], [obj])))
        elif form < 0.8:  # intransitive
            tokens.append("is")
            action = verb("action")
            relations.append(relationship(f"{tokens[subject]}|{tokens[action]}|",
                                          ([subject], [action], [])))
        else:  # two events in order
            first = verb("action")
            obj = noun_phrase("object", adjective=False)
            tokens += ["and", "then"]
            second = verb("action")
            relations.append(relationship(f"{tokens[subject]}|{tokens[first]}|{tokens[obj]}",
                                          ([subject], [first], [obj]), order=1))
            relations.append(relationship(f"{tokens[subject]}|{tokens[second]}|",
                                          ([subject], [second], []), order=2))
        if random() < 0.6:  # a place: "on the beach"
            tokens += [self.draw("preposition"), "the", word("place", "noun")]
            place = len(tokens) - 1
            entities.append(Attribute(tokens[place], [place]))
            relations.append(relationship(f"{tokens[subject]}|{tokens[place - 2]}|{tokens[place]}",
                                          ([subject], [place - 2], [place])))
        return CaptionParse(tokens, entities, actions, relations)


def generated_split(args: argparse.Namespace, work: Path) -> tuple[Split, PreparedData]:
    """The test split (features on disk, captions in memory) and its prepared captions, with
    vocabularies built from these captions as ``mcsan prepare`` builds them from training's."""
    grammar = CaptionGrammar(np.random.default_rng(args.seed))
    video_ids = [f"video{i}" for i in range(args.videos)]
    captions, parses = [], {}
    for video_id in video_ids:
        video = grammar.video()
        for k in range(args.captions_per_video):
            parse = grammar.caption(video)
            caption = Caption(f"{video_id}#{k}", video_id, " ".join(parse.tokens))
            captions.append(caption)
            parses[caption.caption_id] = parse
    split = Split("test", video_ids, captions, [feature_store(work, video_ids, args)])
    vocab = Config().vocab
    vocabs = build_attribute_vocabs(parses.values(), vocab.min_count, vocab.top_k,
                                    vocab.relationship_halves, vocab.entity_modifiers)
    words = WordVocab.build((parse.tokens for parse in parses.values()), vocab.word_min_count)
    prepared = PreparedData(
        out_dir=work, parses=parses, caption_splits=dict.fromkeys(parses, "test"),
        vocabs=vocabs, words=words, stats={}, caption_hash="", parser={})
    return split, prepared


# ----- the floor -----------------------------------------------------------------------------
def bare_matmul(text: dict[str, torch.Tensor], video: dict[str, torch.Tensor],
                chunk_size: int) -> float:
    """Seconds for ``text_l @ video_l.T`` of every level, ``chunk_size`` rows at a time into
    one reused buffer, nothing else.  text level -> (M, E), video level -> (N, E)"""
    num_captions = next(iter(text.values())).shape[0]
    num_videos = next(iter(video.values())).shape[0]
    scores = torch.empty(min(chunk_size, num_captions), num_videos)  # (c, N)
    start_time = time.perf_counter()
    for start in range(0, num_captions, chunk_size):
        stop = min(start + chunk_size, num_captions)
        for level in text:
            torch.mm(text[level][start:stop], video[level].T, out=scores[: stop - start])
    return time.perf_counter() - start_time


# ----- the run -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info(torch.get_num_threads())
    work = args.work or Path(tempfile.mkdtemp(prefix="eval_scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, info, work)
    finally:
        if args.work is None:
            shutil.rmtree(work)


def run(args: argparse.Namespace, info: dict[str, object], work: Path) -> int:
    config = apply_overrides(Config(), args.set)
    start = time.perf_counter()
    split, prepared = generated_split(args, work)
    made_s = time.perf_counter() - start
    tokens = [len(parse.tokens) for parse in prepared.parses.values()]
    shape = {
        "videos": len(split.video_ids), "captions": len(split.captions),
        "frames": args.frames, "feature_dim": args.feature_dim,
        "mean_caption_tokens": round(float(np.mean(tokens)), 2),
        "relationships_per_caption": dict(sorted(Counter(
            len(parse.relationship) for parse in prepared.parses.values()).items())),
        "attribute_vocab": {level: len(vocab) for level, vocab in prepared.vocabs.items()},
        "word_vocab": len(prepared.words),
        "embed_dim": config.model.embed_dim, "hidden_dim": config.model.hidden_dim,
        "levels": list(config.model.levels),
        "eval_batch_size": config.eval.batch_size, "chunk_size": config.eval.chunk_size,
        "data_generation_s": round(made_s, 2),  # not part of the evaluation
    }
    print(f"eval scale: {shape['videos']} videos x {shape['captions']} captions "
          f"({shape['mean_caption_tokens']} tokens each on average), {args.frames} x "
          f"{args.feature_dim} features, {shape['embed_dim']}-d levels, "
          f"{info['torch_threads']} threads; data made in {made_s:.1f} s", flush=True)
    if info["load_average_at_start"][0] > BUSY_LOAD:
        print(f"note: load average {info['load_average_at_start'][0]} at the start: other jobs "
              "share the cores, and the times with them", flush=True)

    stages: dict[str, float] = {}
    device = torch.device("cpu")

    def timed(name: str, stage):
        begin = time.perf_counter()
        value = stage()
        stages[name] = time.perf_counter() - begin
        print(f"  {name:<20} {stages[name]:7.2f} s   (peak RSS {peak_rss_gb():.2f} GB)", flush=True)
        return value

    torch.manual_seed(args.seed)
    model = timed("model build", lambda: build_model(
        config, Vocabularies(prepared.vocabs, prepared.words), args.feature_dim).eval())
    videos = timed("video encoding", lambda: encode_videos(model, split, config, device, False))
    encoded = timed("caption encoding", lambda: EncodedSplit.join(
        videos, encode_captions(model, split, prepared, config, device, False)))
    chunk = config.eval.chunk_size
    bare_runs = [bare_matmul(encoded.text_emb, encoded.video_emb, chunk) for _ in range(2)]
    retrieval = timed("scoring + ranking",
                      lambda: retrieval_results(encoded, model.level_weights, chunk))
    bare_runs += [bare_matmul(encoded.text_emb, encoded.video_emb, chunk) for _ in range(2)]
    attributes = timed("attribute mAP", lambda: attribute_results(encoded))
    results = {**results_header(encoded, config, split.name), **retrieval,
               "attributes": attributes}
    results_path = work / "results.json"
    timed("JSON writing", lambda: write_results(results, results_path))
    peak = peak_rss_gb()
    total = sum(stages.values())
    bare = statistics.median(bare_runs)
    report = {
        "command": " ".join(["python", "benchmarks/eval_scale.py", *args.argv]),
        "quick": args.quick,  # the goals are for the full size
        "machine": {**info, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "shape": shape,
        "stages_s": {name: round(value, 3) for name, value in stages.items()},
        "total_s": round(total, 3),
        "bare_matmul_s": round(bare, 3),
        "bare_matmul_runs_s": {"before_scoring": [round(x, 3) for x in bare_runs[:2]],
                               "after_scoring": [round(x, 3) for x in bare_runs[2:]]},
        "scoring_over_bare_matmul": round(stages["scoring + ranking"] / bare, 3),
        "peak_rss_gb": round(peak, 3),
        "goals": GOALS,
        "goals_met": {
            "total_s": total <= GOALS["total_s"],
            "peak_rss_gb": peak <= GOALS["peak_rss_gb"],
            "scoring_over_bare_matmul":
                stages["scoring + ranking"] / bare <= GOALS["scoring_over_bare_matmul"],
        },
        "results": results,
    }
    print(results_table(results))
    print(table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def table(report: dict) -> str:
    """The stages, the total and the goals as a fixed-width table."""
    lines = [f"{'stage':<22} {'seconds':>8}", "-" * 31]
    lines += [f"{name:<22} {value:8.2f}" for name, value in report["stages_s"].items()]
    lines.append(f"{'total':<22} {report['total_s']:8.2f}   goal <= {GOALS['total_s']:.0f} s")
    runs = report["bare_matmul_runs_s"]
    lines.append(f"{'bare matmul':<22} {report['bare_matmul_s']:8.2f}   (median of "
                 f"{', '.join(f'{x:.2f}' for x in runs['before_scoring'])} before scoring and "
                 f"{', '.join(f'{x:.2f}' for x in runs['after_scoring'])} after)")
    lines.append(f"scoring + ranking / bare matmul {report['scoring_over_bare_matmul']:.2f}   "
                 f"goal <= {GOALS['scoring_over_bare_matmul']}")
    lines.append(f"peak RSS {report['peak_rss_gb']:.2f} GB   goal <= {GOALS['peak_rss_gb']:.0f} GB")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
