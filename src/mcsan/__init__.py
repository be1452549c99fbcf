"""MCSAN: Multi-Level Cross-Modal Semantic Alignment Network for video-text retrieval."""

__version__ = "0.1.0"

# The four semantic levels, named as the paper names them; one name per concept everywhere.
LEVELS: tuple[str, ...] = ("global", "entity", "action", "relationship")
# The levels that carry attribute vocabularies (mined from captions).
ATTRIBUTE_LEVELS: tuple[str, ...] = ("entity", "action", "relationship")
