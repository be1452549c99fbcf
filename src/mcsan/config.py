"""One config tree for every part of MCSAN: data, vocabularies, model, losses, training, evaluation.

Configs are plain dataclasses. They load from and save to JSON or YAML, and take command-line
overrides written as dotted paths (``train.lr=3e-4``, ``model.levels=[global,entity]``).
The resolved config is saved beside every run and checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

from mcsan import ATTRIBUTE_LEVELS, LEVELS
from mcsan.atomic import replace_json

ConfigT = TypeVar("ConfigT")  # a config dataclass with a validate() method that returns it
_DECIMAL_INTEGER = re.compile(r"[-+]?[0-9]+")


@dataclass
class DataConfig:
    root: str = ""  # dataset directory (any supported layout)
    layout: str = "auto"  # auto | hgr | bigfile | msrvtt | vatex
    features: list[str] = field(default_factory=list)  # feature types to concatenate; [] = all
    max_frames: int = 20  # frames per video fed to the model (uniformly resampled)
    max_words: int = 32  # tokens per caption fed to the model
    prepared: str = ""  # directory written by `mcsan prepare` (parses + vocabularies)
    skip_invalid: bool = False  # skip (and report) invalid items instead of failing
    check_values: bool = True  # scan every feature once for NaN/Inf when a dataset is read


@dataclass
class VocabConfig:
    min_count: int = 2  # drop attributes seen fewer times than this in training captions
    # relationship: 2,000, room for the role halves of rarer entities
    # (docs/results-history.md)
    top_k: dict[str, int] = field(
        default_factory=lambda: {"entity": 1000, "action": 500, "relationship": 2000}
    )
    word_min_count: int = 1  # word vocabulary for the text encoder
    # relationship labels: each subject-predicate-object triple also gives its role halves
    # "dog|chase|" and "|chase|cat", frequent enough to be kept and learned (vocab.py);
    # off: whole triples only
    relationship_halves: bool = True
    # entity labels and spans: also the adjectives that modify the entities ("small", "brown",
    # the "red" of "in a red shirt"; semantics.py, vocab.py)
    entity_modifiers: bool = False


@dataclass
class ModelConfig:
    video_dim: int = 0  # input feature dim; 0 = read from the data
    embed_dim: int = 512  # joint embedding size per level
    hidden_dim: int = 512  # encoder hidden size
    word_dim: int = 300  # word-embedding size (GloVe files override it with their own)
    levels: list[str] = field(default_factory=lambda: list(LEVELS))
    level_weights: dict[str, float] = field(
        default_factory=lambda: {level: 1.0 for level in LEVELS}
    )
    num_entity_queries: int = 4
    num_action_queries: int = 4
    num_relationship_queries: int = 4  # (subject, predicate, object) query trios of the video
    # entity queries read the projected frames as a set (no time encoding, no temporal
    # transformer), so the entity level cannot tell who appears first (regions already are)
    entity_order_blind: bool = False
    dropout: float = 0.1
    text_encoder: str = "gru"  # gru | sentence_transformer
    text_backbone: str = ""  # local sentence-transformers model directory
    glove: str = ""  # local GloVe-format text file for word-embedding initialisation
    shared_attribute_projection: bool = True  # one projection per level for both modalities
    # the relationship level reads when events happen: each caption triple adds an embedding
    # of its event's order in the caption ("X and then Y"; 0 where none is stated), each video
    # predicate slot the time encoding of the frames it attends (as subject and object do)
    event_order: bool = True
    # a learned scale and shift after normalising the frame features: the frame projection
    # that follows can absorb both, and without them that projection needs no input gradient
    # (6 % of a training step's arithmetic at the default size)
    input_norm_affine: bool = False

    @property
    def active_levels(self) -> tuple[str, ...]:
        """``levels`` in the canonical order of ``mcsan.LEVELS`` (how every module lists them)."""
        return tuple(level for level in LEVELS if level in self.levels)

    def validate(self) -> ModelConfig:
        """Check the model's settings (``Config.validate`` and ``MCSAN`` call this)."""
        unknown = [level for level in self.levels if level not in LEVELS]
        if unknown:
            raise ValueError(f"model.levels has unknown level(s) {unknown}; choose from {list(LEVELS)}")
        if not self.levels:
            raise ValueError("model.levels is empty; keep at least one of " + ", ".join(LEVELS))
        for level in self.active_levels:
            if level not in self.level_weights:
                raise ValueError(f"model.level_weights has no weight for active level {level!r}")
            weight = self.level_weights[level]
            if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
                raise ValueError(f"model.level_weights.{level}={weight}; weights must be >= 0")
        if sum(self.level_weights[level] for level in self.active_levels) <= 0:
            raise ValueError(
                f"model.level_weights are all zero for the levels {list(self.active_levels)}"
            )
        for name in ("embed_dim", "hidden_dim", "word_dim", "num_entity_queries",
                     "num_action_queries", "num_relationship_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name}={getattr(self, name)}; it must be at least 1")
        if self.text_encoder == "gru" and self.hidden_dim % 2:
            raise ValueError(f"model.hidden_dim={self.hidden_dim} must be even for the BiGRU "
                             "(half of it each way)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout={self.dropout}; choose a value in [0, 1)")
        return self


@dataclass
class LossConfig:
    margin: float = 0.2
    ranking_per_level: bool = True  # hinge ranking on each level's similarity
    ranking_fused: bool = True  # hinge ranking on the fused score
    max_violation: bool = True  # hardest negatives (VSE++); False = sum over negatives
    # with max_violation: the first N epochs sum over negatives before the hardest take over
    # (VSE-infinity's warm-up; hardest negatives from a random start can collapse a model)
    sum_violation_epochs: int = 0
    # per-level ranking at entity/action/relationship: a video that has every attribute the
    # caption names at that level is no negative there (losses.same_at_level)
    level_aware_negatives: bool = False
    # each caption whose event has a subject and an object is also ranked against its own
    # role-swapped reading ("a cat chases a dog" for "a dog chases a cat") on the fused score
    # of its video: the one negative that only who-does-what-to-whom tells apart
    role_swap_negatives: bool = False
    # each caption that states the order of its events is also ranked against its reading
    # with the order reversed, on the relationship level of its own video
    order_swap_negatives: bool = False
    attribute_loss: str = "focal"  # focal | bce | none
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    attribute_weight: float = 1.0
    kl: bool = True  # KL between video and text attribute distributions of matched pairs
    kl_weight: float = 1.0


@dataclass
class TrainConfig:
    out_dir: str = "runs/mcsan"
    epochs: int = 20
    # the global batch of one optimizer step, whatever the number of processes: each of N
    # processes (torchrun) takes batch_size / N pairs, and the loss sees all of them
    batch_size: int = 128
    # split each process's share into this many micro-batches, run one after another: the same
    # gradient as the whole batch at once (gradient cache), in the memory of one micro-batch
    accumulate_steps: int = 1
    lr: float = 2e-4
    # learning rate of a pretrained text backbone (model.text_encoder=sentence_transformer);
    # a few 1e-5 keeps what it learned, 0 freezes it (each caption then goes through the
    # backbone once, so an epoch costs about what the BiGRU's does)
    backbone_lr: float = 2e-5
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    schedule: str = "cosine"  # cosine | step | constant
    grad_clip: float = 2.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # float16 autocast + gradient scaler, CUDA only. Off by default: at MSR-VTT sizes a step is
    # hundreds of small kernels, and AMP's casts made it slower on a GPU (benchmarks/README.md,
    # "Training speed"); it pays where matrix products dominate
    amp: bool = False
    # loader worker processes; -1 = automatic: 4 on CUDA (fewer on a machine with fewer cores),
    # where they hide the loader behind the GPU step, and 0 on the CPU, where they compete
    # with training for the cores (both measured: benchmarks/README.md, "Training loader")
    num_workers: int = -1
    neighbour_batches: bool = False  # pair each caption with one of its nearest-neighbour video
    threads: int = 0  # CPU threads for torch; 0 = one per idle core, or OMP_NUM_THREADS if set
    eval_every: int = 1  # epochs between validation runs
    # `mcsan train`, after training: choose the best checkpoint's fusion weights w_l on the
    # validation split from a grid (`mcsan calibrate` does it for any checkpoint). Off by
    # default: the gain depends on the data (README, "Results")
    calibrate_fusion: bool = False


@dataclass
class EvalConfig:
    split: str = "test"
    protocol: str = "all-captions"  # written into every results JSON
    # query rows scored at a time; 512 since 2026-12-06 (1,024 before): a chunk's scores stay
    # in cache while they are counted (benchmarks/README.md, "Evaluation at MSR-VTT size")
    chunk_size: int = 512
    batch_size: int = 256


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> Config:
        self.model.validate()
        if self.train.schedule not in ("cosine", "step", "constant"):
            raise ValueError(
                f"train.schedule={self.train.schedule!r}; choose cosine, step or constant"
            )
        if self.loss.attribute_loss not in ("focal", "bce", "none"):
            raise ValueError(
                f"loss.attribute_loss={self.loss.attribute_loss!r}; choose focal, bce or none"
            )
        if self.loss.sum_violation_epochs < 0:
            raise ValueError(
                f"loss.sum_violation_epochs={self.loss.sum_violation_epochs} is negative; "
                "use 0 for hardest negatives from the first epoch"
            )
        if self.train.num_workers < -1:
            raise ValueError(
                f"train.num_workers={self.train.num_workers}; use -1 (automatic), 0 (load in the "
                "training process) or a number of worker processes"
            )
        bad_top_k = [k for k in self.vocab.top_k if k not in ATTRIBUTE_LEVELS]
        if bad_top_k:
            raise ValueError(f"vocab.top_k has unknown level(s) {bad_top_k}")
        at_least = {  # field -> smallest value that makes sense
            "data.max_frames": 1, "data.max_words": 1, "train.threads": 0,
            "vocab.min_count": 1, "vocab.word_min_count": 1, "train.epochs": 1,
            "train.batch_size": 2, "train.accumulate_steps": 1, "train.warmup_steps": 0,
            "train.eval_every": 1,
            "eval.chunk_size": 1, "eval.batch_size": 1,
            **{f"vocab.top_k.{level}": 1 for level in self.vocab.top_k},
        }
        for name, smallest in at_least.items():
            value = self._field(name)
            if value < smallest:
                raise ValueError(f"{name}={value}; it must be at least {smallest}")
        for name in ("train.lr", "train.backbone_lr", "loss.attribute_weight", "loss.kl_weight",
                     "loss.margin", "train.weight_decay", "train.grad_clip"):
            if not self._field(name) >= 0:
                raise ValueError(f"{name}={self._field(name)}; it must be >= 0")
        if not self.eval.split:
            raise ValueError("eval.split is empty; name a split (test, val, test_1k, ...)")
        return self

    def _field(self, dotted: str) -> Any:
        node: Any = self
        for key in dotted.split("."):
            node = node[key] if isinstance(node, dict) else getattr(node, key)
        return node

    # ----- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON, atomically (``mcsan.atomic``)."""
        replace_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        return build_config(cls, data, "config")

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] | None = None) -> Config:
        """Load a JSON or YAML config file and apply ``a.b=value`` overrides."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        config = _build(cls, data or {}, str(path))
        return apply_overrides(config, overrides or [])


def apply_overrides(config: ConfigT, overrides: Sequence[str]) -> ConfigT:
    """``config`` with ``key=value`` strings applied, checked and validated: a new config.

    ``config`` is any config dataclass with a ``validate()`` method (:class:`Config`,
    :class:`mcsan.data.synth.SynthConfig`); keys name a field or a dotted path into nested
    dataclasses and mappings (``train.lr=3e-4``, ``vocab.top_k.entity=800``, ``noise=0.5``).
    """
    return build_config(type(config), set_overrides(asdict(config), overrides))


def set_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set ``key=value`` strings in ``data`` (a config as :func:`dataclasses.asdict` gives it)
    and return it. A key must already be there (an unknown one is refused with the closest
    known key); values are parsed as YAML (numbers, lists, bools), except that an integer is
    always decimal (``seed=010`` is 10, where YAML would read octal 8). Types are checked by
    :func:`build_config`."""
    for override in overrides:
        if "=" not in override:
            raise ValueError(
                f"override {override!r} must look like key=value (a dotted key for a nested "
                "field: train.lr=3e-4)"
            )
        dotted, raw = override.split("=", 1)
        keys = dotted.strip().split(".")
        node = data
        for depth, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                where = ".".join(keys[: depth + 1])
                close = difflib.get_close_matches(key, list(node) if isinstance(node, dict)
                                                  else [], n=1)
                hint = f"; did you mean {'.'.join([*keys[:depth], close[0]])}?" if close else ""
                raise KeyError(f"override {override!r}: no config field {where!r}{hint}")
            if depth == len(keys) - 1:
                node[key] = _parse_value(raw)
            else:
                node = node[key]
    return data


def build_config(cls: type[ConfigT], data: Mapping[str, Any], where: str = "") -> ConfigT:
    """A ``cls`` config from a mapping (nested mappings for nested dataclasses), every field's
    type checked, then validated by its ``validate()``. Errors name the field by its dotted
    path, after ``where`` (a file, or "config") when one is given."""
    return _build(cls, data, where).validate()


def _parse_value(raw: str) -> Any:
    text = raw.strip()
    return int(text) if _DECIMAL_INTEGER.fullmatch(text) else yaml.safe_load(raw)


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """Build a dataclass from a mapping, rejecting unknown keys with the path that holds them."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{where or cls.__name__}: expected a mapping for {cls.__name__}, got "
                        f"{type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        prefix = f"{where}: " if where else ""
        raise KeyError(f"{prefix}unknown field(s) {unknown} in {cls.__name__}{hint}; known: "
                       f"{sorted(known)}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint, path = hints[name], f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, path)
        else:
            kwargs[name] = _coerce(value, hint, path)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check scalar fields; numbers written as strings ("1e-3", which YAML reads as text) and
    ints given for floats become the field's type; a list of strings may be given as one name
    or a comma list (``model.levels=global``, ``model.levels=global,entity``)."""
    if typing.get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}={value!r} is not a mapping of names to values")
        value_hint = typing.get_args(hint)[1]
        return {key: _coerce(item, value_hint, f"{where}.{key}") for key, item in value.items()}
    if typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}={value!r} is not a list of names")
        return value
    if hint is float:
        if not isinstance(value, bool):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        raise ValueError(f"{where}={value!r} is not a number")
    if hint is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"{where}={value!r} is not an integer")
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{where}={value!r} is not true/false")
    if hint is str and not isinstance(value, str):
        raise ValueError(f"{where}={value!r} is not a string")
    return value
