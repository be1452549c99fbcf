"""Search results for people (a ranked table that says why) and for programs (JSON).

The JSON that ``mcsan search --json`` prints (schema ``mcsan.search/1``)::

    {"schema": "mcsan.search/1",
     "index": "<index directory>", "videos": <videos in the index>, "k": <k asked>,
     "results": [                                   one per query, in the order given
       {"query": {"text": ..., "entities": [...], "actions": [...],
                  "relationships": ["dog|chase|cat", ...], "unknown_words": [...]},
        "weights": {level: w_l},                    the fused score's weights
        "hits": [                                   best first
          {"rank": 1, "video_id": ..., "score": <fused score>,
           "levels": {level: <cosine>},
           "matches": [{"level": ..., "label": ..., "probability": ..., "rank": ...}],
           "source": <video file or null>, "timestamps": [<seconds>] or null}]}]}

``matches`` are the query's labels among the video's most likely predicted attributes
(``rank`` among them); relationship labels include the role halves ``dog|chase|`` (who
does it) and ``|chase|cat`` (to whom).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcsan.index import SearchResult, VideoIndex

SCHEMA = "mcsan.search/1"


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"entity=2,relationship=1"`` -> {"entity": 2.0, "relationship": 1.0}; the levels are
    checked against the model when searching."""
    if text is None:
        return None
    weights: dict[str, float] = {}
    for part in text.split(","):
        level, equals, value = part.partition("=")
        level = level.strip()
        if not equals or not level:
            raise ValueError(f"--weights part {part!r} must look like LEVEL=NUMBER, e.g. "
                             "entity=2,relationship=1")
        try:
            weights[level] = float(value)
        except ValueError:
            raise ValueError(f"--weights {level}={value!r} is not a number") from None
    return weights


def results_json(index: VideoIndex, results: list[SearchResult], k: int) -> dict[str, Any]:
    return {"schema": SCHEMA, "index": str(index.directory), "videos": index.count, "k": k,
            "results": [result.to_json() for result in results]}


def format_results(results: list[SearchResult]) -> str:
    """Per query: what the parser read, then rank, video, fused score, each level's score
    and the matching predicted attributes."""
    blocks = []
    for result in results:
        query = result.query
        levels = list(result.weights)
        lines = [
            f'query: "{query.text}"',
            f"  entities: {', '.join(query.entities) or '-'}   actions: "
            f"{', '.join(query.actions) or '-'}   relationships: "
            f"{', '.join(query.relationships) or '-'}",
        ]
        if query.unknown_words:
            lines.append(f"  words the model does not know: {', '.join(query.unknown_words)}")
        width = max([len("video")] + [len(hit.video_id) for hit in result.hits])
        lines.append(f"  {'rank':>4}  {'video':<{width}}  {'fused':>6}  "
                     + "  ".join(f"{level[:6]:>6}" for level in levels)
                     + "  why: query attributes among the video's predicted ones")
        for hit in result.hits:
            why = ", ".join(f"{m.label} {m.probability:.2f}" for m in hit.matches) or "-"
            lines.append(f"  {hit.rank:>4}  {hit.video_id:<{width}}  {hit.score:6.3f}  "
                         + "  ".join(f"{hit.levels[level]:6.3f}" for level in levels)
                         + f"  {why}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
