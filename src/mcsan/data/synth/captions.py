"""The captions of the synthetic benchmark: several paraphrases per video, written from its
:class:`~mcsan.data.synth.world.VideoSpec`.

A small grammar with active, passive, progressive, existential, fronted-prepositional and
fragment forms; synonyms that map to one concept (dog/puppy, man/guy, chases/runs after),
vague names ("an animal", "a person"), and optional attributes ("a small brown dog", "a man
in a red shirt") and scene phrases.

A video of two events is captioned with an order connective in either direction ("a dog
chases a cat and then jumps", "a dog jumps after it chases a cat", "before jumping, a dog
chases a cat"), with pronouns where one is unambiguous and the second subject left out
("and then jumps") elsewhere.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcsan.data.synth.config import SynthConfig
from mcsan.data.synth.lexicon import (
    COLOURS,
    ENTITIES,
    GARMENTS,
    HYPERNYMS,
    INTRANSITIVE_ACTIONS,
    PRONOUNS,
    SCENES,
    SIZES,
    TRANSITIVE_ACTIONS,
)
from mcsan.data.synth.world import EntityInstance, VideoSpec

if TYPE_CHECKING:
    from mcsan.data.caption_parse import CaptionParse

# Caption templates and their weights; {a} agent phrase, {p} patient phrase, {v3} / {ving} /
# {vpp} verb forms, {pp} an optional " <scene phrase>" suffix, {scene} a fronted scene phrase.
TRANSITIVE_TEMPLATES: tuple[tuple[str, str, float], ...] = (
    ("active", "{a} {v3} {p}{pp}", 0.2),
    ("progressive", "{a} is {ving} {p}{pp}", 0.3),
    ("passive", "{p} is {vpp} by {a}{pp}", 0.15),
    ("passive_progressive", "{p} is being {vpp} by {a}{pp}", 0.05),
    ("fronted", "{scene}, {a} is {ving} {p}", 0.10),
    ("existential", "there is {a} {ving} {p}{pp}", 0.10),
    ("fragment", "{a} {ving} {p}{pp}", 0.10),
)
INTRANSITIVE_TEMPLATES: tuple[tuple[str, str, float], ...] = (
    ("active", "{a} {v3}{pp}", 0.2),
    ("progressive", "{a} is {ving}{pp}", 0.5),
    ("fronted", "{scene}, {a} is {ving}", 0.1),
    ("existential", "there is {a} {ving}{pp}", 0.1),
    ("fragment", "{a} {ving}{pp}", 0.1),
)

# Two events of one subject in a row: {a} the subject, {s} the subject again (a pronoun when
# one is unambiguous, else "the <noun>"), {v1} / {ing1} the first event's verb phrase ("chases
# a cat" / "chasing a cat"), {v2} / {ing2} the second's. Every order connective appears, the
# reversed ones ("Y after X", "before Y, X") included.
SEQUENCE_TEMPLATES: tuple[tuple[str, str, float], ...] = (
    ("and_then", "{a} {v1} and then {v2}{pp}", 0.15),
    ("and_then_pronoun", "{a} {v1} and then {s} {v2}", 0.15),
    ("first_then", "first {a} {v1} then {s} {v2}", 0.1),
    ("later", "{a} {v1} and later {v2}", 0.05),
    ("after", "{a} {v2} after {s} {v1}", 0.1),
    ("after_gerund", "{a} {v2} after {ing1}", 0.1),
    ("after_fronted", "after {a} {v1}, {s} {v2}", 0.1),
    ("after_fronted_gerund", "after {ing1} {a} {v2}", 0.05),
    ("before", "{a} {v1} before {s} {v2}", 0.1),
    ("before_fronted_gerund", "before {ing2}, {a} {v1}", 0.1),
)

DEFINITE_ARTICLE_PROBABILITY = 0.1  # "the dog" instead of "a dog"
DISTINCT_CAPTION_ATTEMPTS = 20  # redraws before a video may repeat a caption text


@dataclass(frozen=True)
class SynthCaption:
    text: str
    # name from TRANSITIVE_TEMPLATES / INTRANSITIVE_TEMPLATES, or "sequence_" and a name
    # from SEQUENCE_TEMPLATES
    template: str
    agent: str  # the subject's noun phrase as written in the text
    agent_span: tuple[int, int]  # character span of ``agent`` in ``text``
    patient: str | None  # the object's noun phrase, None for an intransitive action
    patient_span: tuple[int, int] | None


_ENTITY_SYNONYMS = {name: (kind, synonyms) for name, kind, synonyms in ENTITIES}
_VERBS = dict(TRANSITIVE_ACTIONS + INTRANSITIVE_ACTIONS)
_SCENE_PHRASES = dict(SCENES)
_COLOUR_WORDS = dict(COLOURS)
_SIZE_WORDS = dict(SIZES)
# Templates pre-parsed into (literal, field) pieces, with cumulative weights for drawing one.
_TemplatePieces = list[tuple[str, str | None]]


def _prepare_templates(
    templates: tuple[tuple[str, str, float], ...], prefix: str = ""
) -> tuple[list[tuple[str, str, _TemplatePieces]], list[float]]:
    prepared = [
        (prefix + name, template, [(lit, f) for lit, f, _, _ in string.Formatter().parse(template)])
        for name, template, _ in templates
    ]
    return prepared, list(itertools.accumulate(weight for _, _, weight in templates))


_TRANSITIVE = _prepare_templates(TRANSITIVE_TEMPLATES)
_INTRANSITIVE = _prepare_templates(INTRANSITIVE_TEMPLATES)
_SEQUENCE = _prepare_templates(SEQUENCE_TEMPLATES, prefix="sequence_")


def write_captions(spec: VideoSpec, config: SynthConfig) -> list[SynthCaption]:
    """``captions_per_video`` paraphrases, distinct where the grammar allows it."""
    rng = random.Random(f"mcsan-synth/{config.seed}/captions/{spec.index}")
    # What each person wears stays the same across the paraphrases of one video.
    garments = (rng.choice(GARMENTS), rng.choice(GARMENTS))
    captions: list[SynthCaption] = []
    seen: set[str] = set()
    for _ in range(config.captions_per_video):
        caption = _write_caption(spec, config, garments, rng)
        for _ in range(DISTINCT_CAPTION_ATTEMPTS):
            if caption.text not in seen:
                break
            caption = _write_caption(spec, config, garments, rng)
        seen.add(caption.text)
        captions.append(caption)
    return captions


def _write_caption(
    spec: VideoSpec, config: SynthConfig, garments: tuple[str, str], rng: random.Random
) -> SynthCaption:
    """One caption: a template drawn by its weight, filled with words for the video's event
    (or its two events in a row)."""
    if spec.extra_action is not None:
        (templates, cumulative_weights), words = _SEQUENCE, _sequence_words
    elif spec.object is not None:
        (templates, cumulative_weights), words = _TRANSITIVE, _event_words
    else:
        (templates, cumulative_weights), words = _INTRANSITIVE, _event_words
    name, template, pieces = rng.choices(templates, cum_weights=cumulative_weights)[0]
    values = words(spec, config, garments, rng)
    text, spans = _fill(template, pieces, values)
    patient, agent_span, patient_span = values["p"], spans["a"], spans.get("p")
    if patient is not None and patient_span is None:  # inside a verb phrase: "chases a cat"
        start = next(i for i in _occurrences(text, patient)
                     if not agent_span[0] <= i < agent_span[1])  # fmt: skip
        patient_span = (start, start + len(patient))
    return SynthCaption(
        text=text,
        template=name,
        agent=values["a"],
        agent_span=agent_span,
        patient=patient,
        patient_span=patient_span,
    )


def _event_words(
    spec: VideoSpec, config: SynthConfig, garments: tuple[str, str], rng: random.Random
) -> dict[str, str | None]:
    """The fields of :data:`TRANSITIVE_TEMPLATES` / :data:`INTRANSITIVE_TEMPLATES` for the
    event of ``spec`` ("p" is None for an intransitive action)."""
    v3, ving, vpp = rng.choice(_VERBS[spec.action])
    scene = rng.choice(_SCENE_PHRASES[spec.scene])
    mention_scene = rng.random() < config.scene_mention_probability
    agent = _noun_phrase(spec.subject, garments[0], config, rng)
    patient = None if spec.object is None else _noun_phrase(spec.object, garments[1], config, rng)
    return {
        "a": agent,
        "p": patient,
        "v3": v3,
        "ving": ving,
        "vpp": vpp,
        "pp": f" {scene}" if mention_scene else "",
        "scene": scene,
    }


def _sequence_words(
    spec: VideoSpec, config: SynthConfig, garments: tuple[str, str], rng: random.Random
) -> dict[str, str | None]:
    """The fields of :data:`SEQUENCE_TEMPLATES` for the two events of ``spec``, the main
    event's verb phrase with its object ("chases a cat"), so that "a dog chases a cat and then
    jumps" and "a dog jumps after chasing a cat" come out; "p" (the object's noun phrase) is
    no template field, only what :func:`_write_caption` looks for in the text."""
    assert spec.object is not None and spec.extra_action is not None
    agent = _noun_phrase(spec.subject, garments[0], config, rng)
    patient = _noun_phrase(spec.object, garments[1], config, rng)
    v3, ving, _ = rng.choice(_VERBS[spec.action])
    extra_v3, extra_ving, _ = rng.choice(_VERBS[spec.extra_action])
    main = (f"{v3} {patient}", f"{ving} {patient}")
    extra = (extra_v3, extra_ving)
    first, second = (extra, main) if spec.extra_first else (main, extra)
    pronoun = PRONOUNS.get(spec.subject.entity)
    if pronoun is None or PRONOUNS.get(spec.object.entity) == pronoun:
        pronoun = f"the {rng.choice(_ENTITY_SYNONYMS[spec.subject.entity][1])}"
    return {
        "a": agent,
        "p": patient,
        "s": pronoun,
        "v1": first[0],
        "ing1": first[1],
        "v2": second[0],
        "ing2": second[1],
        "pp": f" {rng.choice(_SCENE_PHRASES[spec.scene])}"
        if rng.random() < config.scene_mention_probability
        else "",
    }


def _occurrences(text: str, part: str) -> list[int]:
    found, start = [], text.find(part)
    while start >= 0:
        found.append(start)
        start = text.find(part, start + 1)
    return found


def _fill(
    template: str, pieces: _TemplatePieces, values: Mapping[str, str | None]
) -> tuple[str, dict[str, tuple[int, int]]]:
    """``template.format(**values)`` from its parsed ``pieces``, and the character span each
    field took in the result."""
    parts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    length = 0
    for literal, name in pieces:
        parts.append(literal)
        length += len(literal)
        if name is not None:
            value = values[name]
            if value is None:
                raise ValueError(f"caption template {template!r} needs {name!r}, which is unset")
            spans[name] = (length, length + len(value))
            parts.append(value)
            length += len(value)
    return "".join(parts), spans


def _noun_phrase(
    instance: EntityInstance, garment: str, config: SynthConfig, rng: random.Random
) -> str:
    """``a small brown puppy`` / ``the guy in a red shirt``: synonyms and optional attributes."""
    kind, synonyms = _ENTITY_SYNONYMS[instance.entity]
    vague = rng.random() < config.hypernym_probability
    noun = rng.choice(HYPERNYMS[kind] if vague else synonyms)
    p = config.attribute_mention_probability
    size = rng.choice(_SIZE_WORDS[instance.size]) if instance.size and rng.random() < p else None
    colour = (
        rng.choice(_COLOUR_WORDS[instance.colour]) if instance.colour and rng.random() < p else None
    )
    words = [w for w in (size, colour if kind != "person" else None, noun) if w]
    if colour and kind == "person":
        words.append(f"in {_indefinite(colour)} {colour} {garment}")
    phrase = " ".join(words)
    if rng.random() < DEFINITE_ARTICLE_PROBABILITY:
        return f"the {phrase}"
    return f"{_indefinite(phrase)} {phrase}"


def _indefinite(next_word: str) -> str:
    """The indefinite article before a word (the lexicon has no silent-h or "yoo"-sound words)."""
    return "an" if next_word[0] in "aeiou" else "a"


def event_roles(caption: SynthCaption, parse: CaptionParse) -> str:
    """How a parse of a transitive caption reads its event: "right" when a relationship triple
    runs from the agent phrase to the patient phrase and none runs back, "reversed" when only
    one runs back, "both", or "none" (no triple joins the two phrases). A triple runs back also
    when a prepositional phrase of the agent hangs on the patient ("a man is trailed by a lady
    [in a hat]" -> man|in|hat): that names the wrong wearer."""
    starts, end = [], 0  # character offset of each parse token in the caption
    for token in parse.tokens:
        starts.append(caption.text.lower().index(token, end))
        end = starts[-1] + len(token)

    def inside(tokens: Sequence[int], span: tuple[int, int] | None) -> bool:
        return span is not None and any(span[0] <= starts[i] < span[1] for i in tokens)

    forward = backward = False
    for triple in parse.relationship:
        subject, _, obj = triple.roles
        forward |= inside(subject, caption.agent_span) and inside(obj, caption.patient_span)
        backward |= inside(subject, caption.patient_span) and inside(obj, caption.agent_span)
    return {(True, False): "right", (False, True): "reversed", (True, True): "both"}.get(
        (forward, backward), "none"
    )
