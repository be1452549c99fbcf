"""MCSAN: Multi-Level Cross-Modal Semantic Alignment Network for video-text retrieval.

The public API (imported on first use, so ``import mcsan`` stays light)::

    retriever = mcsan.load("runs/x/best")             # a Retriever: encode, score, explain
    index = mcsan.open_index("my_index")               # a VideoIndex written by `mcsan index`
    results = index.search(["a dog chases a cat"], k=10)

``build_index`` / ``add_to_index`` write indexes from ``open_source`` (a dataset directory or
an ``mcsan extract`` HDF5 file); ``Config`` is the one config tree; ``train`` and
``evaluate_checkpoint`` run training and evaluation as the command line does.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The four semantic levels, named as the paper names them; one name per concept everywhere.
LEVELS: tuple[str, ...] = ("global", "entity", "action", "relationship")
# The levels that carry attribute vocabularies (mined from captions).
ATTRIBUTE_LEVELS: tuple[str, ...] = ("entity", "action", "relationship")

_PUBLIC = {
    "load": "mcsan.retriever",
    "Retriever": "mcsan.retriever",
    "Scores": "mcsan.retriever",
    "Explanation": "mcsan.retriever",
    "ParsedQuery": "mcsan.retriever",
    "open_index": "mcsan.index",
    "build_index": "mcsan.index",
    "add_to_index": "mcsan.index",
    "VideoIndex": "mcsan.index",
    "SearchResult": "mcsan.index",
    "Hit": "mcsan.index",
    "open_source": "mcsan.sources",
    "Config": "mcsan.config",
    "train": "mcsan.train",
    "evaluate_checkpoint": "mcsan.evaluate",
}
__all__ = ["ATTRIBUTE_LEVELS", "LEVELS", "__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'mcsan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
