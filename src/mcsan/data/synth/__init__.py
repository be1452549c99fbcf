"""The synthetic compositional benchmark: the data the default MCSAN job trains and tests on.

Real MSR-VTT or VATEX features cannot ship with the package, so MCSAN generates its own
video-text data with the structure the four levels are meant to capture, writes it in the HGR
layout and reads it back through the same reader as real data (no side door).

Hardness for a global model: a few entities appear in many videos, and a fraction of videos
come as twins whose frame average is the same: role-swapped ("a dog chases a cat" / "a cat
chases a dog") or order-swapped ("a dog chases a cat and then jumps" / "a dog jumps and then
chases a cat"). A mean-pooled video and a bag of words cannot tell twins apart; a model that
reads frame order and parse roles can (``tests/test_synth.py`` checks both with linear probes).

One module per step, each importing only the ones above it:

- :mod:`~mcsan.data.synth.lexicon`: the concepts and the words that name them;
- :mod:`~mcsan.data.synth.config`: :class:`SynthConfig`, the presets, the split sizes;
- :mod:`~mcsan.data.synth.world`: what each video shows (:class:`VideoSpec`) and its twins;
- :mod:`~mcsan.data.synth.captions`: the captions written from a spec;
- :mod:`~mcsan.data.synth.features`: the frame features rendered from a spec;
- :mod:`~mcsan.data.synth.benchmark`: all of it in memory (:func:`generate`);
- :mod:`~mcsan.data.synth.storage`: the benchmark on disk (:func:`write_synth`) and its
  ground truth (:func:`read_synth_meta`, :func:`twin_indices`).
"""

from mcsan.data.synth.benchmark import FEATURE_TYPE, SynthBenchmark, generate
from mcsan.data.synth.captions import (
    INTRANSITIVE_TEMPLATES,
    SEQUENCE_TEMPLATES,
    TRANSITIVE_TEMPLATES,
    SynthCaption,
    event_roles,
)
from mcsan.data.synth.config import PRESETS, SPLITS, SynthConfig, split_sizes, synth_config
from mcsan.data.synth.lexicon import (
    COLOURS,
    ENTITIES,
    HYPERNYMS,
    INTRANSITIVE_ACTIONS,
    SCENES,
    SIZES,
    TRANSITIVE_ACTIONS,
)
from mcsan.data.synth.storage import META_FILE, read_synth_meta, twin_indices, write_synth
from mcsan.data.synth.world import EntityInstance, VideoSpec

__all__ = [
    "COLOURS",
    "ENTITIES",
    "FEATURE_TYPE",
    "HYPERNYMS",
    "INTRANSITIVE_ACTIONS",
    "INTRANSITIVE_TEMPLATES",
    "META_FILE",
    "PRESETS",
    "SCENES",
    "SEQUENCE_TEMPLATES",
    "SIZES",
    "SPLITS",
    "TRANSITIVE_ACTIONS",
    "TRANSITIVE_TEMPLATES",
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
    "twin_indices",
    "write_synth",
]
