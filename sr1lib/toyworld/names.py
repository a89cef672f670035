"""Invented names made of syllables, so no fact about them can come from anywhere but the corpus.

A name word is two or three syllables (onset + vowel + optional coda), capitalised: `Zarvok`,
`Melin`, `Quenbrook`. The inventory is small on purpose: a BPE tokenizer trained on the worlds
learns the syllables as tokens, so every name is a few tokens that a tiny model can copy.

`NameMaker` hands out words that are unique within one world and never in its `forbidden` set.
Two ways to keep evaluation facts out of pretraining text (`WorldConfig.name_pool`):

- fresh names (pool 0): every world invents its words, and the pretraining worlds get the
  evaluation world's words as `forbidden`, so no evaluation name occurs in pretraining at all;
- a fixed pool (`NamePool`): every world, evaluation and pretraining alike, draws its words from
  the same few hundred, and only which entity gets which word and every fact between them are
  drawn per world. A name then says nothing about its facts, yet the tokenizer sees each pool word
  often enough to make it one token, so copying a name is copying one or two tokens instead of
  four to seven, the skill a tiny policy finds hardest to sample right.
"""

from __future__ import annotations

import functools
import random
from typing import Iterable

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
VOWELS = ("a", "e", "i", "o", "u")
CODAS = ("", "", "n", "r", "l")

# Endings that tell a reader what kind of place a word names (cities and countries only).
CITY_SUFFIXES = ("", "", "", "ton", "burg", "ford", "port", "mere")
COUNTRY_SUFFIXES = ("ia", "land", "ora", "esh", "ar")
RIVER_WORD = "River"
UNIVERSITY_WORDS = ("University", "Institute", "College", "Academy")
COMPANY_WORDS = ("Industries", "Labs", "Works", "Trading", "Motors", "Foods", "Mills", "Group")

MAX_TRIES = 10_000
POOL_SEED = "sr1-toyworld-name-pool"
# Shares of a pool's size given to cities and countries (a full world needs ~520 plain words,
# 60 city and 20 country names); every kind keeps some slack so worlds differ in the words they use.
POOL_KIND_SHARES = {"word": 1.0, "city": 1 / 6, "country": 1 / 16}


def syllable(rng: random.Random) -> str:
    return rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)


def raw_word(rng: random.Random, min_syllables: int = 2, max_syllables: int = 2) -> str:
    n = rng.randint(min_syllables, max_syllables)
    word = "".join(syllable(rng) for _ in range(n))
    return word[:1].upper() + word[1:]


# How each kind of word is invented: (suffixes, min syllables, max syllables).
KINDS = {"word": (("",), 2, 2), "city": (CITY_SUFFIXES, 2, 2), "country": (COUNTRY_SUFFIXES, 1, 2)}


def invent(rng: random.Random, kind: str, taken: set[str]) -> str:
    """A word of `kind` (4 to 14 letters) whose lower-case form is not in `taken`."""
    suffixes, lo, hi = KINDS[kind]
    for _ in range(MAX_TRIES):
        w = raw_word(rng, lo, hi) + rng.choice(suffixes)
        if 4 <= len(w) <= 14 and w.lower() not in taken:
            return w
    raise RuntimeError(f"NameMaker: no fresh {kind} name after {MAX_TRIES} tries ({len(taken)} taken); "
                       "make the world smaller")


NamePool = dict[str, tuple[str, ...]]  # kind -> its words


@functools.lru_cache(maxsize=8)
def name_pool(size: int) -> NamePool:
    """The fixed pool of `size` plain words (plus cities and countries in proportion), the same on
    every machine and for every world seed."""
    rng = random.Random(POOL_SEED)
    taken: set[str] = set()
    pool: dict[str, tuple[str, ...]] = {}
    for kind, share in POOL_KIND_SHARES.items():
        words = []
        for _ in range(max(1, round(size * share))):
            w = invent(rng, kind, taken)
            taken.add(w.lower())
            words.append(w)
        pool[kind] = tuple(words)
    return pool


class NameMaker:
    """Unique name words for one world, drawn from `rng`, avoiding `forbidden` (compared lower-case):
    invented, or taken from `pool` when one is given."""

    def __init__(self, rng: random.Random, forbidden: Iterable[str] = (), pool: NamePool | None = None):
        self.rng = rng
        self.forbidden = {w.lower() for w in forbidden}
        self.pool = pool
        self.used: set[str] = set()
        self.free: dict[str, list[str]] = {}  # kind -> pool words not yet drawn, in pool order

    def draw(self, kind: str = "word") -> str:
        if self.pool is None:
            w = invent(self.rng, kind, self.used | self.forbidden)
        else:
            if kind not in self.free:
                self.free[kind] = [w for w in self.pool[kind] if w.lower() not in self.forbidden]
            free = self.free[kind]
            if not free:
                raise RuntimeError(f"NameMaker: the name pool's {len(self.pool[kind])} {kind} words are all used; "
                                   "make the world smaller or the pool (WorldConfig.name_pool) larger")
            w = free.pop(self.rng.randrange(len(free)))
        self.used.add(w.lower())
        return w

    def word(self) -> str:
        return self.draw("word")

    def person_first(self) -> str:
        return self.draw("word")

    def city(self) -> str:
        return self.draw("city")

    def country(self) -> str:
        return self.draw("country")


def name_words(name: str) -> list[str]:
    """The invented words of an entity name (generic words such as `River` or `Labs` left out)."""
    generic = {RIVER_WORD, *UNIVERSITY_WORDS, *COMPANY_WORDS}
    return [w for w in name.split() if w not in generic]
