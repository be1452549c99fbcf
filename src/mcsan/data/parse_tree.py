"""A spaCy parse as plain, editable nodes, with our lemmas and the word classes the rules use.

Lemmas come from lemminflect's dictionary where it knows the form (spaCy's rule lemmatiser
strips suffixes towards any word it knows: "riding" -> "rid"); ``mcsan.data.repairs`` has
the measurements. lemminflect is imported where a word is first looked up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.tokens import Doc

NOUN_POS = frozenset({"NOUN", "PROPN"})
SINGULAR_NOUN_TAGS = frozenset({"NN", "NNP"})
PLURAL_NOUN_TAGS = frozenset({"NNS", "NNPS"})
SINGULAR_PRONOUNS = frozenset({"he", "she", "it", "someone", "somebody", "something", "one"})
PLURAL_PRONOUNS = frozenset({"they", "we", "both", "these", "those"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})


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


# ----- questions about the tree ------------------------------------------------------------
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


def is_singular(tree: Tree, node: Node) -> bool:
    if node.pos == "PRON":
        return node.text in SINGULAR_PRONOUNS
    return node.tag in SINGULAR_NOUN_TAGS and not tree.children(node, "conj")


def is_plural(tree: Tree, node: Node) -> bool:
    if node.pos == "PRON":
        return node.text in PLURAL_PRONOUNS
    return node.tag in PLURAL_NOUN_TAGS or bool(tree.children(node, "conj"))
