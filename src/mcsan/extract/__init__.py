"""Feature extraction from raw video files: ``mcsan extract``.

- :mod:`~mcsan.extract.decode`: PyAV decoding of sampled frames (uniform or at a frame
  rate), upright and scaled, with typed errors for files that give no frame;
- :mod:`~mcsan.extract.backbones`: ResNet-50/101/152 and CLIP ViT image towers in plain
  torch, loading torchvision / OpenAI weight files named by the user;
- :mod:`~mcsan.extract.pipeline`: decoding in worker processes beside the model, resumable
  HDF5 output, a failure report, and the HGR / BigFile layouts for a dataset's annotation.
"""

from mcsan.extract.backbones import BACKBONES, FrameBackbone, ImageTransform, build_backbone
from mcsan.extract.decode import (
    SAMPLINGS,
    DecodedVideo,
    DecodeError,
    FrameSampling,
    decode_video,
    select_frames,
)
from mcsan.extract.pipeline import (
    FEATURE_LAYOUTS,
    ExtractionSummary,
    Failure,
    VideoFile,
    extract_features,
    find_videos,
)

__all__ = [
    "BACKBONES",
    "FEATURE_LAYOUTS",
    "SAMPLINGS",
    "DecodeError",
    "DecodedVideo",
    "ExtractionSummary",
    "Failure",
    "FrameBackbone",
    "FrameSampling",
    "ImageTransform",
    "VideoFile",
    "build_backbone",
    "decode_video",
    "extract_features",
    "find_videos",
    "select_frames",
]
