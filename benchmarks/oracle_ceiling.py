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

    .venv/bin/python benchmarks/oracle_ceiling.py --preset default
    .venv/bin/python benchmarks/oracle_ceiling.py --data runs/ablation/data

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
    """One role (subject or object) over a list of videos or captions, as id arrays.  (n,) each"""

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


def role_weights(named: Entities, shown: Entities) -> np.ndarray:
    """How well each caption's phrase for one role fits each video's entity in that role.

    named: (M,) arrays from the captions, shown: (N,) arrays from the videos -> (M, N) weights:
    0 when the phrase does not fit, else (1 - p_attr) ** (attributes left unnamed) with p_attr
    = 1/2 (the generator's ``attribute_mention_probability``, checked by the caller), a power
    of two and so exact in floating point: equal likelihoods tie exactly.
    """
    n, s = (lambda a: a[:, None]), (lambda a: a[None, :])
    no_phrase = n(named.kind) == NONE  # an intransitive caption has no patient
    fits = np.where(n(named.entity) == NONE, n(named.kind) == s(shown.kind),
                    n(named.entity) == s(shown.entity))
    fits &= s(shown.entity) != NONE
    for attribute in ("colour", "size"):
        said, has = n(getattr(named, attribute)), s(getattr(shown, attribute))
        fits &= (said == NONE) | (said == has)
    unnamed = sum(
        ((n(getattr(named, a)) == NONE) & (s(getattr(shown, a)) != NONE)).astype(np.int64)
        for a in ("colour", "size")
    )  # (M, N)
    weights = np.where(fits, 0.5 ** unnamed, 0.0)
    return np.where(no_phrase, (s(shown.entity) == NONE).astype(np.float64), weights)


def likelihoods(benchmark: SynthBenchmark, split: str) -> dict[str, np.ndarray | list]:
    """Each observer's caption-video likelihoods (up to a per-caption factor) on one split.

    Returns observer -> (M, N) float64, plus ``caption_to_video`` (M,) and ``twin_of`` (N,).
    """
    videos: list[VideoSpec] = [benchmark.videos[v] for v in benchmark.splits[split]]
    index = {v.video_id: i for i, v in enumerate(videos)}
    captions = [(i, c) for i, v in enumerate(videos) for c in benchmark.captions[v.video_id]]
    read = [read_caption(c) for _, c in captions]
    action = np.array([r[0] for r in read])[:, None] == np.array(
        [ACTION_IDS[v.action] for v in videos])[None, :]  # (M, N)
    said_scene = np.array([r[3] for r in read])[:, None]
    scene = (said_scene == NONE) | (said_scene == np.array([SCENE_IDS[v.scene] for v in videos]))
    agent = Entities.of_mentions([r[1] for r in read])
    patient = Entities.of_mentions([r[2] for r in read])
    subject = Entities.of_instances([v.subject for v in videos])
    obj = Entities.of_instances([v.object for v in videos])
    shared = action & scene  # (M, N)
    ideal = shared * role_weights(agent, subject) * role_weights(patient, obj)
    swapped = shared * role_weights(agent, obj) * role_weights(patient, subject)
    swappable = (obj.entity != NONE)[None, :]  # an intransitive video has one role only
    return {
        "ideal": ideal,
        "role_blind": np.where(swappable, (ideal + swapped) / 2, ideal),
        "caption_to_video": np.array([i for i, _ in captions]),
        "twin_of": np.array([index.get(v.twin or "", NONE) for v in videos]),
    }


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


def study(benchmark: SynthBenchmark, split: str) -> dict[str, dict[str, float]]:
    scored = likelihoods(benchmark, split)
    caption_to_video, twin_of = scored["caption_to_video"], scored["twin_of"]
    return {
        observer: {
            **expected_recalls(scored[observer], caption_to_video),
            "role_swap_acc": role_swap_expectation(scored[observer], caption_to_video, twin_of),
            **fit_counts(scored[observer]),
            "captions": len(caption_to_video),
            "videos": len(twin_of),
        }
        for observer in OBSERVERS
    }


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="synthetic preset (default: default)")
    parser.add_argument("--synth", dest="synth_settings", nargs="*", default=[],
                        metavar="KEY=VALUE", help="synthetic settings changed from the preset")
    parser.add_argument("--data", type=Path,
                        help="a synthetic dataset folder: its config instead of --preset/--synth")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=SPLITS)
    parser.add_argument("--out", type=Path, help="JSON path")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    benchmark = load_benchmark(args.preset, args.synth_settings, args.data)
    results = {split: study(benchmark, split) for split in args.splits}
    table = markdown(results)
    print(table)
    name = "data" if args.data else args.preset
    out = args.out or Path(__file__).parent / "results" / f"oracle_ceiling-{name}.json"
    report = {
        "command": " ".join(["python benchmarks/oracle_ceiling.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "synth_config": benchmark.config.to_dict(),
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "table": table,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
