"""How big and how hard the synthetic benchmark is: :class:`SynthConfig`, the named presets
and the split sizes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mcsan.config import build_config, set_overrides
from mcsan.data.synth.lexicon import ENTITIES, INTRANSITIVE_ACTIONS, SCENES, TRANSITIVE_ACTIONS

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SynthConfig:
    """Every setting of the synthetic benchmark, checked when a config is made."""

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
        self.validate()

    def validate(self) -> SynthConfig:
        """This config, when every value makes sense; a ValueError naming the first that
        does not (a config is checked when it is made)."""

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
        return self

    @classmethod
    def preset(cls, name: str, **values: Any) -> SynthConfig:
        """A named preset from :data:`PRESETS`, with some fields changed."""
        return synth_config(name, **values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthConfig:
        return build_config(cls, data, "synth config")


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
    """A preset, changed by ``key=value`` strings (as from a command line; parsed and checked
    as :func:`mcsan.config.apply_overrides` does) and then by keyword values.

    >>> synth_config("tiny", ["seed=3"], noise=0.2).seed
    3
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown synth preset {preset!r}; choose from {sorted(PRESETS)}")
    settings = set_overrides(SynthConfig(**PRESETS[preset]).to_dict(), overrides)
    return build_config(SynthConfig, {**settings, **values})


def split_sizes(config: SynthConfig) -> dict[str, int]:
    """Videos per split: train and val by rounding their fractions, test the rest."""
    train = round(config.train_fraction * config.num_videos)
    val = round(config.val_fraction * config.num_videos)
    return {"train": train, "val": val, "test": config.num_videos - train - val}
