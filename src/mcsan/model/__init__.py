"""Tensors in, tensors out: the MCSAN encoders, the shared attribute projection, the losses.

Nothing here opens a file except the weight files a config names explicitly (a GloVe text file,
a local sentence-transformers directory).
"""

from mcsan.model.attributes import AttributeProjection
from mcsan.model.losses import MCSANLoss
from mcsan.model.mcsan import MCSAN
from mcsan.model.outputs import LossTargets, ModelOutput
from mcsan.model.text import GloveVectors, TextEncoder, glove_dim, load_glove
from mcsan.model.video import VideoEncoder

__all__ = [
    "MCSAN",
    "AttributeProjection",
    "GloveVectors",
    "LossTargets",
    "MCSANLoss",
    "ModelOutput",
    "TextEncoder",
    "VideoEncoder",
    "glove_dim",
    "load_glove",
]
