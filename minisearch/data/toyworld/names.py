"""Invented names: pronounceable, unique across the world, unlike real words.

Words are built from syllables with an unusual flavour (onset + vowel, a coda at the end);
every word is used once per world, so each name is unambiguous for search.

>>> maker = NameMaker(__import__("random").Random(0))
>>> a, b = maker.word(), maker.word()
>>> a != b and a[0].isupper() and len(a) >= 5
True
"""

from __future__ import annotations

import random

ONSETS = ["b", "br", "d", "dr", "f", "fl", "g", "gr", "h", "k", "kl", "kr", "l", "m", "n", "p", "pr",
          "q", "r", "s", "sk", "sl", "st", "t", "th", "tr", "v", "vr", "x", "y", "z", "zv", "j"]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "y", "io", "ua", "eo"]
CODAS = ["", "", "n", "r", "l", "s", "th", "x", "rk", "nd", "sk", "lv", "rz", "m"]
# Common words and names an invented word must not collide with.
REAL = {"baker", "table", "river", "paris", "maria", "linda", "dora", "tina", "moses", "banana",
        "sofa", "pilot", "motor", "total", "human", "radio", "piano", "tomato", "potato", "lemon",
        "melon", "salon", "robin", "kara", "diva", "sara", "vera", "nora", "lola", "gala", "koala"}


class NameMaker:
    """Draws words that were never drawn before from one seeded random stream."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        rng = self.rng
        while True:
            n = rng.randint(*syllables)
            w = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(n)) + rng.choice(CODAS)
            if len(w) >= 5 and w not in self.used and w not in REAL:
                self.used.add(w)
                return w.capitalize()

    def person(self) -> str:
        return f"{self.word((2, 2))} {self.word((2, 3))}"

    def city(self) -> str:
        return self.word((2, 3))

    def river(self) -> str:
        return f"{self.word((2, 3))} River"

    def company(self, industry_word: str) -> str:
        return f"{self.word((2, 3))} {industry_word}"

    def work(self, kind: str) -> str:
        pattern = self.rng.choice(["The {a} of {b}", "{a}", "{a} and {b}", "Songs of {a}", "The Last {a}"])
        if kind != "album" and pattern.startswith("Songs"):
            pattern = "{a} at Dusk"
        return pattern.format(a=self.word((2, 3)), b=self.word((2, 2)))
