"""A searchable index of a video collection: ``mcsan index`` writes it, ``mcsan search`` reads it.

An index directory holds::

    index.json                  the manifest: model fingerprint, levels, the scale of each
                                level in the fused vectors, the row count, the FAISS file, the
                                extraction recipe of the indexed features, and the committed
                                length of every data file; written last, by an atomic rename
    model/                      a copy of the checkpoint (config, weights, vocabularies), so
                                the index answers text queries on its own
    videos.jsonl                one line a row: video id, source file and frame timestamps
                                where known
    embeddings/<level>.f32      (N, E) float32 unit-norm video embeddings, memory-mapped
    attributes/<level>.ids.i32  (N, K) int32 the video's K most likely attributes ...
    attributes/<level>.probs.f32  (N, K) float32 ... and their probabilities
    fused.<generation>.faiss    FAISS inner-product index over the fused vectors

The fused vector of a video is [s_l * v_l] over the levels, with s_l = sqrt(w_l) of the
model's fusion weights when the index was built (1 for a level of weight 0). A query with
weights w'_l (the model's, or re-weighted at query time) is [w'_l / s_l * t_l], so the inner
product is sum_l w'_l cos_l: the model's fused score, for any non-negative weights. Below
``FLAT_LIMIT`` videos the FAISS index is exact (flat); above it, an inverted file with 8-bit
scalar quantisation (``IVF<nlist>,SQ8``), whose candidates (``RESCORE_FACTOR`` times k) are
re-scored exactly from the float32 embeddings. Every score a search returns is the model's own.

Data files are only ever appended to, and a row counts once the manifest says so: a run
killed while adding leaves the previous manifest, which names the previous FAISS file and
reads only the rows it committed. A new index is built in a staging directory that is
renamed into place when complete.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mcsan import __version__
from mcsan.atomic import fsync_directory, fsync_file, replace_json
from mcsan.checkpoint import CONFIG_FILE, MODEL_FILE, VOCAB_FILE
from mcsan.data.caption_parse import CaptionParse
from mcsan.data.recipes import FEATURES_NOTE, describe_recipe, same_recipe
from mcsan.retriever import (
    AttributeMatch,
    ParsedQuery,
    Retriever,
    matching_attributes,
)
from mcsan.sources import VideoSource

FORMAT = 1
MANIFEST = "index.json"
MODEL_DIR = "model"
VIDEOS_FILE = "videos.jsonl"
LOCK_FILE = ".lock"
FLAT_LIMIT = 50_000  # videos: below this the FAISS index is exact (flat), above it IVF
RESCORE_FACTOR = 4  # an approximate search re-scores this many times k candidates
VISITED_PER_QUERY = 16_384  # videos whose codes an IVF search scans by default
MIN_CANDIDATES = 64
TOP_ATTRIBUTES = 10  # predicted attributes stored per video and level
KINDS = ("auto", "flat", "ivf")
ENCODE_BATCH = 64  # videos encoded at a time


@dataclass
class Hit:
    rank: int
    video_id: str
    score: float  # the fused score sum_l w_l cos_l
    levels: dict[str, float]  # level -> cosine
    matches: list[AttributeMatch]  # the query's labels among the video's predicted attributes
    source: str | None = None  # the video file, where the index knows it
    timestamps: list[float] | None = None  # seconds of the frames the features came from

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "video_id": self.video_id,
            "score": round(self.score, 6),
            "levels": {level: round(value, 6) for level, value in self.levels.items()},
            "matches": [match.to_json() for match in self.matches],
            "source": self.source,
            "timestamps": self.timestamps,
        }


@dataclass
class SearchResult:
    query: ParsedQuery
    weights: dict[str, float]  # the w_l the scores use
    hits: list[Hit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query.to_json(), "weights": self.weights,
                "hits": [hit.to_json() for hit in self.hits]}


# ----- writing -------------------------------------------------------------------------------
class IndexWriter:
    """Appends rows to an index directory and commits them with a new manifest.

    ``append`` takes already encoded videos; :func:`build_index` and :func:`add_to_index`
    encode them from features. Nothing is visible to readers before :meth:`commit`."""

    def __init__(self, directory: Path, manifest: dict[str, Any]) -> None:
        self.directory = directory
        self.manifest = manifest
        self.levels: list[str] = manifest["model"]["levels"]
        self.attribute_levels: list[str] = manifest["attribute_levels"]
        self.known_ids = set(_read_video_ids(directory, manifest))
        self.added = 0
        self._truncate_to_committed()

    @property
    def count(self) -> int:
        return self.manifest["count"] + self.added

    def append(
        self,
        video_ids: Sequence[str],
        embeddings: Mapping[str, np.ndarray],
        top_ids: Mapping[str, np.ndarray],
        top_probs: Mapping[str, np.ndarray],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Rows for ``video_ids`` (n): embeddings level -> (n, E) unit norm, top_ids and
        top_probs attribute level -> (n, K) (K = the manifest's top_attributes)."""
        repeated = [video_id for video_id in video_ids if video_id in self.known_ids]
        if repeated or len(set(video_ids)) != len(video_ids):
            raise ValueError(f"video id(s) {repeated[:3] or list(video_ids)[:3]} are already in "
                             f"the index {self.directory}; a video is indexed once")
        rows, dim = len(video_ids), self.manifest["model"]["embed_dim"]
        top = self.manifest["top_attributes"]
        shapes = [(f"embeddings[{lv!r}]", embeddings[lv].shape, (rows, dim)) for lv in self.levels]
        shapes += [(f"{name}[{lv!r}]", values[lv].shape, (rows, top))
                   for lv in self.attribute_levels
                   for name, values in (("top_ids", top_ids), ("top_probs", top_probs))]
        for name, shape, expected in shapes:
            if tuple(shape) != expected:
                raise ValueError(f"{name} has shape {tuple(shape)}; expected {expected}")
        for level in self.levels:
            _append_array(self.directory / _embedding_file(level), embeddings[level], np.float32)
        for level in self.attribute_levels:
            ids_file, probs_file = _attribute_files(level)
            _append_array(self.directory / ids_file, top_ids[level], np.int32)
            _append_array(self.directory / probs_file, top_probs[level], np.float32)
        with open(self.directory / VIDEOS_FILE, "ab") as out:
            for position, video_id in enumerate(video_ids):
                record = {"id": video_id, **(metadata[position] if metadata else {})}
                out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        self.known_ids.update(video_ids)
        self.added += len(video_ids)

    def commit(self, kind: str = "auto", nlist: int | None = None, progress: bool = True) -> dict:
        """Flush the data files, add the new rows to the FAISS index (a fresh index is built
        here: flat, or IVF trained on the rows), write it under a new name, then the
        manifest; returns the new manifest."""
        if self.count == 0:
            raise ValueError("no video to index; the index would be empty")
        for name in self._data_files():
            fsync_file(self.directory / name)
        manifest = json.loads(json.dumps(self.manifest))
        manifest["count"] = self.count
        faiss_index = self._faiss_with_new_rows(kind, nlist, progress)
        generation = manifest["faiss"].get("generation", 0) + 1
        faiss_name = f"fused.{generation}.faiss"
        _write_faiss(faiss_index, self.directory / faiss_name)
        previous = manifest["faiss"].get("file")
        manifest["faiss"].update(file=faiss_name, generation=generation,
                                 description=_describe_faiss(faiss_index))
        manifest["files"] = {name: (self.directory / name).stat().st_size
                             for name in self._data_files()}
        manifest["updated"] = _now()
        replace_json(self.directory / MANIFEST, manifest, indent=1)
        if previous and previous != faiss_name:
            (self.directory / previous).unlink(missing_ok=True)
        self.manifest, self.added = manifest, 0
        return manifest

    def _data_files(self) -> list[str]:
        names = [VIDEOS_FILE] + [_embedding_file(level) for level in self.levels]
        for level in self.attribute_levels:
            names += list(_attribute_files(level))
        return names

    def _truncate_to_committed(self) -> None:
        """Drop bytes a killed run appended after the last commit."""
        committed = self.manifest.get("files", {})
        for name in self._data_files():
            path = self.directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.touch()
            size = committed.get(name, 0)
            if path.stat().st_size > size:
                os.truncate(path, size)

    def _faiss_with_new_rows(self, kind: str, nlist: int | None, progress: bool):
        first_new = self.manifest["count"]
        scales = self.manifest["scales"]
        vectors = FusedRows(self.directory, self.levels, scales, self.count,
                            self.manifest["model"]["embed_dim"])
        existing = self.manifest["faiss"].get("file")
        if existing:
            index = _read_faiss(self.directory / existing)
        else:
            index = _new_faiss(kind, vectors, nlist, progress)
        chunk = 16_384
        bar = tqdm(total=self.count - first_new, desc="adding to the FAISS index", unit="video",
                   disable=not progress, leave=False)
        for start in range(first_new, self.count, chunk):
            rows = vectors.rows(start, min(self.count, start + chunk))
            index.add(rows)
            bar.update(len(rows))
        bar.close()
        if index.ntotal != self.count:
            raise RuntimeError(f"the FAISS index holds {index.ntotal} rows, expected {self.count}")
        return index


class FusedRows:
    """The fused vectors [s_l * v_l] of an index's rows, read from the embedding files."""

    def __init__(self, directory: Path, levels: Sequence[str], scales: Mapping[str, float],
                 count: int, dim: int) -> None:
        self.levels, self.scales, self.count = list(levels), dict(scales), count
        self.embeddings = {level: _memmap(directory / _embedding_file(level), np.float32, count,
                                          dim) for level in levels}

    def rows(self, start: int, stop: int) -> np.ndarray:
        # -> (stop - start, L * E) float32
        return self._fused(slice(start, stop))

    def sample(self, size: int, seed: int = 0) -> np.ndarray:
        # -> (min(size, count), L * E) rows drawn without replacement, in row order
        return self._fused(np.sort(np.random.default_rng(seed).choice(
            self.count, min(size, self.count), replace=False)))

    def _fused(self, rows: slice | np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate(
            [self.scales[level] * self.embeddings[level][rows] for level in self.levels],
            axis=1), dtype=np.float32)


def choose_kind(kind: str, count: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"index kind {kind!r}; choose {', '.join(KINDS)}")
    if kind == "auto":
        return "flat" if count < FLAT_LIMIT else "ivf"
    return kind


def default_nlist(count: int) -> int:
    """IVF cells: about sqrt(N), each trained on at least 39 videos (FAISS's minimum)."""
    return max(1, min(int(math.sqrt(count)), count // 39))


def _new_faiss(kind: str, vectors: FusedRows, nlist: int | None, progress: bool):
    import faiss

    dim = sum(vectors.embeddings[level].shape[1] for level in vectors.levels)
    kind = choose_kind(kind, vectors.count)
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    nlist = nlist or default_nlist(vectors.count)
    if nlist < 1 or nlist * 39 > vectors.count:
        raise ValueError(
            f"an IVF index of {nlist} cells needs at least {39 * max(1, nlist)} videos to train "
            f"on, and {vectors.count} are given; use --kind flat or a smaller --nlist"
        )
    index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    if progress:
        print(f"training an IVF index of {nlist} cells on {min(vectors.count, 40 * nlist)} "
              "videos", flush=True)
    index.train(vectors.sample(40 * nlist))
    return index


def build_index(
    retriever: Retriever,
    source: VideoSource,
    out: str | Path,
    *,
    kind: str = "auto",
    nlist: int | None = None,
    allow_other_recipe: bool = False,
    progress: bool = True,
) -> Path:
    """Encode every video of ``source`` with ``retriever`` into a new index directory ``out``
    (written beside it and renamed into place when complete); returns its path."""
    check_features(retriever, source, allow_other_recipe)
    choose_kind(kind, 1)  # an unknown kind fails before any work
    with new_index(out, retriever, source.features_record()) as writer:
        _encode_into(writer, retriever, source, progress)
        writer.commit(kind, nlist, progress)
    return Path(out)


@contextmanager
def new_index(
    out: str | Path, retriever: Retriever, features: Mapping[str, Any]
) -> Iterator[IndexWriter]:
    """An :class:`IndexWriter` on a staging directory beside ``out`` that holds a copy of the
    model; renamed to ``out`` when the block ends without an error (the caller commits the
    rows), removed when it fails. ``features``: the indexed features' ``features_record``."""
    out = Path(out)
    _refuse_existing(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _copy_model(retriever.checkpoint, staging / MODEL_DIR)
        writer = IndexWriter(staging, _new_manifest(retriever, features))
        yield writer
        if not (staging / MANIFEST).is_file():
            raise RuntimeError("the new index was never committed (IndexWriter.commit)")
        fsync_directory(staging)
        if out.is_dir():  # an empty directory: replaced
            out.rmdir()
        os.rename(staging, out)
        fsync_directory(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def add_to_index(
    index_dir: str | Path,
    source: VideoSource,
    *,
    checkpoint: str | Path | None = None,
    allow_other_recipe: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> tuple[int, int]:
    """Encode the videos of ``source`` not yet in the index and add them (the FAISS index is
    extended, not rebuilt). Returns (added, already there). ``checkpoint``, when given, must
    be the model the index was built with."""
    index = open_index(index_dir, device=device, checkpoint=checkpoint)
    directory = index.directory
    with _locked(directory):
        writer = IndexWriter(directory, index.manifest)
        recorded = index.manifest.get("features")
        check_features(index.retriever, source, allow_other_recipe, recorded)
        before = writer.count
        skipped = _encode_into(writer, index.retriever, source, progress)
        if writer.added:
            writer.commit(progress=progress)
        return writer.count - before, skipped


def check_features(
    retriever: Retriever, source: VideoSource, allow_other_recipe: bool,
    recorded: Mapping[str, Any] | None = None,
) -> None:
    """The source's features must have the model's size, and where both recipes are known,
    the recipe of the features the model was trained on (or, with ``recorded``, of the
    features already in an index); ``allow_other_recipe`` lets a differing recipe pass."""
    if source.dim != retriever.video_dim:
        raise ValueError(
            f"{source.description} has {source.dim}-d features but the model "
            f"{retriever.checkpoint} reads {retriever.video_dim}-d ones; extract them the way "
            "its training features were made"
        )
    for reference, what in ((retriever.features, "the model was trained on"),
                            (recorded, "already in the index")):
        expected = [f.get("recipe") for f in (reference or {}).get("features", [])]
        found = [f.get("recipe") for f in source.features_record()["features"]]
        if len(expected) != len(found):
            continue
        for mine, theirs in zip(expected, found, strict=True):
            if mine is None or theirs is None or same_recipe(mine, theirs):
                continue
            if allow_other_recipe:
                print(f"warning: {source.description} was extracted with "
                      f"{describe_recipe(theirs)}, the features {what} with "
                      f"{describe_recipe(mine)}; indexing anyway (--allow-other-recipe)")
                continue
            raise ValueError(
                f"{source.description} was extracted with {describe_recipe(theirs)}, but the "
                f"features {what} with {describe_recipe(mine)}; the model would read "
                "features it never saw. Extract with the same recipe, or pass "
                "--allow-other-recipe to index them anyway"
            )


def _encode_into(writer: IndexWriter, retriever: Retriever, source: VideoSource,
                 progress: bool) -> int:
    """Encode the source's videos that the writer does not hold yet; returns how many it
    already held."""
    todo = [video_id for video_id in source.video_ids if video_id not in writer.known_ids]
    bar = tqdm(total=len(todo), desc="encoding videos", unit="video", disable=not progress)
    for start in range(0, len(todo), ENCODE_BATCH):
        ids = todo[start : start + ENCODE_BATCH]
        frames = []
        for video_id in ids:
            features = source.features(video_id)
            retriever.check_video(features, f"video {video_id} of {source.description}")
            frames.append(features)
        embeddings = retriever.encode_videos(frames)  # level -> (n, E)
        probabilities = retriever.video_attributes(embeddings)  # level -> (n, V)
        top_ids, top_probs = {}, {}
        for level in writer.attribute_levels:
            values = probabilities[level]
            best = torch.topk(values, min(TOP_ATTRIBUTES, values.shape[1]), dim=1)
            top_ids[level] = _pad(best.indices.numpy(), TOP_ATTRIBUTES, -1)
            top_probs[level] = _pad(best.values.numpy(), TOP_ATTRIBUTES, 0.0)
        writer.append(ids, {lv: e.numpy() for lv, e in embeddings.items()}, top_ids, top_probs,
                      [source.metadata(video_id) for video_id in ids])
        bar.update(len(ids))
    bar.close()
    return len(source.video_ids) - len(todo)


def _new_manifest(retriever: Retriever, features: Mapping[str, Any]) -> dict[str, Any]:
    weights = retriever.level_weights
    return {
        "format": FORMAT,
        "mcsan": __version__,
        "created": _now(),
        "model": {
            "fingerprint": retriever.fingerprint,
            "checkpoint": str(retriever.checkpoint),
            "levels": list(retriever.levels),
            "embed_dim": retriever.embed_dim,
            "video_dim": retriever.video_dim,
            "weights": weights,
        },
        "scales": {level: math.sqrt(w) if w > 0 else 1.0 for level, w in weights.items()},
        "attribute_levels": list(retriever.attribute_levels),
        "top_attributes": TOP_ATTRIBUTES,
        "features": dict(features),
        "count": 0,
        "faiss": {},
        "files": {},
    }


# ----- reading and searching ---------------------------------------------------------------
class VideoIndex:
    """An index directory opened for search (see :func:`open_index`)."""

    def __init__(self, directory: Path, manifest: dict[str, Any], retriever: Retriever) -> None:
        self.directory, self.manifest, self.retriever = directory, manifest, retriever
        self.count: int = manifest["count"]
        self.levels: list[str] = manifest["model"]["levels"]
        self.scales: dict[str, float] = manifest["scales"]
        self.attribute_levels: list[str] = manifest["attribute_levels"]
        top = manifest["top_attributes"]
        dim = manifest["model"]["embed_dim"]
        self.embeddings = {level: RowReader(directory / _embedding_file(level), np.float32,
                                            self.count, dim) for level in self.levels}
        self.top_ids, self.top_probs = {}, {}
        for level in self.attribute_levels:
            ids_file, probs_file = _attribute_files(level)
            self.top_ids[level] = RowReader(directory / ids_file, np.int32, self.count, top)
            self.top_probs[level] = RowReader(directory / probs_file, np.float32, self.count, top)
        self._records = _read_video_lines(directory, manifest)
        self.video_ids = [json.loads(line)["id"] for line in self._records]
        self.row_of = {video_id: row for row, video_id in enumerate(self.video_ids)}
        self.faiss = _read_faiss(directory / manifest["faiss"]["file"])
        if self.faiss.ntotal != self.count:
            raise ValueError(_damaged(directory, f"its FAISS index holds {self.faiss.ntotal} "
                                                 f"videos, the manifest {self.count}"))

    @property
    def kind(self) -> str:
        return "flat" if self.manifest["faiss"]["description"].startswith("Flat") else "ivf"

    def default_nprobe(self) -> int | None:
        """IVF cells a search visits unless told otherwise (None for a flat index)."""
        return default_nprobe(_ivf(self.faiss)) if self.kind == "ivf" else None

    def search(
        self,
        texts: Sequence[str],
        k: int = 10,
        weights: Mapping[str, float] | None = None,
        nprobe: int | None = None,
        parses: Sequence[CaptionParse] | None = None,
    ) -> list[SearchResult]:
        """The ``k`` best videos for each text, each with its fused and per-level scores and
        the text's labels among the video's predicted attributes. ``parses``: the texts
        already parsed (``Retriever.parse``)."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k={k!r}; ask for at least one result (k >= 1)")
        weights = self.retriever.checked_weights(weights)
        parses = list(parses) if parses is not None else self.retriever.parse(texts)
        queries = [self.retriever.read_query(text, parse)
                   for text, parse in zip(texts, parses, strict=True)]
        text_emb = self.retriever.encode_text(texts, parses=parses)  # level -> (Q, E)
        rows, scores, levels = self.search_embeddings(text_emb, k, weights, nprobe)
        results = []
        for q, query in enumerate(queries):
            hits = []
            for rank, row in enumerate(rows[q], start=1):
                hits.append(self._hit(rank, row, float(scores[q][rank - 1]),
                                      {lv: float(v[q][rank - 1]) for lv, v in levels.items()},
                                      query))
            results.append(SearchResult(query, weights, hits))
        return results

    def search_embeddings(
        self,
        text_emb: Mapping[str, torch.Tensor],
        k: int,
        weights: Mapping[str, float],
        nprobe: int | None = None,
    ) -> tuple[list[list[int]], list[np.ndarray], dict[str, list[np.ndarray]]]:
        """level -> (Q, E) text embeddings -> per query the rows of the k best videos, their
        fused scores and per-level cosines, best first (exact scores, also after an
        approximate search)."""
        k = min(k, self.count)
        query = np.concatenate(  # (Q, L * E): [w_l / s_l * t_l]
            [weights[level] / self.scales[level] * text_emb[level].numpy()
             for level in self.levels], axis=1).astype(np.float32)
        candidates = k
        if self.kind == "ivf":
            ivf = _ivf(self.faiss)
            if nprobe is not None and nprobe < 1:
                raise ValueError(f"nprobe={nprobe}; visit at least one IVF cell")
            ivf.nprobe = nprobe or default_nprobe(ivf)
            # one query: the cells are scanned in parallel (about twice as fast on 2 cores);
            # many: the queries are (faster in all)
            ivf.parallel_mode = 1 if query.shape[0] == 1 else 0
            candidates = min(self.count, max(RESCORE_FACTOR * k, MIN_CANDIDATES))
        _, found = self.faiss.search(query, candidates)  # (Q, candidates), -1 = none
        all_rows, all_scores, all_levels = [], [], {level: [] for level in self.levels}
        for q in range(query.shape[0]):
            rows = np.unique(found[q][found[q] >= 0])
            per_level = {level: self.embeddings[level].rows(rows) @ text_emb[level][q].numpy()
                         for level in self.levels}  # level -> (n,)
            fused = sum(weights[level] * per_level[level] for level in self.levels)
            order = np.argsort(-fused, kind="stable")[:k]
            all_rows.append(rows[order].tolist())
            all_scores.append(fused[order])
            for level in self.levels:
                all_levels[level].append(per_level[level][order])
        return all_rows, all_scores, all_levels

    def video(self, video_id: str) -> dict[str, Any]:
        """A video's metadata and top predicted attributes per level."""
        if video_id not in self.row_of:
            raise KeyError(f"video {video_id!r} is not in the index {self.directory}")
        row = self.row_of[video_id]
        record = json.loads(self._records[row])
        record["attributes"] = {level: [{"label": label, "probability": round(p, 4)}
                                        for label, p in pairs]
                                for level, pairs in self._predicted(row).items()}
        return record

    def _predicted(self, row: int) -> dict[str, list[tuple[str, float]]]:
        vocabs = self.retriever.vocabularies.vocabs
        predicted = {}
        for level in self.attribute_levels:
            ids, probs = self.top_ids[level].rows([row])[0], self.top_probs[level].rows([row])[0]
            predicted[level] = [(vocabs[level].labels[i], float(p))
                                for i, p in zip(ids, probs, strict=True) if i >= 0]
        return predicted

    def _hit(self, rank: int, row: int, score: float, levels: dict[str, float],
             query: ParsedQuery) -> Hit:
        record = json.loads(self._records[row])
        return Hit(rank=rank, video_id=record["id"], score=score, levels=levels,
                   matches=matching_attributes(query.labels, self._predicted(row)),
                   source=record.get("source"), timestamps=record.get("timestamps"))


def default_nprobe(ivf) -> int:
    """IVF cells visited per query: enough to scan about ``VISITED_PER_QUERY`` videos, at
    least 8 (on 1,000,000 clustered videos 16 cells of 1,000 gave recall@10 1.0 in 4 ms)."""
    per_cell = max(1, ivf.ntotal // max(1, ivf.nlist))
    return min(ivf.nlist, max(8, -(-VISITED_PER_QUERY // per_cell)))


def open_index(
    path: str | Path,
    *,
    retriever: Retriever | None = None,
    checkpoint: str | Path | None = None,
    device: str = "auto",
) -> VideoIndex:
    """Open an index directory for search with the model it holds (or ``retriever`` /
    ``checkpoint``, which must be that model). ValueError names what is wrong with a
    damaged index or another model."""
    directory = Path(path)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        if not directory.is_dir():
            raise FileNotFoundError(f"index directory {directory} does not exist")
        raise ValueError(f"{directory} is not an mcsan index (no {MANIFEST}); build one with "
                         "`mcsan index CHECKPOINT FEATURES --out DIR`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path} has format {manifest.get('format')!r}; this "
                             f"mcsan reads format {FORMAT}: build the index again")
        for name, size in manifest["files"].items():
            actual = (directory / name).stat().st_size if (directory / name).is_file() else None
            if actual is None or actual < size:
                raise ValueError(_damaged(directory, f"{name} is "
                                          + ("missing" if actual is None else
                                             f"{actual} bytes, the manifest committed {size}")))
        if not (directory / manifest["faiss"]["file"]).is_file():
            raise ValueError(_damaged(directory, f"{manifest['faiss']['file']} is missing"))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(_damaged(directory, f"{MANIFEST} cannot be read ({error})")) from None
    if retriever is None:
        retriever = Retriever(checkpoint or directory / MODEL_DIR, device)
    if retriever.fingerprint != manifest["model"]["fingerprint"]:
        raise ValueError(
            f"the index {directory} was built with the model {manifest['model']['checkpoint']} "
            f"(fingerprint {manifest['model']['fingerprint'][:12]}), not with "
            f"{retriever.checkpoint} (fingerprint {retriever.fingerprint[:12]}); its vectors "
            "mean nothing to another model. Search it with its own model, or index the "
            "videos again with this one"
        )
    return VideoIndex(directory, manifest, retriever)


# ----- files ---------------------------------------------------------------------------------
def _embedding_file(level: str) -> str:
    return f"embeddings/{level}.f32"


def _attribute_files(level: str) -> tuple[str, str]:
    return f"attributes/{level}.ids.i32", f"attributes/{level}.probs.f32"


def _append_array(path: Path, values: np.ndarray, dtype) -> None:
    with open(path, "ab") as out:
        out.write(np.ascontiguousarray(values, dtype=dtype).tobytes())


class RowReader:
    """Rows of a raw row-major file, read with ``pread``: a search reads a few rows, and
    reading them does not map the file's pages into the process (memory-mapping a
    1,000,000-video index and reading 64 rows a query grew the resident size by gigabytes of
    page cache, mapped around each row)."""

    def __init__(self, path: Path, dtype, count: int, width: int) -> None:
        self.path, self.dtype, self.count, self.width = path, np.dtype(dtype), count, width
        self.row_bytes = self.dtype.itemsize * width
        self._fd = os.open(path, os.O_RDONLY)

    def rows(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        # -> (len(indices), width)
        out = np.empty((len(indices), self.width), self.dtype)
        view = memoryview(out).cast("B")
        for position, row in enumerate(np.asarray(indices, dtype=np.int64).tolist()):
            if not 0 <= row < self.count:
                raise IndexError(f"row {row} of {self.path} (it has {self.count})")
            start = position * self.row_bytes
            read = os.preadv(self._fd, [view[start : start + self.row_bytes]],
                             row * self.row_bytes)
            if read != self.row_bytes:
                raise ValueError(_damaged(self.path.parent.parent, f"{self.path.name} ends "
                                          f"inside row {row}"))
        return out

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


def _memmap(path: Path, dtype, rows: int, width: int) -> np.ndarray:
    """The first ``rows`` rows of ``width`` values of a raw row-major file."""
    if rows == 0:
        return np.zeros((0, width), dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(rows, width))


def _pad(values: np.ndarray, width: int, fill) -> np.ndarray:
    # (n, k) -> (n, width), fill on the right (a vocabulary smaller than width)
    if values.shape[1] >= width:
        return values[:, :width]
    padded = np.full((values.shape[0], width), fill, dtype=values.dtype)
    padded[:, : values.shape[1]] = values
    return padded


def _read_video_lines(directory: Path, manifest: Mapping[str, Any]) -> list[bytes]:
    size = manifest.get("files", {}).get(VIDEOS_FILE, 0)
    path = directory / VIDEOS_FILE
    if not size:
        return []
    with open(path, "rb") as handle:
        lines = handle.read(size).splitlines()
    if len(lines) != manifest["count"]:
        raise ValueError(_damaged(directory, f"{VIDEOS_FILE} holds {len(lines)} videos, the "
                                             f"manifest {manifest['count']}"))
    return lines


def _read_video_ids(directory: Path, manifest: Mapping[str, Any]) -> Iterator[str]:
    for line in _read_video_lines(directory, manifest):
        yield json.loads(line)["id"]


def _ivf(index):
    import faiss

    return faiss.extract_index_ivf(index)


def _read_faiss(path: Path):
    import faiss

    try:
        return faiss.read_index(str(path))
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise ValueError(_damaged(path.parent, f"{path.name} cannot be read ({first})")) from None


def _write_faiss(index, path: Path) -> None:
    import faiss

    partial = path.with_name(f".{path.name}.partial")
    faiss.write_index(index, str(partial))
    fsync_file(partial)
    os.replace(partial, path)


def _describe_faiss(index) -> str:
    import faiss

    if isinstance(index, faiss.IndexFlat):
        return f"Flat inner product, {index.d}-d"
    return f"IVF{_ivf(index).nlist},SQ8 inner product, {index.d}-d"


def _copy_model(checkpoint: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for name in (CONFIG_FILE, MODEL_FILE, VOCAB_FILE, FEATURES_NOTE, "calibration.json"):
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, target / name)


def _refuse_existing(out: Path) -> None:
    if (out / MANIFEST).is_file():
        raise FileExistsError(f"{out} already holds an index; add videos to it with --add, or "
                              "choose another --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty directory; choose another --out")


def _damaged(directory: Path, what: str) -> str:
    return (f"the index {directory} is damaged: {what}. Build it again with `mcsan index` (a "
            "run killed while adding leaves the previous state readable; this is not that)")


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One writer at a time: a second ``--add`` on the same index fails at once."""
    with open(directory / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another process is adding to the index {directory}; wait "
                               "for it to finish") from None
        yield


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

