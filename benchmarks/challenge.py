"""Score the caption parser against the hand-labelled challenge set.

``benchmarks/data/challenge/challenge.jsonl`` holds real MSR-VTT captions and constructed
sentences chosen for the constructions a parser gets wrong (pronouns, phrasal verbs, relative
clauses, coordination, existential and perception frames, event order), each with gold events
labelled by hand (``benchmarks/data/challenge/GUIDE.md`` says how). For every class and split
(``dev``: rules may be developed on it; ``test``: held out) the script reports:

- **triples exact**: the share of gold ``subject|predicate|object`` events found exactly among
  the parse's relationships;
- **reversed**: parsed relationships that are a gold event with subject and object exchanged;
- **order**: of the pairs of gold events whose order the caption states, the share that the
  parse orders the same way (both events found, both ordered, same direction);
- **extra**: parsed verb relationships that are no gold event (frames, catenatives, wrong
  roles), per caption.

``--old-src`` scores the parser of another source tree (as ``parser_diff.py`` does), so a
change can be shown before and after. Writes ``benchmarks/results/challenge.json`` unless
``--out`` says otherwise::

    python benchmarks/challenge.py [--old-src /tmp/old/src] [--out FILE] [--show-misses]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
CHALLENGE = HERE / "data" / "challenge" / "challenge.jsonl"
RESULTS = HERE / "results"
CLASSES = ("pronoun", "phrasal", "relative", "coordination", "existential", "order")
SPLITS = ("dev", "test")

# The first word of a prepositional relationship's predicate ("man|in front of|car").
PREPOSITIONS = frozenset(
    ["aboard", "about", "above", "across", "after", "against", "along", "alongside", "amid", "among", "around", "as", "at", "atop", "before", "behind", "below", "beneath", "beside", "besides", "between", "beyond", "by", "despite", "down", "during", "except", "for", "from", "in", "inside", "into", "like", "near", "next", "of", "off", "on", "onto", "opposite", "out", "outside", "over", "past", "per", "round", "since", "than", "through", "throughout", "till", "to", "toward", "towards", "under", "underneath", "unlike", "until", "up", "upon", "via", "with", "within", "without"]
)


def read_challenge(path: Path = CHALLENGE) -> list[dict[str, Any]]:
    """The labelled items, each checked for the fields the scoring reads."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        item = json.loads(line)
        missing = {"id", "class", "split", "text", "events"} - item.keys()
        if missing or item["class"] not in CLASSES or item["split"] not in SPLITS:
            raise ValueError(f"{path}:{number}: bad item {item.get('id')!r} (missing {missing})")
        for event in item["events"]:
            if set(event) != {"subject", "predicate", "object", "order"}:
                raise ValueError(f"{path}:{number}: event {event} needs subject, predicate, "
                                 "object and order")
        items.append(item)
    return items


def triple(event: Mapping[str, Any]) -> str:
    return f"{event['subject']}|{event['predicate']}|{event['object']}"


def is_verb_relationship(label: str) -> bool:
    predicate = label.split("|")[1]
    return bool(predicate) and predicate.split()[0] not in PREPOSITIONS


def score_item(item: Mapping[str, Any], parsed: Mapping[str, int]) -> dict[str, Any]:
    """One caption's counts; ``parsed`` maps each parsed relationship label to its order."""
    gold = [triple(event) for event in item["events"]]
    gold_set = set(gold)
    found = [label for label in gold if label in parsed]
    reversed_ = sorted(
        label for label in parsed
        if label not in gold_set and any(
            label == f"{e['object']}|{e['predicate']}|{e['subject']}"
            for e in item["events"] if e["subject"] and e["object"] and e["subject"] != e["object"]
        )
    )  # fmt: skip
    pairs = right = 0
    events = item["events"]
    for i, first in enumerate(events):
        for second in events[i + 1:]:
            if not first["order"] or not second["order"] or first["order"] == second["order"]:
                continue
            pairs += 1
            a, b = parsed.get(triple(first), 0), parsed.get(triple(second), 0)
            if a and b and (a < b) == (first["order"] < second["order"]) and a != b:
                right += 1
    extra = sorted(
        label for label in parsed if is_verb_relationship(label) and label not in gold_set
    )
    return {
        "gold": len(gold), "exact": len(found), "missed": sorted(gold_set - set(parsed)),
        "reversed": reversed_, "order_pairs": pairs, "order_right": right, "extra": extra,
    }  # fmt: skip


def parse_all(texts: Sequence[str], semantics: ModuleType) -> list[dict[str, int]]:
    """Each text's relationships as ``{label: order}`` under one parser module."""
    nlp = semantics.load_spacy()
    result = []
    for doc in nlp.pipe(texts, batch_size=256):
        parse = semantics.parse_doc(doc)
        result.append({a.label: getattr(a, "order", 0) for a in parse.relationship})
    return result


def summarise(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    total = defaultdict(int)
    for row in rows:
        for key in ("gold", "exact", "order_pairs", "order_right"):
            total[key] += row[key]
        total["reversed"] += len(row["reversed"])
        total["extra"] += len(row["extra"])
    return {
        "captions": len(rows),
        "gold_triples": total["gold"],
        "triples_exact": round(total["exact"] / total["gold"], 4) if total["gold"] else None,
        "reversed": total["reversed"],
        "order_pairs": total["order_pairs"],
        "order_right": (
            round(total["order_right"] / total["order_pairs"], 4) if total["order_pairs"]
            else None
        ),
        "extra_per_caption": round(total["extra"] / len(rows), 3) if rows else None,
    }


def score(items: Sequence[Mapping[str, Any]], semantics: ModuleType) -> dict[str, Any]:
    start = time.perf_counter()
    parsed = parse_all([item["text"] for item in items], semantics)
    rows = [score_item(item, p) | {"id": item["id"]} for item, p in zip(items, parsed,
                                                                       strict=True)]
    by: dict[tuple[str, str], list] = defaultdict(list)
    for item, row in zip(items, rows, strict=True):
        by[item["class"], item["split"]].append(row)
        by[item["class"], "all"].append(row)
        by["all", item["split"]].append(row)
        by["all", "all"].append(row)
    table = {
        f"{cls}/{split}": summarise(by[cls, split])
        for cls in (*CLASSES, "all") for split in (*SPLITS, "all") if by[cls, split]
    }
    return {
        "benchmark": "challenge",
        "parser_version": semantics.PARSER_VERSION,
        "items": len(items),
        "table": table,
        "misses": [row for row in rows if row["missed"] or row["reversed"]],
        "seconds": round(time.perf_counter() - start, 1),
    }


def print_table(result: Mapping[str, Any]) -> None:
    print(f"parser version {result['parser_version']}, {result['items']} captions")
    print("| class | split | captions | gold triples | exact | reversed | order pairs | "
          "order right | extra / caption |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, row in result["table"].items():
        cls, split = key.split("/")
        exact = "-" if row["triples_exact"] is None else f"{100 * row['triples_exact']:.1f} %"
        order = "-" if row["order_right"] is None else f"{100 * row['order_right']:.1f} %"
        print(f"| {cls} | {split} | {row['captions']} | {row['gold_triples']} | {exact} | "
              f"{row['reversed']} | {row['order_pairs']} | {order} | "
              f"{row['extra_per_caption']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-src", type=Path, metavar="DIR",
                        help="score the parser of another checkout's src folder")
    parser.add_argument("--challenge", type=Path, default=CHALLENGE)
    parser.add_argument("--split", choices=SPLITS, help="show misses of one split only")
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "challenge.json")
    args = parser.parse_args(argv)
    if args.old_src:
        sys.path.insert(0, str(HERE))
        from parser_diff import load_old_semantics

        semantics = load_old_semantics(args.old_src)
    else:
        from mcsan.data import semantics
    items = read_challenge(args.challenge)
    result = score(items, semantics)
    print_table(result)
    if args.show_misses:
        by_id = {item["id"]: item for item in items}
        for row in result["misses"]:
            item = by_id[row["id"]]
            if args.split and item["split"] != args.split:
                continue
            print(f"{item['class']:12} {item['text']}\n    missed {row['missed']}"
                  f" reversed {row['reversed']} extra {row['extra']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
