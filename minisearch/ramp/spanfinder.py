"""Salient spans of English text, found without downloads: the candidates RAMP masks.

Names (runs of capitalised words, "of"/"the" allowed inside), dates, years, numbers
with units or thousands separators, and quoted titles. The paper's filters come after:
nothing that is (part of) the page title, nothing that occurs twice in the paragraph;
overlaps keep the longer span.

>>> find_spans("Ostrivel\\nQuorvelle Dantrisk was born on 14 March 1873 in Ostrivel. It has 1,204,330 people.")
['Quorvelle Dantrisk', '14 March 1873', '1,204,330 people']
"""

from __future__ import annotations

import re

MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
PATTERNS = [
    rf"\b\d{{1,2}} {MONTH} \d{{3,4}}\b",                                   # 14 March 1873
    rf"\b{MONTH} \d{{1,2}}, \d{{4}}\b",                                      # March 14, 1873
    rf"\b{MONTH} \d{{4}}\b",                                                 # March 1873
    r"\b\d{1,3}(?:,\d{3})+(?:\.\d+)?(?: ?(?:km|kilometres|miles|m|kg|tonnes|people|inhabitants|"
    r"employees|%|percent))?",                                               # 1,204,330 people
    r"\b\d+(?:\.\d+)? ?(?:km|kilometres|miles|metres|kg|tonnes|%|percent)\b",   # 812 km
    r"\b(?:1[0-9]{3}|20[0-9]{2})\b",                                         # 1873
    r"\"[^\"\n]{2,60}\"",                                                    # "The Sentinel"
    r"\b[A-Z][\w'’-]*(?:\s+(?:(?:of|the|de|von|van|da|del)\s+)*[A-Z][\w'’-]*)*",  # names
]
SPAN = re.compile("|".join(f"(?:{p})" for p in PATTERNS))
# Closed-class words that are capitalised only because a sentence starts with them.
FUNCTION_WORDS = {"The", "A", "An", "It", "Its", "In", "On", "At", "He", "She", "They", "His", "Her", "Their",
                  "This", "That", "These", "Those", "After", "Before", "During", "With", "Along", "Around",
                  "About", "Among", "When", "While", "As", "By", "For", "From", "Of", "Since", "There", "Both",
                  "Such", "However", "Although", "Also", "Then", "I", "We", "Some", "Many", "Most", "Several"}
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+)$")


def candidates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, span) of every salient-looking run, left to right, overlaps resolved.

    A single capitalised word that opens a sentence is not a name ("Herons nest..."), and
    function words are trimmed from the front of a name ("The Velkaran River").
    """
    found = []
    for m in SPAN.finditer(text):
        start, span = m.start(), m.group(0)
        words = span.split()
        while words and words[0] in FUNCTION_WORDS:
            start += len(words[0]) + 1
            words = words[1:]
        span = " ".join(words)
        if not span or (span[0].isupper() and len(span) < 3):
            continue
        opens_sentence = _SENTENCE_START.search(text[:m.start()]) is not None
        if opens_sentence and len(words) == 1 and words[0][0].isupper():
            continue
        found.append((start, start + len(span), span))
    return found


def find_spans(contents: str, title: str | None = None) -> list[str]:
    """The maskable spans of a passage ("Title\\ntext"), in order, after the paper's filters."""
    if title is None:
        title, _, text = contents.partition("\n")
    else:
        text = contents
    title_words = set(title.lower().split())
    out = []
    for _, _, span in candidates(text):
        if span.lower() in title.lower() or set(span.lower().split()) <= title_words:
            continue
        if text.count(span) != 1 or span in out:
            continue
        out.append(span)
    return out
