"""What a caption parse is: its tokens and, per attribute level, labelled token spans.

:class:`CaptionParse` is what ``mcsan prepare`` stores for every caption and what the model's
batches read; ``mcsan.data.semantics`` makes them (the rules are in ``events`` and
``repairs``). Relationships keep their (subject, predicate, object) roles and their event's
order in time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcsan import ATTRIBUTE_LEVELS


@dataclass(slots=True)
class Attribute:
    label: str
    tokens: list[int]  # indices into CaptionParse.tokens
    # relationships only: (subject, predicate, object) token indices; their union is `tokens`
    roles: tuple[list[int], list[int], list[int]] | None = None
    # relationships only: the event's rank in time where the caption states it ("X and then
    # Y": X 1, Y 2; "Y after X": the same), 0 where it does not
    order: int = 0


@dataclass(slots=True)
class CaptionParse:
    tokens: list[str]  # lower-cased spaCy tokens, whitespace tokens dropped
    entity: list[Attribute] = field(default_factory=list)
    action: list[Attribute] = field(default_factory=list)
    relationship: list[Attribute] = field(default_factory=list)
    modifier: list[Attribute] = field(default_factory=list)  # adjectives of the entities

    def level(self, level: str) -> list[Attribute]:
        if level not in ATTRIBUTE_LEVELS:
            raise KeyError(f"unknown attribute level {level!r}; choose from {ATTRIBUTE_LEVELS}")
        return getattr(self, level)

    def labels(self, level: str) -> list[str]:
        return [attribute.label for attribute in self.level(level)]

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON form: the tokens joined by single spaces (no token holds a space),
        each entity, action and modifier as ``[label, [token indices]]`` and each
        relationship as ``[label, [subject indices], [predicate indices], [object indices],
        order]``."""
        return {
            "tokens": " ".join(self.tokens),
            "entity": [[a.label, a.tokens] for a in self.entity],
            "action": [[a.label, a.tokens] for a in self.action],
            "relationship": [[a.label, *a.roles, a.order] for a in self.relationship],
            "modifier": [[a.label, a.tokens] for a in self.modifier],
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CaptionParse:
        tokens = record["tokens"]
        return cls(
            tokens.split(" ") if tokens else [],
            [Attribute(label, indices) for label, indices in record["entity"]],
            [Attribute(label, indices) for label, indices in record["action"]],
            [
                relationship(label, (subject, predicate, obj), order)
                for label, subject, predicate, obj, order in record["relationship"]
            ],
            [Attribute(label, indices) for label, indices in record["modifier"]],
        )


def relationship(label: str, roles: Sequence[Iterable[int]], order: int = 0) -> Attribute:
    """A relationship attribute from its (subject, predicate, object) token indices."""
    subject, predicate, obj = (sorted(set(part)) for part in roles)
    tokens = sorted({*subject, *predicate, *obj})
    return Attribute(label, tokens, (subject, predicate, obj), order)
