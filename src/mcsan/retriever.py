"""A trained model as a user asks it things: ``mcsan.load(checkpoint)`` gives a :class:`Retriever`.

    retriever = mcsan.load("runs/x/best")
    text = retriever.encode_text(["a dog chases a cat"])     # level -> (1, E), unit norm
    videos = retriever.encode_videos([frames_a, frames_b])   # each (T, D) -> level -> (2, E)
    scores = retriever.score(["a dog chases a cat"], [frames_a, frames_b])
    scores.fused                                             # (1, 2) sum_l w_l cos_l
    retriever.explain("a dog chases a cat", frames_a).describe()

Only the checkpoint directory is read: its config, weights, vocabularies and the parser that
built them. Free text is parsed with the same rules the training captions were
(:mod:`mcsan.data.semantics`), so its entities, actions and relationships land on the same
labels and token spans. Everything runs batched, in eval mode, without gradients; embeddings
come back on the CPU as float32.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcsan.checkpoint import MODEL_FILE, VOCAB_FILE, load_checkpoint, read_checkpoint_note
from mcsan.config import Config
from mcsan.data.batches import (
    caption_item,
    clip_frames,
    collate_captions,
    collate_videos,
)
from mcsan.data.caption_parse import CaptionParse
from mcsan.data.recipes import FEATURES_NOTE
from mcsan.data.semantics import PARSER_VERSION, CaptionParser
from mcsan.data.vocab import WORD_UNK, Vocabularies
from mcsan.factory import model_from_checkpoint
from mcsan.runtime import resolve_device

VideoInput = np.ndarray | Sequence[np.ndarray] | str | Path
TOP_ATTRIBUTES = 10  # predicted attributes per level shown beside a result


def load(path: str | Path, device: str = "auto") -> Retriever:
    """The trained model of the checkpoint directory ``path`` (``runs/x/best``), ready to
    encode, score and explain. ``device``: auto (CUDA when present), cpu, cuda or cuda:N."""
    return Retriever(path, device)


@dataclass
class Scores:
    fused: torch.Tensor  # (T, V) sum_l w_l cos_l
    levels: dict[str, torch.Tensor]  # level -> (T, V) cosine of that level alone


@dataclass
class ParsedQuery:
    """What the parser read in a text, and what of it the model knows."""

    text: str
    entities: list[str]
    actions: list[str]
    relationships: list[str]  # subject|predicate|object, a missing part empty
    labels: dict[str, list[str]]  # attribute level -> the text's labels in the model's terms
    unknown_words: list[str]  # tokens outside the word vocabulary

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "entities": self.entities,
            "actions": self.actions,
            "relationships": self.relationships,
            "unknown_words": self.unknown_words,
        }


@dataclass
class AttributeMatch:
    level: str
    label: str  # one of the query's labels ...
    probability: float  # ... that the video's attribute head predicts with this probability,
    rank: int  # at this rank among the video's predictions of that level (1 = most likely)

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "label": self.label,
                "probability": round(self.probability, 4), "rank": self.rank}


def matching_attributes(
    query_labels: Mapping[str, Sequence[str]],
    predicted: Mapping[str, Sequence[tuple[str, float]]],
) -> list[AttributeMatch]:
    """The query's labels among a video's top predicted attributes, level by level;
    ``predicted`` holds each level's (label, probability), most likely first."""
    matches = []
    for level, top in predicted.items():
        wanted = set(query_labels.get(level, ()))
        matches += [AttributeMatch(level, label, probability, rank)
                    for rank, (label, probability) in enumerate(top, start=1) if label in wanted]
    return matches


@dataclass
class Explanation:
    """Why a video scores what it does for a text."""

    query: ParsedQuery
    fused: float
    levels: dict[str, float]  # level -> cosine
    weights: dict[str, float]  # level -> w_l of the fused score
    matches: list[AttributeMatch]  # the query's labels among the video's top predictions
    predicted: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def describe(self) -> str:
        query = self.query
        lines = [
            f'"{query.text}"',
            f"  fused score {self.fused:.4f} = "
            + " + ".join(f"{self.weights[lv]:g} x {self.levels[lv]:.4f} ({lv})"
                         for lv in self.levels),
            f"  parsed: entities {query.entities or '-'}, actions {query.actions or '-'}, "
            f"relationships {query.relationships or '-'}",
            "  the video's predicted attributes that match: "
            + (", ".join(f"{m.label} {m.probability:.2f}" for m in self.matches) or "none"),
        ]
        if query.unknown_words:
            lines.append(f"  words the model does not know: {', '.join(query.unknown_words)}")
        return "\n".join(lines)


class Retriever:
    """A trained MCSAN with its vocabularies and parser; see the module docstring."""

    def __init__(self, checkpoint: str | Path, device: str = "auto") -> None:
        self.checkpoint = Path(checkpoint).resolve()
        loaded = load_checkpoint(self.checkpoint)
        self.config: Config = loaded.config
        model, self.vocabularies = model_from_checkpoint(loaded)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.features: dict[str, Any] | None = read_checkpoint_note(self.checkpoint, FEATURES_NOTE)
        self.fingerprint = model_fingerprint(self.checkpoint)
        self._parser: CaptionParser | None = None
        _warn_on_parser_version(self.vocabularies, self.checkpoint)

    # ----- what the model is -------------------------------------------------------------
    @property
    def levels(self) -> tuple[str, ...]:
        return self.model.levels

    @property
    def level_weights(self) -> dict[str, float]:
        """w_l of the fused score, as trained (or as ``mcsan calibrate`` chose them)."""
        return dict(self.model.level_weights)

    @property
    def attribute_levels(self) -> tuple[str, ...]:
        """The levels the model predicts attributes for (none without attribute heads)."""
        return () if self.model.attributes is None else self.model.attributes.levels

    @property
    def video_dim(self) -> int:
        return self.config.model.video_dim

    @property
    def embed_dim(self) -> int:
        return self.config.model.embed_dim

    def checked_weights(self, weights: Mapping[str, float] | None = None) -> dict[str, float]:
        """The model's w_l with ``weights`` replacing some; ValueError for a level the model
        does not have, a negative or non-finite weight, or all weights zero."""
        result = self.level_weights
        for level, weight in (weights or {}).items():
            if level not in result:
                raise ValueError(
                    f"unknown level {level!r} in the weights; this model has "
                    f"{', '.join(self.levels)}"
                )
            weight = float(weight)
            if weight < 0 or not math.isfinite(weight):
                raise ValueError(f"the weight of level {level!r} is {weight}; use a number >= 0")
            result[level] = weight
        if sum(result.values()) <= 0:
            raise ValueError("every level's weight is zero; give at least one level a weight")
        return result

    # ----- text ----------------------------------------------------------------------------
    def parse(self, texts: Sequence[str]) -> list[CaptionParse]:
        """Parse free text as training captions were parsed (spaCy, loaded on first use)."""
        texts = _checked_texts(texts)
        if self._parser is None:
            self._parser = CaptionParser()
            _warn_on_parser_model(self.vocabularies, self._parser, self.checkpoint)
        return self._parser.parse_many([text.lower() for text in texts], progress=False)

    def read_query(self, text: str, parse: CaptionParse | None = None) -> ParsedQuery:
        """What the parser finds in ``text`` and what of it the model knows."""
        parse = parse or self.parse([text])[0]
        index = self.vocabularies.words.index
        return ParsedQuery(
            text=text,
            entities=parse.labels("entity"),
            actions=parse.labels("action"),
            relationships=parse.labels("relationship"),
            labels={level: vocab.caption_labels(parse)
                    for level, vocab in self.vocabularies.vocabs.items()},
            unknown_words=[token for token in parse.tokens if token not in index],
        )

    @torch.no_grad()
    def encode_text(
        self, texts: Sequence[str], batch_size: int = 256, parses: Sequence[CaptionParse] | None = None
    ) -> dict[str, torch.Tensor]:
        """``texts`` (N strings) -> level -> (N, E) unit-norm embeddings. ValueError for an
        empty text or one with no word the model knows (it would be a guess)."""
        parses = list(parses) if parses is not None else self.parse(texts)
        max_words = self.config.data.max_words
        items = [caption_item(p, self.vocabularies.vocabs, self.vocabularies.words, max_words)
                 for p in parses]
        for position, (text, item) in enumerate(zip(texts, items, strict=True)):
            if all(word == WORD_UNK for word in item["words"]):
                raise ValueError(
                    f"text {position + 1} ({text!r}) has no word this model knows (its "
                    f"vocabulary holds {len(self.vocabularies.words)} words from its training "
                    "captions); rephrase it"
                )
        for item in items:
            item.update(video_id="", caption_id="")
        sizes = {level: len(vocab) for level, vocab in self.vocabularies.vocabs.items()}
        parts = []
        for start in range(0, len(items), batch_size):
            batch = collate_captions(items[start : start + batch_size], sizes)
            parts.append(self.model.encode_text(
                batch["words"].to(self.device),
                batch["word_mask"].to(self.device),
                {level: mask.to(self.device) for level, mask in batch["level_masks"].items()},
                batch["role_masks"].to(self.device),
                batch["tokens"],
                batch["relation_orders"].to(self.device),
            ))
        return _concatenated(parts, self.levels, self.embed_dim)

    # ----- videos ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode_videos(self, videos: VideoInput, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """Frame features -> level -> (N, E) unit-norm embeddings.

        ``videos``: one video's ``(T, D)`` array, an ``(N, T, D)`` array, a list of N
        ``(T_i, D)`` arrays, or an HDF5 file of ``mcsan extract`` (every video, in the
        file's sorted id order: ``sorted(h5py.File(path))``). D must be the model's input
        size; each video is resampled to ``data.max_frames`` frames as in training."""
        arrays = list(_video_arrays(videos))
        parts = []
        for start in range(0, len(arrays), batch_size):
            chunk = arrays[start : start + batch_size]
            for position, frames in enumerate(chunk, start=start):
                self.check_video(frames, f"video {position + 1}")
            batch = collate_videos([
                {"video": clip_frames(frames, self.config.data.max_frames), "video_id": ""}
                for frames in chunk
            ])
            parts.append(self.model.encode_video(batch["video"].to(self.device),
                                                 batch["video_mask"].to(self.device)))
        return _concatenated(parts, self.levels, self.embed_dim)

    def check_video(self, frames: np.ndarray, name: str) -> None:
        """ValueError unless ``frames`` is a finite (T >= 1, D) array of the model's D."""
        if frames.ndim != 2 or frames.shape[0] == 0:
            raise ValueError(f"{name} has features of shape {frames.shape}; expected (frames, "
                             f"{self.video_dim}) with at least one frame")
        if frames.shape[1] != self.video_dim:
            raise ValueError(
                f"{name} has {frames.shape[1]}-d features but the model reads "
                f"{self.video_dim}-d ones; extract them the way its training features were "
                "made"
            )
        if not np.isfinite(frames).all():
            raise ValueError(f"{name} has NaN or infinite feature values")

    @torch.no_grad()
    def video_attributes(self, video_emb: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """level -> (N, E) video embeddings -> attribute level -> (N, V) probabilities
        ({} for a model trained without attribute heads)."""
        embeddings = {level: emb.to(self.device) for level, emb in video_emb.items()}
        logits = self.model.predict_attributes(embeddings, modality="video")
        return {level: torch.sigmoid(value).float().cpu() for level, value in logits.items()}

    def top_attributes(
        self, probabilities: Mapping[str, torch.Tensor], top: int = TOP_ATTRIBUTES
    ) -> list[dict[str, list[tuple[str, float]]]]:
        """attribute level -> (N, V) probabilities -> per video, level -> the ``top`` most
        likely (label, probability)."""
        rows: list[dict[str, list[tuple[str, float]]]] = []
        for level, values in probabilities.items():
            labels = self.vocabularies.vocabs[level].labels
            best = torch.topk(values, min(top, values.shape[1]), dim=1)
            for row, (indices, probs) in enumerate(zip(best.indices.tolist(),
                                                       best.values.tolist(), strict=True)):
                if row == len(rows):
                    rows.append({})
                rows[row][level] = [(labels[i], p) for i, p in zip(indices, probs, strict=True)]
        return rows

    # ----- scores ---------------------------------------------------------------------------
    def scores(
        self, text_emb: Mapping[str, torch.Tensor], video_emb: Mapping[str, torch.Tensor],
        weights: Mapping[str, float],
    ) -> Scores:
        """level -> (T, E) and level -> (V, E) unit-norm embeddings -> Scores (T, V) with
        the fused score under ``weights`` (checked ones: ``checked_weights``)."""
        levels = self.model.level_similarities(dict(text_emb), dict(video_emb))
        return Scores(fused=sum(weights[level] * levels[level] for level in self.levels),
                      levels=levels)

    def fuse_embeddings(
        self, embeddings: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None
    ) -> torch.Tensor:
        """level -> (N, E) unit-norm embeddings -> (N, L * E): [sqrt(w_l) * e_l] in level
        order, so that the inner product of a text's and a video's single vectors is their
        fused score sum_l w_l cos_l."""
        return self.model.fuse_embeddings(
            {level: embeddings[level].float() for level in self.levels},
            self.checked_weights(weights))

    def score(
        self, texts: Sequence[str], videos: VideoInput, weights: Mapping[str, float] | None = None
    ) -> Scores:
        """Every text against every video: the fused score (T, V) and each level's cosine."""
        weights = self.checked_weights(weights)
        text_emb, video_emb = self.encode_text(texts), self.encode_videos(videos)
        return self.scores(text_emb, video_emb, weights)

    def explain(
        self, text: str, video: np.ndarray, weights: Mapping[str, float] | None = None,
        top: int = TOP_ATTRIBUTES,
    ) -> Explanation:
        """Why ``video`` (one (T, D) array) scores what it does for ``text``: each level's
        cosine, what the parser read, and the text's labels among the video's ``top``
        predicted attributes per level."""
        weights = self.checked_weights(weights)
        parse = self.parse([text])[0]
        query = self.read_query(text, parse)
        text_emb = self.encode_text([text], parses=[parse])
        video_emb = self.encode_videos([video])
        scores = self.scores(text_emb, video_emb, weights)
        predicted = self.top_attributes(self.video_attributes(video_emb), top)[0] if (
            self.attribute_levels) else {}
        return Explanation(
            query=query,
            fused=float(scores.fused[0, 0]),
            levels={level: float(value[0, 0]) for level, value in scores.levels.items()},
            weights=weights,
            matches=matching_attributes(query.labels, predicted),
            predicted=predicted,
        )


def model_fingerprint(checkpoint: Path) -> str:
    """sha1 of a checkpoint's weights and vocabularies: what its embeddings depend on (the
    fusion weights are not part of it: an index re-weights its vectors at query time)."""
    digest = hashlib.sha1()
    for name in (MODEL_FILE, VOCAB_FILE):
        with open(checkpoint / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, e.g. [\"a dog chases a cat\"]")
    texts = list(texts)
    if not texts:
        raise ValueError("no text given")
    for position, text in enumerate(texts, start=1):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text {position} is empty; give a sentence to search for")
    return texts


def _video_arrays(videos: VideoInput):
    """Yield (T, D) float32 arrays from any VideoInput."""
    if isinstance(videos, (str, Path)):
        import h5py

        path = Path(videos)
        if not path.is_file():
            raise FileNotFoundError(f"feature file {path} does not exist")
        with h5py.File(path, "r") as file:
            for video_id in sorted(file):
                yield np.asarray(file[video_id][()], dtype=np.float32)
        return
    if isinstance(videos, np.ndarray):
        if videos.ndim == 2:
            yield videos.astype(np.float32, copy=False)
            return
        if videos.ndim != 3:
            raise ValueError(f"video features of shape {videos.shape}; expected (T, D) for one "
                             "video or (N, T, D) for several")
    found = False
    for frames in videos:
        found = True
        yield np.asarray(frames, dtype=np.float32)
    if not found:
        raise ValueError("no video given")


def _concatenated(
    parts: list[dict[str, torch.Tensor]], levels: Sequence[str], dim: int
) -> dict[str, torch.Tensor]:
    # parts: batches of level -> (b, E) -> level -> (N, E) float32 on the CPU
    if not parts:
        return {level: torch.empty(0, dim) for level in levels}
    return {level: torch.cat([part[level].float().cpu() for part in parts]) for level in levels}


def _warn_on_parser_version(vocabularies: Vocabularies, checkpoint: Path) -> None:
    recorded = vocabularies.parser.get("version")
    if recorded is None:
        warnings.warn(
            f"{checkpoint / VOCAB_FILE} does not record the parser its labels were built with; "
            f"new text is parsed with parser version {PARSER_VERSION}, which may read some "
            "sentences differently",
            stacklevel=3,
        )
    elif recorded != PARSER_VERSION:
        warnings.warn(
            f"the vocabularies of {checkpoint} were built with parser version {recorded}; this "
            f"mcsan parses with version {PARSER_VERSION}, so some entities, actions or "
            "relationships of new text may be read differently from the training captions "
            "(install the mcsan release that trained it, or retrain)",
            stacklevel=3,
        )


def _warn_on_parser_model(vocabularies: Vocabularies, parser: CaptionParser, checkpoint: Path):
    recorded = vocabularies.parser.get("model")
    if recorded and recorded != parser.identity:
        warnings.warn(
            f"the vocabularies of {checkpoint} were built with {recorded}; this machine parses "
            f"with {parser.identity}: some parses may differ",
            stacklevel=4,
        )


__all__ = [
    "AttributeMatch",
    "Explanation",
    "ParsedQuery",
    "Retriever",
    "Scores",
    "load",
    "matching_attributes",
]
