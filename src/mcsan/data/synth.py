"""The synthetic compositional benchmark: the data the default MCSAN job trains and tests on.

Real MSR-VTT or VATEX features cannot ship with the package, so MCSAN generates its own
video-text data with the structure the four levels are meant to capture, writes it in the HGR
layout and reads it back through the same reader as real data (no side door).

Each video shows one event: a *subject* entity that does an *action* to an *object* entity
("a dog chases a cat"), or, for a few videos, an intransitive action ("a man is dancing"), in
a *scene* ("on the beach"). Entities carry optional *attributes* (a colour, a size).

Video side (``(frames, feature_dim)`` float32 per video, rendered on demand from its spec):

- every concept (entity, colour, size, scene, action) has a fixed random unit vector in a
  ``latent_dim`` subspace (features have a low intrinsic dimension, as real embeddings do);
  entities of one kind (person, animal) share part of their vector;
- an entity instance looks like its entity vector plus its attribute vectors plus a little
  per-video variation;
- roles are bound to time: the subject dominates the first part of the clip and the object
  the second part, with a crossover point that varies per video. The two weight profiles
  mirror each other, so the mean over frames weighs subject and object equally: the role
  information is in the frame order only;
- an action has a weak static vector (visible in a frame average) and a stronger temporal
  trajectory (sines over the clip, which average to zero over the frames);
- the scene is a constant background; Gaussian noise is added to every frame, and some frames
  are distractors showing an unrelated entity.

Text side: several paraphrased captions per video from a small grammar with active, passive,
progressive, existential, fronted-prepositional and fragment forms, synonyms that map to one
concept (dog/puppy, man/guy, chases/runs after), vague names ("an animal", "a person"), and
optional attributes ("a small brown dog", "a man in a red shirt") and scene phrases.

Hardness for a global model: entities follow a Zipf law, so a few entities appear in many
videos, and a fraction of videos come as *role-swapped twins*: two videos in the same split
with subject and object exchanged (same action, scene and attributes). A mean-pooled video
and a bag of words cannot tell twins apart; a model that reads frame order and parse roles can
(``tests/test_synth.py`` checks both with linear probes).

With ``sequence_fraction``, some videos show two events of one subject in a row (its
transitive event and an intransitive one, each in its half of the clip), captioned with an
order connective in either direction ("a dog chases a cat and then jumps", "a dog jumps after
it chases a cat", "before jumping, a dog chases a cat"), with pronouns where one is
unambiguous and the second subject left out ("and then jumps") elsewhere. With
``order_swap_fraction`` some of them come as *order-swapped twins*: the same two events the
other way round. The frame average of twins is the same: only the order of the frames and of
the words tells them apart.

The ground truth (specs, twins and their kind, caption templates) is saved to
``synth_meta.json`` beside the data, for analysis only.
"""

from __future__ import annotations

import itertools
import json
import random
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mcsan.data.caption_parse import CaptionParse

SPLITS: tuple[str, ...] = ("train", "val", "test")
FEATURE_TYPE = "synth"  # feature type name the benchmark writes
META_FILE = "synth_meta.json"

# ----- lexicon ----------------------------------------------------------------------------------
# Entities in order of typical caption frequency (the Zipf law follows this order).
# (concept, kind, synonyms); "person" entities wear their colour ("a man in a red shirt").
ENTITIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("man", "person", ("man", "guy", "gentleman")),
    ("woman", "person", ("woman", "lady")),
    ("dog", "animal", ("dog", "puppy")),
    ("girl", "person", ("girl",)),
    ("boy", "person", ("boy",)),
    ("cat", "animal", ("cat", "kitten")),
    ("child", "person", ("child", "kid")),
    ("horse", "animal", ("horse", "pony")),
    ("baby", "person", ("baby", "infant")),
    ("player", "person", ("player", "athlete")),
    ("chef", "person", ("chef", "cook")),
    ("bird", "animal", ("bird",)),
    ("police officer", "person", ("police officer", "policeman", "cop")),
    ("monkey", "animal", ("monkey",)),
    ("doctor", "person", ("doctor", "physician")),
    ("elephant", "animal", ("elephant",)),
    ("dancer", "person", ("dancer",)),
    ("rabbit", "animal", ("rabbit", "bunny")),
    ("teacher", "person", ("teacher",)),
    ("bear", "animal", ("bear",)),
    ("student", "person", ("student", "pupil")),
    ("lion", "animal", ("lion",)),
    ("robot", "thing", ("robot", "android")),
    ("duck", "animal", ("duck",)),
    ("soldier", "person", ("soldier",)),
    ("pig", "animal", ("pig", "piglet")),
    ("farmer", "person", ("farmer",)),
    ("cow", "animal", ("cow",)),
    ("nurse", "person", ("nurse",)),
    ("tiger", "animal", ("tiger",)),
    ("clown", "person", ("clown",)),
    ("sheep", "animal", ("sheep",)),
    ("singer", "person", ("singer", "vocalist")),
    ("goat", "animal", ("goat",)),
    ("firefighter", "person", ("firefighter", "fireman")),
    ("fox", "animal", ("fox",)),
    ("pilot", "person", ("pilot",)),
    ("chicken", "animal", ("chicken", "hen")),
    ("cowboy", "person", ("cowboy",)),
    ("mouse", "animal", ("mouse",)),
    ("knight", "person", ("knight",)),
    ("wolf", "animal", ("wolf",)),
    ("pirate", "person", ("pirate",)),
    ("deer", "animal", ("deer",)),
    ("wizard", "person", ("wizard", "magician")),
    ("penguin", "animal", ("penguin",)),
    ("king", "person", ("king",)),
    ("squirrel", "animal", ("squirrel",)),
    ("queen", "person", ("queen",)),
    ("kangaroo", "animal", ("kangaroo",)),
    ("giraffe", "animal", ("giraffe",)),
    ("zebra", "animal", ("zebra",)),
    ("owl", "animal", ("owl",)),
    ("parrot", "animal", ("parrot",)),
    ("frog", "animal", ("frog",)),
    ("turtle", "animal", ("turtle", "tortoise")),
    ("donkey", "animal", ("donkey",)),
    ("camel", "animal", ("camel",)),
    ("goose", "animal", ("goose",)),
    ("dolphin", "animal", ("dolphin",)),
)

# Verb synonyms as (third person present, gerund, past participle).
VerbForms = tuple[str, str, str]
TRANSITIVE_ACTIONS: tuple[tuple[str, tuple[VerbForms, ...]], ...] = (
    (
        "chase",
        (
            ("chases", "chasing", "chased"),
            ("runs after", "running after", "run after"),
            ("pursues", "pursuing", "pursued"),
        ),
    ),
    ("push", (("pushes", "pushing", "pushed"), ("shoves", "shoving", "shoved"))),
    ("follow", (("follows", "following", "followed"), ("trails", "trailing", "trailed"))),
    (
        "watch",
        (
            ("watches", "watching", "watched"),
            ("looks at", "looking at", "looked at"),
            ("observes", "observing", "observed"),
        ),
    ),
    ("pull", (("pulls", "pulling", "pulled"), ("drags", "dragging", "dragged"))),
    ("carry", (("carries", "carrying", "carried"),)),
    ("feed", (("feeds", "feeding", "fed"),)),
    ("kick", (("kicks", "kicking", "kicked"),)),
    ("greet", (("greets", "greeting", "greeted"), ("waves at", "waving at", "waved at"))),
    ("hit", (("hits", "hitting", "hit"), ("strikes", "striking", "struck"))),
    ("lift", (("lifts", "lifting", "lifted"), ("picks up", "picking up", "picked up"))),
    ("catch", (("catches", "catching", "caught"), ("grabs", "grabbing", "grabbed"))),
    ("help", (("helps", "helping", "helped"), ("assists", "assisting", "assisted"))),
    ("attack", (("attacks", "attacking", "attacked"),)),
    ("lick", (("licks", "licking", "licked"),)),
    ("pet", (("pets", "petting", "petted"), ("strokes", "stroking", "stroked"))),
    ("bite", (("bites", "biting", "bitten"),)),
    ("tickle", (("tickles", "tickling", "tickled"),)),
    ("scare", (("scares", "scaring", "scared"), ("frightens", "frightening", "frightened"))),
    ("wash", (("washes", "washing", "washed"), ("bathes", "bathing", "bathed"))),
    ("teach", (("teaches", "teaching", "taught"),)),
    ("lead", (("leads", "leading", "led"), ("guides", "guiding", "guided"))),
    ("rescue", (("rescues", "rescuing", "rescued"), ("saves", "saving", "saved"))),
    ("hold", (("holds", "holding", "held"),)),
    ("film", (("films", "filming", "filmed"), ("photographs", "photographing", "photographed"))),
    ("tease", (("teases", "teasing", "teased"),)),
)
INTRANSITIVE_ACTIONS: tuple[tuple[str, tuple[VerbForms, ...]], ...] = (
    ("run", (("runs", "running", "run"), ("jogs", "jogging", "jogged"))),
    ("dance", (("dances", "dancing", "danced"),)),
    ("jump", (("jumps", "jumping", "jumped"), ("leaps", "leaping", "leapt"))),
    ("swim", (("swims", "swimming", "swum"),)),
    ("walk", (("walks", "walking", "walked"), ("strolls", "strolling", "strolled"))),
    ("sleep", (("sleeps", "sleeping", "slept"), ("naps", "napping", "napped"))),
    ("sing", (("sings", "singing", "sung"),)),
    ("laugh", (("laughs", "laughing", "laughed"),)),
    ("sit", (("sits", "sitting", "sat"),)),
    ("cry", (("cries", "crying", "cried"),)),
)
# (concept, prepositional phrases that name it)
SCENES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("beach", ("on the beach", "on a beach", "at the beach")),
    ("park", ("in a park", "in the park", "at the park")),
    ("kitchen", ("in a kitchen", "in the kitchen")),
    ("street", ("on a street", "on the street", "in the street")),
    ("field", ("in a field", "in a grassy field")),
    ("stage", ("on a stage", "on the stage")),
    ("snow", ("in the snow",)),
    ("forest", ("in a forest", "in the woods")),
    ("zoo", ("at the zoo", "in a zoo")),
    ("garden", ("in a garden", "in the backyard")),
    ("pool", ("by a pool", "next to a swimming pool")),
    ("classroom", ("in a classroom",)),
    ("farm", ("on a farm",)),
    ("river", ("by a river", "near a river")),
    ("living room", ("in a living room", "in the living room")),
    ("desert", ("in the desert",)),
    ("gym", ("in a gym", "at the gym")),
    ("playground", ("on a playground", "at the playground")),
)
COLOURS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("red", ("red",)),
    ("blue", ("blue",)),
    ("green", ("green",)),
    ("yellow", ("yellow",)),
    ("black", ("black",)),
    ("white", ("white",)),
    ("brown", ("brown",)),
    ("gray", ("gray", "grey")),
    ("orange", ("orange",)),
    ("pink", ("pink",)),
    ("purple", ("purple",)),
)
SIZES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("small", ("small", "little")),
    ("big", ("big", "large")),
)
# Vague names a caption may use instead of the entity's own ("an animal chases a person").
HYPERNYMS: dict[str, tuple[str, ...]] = {
    "person": ("person",),
    "animal": ("animal", "creature"),
    "thing": ("machine",),
}
# What a person's colour is worn on.
GARMENTS: tuple[str, ...] = ("shirt", "jacket", "dress", "hat")

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
# Pronouns for a subject whose noun says its gender.
PRONOUNS: dict[str, str] = {
    "man": "he", "boy": "he", "king": "he", "cowboy": "he", "wizard": "he",
    "woman": "she", "girl": "she", "queen": "she",
}  # fmt: skip

# ----- rendering constants (how concepts become frames) -----------------------------------------
ROLE_FLOOR = 0.2  # weight of an entity in the part of the clip led by the other entity
ROLE_SHARPNESS = 0.06  # width of the subject-to-object handover, as a fraction of the clip
CROSSOVER_RANGE = (0.4, 0.6)  # where in the clip the object takes over, drawn per video
ACTION_STATIC_WEIGHT = 0.6  # the part of an action visible in a frame average
ACTION_DYNAMIC_WEIGHT = 1.0  # the temporal trajectory of an action (averages to zero)
ACTION_HARMONICS = 2  # sines per action trajectory
PHASE_JITTER = 0.05  # per-video shift of the action trajectory, as a fraction of the clip
SEQUENCE_BOUNDARY_RANGE = (0.45, 0.55)  # where the second of two events starts, per video
SCENE_WEIGHT = 0.5
AMBIENT_NOISE = 0.2  # norm of per-frame noise outside the concept subspace
ENTITY_KIND_SHARE = 0.6  # cosine between two entities of the same kind (before noise)
COLOUR_WEIGHT = 0.6
SIZE_WEIGHT = 0.4
DEFINITE_ARTICLE_PROBABILITY = 0.1  # "the dog" instead of "a dog"
DISTINCT_CAPTION_ATTEMPTS = 20  # redraws before a video may repeat a caption text


# ----- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthConfig:
    seed: int = 0
    num_videos: int = 1500
    captions_per_video: int = 5
    frames: int = 20
    feature_dim: int = 512
    latent_dim: int = 32  # intrinsic dimension: concepts and noise live in a subspace this big
    num_entities: int = 24  # the most frequent entities of ENTITIES
    num_actions: int = 12  # transitive actions (the first of TRANSITIVE_ACTIONS)
    num_intransitive_actions: int = 4
    num_scenes: int = 8
    entity_zipf: float = 1.0  # entity frequency ~ 1 / rank ** entity_zipf
    action_zipf: float = 0.5
    intransitive_fraction: float = 0.1  # videos with a subject and no object
    role_swap_fraction: float = 0.3  # videos that have a role-swapped twin in their split
    # videos that show two events of one subject in a row (the transitive event and an
    # intransitive one, in either order); of all videos, order_swap_fraction have a twin with
    # the same two events in the other order
    sequence_fraction: float = 0.0
    order_swap_fraction: float = 0.0
    colour_probability: float = 0.5  # an entity instance has a colour
    size_probability: float = 0.3  # an entity instance has a size
    attribute_mention_probability: float = 0.5  # a caption names an attribute the entity has
    scene_mention_probability: float = 0.4  # a caption names the scene
    hypernym_probability: float = 0.15  # a caption calls an entity "a person" / "an animal"
    noise: float = 1.5  # norm of the Gaussian noise added to each frame (in the concept subspace)
    instance_noise: float = 0.5  # norm of the per-video variation of an entity's look
    distractor_probability: float = 0.15  # a frame shows an unrelated entity instead
    train_fraction: float = 0.7
    val_fraction: float = 0.1  # test gets the rest

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"SynthConfig: {message}")

        need(self.num_videos >= 3, f"num_videos={self.num_videos}; need at least 3 (one per split)")
        need(self.captions_per_video >= 1, "captions_per_video must be at least 1")
        need(self.frames >= 2, f"frames={self.frames}; temporal order needs at least 2 frames")
        need(
            1 <= self.latent_dim <= self.feature_dim,
            f"latent_dim={self.latent_dim}; choose 1..feature_dim ({self.feature_dim})",
        )
        need(
            2 <= self.num_entities <= len(ENTITIES),
            f"num_entities={self.num_entities}; choose 2..{len(ENTITIES)} (the lexicon size)",
        )
        need(
            1 <= self.num_actions <= len(TRANSITIVE_ACTIONS),
            f"num_actions={self.num_actions}; choose 1..{len(TRANSITIVE_ACTIONS)}",
        )
        need(
            0 <= self.num_intransitive_actions <= len(INTRANSITIVE_ACTIONS),
            f"num_intransitive_actions={self.num_intransitive_actions}; "
            f"choose 0..{len(INTRANSITIVE_ACTIONS)}",
        )
        need(
            1 <= self.num_scenes <= len(SCENES),
            f"num_scenes={self.num_scenes}; choose 1..{len(SCENES)}",
        )
        for name in (
            "intransitive_fraction",
            "role_swap_fraction",
            "sequence_fraction",
            "order_swap_fraction",
            "colour_probability",
            "size_probability",
            "attribute_mention_probability",
            "scene_mention_probability",
            "hypernym_probability",
            "distractor_probability",
            "train_fraction",
            "val_fraction",
        ):
            value = getattr(self, name)
            need(0.0 <= value <= 1.0, f"{name}={value}; must lie in [0, 1]")
        need(
            self.intransitive_fraction + self.role_swap_fraction <= 1.0,
            "intransitive_fraction + role_swap_fraction exceeds 1 (twins are transitive)",
        )
        need(
            self.intransitive_fraction + self.role_swap_fraction + self.sequence_fraction <= 1.0,
            "intransitive_fraction + role_swap_fraction + sequence_fraction exceeds 1",
        )
        need(
            self.order_swap_fraction <= self.sequence_fraction,
            "order_swap_fraction exceeds sequence_fraction (order twins are sequences)",
        )
        need(
            self.sequence_fraction == 0 or self.num_intransitive_actions > 0,
            "sequence_fraction > 0 needs num_intransitive_actions > 0",
        )
        need(
            self.intransitive_fraction == 0 or self.num_intransitive_actions > 0,
            "intransitive_fraction > 0 needs num_intransitive_actions > 0",
        )
        need(
            self.train_fraction + self.val_fraction < 1.0,
            "train_fraction + val_fraction must leave room for a test split",
        )
        need(self.noise >= 0 and self.instance_noise >= 0, "noise levels must be >= 0")
        need(self.entity_zipf >= 0 and self.action_zipf >= 0, "Zipf exponents must be >= 0")
        sizes = split_sizes(self)
        need(
            all(n >= 1 for n in sizes.values()),
            f"split sizes {sizes}; raise num_videos or change the split fractions",
        )

    @classmethod
    def preset(cls, name: str, **values: Any) -> SynthConfig:
        """A named preset from :data:`PRESETS`, with some fields changed."""
        return synth_config(name, **values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise KeyError(f"unknown SynthConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


# Named sizes. "tiny" is for tests, "small" the demo (a minute or two of CPU training),
# "default" the ablation, "msrvtt" the MSR-VTT shape (10,000 videos x 20 captions, 6513/497/2990).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        num_videos=80,
        captions_per_video=5,
        frames=8,
        feature_dim=32,
        latent_dim=24,
        num_entities=8,
        num_actions=5,
        num_intransitive_actions=2,
        num_scenes=4,
        role_swap_fraction=0.4,
        noise=0.5,  # few training videos: less noise keeps it learnable
        instance_noise=0.2,
        distractor_probability=0.1,
        hypernym_probability=0.05,
        train_fraction=0.6,
        val_fraction=0.1,
    ),
    "small": dict(
        num_videos=1500,
        sequence_fraction=0.2,
        order_swap_fraction=0.1,
        captions_per_video=5,
        frames=20,
        feature_dim=128,
        num_entities=24,
        num_actions=12,
        num_intransitive_actions=4,
        num_scenes=8,
    ),
    "default": dict(
        num_videos=4000,
        sequence_fraction=0.2,
        order_swap_fraction=0.1,
        captions_per_video=10,
        frames=20,
        feature_dim=256,
        num_entities=40,
        num_actions=20,
        num_intransitive_actions=6,
        num_scenes=12,
    ),
    "msrvtt": dict(
        num_videos=10000,
        sequence_fraction=0.2,
        order_swap_fraction=0.1,
        captions_per_video=20,
        frames=20,
        feature_dim=512,
        num_entities=60,
        num_actions=26,
        num_intransitive_actions=10,
        num_scenes=18,
        train_fraction=0.6513,
        val_fraction=0.0497,
    ),
}


def synth_config(
    preset: str = "small", overrides: Sequence[str] = (), **values: Any
) -> SynthConfig:
    """A preset, changed by ``key=value`` strings (as from a command line) and keyword values.

    >>> synth_config("tiny", ["seed=3"], noise=0.2).seed
    3
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown synth preset {preset!r}; choose from {sorted(PRESETS)}")
    settings: dict[str, Any] = dict(PRESETS[preset])
    types = {f.name: f.type for f in fields(SynthConfig)}
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or key not in types:
            raise KeyError(
                f"synth override {override!r}: expected key=value with key one of {sorted(types)}"
            )
        kind = {"int": int, "float": float}[types[key]]
        try:
            settings[key] = kind(raw)
        except ValueError as error:
            raise ValueError(
                f"synth override {override!r}: {raw!r} is not a {types[key]}"
            ) from error
    settings.update(values)
    return SynthConfig(**settings)


def split_sizes(config: SynthConfig) -> dict[str, int]:
    """Videos per split: train and val by rounding their fractions, test the rest."""
    train = round(config.train_fraction * config.num_videos)
    val = round(config.val_fraction * config.num_videos)
    return {"train": train, "val": val, "test": config.num_videos - train - val}


# ----- ground truth -----------------------------------------------------------------------------
@dataclass(frozen=True)
class EntityInstance:
    entity: str  # concept name, e.g. "dog" (captions may say "puppy")
    colour: str | None = None
    size: str | None = None

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(a for a in (self.size, self.colour) if a is not None)


@dataclass(frozen=True)
class VideoSpec:
    """The latent content of one video; its features and captions are rendered from it."""

    video_id: str
    index: int  # position in the whole benchmark; seeds the video's features and captions
    split: str
    subject: EntityInstance
    action: str
    object: EntityInstance | None  # None for an intransitive action
    scene: str
    twin: str | None = None  # id of the twin in the same split
    twin_kind: str | None = None  # "role" (subject and object exchanged) or "order"
    # a second, intransitive event of the subject; before the main one when ``extra_first``
    extra_action: str | None = None
    extra_first: bool = False

    @property
    def relation(self) -> tuple[str, str, str] | None:
        """(subject, action, object) concepts, or None for an intransitive action."""
        if self.object is None:
            return None
        return (self.subject.entity, self.action, self.object.entity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "subject": self.subject.entity,
            "subject_attributes": list(self.subject.attributes),
            "action": self.action,
            "object": None if self.object is None else self.object.entity,
            "object_attributes": [] if self.object is None else list(self.object.attributes),
            "scene": self.scene,
            "twin": self.twin,
            "twin_kind": self.twin_kind,
            "extra_action": self.extra_action,
            "extra_first": self.extra_first,
        }


@dataclass(frozen=True)
class SynthCaption:
    text: str
    template: str  # name from TRANSITIVE_TEMPLATES / INTRANSITIVE_TEMPLATES
    agent: str  # the subject's noun phrase as written in the text
    agent_span: tuple[int, int]  # character span of ``agent`` in ``text``
    patient: str | None  # the object's noun phrase, None for an intransitive action
    patient_span: tuple[int, int] | None


# ----- the benchmark ----------------------------------------------------------------------------
@dataclass
class SynthBenchmark:
    """Ids, splits, captions and ground truth in memory; features rendered on demand."""

    config: SynthConfig
    splits: dict[str, list[str]]  # split name -> video ids
    videos: dict[str, VideoSpec]  # video id -> spec
    captions: dict[str, list[SynthCaption]]  # video id -> its captions
    _concepts: _ConceptVectors | None = field(default=None, repr=False)

    def features(self, video_id: str) -> np.ndarray:
        """``(frames, feature_dim)`` float32 features of one video, the same on every call."""
        if video_id not in self.videos:
            raise KeyError(f"synthetic benchmark has no video {video_id!r}")
        if self._concepts is None:
            self._concepts = _ConceptVectors(self.config)
        return _render_video(self.videos[video_id], self.config, self._concepts)

    def caption_texts(self) -> dict[str, list[str]]:
        return {vid: [c.text for c in caps] for vid, caps in self.captions.items()}

    def twin_pairs(self, split: str, kind: str = "role") -> list[tuple[str, str]]:
        """Twins of one split ("role" or "order" swapped), each pair once."""
        return [
            (vid, spec.twin)
            for vid in self.splits[split]
            if (spec := self.videos[vid]).twin is not None
            and spec.twin_kind == kind
            and vid < spec.twin
        ]

    def meta(self) -> dict[str, Any]:
        """JSON-ready config and ground truth (what ``synth_meta.json`` holds)."""
        config = self.config
        return {
            "format": "mcsan-synth",
            "version": 2,
            "feature_type": FEATURE_TYPE,
            "config": config.to_dict(),
            "splits": {name: len(ids) for name, ids in self.splits.items()},
            "lexicon": {
                "entities": {name: list(syn) for name, _, syn in ENTITIES[: config.num_entities]},
                "actions": {name: [list(f) for f in syn] for name, syn in _actions(config)},
                "scenes": {name: list(syn) for name, syn in SCENES[: config.num_scenes]},
                "colours": {name: list(syn) for name, syn in COLOURS},
                "sizes": {name: list(syn) for name, syn in SIZES},
            },
            "videos": {vid: spec.to_dict() for vid, spec in self.videos.items()},
        }


def generate(config: SynthConfig) -> SynthBenchmark:
    """Sample every video's spec and captions (cheap); features are rendered on demand."""
    specs = _sample_specs(config)
    captions = {spec.video_id: _write_captions(spec, config) for spec in specs}
    splits = {name: [s.video_id for s in specs if s.split == name] for name in SPLITS}
    return SynthBenchmark(
        config=config,
        splits=splits,
        videos={spec.video_id: spec for spec in specs},
        captions=captions,
    )


def write_synth(
    root: str | Path, config: SynthConfig, *, overwrite: bool = False, progress: bool = True
) -> Path:
    """Generate the benchmark and write it in the HGR layout, plus ``synth_meta.json``.

    The data is read back with :func:`mcsan.data.layouts.read_dataset` like any other dataset;
    the meta file is ground truth for analysis and is not read by training.
    """
    from mcsan.data.layouts import write_hgr

    benchmark = generate(config)
    root = write_hgr(
        root,
        benchmark.splits,
        benchmark.caption_texts(),
        {FEATURE_TYPE: benchmark.features},
        write_mean_pooled=True,
        progress=progress,
        overwrite=overwrite,
        extra_files={META_FILE: json.dumps(benchmark.meta(), indent=1) + "\n"},
    )
    return Path(root)


def read_synth_meta(root: str | Path) -> dict[str, Any]:
    """The ground truth written beside a synthetic dataset (for analysis, not for training)."""
    path = Path(root) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; {root} was not written by `mcsan synth` (or the file was "
            "removed). Regenerate it with `mcsan synth`."
        )
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != "mcsan-synth":
        raise ValueError(f"{path} is not a synthetic-benchmark meta file (format field missing)")
    return meta


def twin_indices(
    meta: Mapping[str, Any], video_ids: Sequence[str], kind: str | None = "role"
) -> list[int]:
    """For each of ``video_ids``, the position of its twin of ``kind`` ("role": subject and
    object exchanged; "order": the same two events the other way round; None: either) in
    ``video_ids`` (-1 when it has none there), from the ground truth of
    :func:`read_synth_meta`."""
    index = {video: i for i, video in enumerate(video_ids)}
    specs = meta["videos"]
    found = []
    for video in video_ids:
        spec = specs.get(video, {})
        # data written before order twins existed has role twins only
        matches = kind is None or spec.get("twin_kind", "role") == kind
        found.append(index.get(spec.get("twin") or "", -1) if matches else -1)
    return found


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


# ----- sampling specs ---------------------------------------------------------------------------
def _actions(config: SynthConfig) -> list[tuple[str, tuple[VerbForms, ...]]]:
    """Actions in use: transitive first, then intransitive (the concept-vector order)."""
    return [
        *TRANSITIVE_ACTIONS[: config.num_actions],
        *INTRANSITIVE_ACTIONS[: config.num_intransitive_actions],
    ]


def _zipf_probabilities(count: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1, dtype=np.float64) ** exponent  # (count,)
    return weights / weights.sum()


def _sample_specs(config: SynthConfig) -> list[VideoSpec]:
    """Specs of all videos, train first, then val, then test (ids follow that order)."""
    rng = np.random.default_rng([config.seed, 1])
    width = len(str(config.num_videos - 1))

    def zipf_draw(names: Sequence[str], exponent: float) -> Callable[[], str]:
        probabilities = _zipf_probabilities(len(names), exponent)
        return lambda: names[int(rng.choice(len(names), p=probabilities))]

    draw_entity = zipf_draw([e[0] for e in ENTITIES[: config.num_entities]], config.entity_zipf)
    draw_action = zipf_draw(
        [a[0] for a in TRANSITIVE_ACTIONS[: config.num_actions]], config.action_zipf
    )
    intransitive_names = [a[0] for a in INTRANSITIVE_ACTIONS[: config.num_intransitive_actions]]
    draw_intransitive = zipf_draw(intransitive_names, config.action_zipf)

    def draw_scene() -> str:
        return SCENES[rng.integers(config.num_scenes)][0]

    def instance(entity: str) -> EntityInstance:
        has_colour = rng.random() < config.colour_probability
        colour = COLOURS[rng.integers(len(COLOURS))][0] if has_colour else None
        has_size = rng.random() < config.size_probability
        size = SIZES[rng.integers(len(SIZES))][0] if has_size else None
        return EntityInstance(entity, colour, size)

    def transitive() -> tuple[EntityInstance, str, EntityInstance, str]:
        subject = draw_entity()
        obj = subject
        while obj == subject:
            obj = draw_entity()
        return instance(subject), draw_action(), instance(obj), draw_scene()

    specs: list[VideoSpec] = []
    for split, size in split_sizes(config).items():
        pairs = min(round(size * config.role_swap_fraction / 2), size // 2)
        intransitive = min(round(size * config.intransitive_fraction), size - 2 * pairs)
        # Each entry: (subject, action, object, scene, twin slot or -1, twin kind, extra
        # action, extra first) in split-local slots.
        events: list[tuple[EntityInstance, str, EntityInstance | None, str, int, str | None,
                           str | None, bool]] = []  # fmt: skip
        for _ in range(pairs):
            subject, action, obj, scene = transitive()
            slot = len(events)
            events.append((subject, action, obj, scene, slot + 1, "role", None, False))
            events.append((obj, action, subject, scene, slot, "role", None, False))
        for _ in range(intransitive):
            action = draw_intransitive()
            events.append(
                (instance(draw_entity()), action, None, draw_scene(), -1, None, None, False)
            )
        room = size - len(events)
        order_pairs = min(round(size * config.order_swap_fraction / 2), room // 2)
        sequences = min(round(size * config.sequence_fraction), room) - 2 * order_pairs
        for _ in range(order_pairs):
            subject, action, obj, scene = transitive()
            extra, slot = draw_intransitive(), len(events)
            events.append((subject, action, obj, scene, slot + 1, "order", extra, False))
            events.append((subject, action, obj, scene, slot, "order", extra, True))
        for _ in range(max(sequences, 0)):
            subject, action, obj, scene = transitive()
            extra = draw_intransitive()
            events.append((subject, action, obj, scene, -1, None, extra, bool(rng.random() < 0.5)))
        while len(events) < size:
            subject, action, obj, scene = transitive()
            events.append((subject, action, obj, scene, -1, None, None, False))
        order = rng.permutation(size)  # position of each event in the split
        start = len(specs)
        ids = {slot: f"video{start + int(pos):0{width}d}" for slot, pos in enumerate(order)}
        split_specs = [
            VideoSpec(
                video_id=ids[slot],
                index=start + int(order[slot]),
                split=split,
                subject=subject,
                action=action,
                object=obj,
                scene=scene,
                twin=ids[twin] if twin >= 0 else None,
                twin_kind=kind,
                extra_action=extra,
                extra_first=extra_first,
            )
            for slot, (subject, action, obj, scene, twin, kind, extra, extra_first) in enumerate(
                events
            )
        ]
        specs.extend(sorted(split_specs, key=lambda s: s.index))
    return specs


# ----- captions ---------------------------------------------------------------------------------
_ENTITY_SYNONYMS = {name: (kind, synonyms) for name, kind, synonyms in ENTITIES}
_VERBS = dict(TRANSITIVE_ACTIONS + INTRANSITIVE_ACTIONS)
_SCENE_PHRASES = dict(SCENES)
_COLOUR_WORDS = dict(COLOURS)
_SIZE_WORDS = dict(SIZES)
# Templates pre-parsed into (literal, field) pieces, with cumulative weights for drawing one.
_TemplatePieces = list[tuple[str, str | None]]


def _prepare_templates(
    templates: tuple[tuple[str, str, float], ...],
) -> tuple[list[tuple[str, str, _TemplatePieces]], list[float]]:
    prepared = [
        (name, template, [(lit, field) for lit, field, _, _ in string.Formatter().parse(template)])
        for name, template, _ in templates
    ]
    return prepared, list(itertools.accumulate(weight for _, _, weight in templates))


_TRANSITIVE = _prepare_templates(TRANSITIVE_TEMPLATES)
_INTRANSITIVE = _prepare_templates(INTRANSITIVE_TEMPLATES)
_SEQUENCE = _prepare_templates(SEQUENCE_TEMPLATES)


def _write_captions(spec: VideoSpec, config: SynthConfig) -> list[SynthCaption]:
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
    if spec.extra_action is not None:
        return _write_sequence_caption(spec, config, garments, rng)
    templates, cumulative_weights = _TRANSITIVE if spec.object is not None else _INTRANSITIVE
    name, template, pieces = rng.choices(templates, cum_weights=cumulative_weights)[0]
    v3, ving, vpp = rng.choice(_VERBS[spec.action])
    scene = rng.choice(_SCENE_PHRASES[spec.scene])
    mention_scene = rng.random() < config.scene_mention_probability
    agent = _noun_phrase(spec.subject, garments[0], config, rng)
    patient = None if spec.object is None else _noun_phrase(spec.object, garments[1], config, rng)
    values = {
        "a": agent,
        "p": patient,
        "v3": v3,
        "ving": ving,
        "vpp": vpp,
        "pp": f" {scene}" if mention_scene else "",
        "scene": scene,
    }
    text, spans = _fill(template, pieces, values)
    return SynthCaption(
        text=text,
        template=name,
        agent=agent,
        agent_span=spans["a"],
        patient=patient,
        patient_span=spans.get("p"),
    )


def _write_sequence_caption(
    spec: VideoSpec, config: SynthConfig, garments: tuple[str, str], rng: random.Random
) -> SynthCaption:
    """ "a dog chases a cat and then jumps", "a dog jumps after chasing a cat": the two events
    of a sequence video joined by an order connective, in either direction."""
    assert spec.object is not None and spec.extra_action is not None
    templates, cumulative_weights = _SEQUENCE
    name, template, pieces = rng.choices(templates, cum_weights=cumulative_weights)[0]
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
    values = {
        "a": agent,
        "s": pronoun,
        "v1": first[0],
        "ing1": first[1],
        "v2": second[0],
        "ing2": second[1],
        "pp": f" {rng.choice(_SCENE_PHRASES[spec.scene])}"
        if rng.random() < config.scene_mention_probability
        else "",
    }
    text, spans = _fill(template, pieces, values)
    agent_span = spans["a"]
    starts = [i for i in _occurrences(text, patient) if not agent_span[0] <= i < agent_span[1]]
    return SynthCaption(
        text=text,
        template=f"sequence_{name}",
        agent=agent,
        agent_span=agent_span,
        patient=patient,
        patient_span=(starts[0], starts[0] + len(patient)),
    )


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


# ----- rendering features -----------------------------------------------------------------------
class _ConceptVectors:
    """One fixed random unit vector per concept in a ``latent_dim`` space, drawn from the seed,
    and the fixed orthonormal map from that space to the ``feature_dim`` features."""

    def __init__(self, config: SynthConfig) -> None:
        rng = np.random.default_rng([config.seed, 0])
        latent = config.latent_dim
        actions = _actions(config)

        def unit(*shape: int) -> np.ndarray:  # (*shape, latent)
            vectors = rng.standard_normal((*shape, latent))
            return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)

        # Entities of one kind (person, animal, thing) share part of their look, as similar
        # classes do in real features, so telling a dog from a wolf is harder than from a man.
        kinds = sorted({kind for _, kind, _ in ENTITIES})
        kind_vectors = dict(zip(kinds, unit(len(kinds)), strict=True))
        own = unit(len(ENTITIES))  # (entities, latent)
        shared = np.stack([kind_vectors[kind] for _, kind, _ in ENTITIES])  # (entities, latent)
        looks = ENTITY_KIND_SHARE * shared + np.sqrt(1 - ENTITY_KIND_SHARE**2) * own
        self.entity = dict(zip([e[0] for e in ENTITIES], looks, strict=True))
        self.colour = dict(zip([c[0] for c in COLOURS], unit(len(COLOURS)), strict=True))
        self.size = dict(zip([s[0] for s in SIZES], unit(len(SIZES)), strict=True))
        self.scene = dict(zip([s[0] for s in SCENES], unit(len(SCENES)), strict=True))
        names = [a[0] for a in actions]
        self.action_static = dict(zip(names, unit(len(actions)), strict=True))  # (latent,) each
        self.action_dynamic = dict(  # (harmonics, latent) each
            zip(names, unit(len(actions), ACTION_HARMONICS), strict=True)
        )
        self.action_phase = dict(  # (harmonics,) each
            zip(names, rng.uniform(0, 2 * np.pi, (len(actions), ACTION_HARMONICS)), strict=True)
        )
        self.entity_names = [e[0] for e in ENTITIES[: config.num_entities]]
        self.entity_p = _zipf_probabilities(config.num_entities, config.entity_zipf)
        # Orthonormal rows: features have a low intrinsic dimension, as real embeddings do.
        gaussian = rng.standard_normal((config.feature_dim, latent))
        self.to_features = np.linalg.qr(gaussian)[0].T  # (latent, feature_dim)


def _render_video(spec: VideoSpec, config: SynthConfig, concepts: _ConceptVectors) -> np.ndarray:
    """``(frames, feature_dim)`` float32 frames of one video, seeded by the seed and its index."""
    rng = np.random.default_rng([config.seed, 2, spec.index])
    frames, latent = config.frames, config.latent_dim
    time = (np.arange(frames) + 0.5) / frames  # (frames,) in (0, 1)

    def look(instance: EntityInstance) -> np.ndarray:  # (latent,)
        vector = concepts.entity[instance.entity] + rng.standard_normal(latent) * (
            config.instance_noise / np.sqrt(latent)
        )
        if instance.colour is not None:
            vector = vector + COLOUR_WEIGHT * concepts.colour[instance.colour]
        if instance.size is not None:
            vector = vector + SIZE_WEIGHT * concepts.size[instance.size]
        return vector

    crossover = rng.uniform(*CROSSOVER_RANGE)
    subject = look(spec.subject)  # (latent,)
    obj = None if spec.object is None else look(spec.object)  # (latent,)
    if spec.extra_action is None:
        shift = rng.uniform(-PHASE_JITTER, PHASE_JITTER)
        video = _event_frames(subject, spec.action, obj, time, crossover, shift, concepts)
    else:  # two events: the clip splits at a per-video boundary, each half shows one
        boundary = rng.uniform(*SEQUENCE_BOUNDARY_RANGE)
        shifts = rng.uniform(-PHASE_JITTER, PHASE_JITTER, 2)
        early = time < boundary  # (frames,)
        local = np.where(early, time / boundary, (time - boundary) / (1 - boundary))  # (frames,)
        main = _event_frames(subject, spec.action, obj, local, crossover, shifts[0], concepts)
        extra = _event_frames(subject, spec.extra_action, None, local, crossover, shifts[1],
                              concepts)  # fmt: skip
        main_first = early if not spec.extra_first else ~early  # (frames,)
        video = np.where(main_first[:, None], main, extra)  # (frames, latent)

    background = SCENE_WEIGHT * concepts.scene[spec.scene]  # (latent,)
    video += background

    # Distractor frames show an unrelated entity in the same scene instead of the event.
    distractor = rng.random(frames) < config.distractor_probability  # (frames,)
    for frame in np.flatnonzero(distractor):
        index = int(rng.choice(len(concepts.entity_names), p=concepts.entity_p))
        video[frame] = look(EntityInstance(concepts.entity_names[index])) + background

    video += rng.standard_normal((frames, latent)) * (config.noise / np.sqrt(latent))
    features = video @ concepts.to_features  # (frames, feature_dim)
    ambient = rng.standard_normal((frames, config.feature_dim))  # (frames, feature_dim)
    features += ambient * (AMBIENT_NOISE / np.sqrt(config.feature_dim))
    return features.astype(np.float32)


def _event_frames(
    subject: np.ndarray,
    action: str,
    obj: np.ndarray | None,
    time: np.ndarray,
    crossover: float,
    shift: float,
    concepts: _ConceptVectors,
) -> np.ndarray:
    """``(frames, latent)`` of one event over ``time`` (frames,) in (0, 1): its entities and
    its action. Roles: the subject leads, the object takes over at ``crossover``; the two
    weight profiles mirror each other, so their frame averages carry no role information.
    The action is a static part plus a trajectory of sines over the event (mean zero)."""
    lead = 1.0 / (1.0 + np.exp((time - crossover) / ROLE_SHARPNESS))  # (frames,) 1 -> 0
    if obj is None:
        video = np.outer(np.ones(len(time)), subject)  # (frames, latent)
    else:
        subject_weight = ROLE_FLOOR + (1 - ROLE_FLOOR) * lead  # (frames,)
        object_weight = ROLE_FLOOR + (1 - ROLE_FLOOR) * (1 - lead)  # (frames,)
        video = np.outer(subject_weight, subject) + np.outer(object_weight, obj)
    harmonics = np.arange(1, ACTION_HARMONICS + 1)  # (harmonics,)
    waves = np.sin(
        2 * np.pi * harmonics[:, None] * (time[None, :] + shift)
        + concepts.action_phase[action][:, None]
    )  # (harmonics, frames)
    video += ACTION_STATIC_WEIGHT * concepts.action_static[action]
    video += ACTION_DYNAMIC_WEIGHT * (waves.T @ concepts.action_dynamic[action])
    return video


__all__ = [
    "ENTITIES",
    "FEATURE_TYPE",
    "META_FILE",
    "PRESETS",
    "SPLITS",
    "EntityInstance",
    "SynthBenchmark",
    "SynthCaption",
    "SynthConfig",
    "VideoSpec",
    "event_roles",
    "generate",
    "read_synth_meta",
    "split_sizes",
    "synth_config",
    "write_synth",
]
