"""The video features of the synthetic benchmark: ``(frames, feature_dim)`` float32 per video,
rendered on demand from its :class:`~mcsan.data.synth.world.VideoSpec`.

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
- a video of two events shows each in its part of the clip, so the frame average of
  order-swapped twins is the same;
- the scene is a constant background; Gaussian noise is added to every frame, and some frames
  are distractors showing an unrelated entity.
"""

from __future__ import annotations

import numpy as np

from mcsan.data.synth.config import SynthConfig
from mcsan.data.synth.lexicon import COLOURS, ENTITIES, SCENES, SIZES
from mcsan.data.synth.world import (
    EntityInstance,
    VideoSpec,
    actions_in_use,
    zipf_probabilities,
)

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


class ConceptVectors:
    """One fixed random unit vector per concept in a ``latent_dim`` space, drawn from the seed,
    and the fixed orthonormal map from that space to the ``feature_dim`` features."""

    def __init__(self, config: SynthConfig) -> None:
        rng = np.random.default_rng([config.seed, 0])
        latent = config.latent_dim
        actions = actions_in_use(config)

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
        self.entity_p = zipf_probabilities(config.num_entities, config.entity_zipf)
        # Orthonormal rows: features have a low intrinsic dimension, as real embeddings do.
        gaussian = rng.standard_normal((config.feature_dim, latent))
        self.to_features = np.linalg.qr(gaussian)[0].T  # (latent, feature_dim)


def render_video(spec: VideoSpec, config: SynthConfig, concepts: ConceptVectors) -> np.ndarray:
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
    concepts: ConceptVectors,
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
