"""Invented names made of syllables, so no fact about them can come from anywhere but the corpus.

A name word is two or three syllables (onset + vowel + optional coda), capitalised: `Zarvok`,
`Melin`, `Quenbrook`. The inventory is small on purpose: a BPE tokenizer trained on the worlds
learns the syllables as tokens, so every name is a few tokens that a tiny model can copy.

`NameMaker` hands out words that are unique within one world and never in its `forbidden` set.
The pretraining worlds get the evaluation world's name words as `forbidden`, which is what keeps
evaluation facts out of pretraining text (see `sr1lib.toyworld.world`).
"""

from __future__ import annotations

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


def syllable(rng: random.Random) -> str:
    return rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)


def raw_word(rng: random.Random, min_syllables: int = 2, max_syllables: int = 2) -> str:
    n = rng.randint(min_syllables, max_syllables)
    word = "".join(syllable(rng) for _ in range(n))
    return word[:1].upper() + word[1:]


class NameMaker:
    """Unique name words for one world, drawn from `rng`, avoiding `forbidden` (compared lower-case)."""

    def __init__(self, rng: random.Random, forbidden: Iterable[str] = ()):
        self.rng = rng
        self.forbidden = {w.lower() for w in forbidden}
        self.used: set[str] = set()

    def word(self, suffixes: tuple[str, ...] = ("",), min_syllables: int = 2, max_syllables: int = 2) -> str:
        """A fresh word: 2 syllables by default, plus one of `suffixes`; 4 to 14 letters."""
        for _ in range(MAX_TRIES):
            w = raw_word(self.rng, min_syllables, max_syllables) + self.rng.choice(suffixes)
            key = w.lower()
            if 4 <= len(w) <= 14 and key not in self.used and key not in self.forbidden:
                self.used.add(key)
                return w
        raise RuntimeError(f"NameMaker: no fresh name after {MAX_TRIES} tries "
                           f"({len(self.used)} used, {len(self.forbidden)} forbidden); make the world smaller")

    def person_first(self) -> str:
        return self.word()

    def city(self) -> str:
        return self.word(CITY_SUFFIXES)

    def country(self) -> str:
        return self.word(COUNTRY_SUFFIXES, 1, 2)


def name_words(name: str) -> list[str]:
    """The invented words of an entity name (generic words such as `River` or `Labs` left out)."""
    generic = {RIVER_WORD, *UNIVERSITY_WORDS, *COMPANY_WORDS}
    return [w for w in name.split() if w not in generic]
