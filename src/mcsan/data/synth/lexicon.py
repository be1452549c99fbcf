"""The words of the synthetic benchmark: its concepts (entities, actions, scenes, colours,
sizes) and the words and phrases that name each one.

Every concept has one name, used in the ground truth and in the concept vectors of the
features; captions name it with any of its synonyms. Entities and actions come in order of
typical caption frequency: presets take the first ``num_entities`` / ``num_actions``, and the
Zipf laws of :mod:`mcsan.data.synth.world` follow this order.
"""

from __future__ import annotations

# Entities in order of typical caption frequency (the Zipf law follows this order).
# (concept, kind, synonyms); "person" entities wear their colour ("a man in a red shirt").
ENTITIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("man", "person", ("man", "guy", "gentleman")),
    ("woman", "person", ("woman", "lady")),
    ("dog", "animal", ("dog", "puppy")),
    ("girl", "person", ("girl",)),
    ("boy", "person", ("boy",)),
    ("cat", "animal", ("cat", "kitten")),
    ("child", "person", ("child", "kid")),
    ("horse", "animal", ("horse", "pony")),
    ("baby", "person", ("baby", "infant")),
    ("player", "person", ("player", "athlete")),
    ("chef", "person", ("chef", "cook")),
    ("bird", "animal", ("bird",)),
    ("police officer", "person", ("police officer", "policeman", "cop")),
    ("monkey", "animal", ("monkey",)),
    ("doctor", "person", ("doctor", "physician")),
    ("elephant", "animal", ("elephant",)),
    ("dancer", "person", ("dancer",)),
    ("rabbit", "animal", ("rabbit", "bunny")),
    ("teacher", "person", ("teacher",)),
    ("bear", "animal", ("bear",)),
    ("student", "person", ("student", "pupil")),
    ("lion", "animal", ("lion",)),
    ("robot", "thing", ("robot", "android")),
    ("duck", "animal", ("duck",)),
    ("soldier", "person", ("soldier",)),
    ("pig", "animal", ("pig", "piglet")),
    ("farmer", "person", ("farmer",)),
    ("cow", "animal", ("cow",)),
    ("nurse", "person", ("nurse",)),
    ("tiger", "animal", ("tiger",)),
    ("clown", "person", ("clown",)),
    ("sheep", "animal", ("sheep",)),
    ("singer", "person", ("singer", "vocalist")),
    ("goat", "animal", ("goat",)),
    ("firefighter", "person", ("firefighter", "fireman")),
    ("fox", "animal", ("fox",)),
    ("pilot", "person", ("pilot",)),
    ("chicken", "animal", ("chicken", "hen")),
    ("cowboy", "person", ("cowboy",)),
    ("mouse", "animal", ("mouse",)),
    ("knight", "person", ("knight",)),
    ("wolf", "animal", ("wolf",)),
    ("pirate", "person", ("pirate",)),
    ("deer", "animal", ("deer",)),
    ("wizard", "person", ("wizard", "magician")),
    ("penguin", "animal", ("penguin",)),
    ("king", "person", ("king",)),
    ("squirrel", "animal", ("squirrel",)),
    ("queen", "person", ("queen",)),
    ("kangaroo", "animal", ("kangaroo",)),
    ("giraffe", "animal", ("giraffe",)),
    ("zebra", "animal", ("zebra",)),
    ("owl", "animal", ("owl",)),
    ("parrot", "animal", ("parrot",)),
    ("frog", "animal", ("frog",)),
    ("turtle", "animal", ("turtle", "tortoise")),
    ("donkey", "animal", ("donkey",)),
    ("camel", "animal", ("camel",)),
    ("goose", "animal", ("goose",)),
    ("dolphin", "animal", ("dolphin",)),
)

# Verb synonyms as (third person present, gerund, past participle).
VerbForms = tuple[str, str, str]
TRANSITIVE_ACTIONS: tuple[tuple[str, tuple[VerbForms, ...]], ...] = (
    (
        "chase",
        (
            ("chases", "chasing", "chased"),
            ("runs after", "running after", "run after"),
            ("pursues", "pursuing", "pursued"),
        ),
    ),
    ("push", (("pushes", "pushing", "pushed"), ("shoves", "shoving", "shoved"))),
    ("follow", (("follows", "following", "followed"), ("trails", "trailing", "trailed"))),
    (
        "watch",
        (
            ("watches", "watching", "watched"),
            ("looks at", "looking at", "looked at"),
            ("observes", "observing", "observed"),
        ),
    ),
    ("pull", (("pulls", "pulling", "pulled"), ("drags", "dragging", "dragged"))),
    ("carry", (("carries", "carrying", "carried"),)),
    ("feed", (("feeds", "feeding", "fed"),)),
    ("kick", (("kicks", "kicking", "kicked"),)),
    ("greet", (("greets", "greeting", "greeted"), ("waves at", "waving at", "waved at"))),
    ("hit", (("hits", "hitting", "hit"), ("strikes", "striking", "struck"))),
    ("lift", (("lifts", "lifting", "lifted"), ("picks up", "picking up", "picked up"))),
    ("catch", (("catches", "catching", "caught"), ("grabs", "grabbing", "grabbed"))),
    ("help", (("helps", "helping", "helped"), ("assists", "assisting", "assisted"))),
    ("attack", (("attacks", "attacking", "attacked"),)),
    ("lick", (("licks", "licking", "licked"),)),
    ("pet", (("pets", "petting", "petted"), ("strokes", "stroking", "stroked"))),
    ("bite", (("bites", "biting", "bitten"),)),
    ("tickle", (("tickles", "tickling", "tickled"),)),
    ("scare", (("scares", "scaring", "scared"), ("frightens", "frightening", "frightened"))),
    ("wash", (("washes", "washing", "washed"), ("bathes", "bathing", "bathed"))),
    ("teach", (("teaches", "teaching", "taught"),)),
    ("lead", (("leads", "leading", "led"), ("guides", "guiding", "guided"))),
    ("rescue", (("rescues", "rescuing", "rescued"), ("saves", "saving", "saved"))),
    ("hold", (("holds", "holding", "held"),)),
    ("film", (("films", "filming", "filmed"), ("photographs", "photographing", "photographed"))),
    ("tease", (("teases", "teasing", "teased"),)),
)
INTRANSITIVE_ACTIONS: tuple[tuple[str, tuple[VerbForms, ...]], ...] = (
    ("run", (("runs", "running", "run"), ("jogs", "jogging", "jogged"))),
    ("dance", (("dances", "dancing", "danced"),)),
    ("jump", (("jumps", "jumping", "jumped"), ("leaps", "leaping", "leapt"))),
    ("swim", (("swims", "swimming", "swum"),)),
    ("walk", (("walks", "walking", "walked"), ("strolls", "strolling", "strolled"))),
    ("sleep", (("sleeps", "sleeping", "slept"), ("naps", "napping", "napped"))),
    ("sing", (("sings", "singing", "sung"),)),
    ("laugh", (("laughs", "laughing", "laughed"),)),
    ("sit", (("sits", "sitting", "sat"),)),
    ("cry", (("cries", "crying", "cried"),)),
)
# (concept, prepositional phrases that name it)
SCENES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("beach", ("on the beach", "on a beach", "at the beach")),
    ("park", ("in a park", "in the park", "at the park")),
    ("kitchen", ("in a kitchen", "in the kitchen")),
    ("street", ("on a street", "on the street", "in the street")),
    ("field", ("in a field", "in a grassy field")),
    ("stage", ("on a stage", "on the stage")),
    ("snow", ("in the snow",)),
    ("forest", ("in a forest", "in the woods")),
    ("zoo", ("at the zoo", "in a zoo")),
    ("garden", ("in a garden", "in the backyard")),
    ("pool", ("by a pool", "next to a swimming pool")),
    ("classroom", ("in a classroom",)),
    ("farm", ("on a farm",)),
    ("river", ("by a river", "near a river")),
    ("living room", ("in a living room", "in the living room")),
    ("desert", ("in the desert",)),
    ("gym", ("in a gym", "at the gym")),
    ("playground", ("on a playground", "at the playground")),
)
COLOURS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("red", ("red",)),
    ("blue", ("blue",)),
    ("green", ("green",)),
    ("yellow", ("yellow",)),
    ("black", ("black",)),
    ("white", ("white",)),
    ("brown", ("brown",)),
    ("gray", ("gray", "grey")),
    ("orange", ("orange",)),
    ("pink", ("pink",)),
    ("purple", ("purple",)),
)
SIZES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("small", ("small", "little")),
    ("big", ("big", "large")),
)
# Vague names a caption may use instead of the entity's own ("an animal chases a person").
HYPERNYMS: dict[str, tuple[str, ...]] = {
    "person": ("person",),
    "animal": ("animal", "creature"),
    "thing": ("machine",),
}
# What a person's colour is worn on.
GARMENTS: tuple[str, ...] = ("shirt", "jacket", "dress", "hat")
# Pronouns for a subject whose noun says its gender.
PRONOUNS: dict[str, str] = {
    "man": "he", "boy": "he", "king": "he", "cowboy": "he", "wizard": "he",
    "woman": "she", "girl": "she", "queen": "she",
}  # fmt: skip
