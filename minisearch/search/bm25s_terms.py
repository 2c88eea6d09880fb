"""The terms of a bm25s index: the analyzer that both the streamed build and the backend's queries
use (the same terms on both sides, or a query misses its passages), and the optional extra's import.
"""

from __future__ import annotations

import re

from minisearch.errors import UserError

WORD = re.compile(r"\w+(?:\.\w+)*")


def import_bm25s():
    try:
        import bm25s
        import Stemmer
    except ImportError as e:
        raise UserError(f"the bm25s backend needs the optional extra ({e.name} is missing): "
                        "pip install -e '.[bm25s]'") from e
    return bm25s, Stemmer


class Analyzer:
    """Words (dotted abbreviations kept whole), lowercased, stop words out, stemmed."""

    def __init__(self):
        bm25s, Stemmer = import_bm25s()
        from bm25s.stopwords import STOPWORDS_EN

        self.stop = frozenset(STOPWORDS_EN)
        self.stemmer = Stemmer.Stemmer("english")

    def __call__(self, text: str) -> list[str]:
        words = [w for w in WORD.findall(text.lower()) if w not in self.stop]
        return self.stemmer.stemWords(words)
