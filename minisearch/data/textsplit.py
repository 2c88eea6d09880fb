"""Cutting documents into passages: Markdown sections, then ~N-word runs of whole sentences.

>>> split_sentences("Dr. Vel went home. It rained! Did it? Yes.")
['Dr. Vel went home.', 'It rained!', 'Did it?', 'Yes.']
>>> [len(p.split()) for p in pack_sentences(["one two three."] * 10, words=7)]
[6, 6, 6, 6, 6]
>>> markdown_sections("intro\\n# A\\ntext a\\n## B\\ntext b")
[('', 'intro'), ('A', 'text a'), ('B', 'text b')]
"""

from __future__ import annotations

import re

# A sentence ends at . ! or ? followed by space and a capital/digit/quote, unless the word
# before the dot is a common abbreviation or a single initial.
_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREV = {"dr", "mr", "mrs", "ms", "st", "mt", "jr", "sr", "prof", "vs", "etc", "e.g", "i.e", "no", "fig"}
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def split_sentences(text: str) -> list[str]:
    """Sentences of a text (whitespace collapsed); abbreviations and initials do not end one."""
    text = " ".join(text.split())
    out, start = [], 0
    for m in _END.finditer(text):
        before = text[start:m.start()].rsplit(" ", 1)[-1].rstrip(".!?\"')]").lower()
        if before in _ABBREV or (len(before) == 1 and before.isalpha()):
            continue
        out.append(text[start:m.start()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]


def pack_sentences(sentences: list[str], words: int = 100) -> list[str]:
    """Join sentences into passages of about `words` words, never splitting a sentence unless
    it alone is over twice the target (then it is cut into `words`-word pieces)."""
    passages, current, count = [], [], 0
    for sentence in sentences:
        n = len(sentence.split())
        if n > 2 * words:
            if current:
                passages.append(" ".join(current))
                current, count = [], 0
            tokens = sentence.split()
            passages += [" ".join(tokens[i:i + words]) for i in range(0, len(tokens), words)]
            continue
        if current and count + n > words and count >= words // 2:
            passages.append(" ".join(current))
            current, count = [], 0
        current.append(sentence)
        count += n
    if current:
        passages.append(" ".join(current))
    return passages


def markdown_sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) pairs; text before the first heading has heading ''. Code fences are
    dropped; emphasis, inline code and link syntax are reduced to their text."""
    sections, heading, body, in_fence = [], "", [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        m = _HEADING.match(line)
        if m:
            sections.append((heading, "\n".join(body)))
            heading, body = clean_markdown(m.group(2)), []
        else:
            body.append(line)
    sections.append((heading, "\n".join(body)))
    return [(h, clean_markdown(b)) for h, b in sections if clean_markdown(b)]


def clean_markdown(text: str) -> str:
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)        # images -> alt text
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)         # links -> text
    text = re.sub(r"`([^`]*)`", r"\1", text)                     # inline code
    text = re.sub(r"(\*\*|__|\*|_)(\S.*?\S|\S)\1", r"\2", text)  # emphasis
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)]|>)\s+", "", text, flags=re.M)  # list marks, quotes
    return " ".join(text.split())
