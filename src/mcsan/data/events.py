"""From a repaired parse tree to entities, actions and relationships, each with its tokens.

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
    level keeps their verbs. A verb with neither subject nor object gives ``|verb|``.
    Multi-word prepositions such as "in front of" are kept whole (``man|in front of|car``).
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
"""

from __future__ import annotations

from collections.abc import Iterable

from mcsan.data.caption_parse import Attribute, CaptionParse, relationship
from mcsan.data.parse_tree import (
    NOUN_POS,
    SUBJECT_DEPS,
    Node,
    Tree,
    conjuncts,
    is_complex_preposition_noun,
    is_entity_head,
    is_passive,
    is_plural,
    is_singular,
)

# Nouns that only count or group what follows "of"; that thing takes their role.
QUANTITY_NOUNS = frozenset(
    {"group", "bunch", "couple", "pair", "lot", "number", "crowd", "handful", "few", "variety",
     "series", "kind", "type", "sort", "piece", "set", "lots", "team", "herd", "flock"}
)  # fmt: skip
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
    {"start", "begin", "continue", "keep", "try", "attempt", "go", "come", "seem",
     "appear", "want", "need", "like", "love", "prepare", "get", "learn", "stop", "finish"}
)
# Frames describe the video or its viewer, not what happens in it: "a man is seen riding",
# "we see a dog", "the video shows a car", "someone shows how to cook".
SEEING_VERBS = frozenset({"see", "show", "feature", "display", "depict", "picture"})
VIEWER_PRONOUNS = frozenset({"we", "you", "i", "one"})
VIEWER_VERBS = frozenset({"see", "watch", "notice", "hear", "find"})
MEDIA_NOUNS = frozenset(
    {"video", "clip", "footage", "film", "movie", "scene", "camera", "screen", "segment",
     "advertisement", "commercial", "trailer", "show", "program", "programme",
     "documentary", "cartoon", "animation", "slideshow"}
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
    {"man", "boy", "guy", "gentleman", "father", "dad", "son", "brother", "husband",
     "boyfriend", "grandfather", "grandpa", "king", "prince", "actor", "policeman",
     "fireman", "waiter", "cowboy", "uncle", "groom", "monk", "sir", "businessman",
     "sportsman", "chairman", "spokesman", "salesman", "dude", "lad", "gentlemen", "men",
     "boys", "guys"}
)
FEMALE_NOUNS = frozenset(
    {"woman", "girl", "lady", "mother", "mom", "mum", "daughter", "sister", "wife",
     "girlfriend", "grandmother", "grandma", "queen", "princess", "actress", "hostess",
     "waitress", "aunt", "bride", "nun", "businesswoman", "ladies", "women", "girls",
     "policewoman"}
)
PERSON_NOUNS = MALE_NOUNS | FEMALE_NOUNS | frozenset(
    {"person", "people", "kid", "child", "baby", "infant", "toddler", "teen", "teenager",
     "adult", "player", "singer", "dancer", "artist", "musician", "chef", "cook", "host",
     "reporter", "anchor", "announcer", "commentator", "narrator", "presenter", "speaker",
     "student", "teacher", "doctor", "nurse", "police", "officer", "cop", "soldier",
     "farmer", "driver", "rider", "worker", "customer", "athlete", "coach", "mother",
     "parent", "friend", "couple", "character", "hero", "villain", "pirate", "knight",
     "fighter", "wrestler", "boxer", "runner", "swimmer", "skater", "surfer", "skier",
     "biker", "cyclist", "tourist", "guest", "interviewer", "newscaster", "politician",
     "president", "candidate", "scientist", "professor", "pupil", "employee", "boss",
     "baker", "bartender", "mechanic", "pilot", "sailor", "captain", "firefighter",
     "surgeon", "patient", "dentist", "priest", "preacher", "comedian", "celebrity",
     "star", "rapper", "performer", "magician", "cheerleader", "goalkeeper", "referee",
     "umpire", "judge", "contestant", "model", "fan", "vlogger", "youtuber", "blogger",
     "gamer", "audience", "crowd", "family", "team", "band", "group", "crew", "staff",
     "individual", "human", "user", "owner", "trainer", "instructor", "journalist",
     "interviewee", "member", "vendor", "shopper", "passenger", "wizard", "clown", "doll"}
)
COLLECTIVE_NOUNS = frozenset(
    {"people", "audience", "crowd", "family", "team", "band", "group", "crew", "staff",
     "couple"}
)


# ----- extraction ---------------------------------------------------------------------------
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
    """Whether ``noun`` can be what a pronoun of ``number`` and ``kind`` stands for."""
    if number == "plural":
        return is_plural(tree, noun) or noun.lemma in COLLECTIVE_NOUNS
    return is_singular(tree, noun) and kind in noun_kind(noun)


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
    """The object words of a verb as written (before pronouns and quantity nouns are
    resolved): its direct objects, or the object of the preposition it absorbed."""
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
        written = objects_of(tree, verb, absorbed)
        if is_passive(tree, verb):
            objects = surface
            subjects = [
                a for agent in tree.children(verb, "agent")
                for pobj in tree.children(agent, "pobj")
                for a in arguments(tree, pobj)
            ]  # fmt: skip
        else:
            subjects = surface
            objects = [a for obj in written for a in arguments(tree, obj)]
            objects = objects or relative_object(tree, verb)
        pairs: list[tuple[Node | None, Node | None]]
        if subjects and any(is_reciprocal(tree, o) for o in written):
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
