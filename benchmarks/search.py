"""Search at scale: an ``mcsan index`` of 1,000,000 videos at the default model size.

The model is the default size (4 levels x 512-d embeddings, a 2,048-d fused vector, BiGRU
text encoder of 512 hidden units) with random weights and the vocabularies of the tiny
synthetic benchmark: what a query costs does not depend on what the weights learned. The
video vectors are written into the index with ``mcsan.index.new_index`` / ``IndexWriter``
exactly as ``mcsan index`` writes encoded videos, then indexed with the automatic choice (an
inverted file with 8-bit codes above 50,000 videos). Two kinds of vectors:

``clustered``  shaped like trained embeddings, which are far from uniform: each video has a
               latent z in 64 dimensions (one of 2,000 cluster centres plus noise 0.5), each
               level is a fixed random linear map of z to 512-d plus isotropic noise 0.3,
               L2-normalised, so the levels are correlated and of low intrinsic dimension.
               Queries are noisy copies of stored videos (z + noise 0.3, new isotropic noise),
               as a caption is a noisy view of its video.
``random``     independent uniform unit vectors per level, queries noisy copies likewise
               (no index does well there; shown anyway).

Measured in one run, each phase in a process of its own so that its memory is its own:

* build: writing the vectors, training the IVF, adding every video; size on disk;
* exact: the top 10 of every query by the exact fused score over all videos (chunked
  products over the memory-mapped embeddings), and the exact search's time per query;
* search: recall@10 of the index against exact at several ``nprobe``; one query end to end
  (spaCy parse, text encoding, FAISS, exact re-scoring; ``VideoIndex.search``) p50 / p99;
  batches of 32 queries; peak RSS of the searching process.

    .venv/bin/python benchmarks/search.py                  # 1,000,000 videos, both kinds
    .venv/bin/python benchmarks/search.py --quick          # 20,000 videos, seconds

Writes ``benchmarks/results/search.json`` (``--out``); the work directory (``--work``, about
9 GB per kind at 1,000,000 videos) is kept for reruns of single phases (``--phase``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

KINDS = ("clustered", "random")
LEVEL_COUNT, EMBED_DIM, LATENT_DIM, CLUSTERS = 4, 512, 64, 2_000
CHUNK = 50_000  # videos generated and written at a time
K = 10
TEXTS = ["a dog chases a cat", "a man is riding a horse", "the girl pushes the boy",
         "a woman is walking in the park", "a cat is chased by a dog", "the child runs"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200, help="queries for recall@10")
    parser.add_argument("--latency-queries", type=int, default=300,
                        help="single text queries timed end to end")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--index-kind", default="auto", choices=("auto", "flat", "ivf"),
                        help="the FAISS index (auto: as `mcsan index` chooses)")
    parser.add_argument("--quick", action="store_true",
                        help="20,000 videos, 50 queries, an IVF index")
    parser.add_argument("--work", type=Path, default=Path("/tmp/mcsan-search-bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search.json"))
    parser.add_argument("--reuse-build", action="store_true",
                        help="keep an index built by an earlier run of the same size (its "
                        "build figures are read back) and measure the rest again")
    parser.add_argument("--phase", choices=("model", "build", "exact", "search"),
                        help="run one phase of one kind (used by the full run)")
    parser.add_argument("--kind", choices=KINDS, help="with --phase")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.queries, args.latency_queries = 20_000, 50, 40
        args.index_kind = "ivf"
    return args


# ----- vectors --------------------------------------------------------------------------------
class Vectors:
    """Stored videos and queries of one kind, generated chunk by chunk from a fixed seed."""

    def __init__(self, kind: str, count: int) -> None:
        self.kind, self.count = kind, count
        rng = np.random.default_rng(0)
        self.maps = [rng.standard_normal((LATENT_DIM, EMBED_DIM)).astype(np.float32)
                     / np.sqrt(LATENT_DIM) for _ in range(LEVEL_COUNT)]
        self.centres = rng.standard_normal((CLUSTERS, LATENT_DIM)).astype(np.float32)

    def latent(self, start: int, stop: int) -> np.ndarray:
        # -> (stop - start, LATENT_DIM), the same rows whatever the chunking
        rng = np.random.default_rng([1, start, stop])
        cluster = rng.integers(0, CLUSTERS, stop - start)
        return self.centres[cluster] + 0.5 * rng.standard_normal(
            (stop - start, LATENT_DIM)).astype(np.float32)

    def levels(self, latent: np.ndarray, seed: list[int]) -> list[np.ndarray]:
        # (n, LATENT_DIM) -> LEVEL_COUNT arrays (n, EMBED_DIM), unit norm
        rng = np.random.default_rng(seed)
        out = []
        for level in range(LEVEL_COUNT):
            noise = rng.standard_normal((len(latent), EMBED_DIM)).astype(np.float32)
            values = noise if self.kind == "random" else latent @ self.maps[level] + 0.3 * noise
            out.append(values / np.linalg.norm(values, axis=1, keepdims=True))
        return out

    def stored(self, start: int, stop: int) -> list[np.ndarray]:
        return self.levels(self.latent(start, stop), [2, start, stop])

    def queries(self, count: int) -> list[np.ndarray]:
        """LEVEL_COUNT arrays (count, EMBED_DIM): noisy copies of ``count`` stored videos."""
        rng = np.random.default_rng(3)
        rows = np.sort(rng.choice(self.count, count, replace=False))
        parts: list[np.ndarray] = []
        for start in range(0, self.count, CHUNK):  # each chunk regenerated once
            stop = min(self.count, start + CHUNK)
            wanted = rows[(rows >= start) & (rows < stop)] - start
            if len(wanted) == 0:
                continue
            if self.kind == "random":
                parts.append(np.stack([level[wanted] for level in self.stored(start, stop)]))
            else:
                parts.append(self.latent(start, stop)[wanted])
        if self.kind == "random":  # (L, Q, E): each level plus noise of norm 0.8 (cos ~0.78)
            stored = np.concatenate(parts, axis=1)
            noisy = stored + 0.8 * rng.standard_normal(stored.shape).astype(np.float32) / np.sqrt(
                EMBED_DIM)
            return [v / np.linalg.norm(v, axis=1, keepdims=True) for v in noisy]
        latent = np.concatenate(parts)
        latent = latent + 0.3 * rng.standard_normal(latent.shape).astype(np.float32)
        return self.levels(latent, [4])


# ----- phases ---------------------------------------------------------------------------------
def phase_model(work: Path) -> dict:
    """A default-size checkpoint with random weights and the tiny benchmark's vocabularies."""
    import torch

    from mcsan.checkpoint import save_checkpoint
    from mcsan.config import Config, VocabConfig
    from mcsan.data.layouts import read_dataset
    from mcsan.data.prepare import prepare
    from mcsan.data.synth import SynthConfig, write_synth
    from mcsan.factory import build_model

    checkpoint = work / "model"
    if (checkpoint / "model.safetensors").is_file():
        return {"checkpoint": str(checkpoint)}
    root = write_synth(work / "tiny", SynthConfig.preset("tiny", seed=0), progress=False,
                       overwrite=True)
    prepared = prepare(read_dataset(root, progress=False), work / "tiny_prepared",
                       VocabConfig(min_count=1), progress=False)
    config = Config()  # the default sizes
    config.model.video_dim = 2_048
    torch.manual_seed(0)
    vocabularies = prepared.vocabularies()
    model = build_model(config, vocabularies, config.model.video_dim)
    save_checkpoint(checkpoint, config=config, model_state=model.state_dict(),
                    vocab=vocabularies.to_json())
    return {"checkpoint": str(checkpoint)}


def phase_build(work: Path, kind: str, count: int, index_kind: str) -> dict:
    from mcsan import LEVELS
    from mcsan.index import TOP_ATTRIBUTES, new_index
    from mcsan.retriever import load

    out = work / f"index-{kind}-{count}"
    if (out / "index.json").is_file():
        import shutil

        shutil.rmtree(out)
    retriever = load(work / "model", device="cpu")
    vectors = Vectors(kind, count)
    started = time.perf_counter()
    features = {"dim": 2_048, "features": [{"name": f"benchmark-{kind}", "dim": 2_048,
                                            "recipe": None}]}
    with new_index(out, retriever, features) as writer:
        empty_ids = np.full((CHUNK, TOP_ATTRIBUTES), -1, np.int32)
        empty_probs = np.zeros((CHUNK, TOP_ATTRIBUTES), np.float32)
        for start in range(0, count, CHUNK):
            stop = min(count, start + CHUNK)
            levels = vectors.stored(start, stop)
            writer.append([f"v{row}" for row in range(start, stop)],
                          dict(zip(LEVELS, levels, strict=True)),
                          dict.fromkeys(writer.attribute_levels, empty_ids[: stop - start]),
                          dict.fromkeys(writer.attribute_levels, empty_probs[: stop - start]))
        written = time.perf_counter() - started
        manifest = writer.commit(kind=index_kind, progress=False)
    seconds = time.perf_counter() - started
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    faiss_file = out / manifest["faiss"]["file"]
    result = {"build_seconds": round(seconds, 1), "write_seconds": round(written, 1),
            "faiss_seconds": round(seconds - written, 1), "index": manifest["faiss"]["description"],
            "size_on_disk_gb": round(size / 1e9, 3),
            "faiss_file_gb": round(faiss_file.stat().st_size / 1e9, 3)}
    (work / f"build-{kind}-{count}.json").write_text(json.dumps(result) + "\n")
    return result


def phase_exact(work: Path, kind: str, count: int, queries: int) -> dict:
    """Exact top 10 per query over the memory-mapped embeddings, by chunks of videos."""
    from mcsan import LEVELS

    out = work / f"index-{kind}-{count}"
    vectors = Vectors(kind, count)
    query = vectors.queries(queries)  # LEVEL_COUNT x (Q, E)
    maps = [np.memmap(out / "embeddings" / f"{level}.f32", np.float32, "r",
                      shape=(count, EMBED_DIM)) for level in LEVELS]
    best_scores = np.full((queries, K), -np.inf, np.float32)
    best_rows = np.zeros((queries, K), np.int64)
    started = time.perf_counter()
    for start in range(0, count, CHUNK):
        stop = min(count, start + CHUNK)
        scores = sum(query[lv] @ maps[lv][start:stop].T for lv in range(LEVEL_COUNT))  # (Q, n)
        top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], 1)
        merged_rows = np.concatenate([best_rows, top + start], 1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :K]
        best_scores = np.take_along_axis(merged_scores, order, 1)
        best_rows = np.take_along_axis(merged_rows, order, 1)
    batch_seconds = time.perf_counter() - started
    single = []  # one query alone, as an exact flat search answers it
    for q in range(3):
        started = time.perf_counter()
        scores = np.zeros(count, np.float32)
        for start in range(0, count, CHUNK):
            stop = min(count, start + CHUNK)
            scores[start:stop] = sum(maps[lv][start:stop] @ query[lv][q]
                                     for lv in range(LEVEL_COUNT))
        np.argpartition(-scores, K - 1)[:K]
        single.append(time.perf_counter() - started)
    np.save(work / f"exact-{kind}-{count}.npy", best_rows)
    return {"exact_batch_ms_per_query": round(1e3 * batch_seconds / queries, 2),
            "exact_single_query_ms": round(1e3 * float(np.median(single)), 1)}


def phase_search(work: Path, kind: str, count: int, queries: int, latency_queries: int,
                 nprobes: list[int]) -> dict:
    import torch

    from mcsan import LEVELS
    from mcsan.index import open_index

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index = open_index(work / f"index-{kind}-{count}", device="cpu")
    open_seconds = time.perf_counter() - started
    weights = index.retriever.level_weights
    query = Vectors(kind, count).queries(queries)
    text_emb = {level: torch.from_numpy(query[i]) for i, level in enumerate(LEVELS)}
    exact = np.load(work / f"exact-{kind}-{count}.npy")
    default = index.default_nprobe()
    sweep = {}
    for nprobe in sorted(set(nprobes + [default])) if default else [None]:
        started = time.perf_counter()
        rows, _, _ = index.search_embeddings(text_emb, K, weights, nprobe)
        seconds = time.perf_counter() - started
        recall = float(np.mean([len(set(r) & set(e)) / K for r, e in zip(rows, exact.tolist(),
                                                                        strict=True)]))
        sweep[nprobe or "exact"] = {"recall_at_10": round(recall, 4),
                         "search_ms_per_query_embeddings": round(1e3 * seconds / queries, 3)}
    index.search([TEXTS[0]], k=K)  # spaCy and the model warmed up
    latencies = []
    for q in range(latency_queries):
        started = time.perf_counter()
        index.search([TEXTS[q % len(TEXTS)]], k=K)
        latencies.append(1e3 * (time.perf_counter() - started))
    batch = [TEXTS[i % len(TEXTS)] for i in range(32)]
    batch_ms = []
    for _ in range(5):
        started = time.perf_counter()
        index.search(batch, k=K)
        batch_ms.append(1e3 * (time.perf_counter() - started))
    parse_ms = []
    for q in range(50):  # the parser alone, a new sentence each time (spaCy caches nothing)
        started = time.perf_counter()
        index.retriever.parse([f"{TEXTS[q % len(TEXTS)]} number {q}"])
        parse_ms.append(1e3 * (time.perf_counter() - started))
    return {
        "kind": index.kind,
        "default_nprobe": default,
        "open_seconds": round(open_seconds, 2),
        "nprobe_sweep": sweep,
        "single_query_end_to_end_ms": {"p50": round(float(np.percentile(latencies, 50)), 2),
                                       "p99": round(float(np.percentile(latencies, 99)), 2),
                                       "queries": latency_queries},
        "parse_only_ms_p50": round(float(np.median(parse_ms)), 2),
        "batch_of_32_ms": {"p50": round(float(np.median(batch_ms)), 1),
                           "per_query": round(float(np.median(batch_ms)) / 32, 2)},
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
    }


def run_phase(args: argparse.Namespace, phase: str, kind: str | None = None) -> dict:
    """One phase in a fresh process; its JSON result on the last line of its output."""
    command = [sys.executable, __file__, "--phase", phase, "--videos", str(args.videos),
               "--queries", str(args.queries), "--latency-queries", str(args.latency_queries),
               "--work", str(args.work), "--index-kind", args.index_kind,
               "--nprobe", *map(str, args.nprobe)]
    if kind:
        command += ["--kind", kind]
    print(f"[{time.strftime('%H:%M:%S')}] {phase} {kind or ''}", flush=True)
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.phase:
        phases = {
            "model": lambda: phase_model(args.work),
            "build": lambda: phase_build(args.work, args.kind, args.videos, args.index_kind),
            "exact": lambda: phase_exact(args.work, args.kind, args.videos, args.queries),
            "search": lambda: phase_search(args.work, args.kind, args.videos, args.queries,
                                           args.latency_queries, args.nprobe),
        }
        print(json.dumps(phases[args.phase]()))
        return 0
    run_phase(args, "model")
    report = {"command": "python benchmarks/search.py " + " ".join(argv or sys.argv[1:]),
              "videos": args.videos, "machine": {"cpus": os.cpu_count(),
                                                 "platform": platform.platform()},
              "model": "default size, 4 levels x 512-d (2,048-d fused), random weights",
              "kinds": {}}
    for kind in args.kinds:
        result = {}
        built = args.work / f"build-{kind}-{args.videos}.json"
        reuse = args.reuse_build and built.is_file()
        if reuse:
            result.update(json.loads(built.read_text()), build_reused=True)
        for phase in ("exact", "search") if reuse else ("build", "exact", "search"):
            result.update(run_phase(args, phase, kind))
        exact_ms, approx = result["exact_single_query_ms"], result["nprobe_sweep"]
        result["speedup_end_to_end_over_exact_single_query"] = round(
            exact_ms / result["single_query_end_to_end_ms"]["p50"], 1)
        result["speedup_vs_exact_single_query"] = {
            nprobe: round(exact_ms / max(row["search_ms_per_query_embeddings"], 1e-6), 1)
            for nprobe, row in approx.items()}
        report["kinds"][kind] = result
        print(json.dumps({kind: result}, indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
