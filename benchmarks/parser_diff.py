"""What a change of the caption parser changes, for a hand check before it lands.

Two versions of ``mcsan.data.semantics`` read the same spaCy parse of every caption: this
checkout's, and the one in another source tree (``--old-src``, the ``src`` folder of another
commit: ``git archive COMMIT | tar -x -C /tmp/old`` gives ``/tmp/old/src``). The script counts,
for each version, the captions with at least one entity, action and relationship (coverage),
and the captions whose entities, actions or relationships differ and keeps, for each repair rule
of this checkout that fired on them, a seeded random sample with the relationships that only
the old or only the new parser finds. Captions are the 140,200 MSR-VTT train/val captions,
or one per line of ``--captions``. Writes ``benchmarks/results/parser_diff.json`` unless
``--out`` says otherwise.

    python benchmarks/parser_diff.py --old-src /tmp/old/src [--samples 20] [--captions FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

from mcsan.data import semantics

RESULTS = Path(__file__).resolve().parent / "results"


def load_old_semantics(src: Path) -> ModuleType:
    """``mcsan.data.semantics`` of another source tree, with the modules it imports from that
    tree (the parser spans several modules); this checkout's modules are put back after."""
    path = src / "mcsan" / "data" / "semantics.py"
    if not path.is_file():
        raise SystemExit(f"{path} not found: --old-src must be the src folder of a checkout")
    ours = {name: m for name, m in sys.modules.items() if name.split(".")[0] == "mcsan"}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    try:
        return importlib.import_module("mcsan.data.semantics")
    finally:
        sys.path.remove(str(src))
        for name in [n for n in sys.modules if n.split(".")[0] == "mcsan"]:
            del sys.modules[name]
        sys.modules.update(ours)


def readings(module: ModuleType, doc) -> tuple[list[str], semantics.CaptionParse]:
    """The rules that fired and the parse of one spaCy ``Doc`` under one parser version."""
    tree = module.Tree.from_doc(doc)
    return module.repair_tree(tree), module.extract(tree)


def compare(texts: list[str], old: ModuleType, samples: int, batch_size: int) -> dict:
    nlp = semantics.load_spacy()
    changed: Counter[str] = Counter()
    found: dict[str, list[dict]] = {}
    changed_captions = 0
    start = time.perf_counter()
    levels = ("entity", "action", "relationship")
    # captions with at least one attribute of each level, and attributes in all, per version
    coverage = {version: Counter() for version in ("old", "new")}
    docs = nlp.pipe(texts, batch_size=batch_size)
    for text, doc in tqdm(zip(texts, docs, strict=True), total=len(texts), desc="comparing"):
        fired, new = readings(semantics, doc)
        _, before = readings(old, doc)
        for version, parse in (("old", before), ("new", new)):
            for level in levels:
                count = len(parse.labels(level))
                coverage[version][f"captions_with_{level}"] += count > 0
                coverage[version][f"{level}_attributes"] += count
        if all(new.labels(level) == before.labels(level) for level in levels):
            continue
        changed_captions += 1
        old_triples, new_triples = set(before.labels("relationship")), set(new.labels("relationship"))
        for rule in sorted(set(fired)):
            changed[rule] += 1
            found.setdefault(rule, []).append({
                "caption": text,
                "old_only": sorted(old_triples - new_triples),
                "new_only": sorted(new_triples - old_triples),
                "entities_changed": new.labels("entity") != before.labels("entity"),
            })  # fmt: skip
    rng = random.Random(0)
    return {
        "benchmark": "parser_diff",
        "old_parser_version": old.PARSER_VERSION,
        "new_parser_version": semantics.PARSER_VERSION,
        "model": semantics.model_identity(nlp),
        "captions": len(texts),
        "changed_captions": changed_captions,
        "coverage": {version: dict(counts) for version, counts in coverage.items()},
        "changed_captions_by_rule": dict(changed.most_common()),
        "samples": {
            rule: rng.sample(items, min(samples, len(items))) for rule, items in found.items()
        },
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-src", type=Path, required=True, metavar="DIR")
    parser.add_argument("--captions", type=Path, metavar="FILE",
                        help="one caption per line (default: the MSR-VTT train/val captions)")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS / "parser_diff.json")
    args = parser.parse_args(argv)
    old = load_old_semantics(args.old_src)
    if args.captions:
        texts = [line.strip() for line in args.captions.read_text().splitlines() if line.strip()]
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from prepare import msrvtt_train_val

        texts = [caption.text for caption in msrvtt_train_val().all_captions()]
    result = compare(texts, old, args.samples, args.batch_size)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
