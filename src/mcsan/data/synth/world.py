"""What each video of the synthetic benchmark shows: its :class:`VideoSpec`, drawn from the
seed, from which its features and captions are rendered.

Each video shows one event: a *subject* entity that does an *action* to an *object* entity
("a dog chases a cat"), or, for a few videos, an intransitive action ("a man is dancing"), in
a *scene* ("on the beach"). Entities carry optional *attributes* (a colour, a size) and follow
a Zipf law, so a few entities appear in many videos.

A fraction of videos come as *role-swapped twins*: two videos in the same split with subject
and object exchanged (same action, scene and attributes). With ``sequence_fraction``, some
videos show two events of one subject in a row (its transitive event and an intransitive one,
each in its half of the clip); with ``order_swap_fraction`` some of them come as
*order-swapped twins*: the same two events the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mcsan.data.synth.config import SynthConfig, split_sizes
from mcsan.data.synth.lexicon import (
    COLOURS,
    ENTITIES,
    INTRANSITIVE_ACTIONS,
    SCENES,
    SIZES,
    TRANSITIVE_ACTIONS,
    VerbForms,
)


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


def actions_in_use(config: SynthConfig) -> list[tuple[str, tuple[VerbForms, ...]]]:
    """Actions in use: transitive first, then intransitive (the concept-vector order)."""
    return [
        *TRANSITIVE_ACTIONS[: config.num_actions],
        *INTRANSITIVE_ACTIONS[: config.num_intransitive_actions],
    ]


def zipf_probabilities(count: int, exponent: float) -> np.ndarray:
    """``(count,)`` probabilities of ranks 1..count, in proportion to 1 / rank ** exponent."""
    weights = 1.0 / np.arange(1, count + 1, dtype=np.float64) ** exponent  # (count,)
    return weights / weights.sum()


def sample_specs(config: SynthConfig) -> list[VideoSpec]:
    """Specs of all videos, train first, then val, then test (ids follow that order)."""
    rng = np.random.default_rng([config.seed, 1])
    width = len(str(config.num_videos - 1))

    def zipf_draw(names: Sequence[str], exponent: float) -> Callable[[], str]:
        probabilities = zipf_probabilities(len(names), exponent)
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
