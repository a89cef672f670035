"""Short copy and look-up drills: generic text whose loss only falls once the model can copy.

A Search-R1 policy must copy a name from the question into its query and a name from a retrieved
passage into its answer. Names in the toy worlds are fresh, so nothing but copying predicts them;
but demonstrations spend most of their tokens on the instruction and the passages, and a tiny model
trained for a few hundred steps forms the copying circuit (induction heads) late or not at all.
Drills put the same pressure in few tokens:

    repeat   "Names: Dunnal Labs, Pesel Tudur, Gillil. Again: Dunnal Labs, Pesel Tudur, Gillil."
    look-up  "Pesel Tudur was born in Gillil. Vovel Dar was born in Serzo. ... Where was Vovel Dar
              born? Serzo."  (the corpus's own phrasings, questions in random order)

Names come from a `NameMaker` with the evaluation world's words forbidden, like every other
pretraining text.
"""

from __future__ import annotations

import random

from sr1lib.toyworld.names import COMPANY_WORDS, RIVER_WORD, UNIVERSITY_WORDS, NameMaker

# (fact sentence, question, answer kind): {s} subject, {o} object.
LOOKUPS = (
    ("{s} was born in {o}.", "Where was {s} born?", "city"),
    ("{s} was founded by {o}.", "Who founded {s}?", "person"),
    ("{s} is headquartered in {o}.", "Where is {s} headquartered?", "city"),
    ("The capital of {s} is {o}.", "What is the capital of {s}?", "city"),
    ("{s} studied at {o}.", "Where did {s} study?", "university"),
    ("The {o} flows through {s}.", "Which river flows through {s}?", "river"),
    ("{s} is a city in {o}.", "In which country is {s}?", "country"),
)
SUBJECT_KIND = {"Where was {s} born?": "person", "Who founded {s}?": "company",
                "Where is {s} headquartered?": "company", "What is the capital of {s}?": "country",
                "Where did {s} study?": "person", "Which river flows through {s}?": "city",
                "In which country is {s}?": "city"}


def drill_name(names: NameMaker, kind: str) -> str:
    rng = names.rng
    if kind == "person":
        return f"{names.word()} {names.word()}"
    if kind == "company":
        return f"{names.word()} {rng.choice(COMPANY_WORDS)}"
    if kind == "university":
        return f"{names.word()} {rng.choice(UNIVERSITY_WORDS)}"
    if kind == "river":
        return f"{names.word()} {RIVER_WORD}"
    if kind == "country":
        return names.country()
    return names.city()


def repeat_drill(names: NameMaker) -> str:
    rng = names.rng
    items = [drill_name(names, rng.choice(("person", "company", "city", "river"))) for _ in range(rng.randint(2, 5))]
    return f"Names: {', '.join(items)}. Again: {', '.join(items)}."


def lookup_drill(names: NameMaker) -> str:
    rng = names.rng
    fact, question, okind = rng.choice(LOOKUPS)
    pairs = [(drill_name(names, SUBJECT_KIND[question]), drill_name(names, okind)) for _ in range(rng.randint(3, 6))]
    lines = [fact.format(s=s, o=o) for s, o in pairs]
    asked = rng.sample(pairs, rng.randint(1, min(3, len(pairs))))
    lines += [f"{question.format(s=s)} {o}." for s, o in asked]
    return " ".join(lines)


def drills(n: int, rng: random.Random, forbidden: set[str]) -> list[str]:
    """`n` drill documents, each a few drills long, alternating kinds at random."""
    names = NameMaker(rng, forbidden)
    out = []
    for _ in range(n):
        parts = [lookup_drill(names) if rng.random() < 0.6 else repeat_drill(names) for _ in range(4)]
        out.append("\n".join(parts))
        if len(names.used) > 20_000:  # keep the fresh-name search fast
            names = NameMaker(rng, forbidden)
    return out
