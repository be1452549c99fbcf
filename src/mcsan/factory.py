"""Where an MCSAN is made: training, evaluation and search all build their model here.

A model's shape is decided by its config, the size of its input features and its
vocabularies (words for the text encoder, attribute labels per level for the attribute heads),
all of which a checkpoint stores: a checkpoint alone is enough to rebuild its model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcsan.config import Config
from mcsan.data.vocab import Vocabularies
from mcsan.model.losses import MCSANLoss, uses_attribute_heads
from mcsan.model.mcsan import MCSAN

if TYPE_CHECKING:
    from mcsan.checkpoint import Checkpoint
    from mcsan.data.prepare import PreparedData


def build_model(config: Config, vocabularies: Vocabularies | PreparedData, video_dim: int) -> MCSAN:
    """A fresh MCSAN sized for ``vocabularies`` and ``video_dim`` input features."""
    return MCSAN(
        config.model,
        video_dim=video_dim,
        vocab_size=len(vocabularies.words),
        attribute_sizes={level: len(vocab) for level, vocab in vocabularies.vocabs.items()},
        attribute_heads=uses_attribute_heads(config.loss),
    )


def build_loss(config: Config, model: MCSAN) -> MCSANLoss:
    """The training loss for ``model`` as ``config.loss`` says."""
    return MCSANLoss(config.loss, model.level_weights)


def model_from_checkpoint(checkpoint: Checkpoint) -> tuple[MCSAN, Vocabularies]:
    """The trained model of a loaded checkpoint, in eval mode on the CPU, and its
    vocabularies; nothing but the checkpoint is read."""
    vocabularies = Vocabularies.from_json(checkpoint.vocab)
    config = checkpoint.config
    model = build_model(config, vocabularies, config.model.video_dim)
    model.load_state_dict(checkpoint.model_state)
    return model.eval(), vocabularies
