"""The synthetic benchmark in memory: every video's spec and captions, its features rendered
on demand (:func:`generate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcsan.data.synth.captions import SynthCaption, write_captions
from mcsan.data.synth.config import SPLITS, SynthConfig
from mcsan.data.synth.features import ConceptVectors, render_video
from mcsan.data.synth.lexicon import COLOURS, ENTITIES, SCENES, SIZES
from mcsan.data.synth.world import VideoSpec, actions_in_use, sample_specs

FEATURE_TYPE = "synth"  # feature type name the benchmark writes


@dataclass
class SynthBenchmark:
    """Ids, splits, captions and ground truth in memory; features rendered on demand."""

    config: SynthConfig
    splits: dict[str, list[str]]  # split name -> video ids
    videos: dict[str, VideoSpec]  # video id -> spec
    captions: dict[str, list[SynthCaption]]  # video id -> its captions
    _concepts: ConceptVectors | None = field(default=None, repr=False)

    def features(self, video_id: str) -> np.ndarray:
        """``(frames, feature_dim)`` float32 features of one video, the same on every call."""
        if video_id not in self.videos:
            raise KeyError(f"synthetic benchmark has no video {video_id!r}")
        if self._concepts is None:
            self._concepts = ConceptVectors(self.config)
        return render_video(self.videos[video_id], self.config, self._concepts)

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
                "actions": {name: [list(f) for f in syn] for name, syn in actions_in_use(config)},
                "scenes": {name: list(syn) for name, syn in SCENES[: config.num_scenes]},
                "colours": {name: list(syn) for name, syn in COLOURS},
                "sizes": {name: list(syn) for name, syn in SIZES},
            },
            "videos": {vid: spec.to_dict() for vid, spec in self.videos.items()},
        }


def generate(config: SynthConfig) -> SynthBenchmark:
    """Sample every video's spec and captions (cheap); features are rendered on demand."""
    specs = sample_specs(config)
    captions = {spec.video_id: write_captions(spec, config) for spec in specs}
    splits = {name: [s.video_id for s in specs if s.split == name] for name in SPLITS}
    return SynthBenchmark(
        config=config,
        splits=splits,
        videos={spec.video_id: spec for spec in specs},
        captions=captions,
    )
