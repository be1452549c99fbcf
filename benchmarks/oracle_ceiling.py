"""The best rsum any model can expect on the synthetic benchmark: an ideal observer's ceiling.

A caption does not always pin down its video: "a dog chases a cat" fits every test video in
which a dog chases a cat, whatever its scene or colours, and "a person watches an animal"
fits more. This script scores every caption against every video of a split with the
generator's own probabilities, as an observer would that sees each video's true content
(entities, their colours and sizes, action, scene and who does what to whom) without the
noise of the features:

    P(caption | video) = 0 unless the caption fits the video: same action, each entity
                          named by one of its words or its kind ("a person"), every named
                          colour, size and scene the video's;
                        otherwise proportional to (1 - p_attr) ** (attributes the video's
                          entities have that the caption leaves out): the generator names
                          a present attribute with probability p_attr, so a caption that
                          names none fits a plain video better than a colourful one.

Everything else in a caption's probability (template, verb form, synonyms, articles) is the
same for every video it fits. Text->video ranks videos by this likelihood, video->text ranks
captions by the posterior P(video | caption) (uniform prior over the split's videos). Ties are
broken uniformly at random and the recalls are their exact expectations, so the ceiling is what
a perfect reader of the features would score on average; ``mcsan.metrics`` counts ties against
a model, which a model with noisy scores never meets exactly.

Two observers:

* ``ideal`` knows the roles: the ceiling for any model on this split.
* ``role_blind`` knows the same content but not which entity is the subject: its likelihood
  is the mean over the two role assignments, so role-swapped twins tie. The ceiling for a
  model that reads no roles (a bag of words over a frame average); ``ideal - role_blind`` is
  the most that reading roles can add on this split.

``--checkpoints`` also says where trained models' text->video top-1 errors are: the wrong
video fits the caption (the ideal observer could not rule it out either), or it contradicts
the caption's action, scene, roles, an entity, a colour or a size (:func:`error_breakdown`).

    .venv/bin/python benchmarks/oracle_ceiling.py --preset default
    .venv/bin/python benchmarks/oracle_ceiling.py --data runs/ablation/data
    .venv/bin/python benchmarks/oracle_ceiling.py --data runs/ablation/data --splits test \
        --checkpoints runs/ablation/runs/full-seed0/best ...

The benchmark is regenerated from its config (``--data`` reads it from ``synth_meta.json``
and checks that the regenerated captions are the dataset's); no model or feature is loaded.
Writes benchmarks/results/oracle_ceiling-<preset>.json (or --out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcsan.data.layouts import read_dataset
from mcsan.data.synth import (
    COLOURS,
    ENTITIES,
    HYPERNYMS,
    INTRANSITIVE_ACTIONS,
    SCENES,
    SIZES,
    SPLITS,
    TRANSITIVE_ACTIONS,
    EntityInstance,
    SynthBenchmark,
    SynthCaption,
    SynthConfig,
    VideoSpec,
    generate,
    read_synth_meta,
    synth_config,
)
from mcsan.metrics import RECALL_AT

OBSERVERS = ("ideal", "role_blind")
NONE = -1  # "not in the video" / "not named by the caption"

ENTITY_IDS = {name: i for i, (name, _, _) in enumerate(ENTITIES)}
KINDS = sorted({kind for _, kind, _ in ENTITIES})
KIND_OF_ENTITY = np.array([KINDS.index(kind) for _, kind, _ in ENTITIES])  # (entities,)
ACTION_IDS = {name: i for i, (name, _) in enumerate(TRANSITIVE_ACTIONS + INTRANSITIVE_ACTIONS)}
SCENE_IDS = {name: i for i, (name, _) in enumerate(SCENES)}
COLOUR_IDS = {name: i for i, (name, _) in enumerate(COLOURS)}
SIZE_IDS = {name: i for i, (name, _) in enumerate(SIZES)}
# surface word -> concept id, for reading a caption's noun phrases back
NOUNS = {word: ("entity", ENTITY_IDS[name]) for name, _, words in ENTITIES for word in words}
NOUNS |= {word: ("kind", KINDS.index(kind)) for kind, words in HYPERNYMS.items() for word in words}
COLOUR_WORDS = {word: COLOUR_IDS[name] for name, words in COLOURS for word in words}
SIZE_WORDS = {word: SIZE_IDS[name] for name, words in SIZES for word in words}
VERB_PHRASES = {
    phrase: ACTION_IDS[name]
    for name, forms in TRANSITIVE_ACTIONS + INTRANSITIVE_ACTIONS
    for form in forms
    for phrase in form
}
SCENE_PHRASES = {phrase: SCENE_IDS[name] for name, phrases in SCENES for phrase in phrases}


@dataclass(frozen=True)
class Mention:
    """What a caption's noun phrase says of one entity."""

    entity: int  # entity id, or NONE when the phrase names only its kind
    kind: int
    colour: int  # NONE when not named
    size: int


def read_noun_phrase(phrase: str) -> Mention:
    """``a small brown puppy`` / ``the person in a red hat`` -> what it names."""
    words = phrase.split()
    if words[0] in ("a", "an", "the"):
        words = words[1:]
    colour = NONE
    if "in" in words:  # a person's colour is worn: "<noun> in a red shirt"
        at = words.index("in")
        colour = COLOUR_WORDS[words[at + 2]]
        words = words[:at]
    for start in range(len(words)):  # the noun is the longest tail that is a noun (police officer)
        noun = " ".join(words[start:])
        if noun in NOUNS:
            break
    else:
        raise ValueError(f"no entity noun in the noun phrase {phrase!r}")
    size = NONE
    for word in words[:start]:
        if word in SIZE_WORDS:
            size = SIZE_WORDS[word]
        elif word in COLOUR_WORDS:
            colour = COLOUR_WORDS[word]
        else:
            raise ValueError(f"unexpected word {word!r} in the noun phrase {phrase!r}")
    what, index = NOUNS[noun]
    if what == "entity":
        return Mention(index, int(KIND_OF_ENTITY[index]), colour, size)
    return Mention(NONE, index, colour, size)


def read_caption(caption: SynthCaption) -> tuple[int, Mention, Mention | None, int]:
    """(action, agent, patient or None, scene or NONE) that one caption names."""
    spans = sorted(span for span in (caption.agent_span, caption.patient_span) if span)
    rest, end = [], 0  # the caption without its noun phrases: verb, scene, template words
    for start, stop in spans:
        rest.append(caption.text[end:start])
        end = stop
    rest.append(caption.text[end:])
    rest_text = " | ".join(rest)

    def named(phrases: dict[str, int]) -> list[str]:  # the longest phrases found ("runs after")
        found = [p for p in phrases if re.search(rf"\b{re.escape(p)}\b", rest_text)]
        return [p for p in found if not any(p != q and p in q for q in found)]

    scene_phrases = named(SCENE_PHRASES)  # first: "next to a swimming pool" holds a verb form
    scenes = {SCENE_PHRASES[p] for p in scene_phrases}
    for phrase in scene_phrases:
        rest_text = rest_text.replace(phrase, " | ")
    actions = {VERB_PHRASES[p] for p in named(VERB_PHRASES)}
    if len(actions) != 1 or len(scenes) > 1:
        raise ValueError(
            f"caption {caption.text!r}: expected one verb and at most one scene phrase, "
            f"read actions {sorted(actions)} and scenes {sorted(scenes)}"
        )
    patient = None if caption.patient is None else read_noun_phrase(caption.patient)
    return actions.pop(), read_noun_phrase(caption.agent), patient, scenes.pop() if scenes else NONE


@dataclass
class Entities:
    """One role (subject or object) over videos or captions, as id arrays of one shape each."""

    entity: np.ndarray
    kind: np.ndarray
    colour: np.ndarray
    size: np.ndarray

    @classmethod
    def of_instances(cls, instances: list[EntityInstance | None]) -> Entities:
        def ids(get) -> np.ndarray:
            return np.array([NONE if i is None else get(i) for i in instances])

        return cls(
            entity=ids(lambda i: ENTITY_IDS[i.entity]),
            kind=ids(lambda i: int(KIND_OF_ENTITY[ENTITY_IDS[i.entity]])),
            colour=ids(lambda i: COLOUR_IDS[i.colour] if i.colour else NONE),
            size=ids(lambda i: SIZE_IDS[i.size] if i.size else NONE),
        )

    @classmethod
    def of_mentions(cls, mentions: list[Mention | None]) -> Entities:
        def ids(field: str) -> np.ndarray:
            return np.array([NONE if m is None else getattr(m, field) for m in mentions])

        return cls(ids("entity"), ids("kind"), ids("colour"), ids("size"))

    def select(self, index) -> Entities:
        """The same arrays indexed or reshaped: ``np.s_[:, None]`` makes (n,) a column."""
        return Entities(self.entity[index], self.kind[index], self.colour[index], self.size[index])


def role_parts(named: Entities, shown: Entities) -> dict[str, np.ndarray]:
    """Which parts of a role's phrase fit the video's entity in that role (arrays broadcast).

    ``entity``: the named noun is the entity or its kind ("an animal"); ``colour``, ``size``:
    not named, or named and the entity's; ``unnamed``: attributes the entity has that the
    phrase leaves out; ``no_phrase``: the caption names no entity in this role (intransitive).
    """
    return {
        "entity": np.where(named.entity == NONE, named.kind == shown.kind,
                           named.entity == shown.entity) & (shown.entity != NONE),
        "colour": (named.colour == NONE) | (named.colour == shown.colour),
        "size": (named.size == NONE) | (named.size == shown.size),
        "unnamed": ((named.colour == NONE) & (shown.colour != NONE)).astype(np.int64)
        + ((named.size == NONE) & (shown.size != NONE)),
        "no_phrase": named.kind == NONE,
    }


def role_weights(named: Entities, shown: Entities) -> np.ndarray:
    """How well each caption's phrase for one role fits each video's entity in that role.

    named: (M,) arrays from the captions, shown: (N,) arrays from the videos -> (M, N) weights:
    0 when the phrase does not fit, else (1 - p_attr) ** (attributes left unnamed) with p_attr
    = 1/2 (the generator's ``attribute_mention_probability``, checked by the caller), a power
    of two and so exact in floating point: equal likelihoods tie exactly.
    """
    parts = role_parts(named.select(np.s_[:, None]), shown.select(np.s_[None, :]))
    weights = np.where(parts["entity"] & parts["colour"] & parts["size"],
                       0.5 ** parts["unnamed"], 0.0)
    return np.where(parts["no_phrase"], (shown.entity == NONE)[None, :].astype(float), weights)


@dataclass
class SplitContent:
    """What the captions of a split name and what its videos show, read once."""

    video_ids: list[str]
    caption_to_video: np.ndarray  # (M,) index into video_ids
    twin_of: np.ndarray  # (N,) index of each video's twin, NONE without one
    said_action: np.ndarray  # (M,)
    said_scene: np.ndarray  # (M,) NONE when not named
    agent: Entities  # (M,) arrays
    patient: Entities  # (M,)
    action: np.ndarray  # (N,)
    scene: np.ndarray  # (N,)
    subject: Entities  # (N,)
    object: Entities  # (N,)

    @classmethod
    def of_split(cls, benchmark: SynthBenchmark, split: str) -> SplitContent:
        # one event per video: the observers read one verb per caption (two-event videos of
        # benchmark version 2 are left out)
        videos: list[VideoSpec] = [
            benchmark.videos[v] for v in benchmark.splits[split]
            if benchmark.videos[v].extra_action is None
        ]  # fmt: skip
        index = {v.video_id: i for i, v in enumerate(videos)}
        captions = [(i, c) for i, v in enumerate(videos) for c in benchmark.captions[v.video_id]]
        read = [read_caption(c) for _, c in captions]
        return cls(
            video_ids=[v.video_id for v in videos],
            caption_to_video=np.array([i for i, _ in captions]),
            twin_of=np.array([index.get(v.twin or "", NONE) for v in videos]),
            said_action=np.array([r[0] for r in read]),
            said_scene=np.array([r[3] for r in read]),
            agent=Entities.of_mentions([r[1] for r in read]),
            patient=Entities.of_mentions([r[2] for r in read]),
            action=np.array([ACTION_IDS[v.action] for v in videos]),
            scene=np.array([SCENE_IDS[v.scene] for v in videos]),
            subject=Entities.of_instances([v.subject for v in videos]),
            object=Entities.of_instances([v.object for v in videos]),
        )


def likelihoods(content: SplitContent) -> dict[str, np.ndarray]:
    """Each observer's caption-video likelihoods (up to a per-caption factor).  -> (M, N) each"""
    c = content
    shared = c.said_action[:, None] == c.action[None, :]  # (M, N)
    shared &= (c.said_scene[:, None] == NONE) | (c.said_scene[:, None] == c.scene[None, :])
    ideal = shared * role_weights(c.agent, c.subject) * role_weights(c.patient, c.object)
    swapped = shared * role_weights(c.agent, c.object) * role_weights(c.patient, c.subject)
    swappable = (c.object.entity != NONE)[None, :]  # an intransitive video has one role only
    return {"ideal": ideal, "role_blind": np.where(swappable, (ideal + swapped) / 2, ideal)}


def expected_recalls(likelihood: np.ndarray, caption_to_video: np.ndarray) -> dict[str, float]:
    """Expected R@k of both directions (percent) and rsum under random tie-breaking.

    likelihood (M, N), caption_to_video (M,). Text->video ranks a caption's videos by
    likelihood; with ``above`` videos strictly better than the true one and ``tied`` equal to
    it (itself included) the true video's rank is above + U{1..tied}, so
    P(rank <= k) = clip(k - above, 0, tied) / tied. Video->text ranks all captions by the
    posterior P(video | caption); if ``above`` captions beat the video's best caption and the
    tie holds ``tied`` captions of which ``own`` are the video's, the first own caption of the
    tie in a random order falls within the first j with probability
    1 - C(tied - own, j) / C(tied, j).
    """
    rows = np.arange(len(caption_to_video))
    truth = likelihood[rows, caption_to_video][:, None]  # (M, 1)
    above = (likelihood > truth).sum(1)  # (M,)
    tied = (likelihood == truth).sum(1)
    results: dict[str, float] = {}
    for k in RECALL_AT:
        results[f"t2v_r{k}"] = 100.0 * float(np.mean(np.clip(k - above, 0, tied) / tied))

    posterior = likelihood / likelihood.sum(1, keepdims=True)  # (M, N) P(video | caption)
    own = caption_to_video[:, None] == np.arange(likelihood.shape[1])[None, :]  # (M, N)
    best = np.where(own, posterior, -1.0).max(0)  # (N,) each video's best own caption
    queries = own.any(0)
    above = (posterior > best).sum(0)  # (N,)
    tie = posterior == best  # (M, N)
    tied, own_tied = tie.sum(0), (tie & own).sum(0)
    for k in RECALL_AT:
        recall = np.array([
            _first_within(k - a, t, o) for a, t, o in zip(above, tied, own_tied, strict=True)
        ])
        results[f"v2t_r{k}"] = 100.0 * float(np.mean(recall[queries]))
    results["rsum"] = sum(results[f"{d}_r{k}"] for d in ("t2v", "v2t") for k in RECALL_AT)
    return results


def _first_within(slots: int, tied: int, own: int) -> float:
    """P(one of ``own`` marked items among the first ``slots`` of ``tied`` in random order)."""
    if slots <= 0:
        return 0.0
    if slots > tied - own:
        return 1.0
    miss = 1.0  # C(tied - own, slots) / C(tied, slots) as a product
    for i in range(slots):
        miss *= (tied - own - i) / (tied - i)
    return 1.0 - miss


def role_swap_expectation(likelihood: np.ndarray, caption_to_video: np.ndarray,
                          twin_of: np.ndarray) -> float:
    """Share of twin-video captions whose own video is ranked above the twin (ties: 1/2)."""
    twin = twin_of[caption_to_video]  # (M,)
    rows = np.flatnonzero(twin != NONE)
    own_score = likelihood[rows, caption_to_video[rows]]
    twin_score = likelihood[rows, twin[rows]]
    return float(np.mean((own_score > twin_score) + 0.5 * (own_score == twin_score)))


def fit_counts(likelihood: np.ndarray) -> dict[str, float]:
    """How many videos each caption fits: mean, and the share fitting exactly one."""
    fits = (likelihood > 0).sum(1)  # (M,)
    return {"videos_fitting_a_caption": float(fits.mean()),
            "captions_fitting_one_video": float(np.mean(fits == 1))}


def study(content: SplitContent) -> dict[str, dict[str, float]]:
    scored = likelihoods(content)
    return {
        observer: {
            **expected_recalls(likelihood, content.caption_to_video),
            "role_swap_acc": role_swap_expectation(
                likelihood, content.caption_to_video, content.twin_of
            ),
            **fit_counts(likelihood),
            "captions": len(content.caption_to_video),
            "videos": len(content.video_ids),
        }
        for observer, likelihood in scored.items()
    }


PARTS = ("action", "scene", "roles", "subject entity", "subject colour", "subject size",
         "object entity", "object colour", "object size")


def error_breakdown(content: SplitContent, top: np.ndarray) -> dict[str, float]:
    """A model's text->video top-1 errors against what the captions name.

    top (M,): index of each caption's top-1 video. Returns percentages of all captions: the
    model's R@1; ``wrong video fits`` (the caption fits the wrong video too: no reader of the
    caption could rule it out); ``wrong video contradicts`` (it does not); and for each part
    the captions whose wrong video contradicts it (one error may contradict several).
    ``roles``: the wrong video fits with subject and object exchanged and not as named (a
    twin, or the same pair the other way round); its entity parts are then not counted.
    """
    c = content
    wrong = np.flatnonzero(top != c.caption_to_video)  # (e,)
    shown = top[wrong]
    agent, patient = c.agent.select(wrong), c.patient.select(wrong)
    subject, obj = c.subject.select(shown), c.object.select(shown)

    def entity_parts(named: Entities, role: Entities) -> dict[str, np.ndarray]:
        parts = role_parts(named, role)  # (e,) each
        no_phrase = parts["no_phrase"]
        return {
            "entity": np.where(no_phrase, role.entity == NONE, parts["entity"]),
            "colour": no_phrase | parts["colour"],
            "size": no_phrase | parts["size"],
        }

    def all_fit(*parts: dict[str, np.ndarray]) -> np.ndarray:
        return np.logical_and.reduce([ok for p in parts for ok in p.values()])

    direct = {f"subject {k}": v for k, v in entity_parts(agent, subject).items()}
    direct |= {f"object {k}": v for k, v in entity_parts(patient, obj).items()}
    roles_fit = all_fit(entity_parts(agent, obj), entity_parts(patient, subject))
    direct_fit = all_fit(direct)
    fits = {
        "action": c.said_action[wrong] == c.action[shown],
        "scene": (c.said_scene[wrong] == NONE) | (c.said_scene[wrong] == c.scene[shown]),
        "roles": direct_fit | ~roles_fit,
        **{part: ok | (roles_fit & ~direct_fit) for part, ok in direct.items()},
    }
    whole = np.logical_and.reduce([fits[part] for part in PARTS])
    share = 100.0 / len(c.caption_to_video)
    return {
        "t2v_r1": 100.0 - share * len(wrong),
        "wrong video fits": share * int(whole.sum()),
        "wrong video contradicts": share * int((~whole).sum()),
        **{part: share * int((~fits[part]).sum()) for part in PARTS},
    }


def caption_keys(video_of_each_caption: Iterable[str]) -> list[tuple[str, int]]:
    """(video id, k) of each caption in a list: it is the k-th caption of its video there."""
    seen: Counter[str] = Counter()
    keys = []
    for video in video_of_each_caption:
        keys.append((video, seen[video]))
        seen[video] += 1
    return keys


def checkpoint_errors(checkpoint: Path, content: SplitContent, split: str, data: Path,
                      prepared: Path | None = None) -> dict:
    """:func:`error_breakdown` of a trained checkpoint's fused score on ``split`` (prepared
    data: ``prepared``, else the checkpoint's)."""
    import torch

    from mcsan.evaluate import encode_split, load_checkpoint_with_data

    model, config, dataset, prepared = load_checkpoint_with_data(
        checkpoint, data_root=data, prepared_dir=prepared, progress=False, splits=[split]
    )
    with torch.no_grad():
        encoded = encode_split(model, dataset[split], prepared, config, torch.device("cpu"),
                               progress=False)
        top = model.fused_similarity(encoded.text_emb, encoded.video_emb).argmax(1).numpy()
    # the dataset's caption and video order -> the benchmark's (the k-th caption of a video)
    rows = {key: row for row, key in enumerate(
        caption_keys(content.video_ids[v] for v in content.caption_to_video))}
    order = [rows[key] for key in caption_keys(c.video_id for c in dataset[split].captions)]
    column = {video: i for i, video in enumerate(content.video_ids)}
    top_by_row = np.empty_like(content.caption_to_video)
    top_by_row[order] = [column[encoded.video_ids[i]] for i in top]
    return {"checkpoint": str(checkpoint), "split": split,
            **error_breakdown(content, top_by_row)}


def load_benchmark(preset: str, settings: list[str], data: Path | None) -> SynthBenchmark:
    """The benchmark from a preset, or regenerated from a dataset's ``synth_meta.json``."""
    if data is None:
        config = synth_config(preset, settings, seed=0)  # the ablation's data seed
    else:
        config = SynthConfig.from_dict(read_synth_meta(data)["config"])
    if config.attribute_mention_probability != 0.5:
        raise ValueError(
            f"attribute_mention_probability is {config.attribute_mention_probability}; this "
            "script weighs unnamed attributes by 1/2 (exact ties): use a benchmark made with 0.5"
        )
    benchmark = generate(config)
    if data is not None:  # the regenerated captions must be the dataset's, split by split
        dataset = read_dataset(data, progress=False)
        for split in SPLITS:
            theirs = {v: [c.text for c in caps]
                      for v, caps in dataset[split].captions_by_video().items()}
            ours = {v: [c.text for c in benchmark.captions[v]] for v in benchmark.splits[split]}
            if theirs != ours:
                raise ValueError(
                    f"{data}: the {split} captions differ from the benchmark regenerated from its "
                    "synth_meta.json; was the dataset edited, or made by another MCSAN version?"
                )
    return benchmark


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    head = ["split", "observer", "t2v R@1", "t2v R@5", "t2v R@10", "v2t R@1", "v2t R@5",
            "v2t R@10", "rsum", "role-swap acc", "videos a caption fits"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for split, observers in results.items():
        for observer, r in observers.items():
            cells = [split, observer, *[f"{r[f'{d}_r{k}']:.1f}" for d in ("t2v", "v2t")
                                        for k in RECALL_AT],
                     f"{r['rsum']:.1f}", f"{r['role_swap_acc']:.3f}",
                     f"{r['videos_fitting_a_caption']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors_markdown(rows: list[dict]) -> str:
    keys = ["t2v_r1", "wrong video fits", "wrong video contradicts", *PARTS]
    head = ["checkpoint", "split", "t2v R@1", *keys[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        name = Path(row["checkpoint"]).parent.name  # the run, not "best"
        lines.append("| " + " | ".join([name, row["split"], *[f"{row[k]:.1f}" for k in keys]])
                     + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="synthetic preset (default: default)")
    parser.add_argument("--synth", dest="synth_settings", nargs="*", default=[],
                        metavar="KEY=VALUE", help="synthetic settings changed from the preset")
    parser.add_argument("--data", type=Path,
                        help="a synthetic dataset folder: its config instead of --preset/--synth")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=SPLITS)
    parser.add_argument("--checkpoints", type=Path, nargs="+", default=[],
                        help="trained checkpoints on --data: where their t2v top-1 errors are")
    parser.add_argument("--prepared", type=Path,
                        help="prepared data of --data (default: the checkpoints' own)")
    parser.add_argument("--error-split", default="test", choices=SPLITS)
    parser.add_argument("--out", type=Path, help="JSON path")
    args = parser.parse_args(argv)
    if args.checkpoints and args.data is None:
        parser.error("--checkpoints needs --data, the synthetic dataset they were trained on")
    started = time.perf_counter()
    benchmark = load_benchmark(args.preset, args.synth_settings, args.data)
    results = {split: study(SplitContent.of_split(benchmark, split)) for split in args.splits}
    table = markdown(results)
    print(table)
    error_rows, errors_table = [], None
    if args.checkpoints:
        content = SplitContent.of_split(benchmark, args.error_split)
        error_rows = [checkpoint_errors(ck, content, args.error_split, args.data, args.prepared)
                      for ck in args.checkpoints]
        errors_table = errors_markdown(error_rows)
        print(errors_table)
    name = "data" if args.data else args.preset
    out = args.out or Path(__file__).parent / "results" / f"oracle_ceiling-{name}.json"
    report = {
        "command": " ".join(["python benchmarks/oracle_ceiling.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "synth_config": benchmark.config.to_dict(),
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "table": table,
        **({"errors": error_rows, "errors_table": errors_table} if error_rows else {}),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
