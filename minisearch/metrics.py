"""Scoring answers: exact match, F1 and token recall with SQuAD-style normalisation, and the
spans of a RAMP answer read back and scored. Pure functions, below every stage: rejection
(traj), the rewards, eval and the veRL export share them.

Token recall is the paper's metric: the share of the gold answer's tokens that the
prediction contains (a long answer can game it; the rewards add a length guard).

>>> exact_match("The Velkaran River", ["velkaran river"])
1.0
>>> round(f1("Velkaran river in Ostrivel", ["the Velkaran River"]), 3)
0.667
>>> token_recall("Velkaran river in Ostrivel", ["the Velkaran River"])
1.0
>>> task = {"metadata": {"masked": "[mask] flows through [mask].", "masks": ["Velkaran", "Ostrivel"]}}
>>> ramp_spans_correct(task, "Velkaran flows through Vriogu.")
[True, False]
>>> ramp_spans_correct(task, None)
[False, False]

Reading a RAMP answer back: the model is asked for the whole paragraph with every [mask] filled. `fill_masks` aligns
its answer to the masked paragraph word by word (difflib over lowercased word and
punctuation tokens); the words between the anchors on either side of a mask are that
mask's span. A plain list of spans ("a; b", numbered lines, a JSON list) is accepted too.

>>> fill_masks("Velk was born in [mask] in [mask].", "Velk was born in Ostrivel in 1873.", 2)
['Ostrivel', '1873']
>>> fill_masks("[mask] founded [mask].", "1. Dantrisk\\n2. Vethmora Holdings", 2)
['Dantrisk', 'Vethmora Holdings']
>>> fill_masks("Velk was born in [mask] in 1873, and he never left the town.", "Ostrivel of Velk", 1)
['Ostrivel of Velk']
>>> span_match("the Velkaran River", "Velkaran river.")
True

An answer far longer than the paragraph is not the paragraph filled in: a model that repeats
itself would otherwise be credited with whatever its alignment happens to find at a mask, so
beyond the paragraph's words plus MAX_SPAN_TOKENS per mask, half again, nothing is read.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections import Counter

from minisearch.records import MASK

_TOKEN = re.compile(r"\[mask\]|\w+|[^\w\s]", re.I)
MAX_SPAN_TOKENS = 24


def normalize_answer(text: str) -> str:
    """SQuAD-style: lowercase, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in str(text).lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def span_match(pred: str | None, gold: str) -> bool:
    return pred is not None and normalize_answer(pred) == normalize_answer(gold) != ""


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _as_list(answer: str, n_masks: int, masked: str) -> list[str] | None:
    """The answer as a list of spans, if it is written as one."""
    text = answer.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list) and all(isinstance(x, str | int | float) for x in items):
            return [str(x).strip() for x in items]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and all(re.match(r"^(\d+[.):]|[-*])\s*", ln) for ln in lines):
        return [re.sub(r"^(\d+[.):]|[-*])\s*", "", ln) for ln in lines]
    if ";" in text and text.count(";") == n_masks - 1 and len(text.split()) < 12 * n_masks:
        return [part.strip() for part in text.split(";")]
    if n_masks == 1 and len(text.split()) <= MAX_SPAN_TOKENS and 3 * len(text.split()) < len(masked.split()):
        return [text]  # one short phrase for one mask of a long paragraph: the span itself
    return None


def fill_masks(masked: str, answer, n_masks: int) -> list[str | None]:
    """What stands at each [mask] of `masked` in `answer`; None where it cannot be read."""
    if not isinstance(answer, str) or not isinstance(masked, str) or n_masks <= 0:
        return [None] * max(0, n_masks if isinstance(n_masks, int) else 0)
    listed = _as_list(answer, n_masks, masked)
    if listed is not None and masked.lower().count(MASK) >= 1:
        spans = [s or None for s in listed[:n_masks]]
        return spans + [None] * (n_masks - len(spans))
    src, out = _tokens(masked), _tokens(answer)
    if len(out) > 1.5 * (len(src) + n_masks * MAX_SPAN_TOKENS):
        return [None] * n_masks
    a = [t.lower() for t, _, _ in src]
    b = [t.lower() for t, _, _ in out]
    to_answer: dict[int, int] = {}
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            to_answer[block.a + k] = block.b + k
    spans: list[str | None] = []
    for i, tok in enumerate(a):
        if tok != MASK:
            continue
        j_left = max((j for j in range(i) if j in to_answer), default=-1)
        j_right = min((j for j in range(i + 1, len(a)) if j in to_answer), default=len(a))
        left = to_answer.get(j_left, -1)
        right = to_answer.get(j_right, len(b))
        shared = MASK in a[j_left + 1:i] or MASK in a[i + 1:j_right]  # two masks, no anchor between
        if shared or right - left - 1 < 1 or right - left - 1 > MAX_SPAN_TOKENS:
            spans.append(None)
        else:
            spans.append(answer[out[left + 1][1]:out[right - 1][2]].strip() or None)
    spans = spans[:n_masks]
    return spans + [None] * (n_masks - len(spans))

def _golds(golds) -> list[str]:
    return [golds] if isinstance(golds, str) else [str(g) for g in golds]


def exact_match(pred: str | None, golds) -> float:
    if pred is None:
        return 0.0
    p = normalize_answer(pred)
    return float(any(p == normalize_answer(g) for g in _golds(golds)))


def _f1_one(pred: list[str], gold: list[str]) -> float:
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


_CLOSED = {"yes", "no", "noanswer"}  # HotpotQA: these score F1 only by an exact match


def f1(pred: str | None, golds) -> float:
    """Token F1 as the official HotpotQA evaluation computes it (best over the golds).

    >>> f1("yes it is", ["yes"]), f1("Paris Paris", ["Paris"]) == 2 / 3
    (0.0, True)
    """
    if pred is None:
        return 0.0
    p = normalize_answer(pred)
    scores = []
    for g in _golds(golds):
        g = normalize_answer(g)
        closed = p in _CLOSED or g in _CLOSED
        scores.append(float(p == g) if closed else _f1_one(p.split(), g.split()))
    return max(scores, default=0.0)


def token_recall(pred: str | None, golds) -> float:
    if pred is None:
        return 0.0
    have = Counter(normalize_answer(pred).split())
    scores = []
    for g in _golds(golds):
        want = Counter(normalize_answer(g).split())
        if want:
            scores.append(sum((want & have).values()) / sum(want.values()))
    return max(scores, default=0.0)


def ramp_spans_correct(task: dict, answer: str | None) -> list[bool]:
    """For each mask of a RAMP task, whether the answer fills it with the original span."""
    meta = task["metadata"]
    filled = fill_masks(meta["masked"], answer, len(meta["masks"]))  # all None when there is no answer
    return [span_match(f, gold) for f, gold in zip(filled, meta["masks"])]


def ramp_span_recall(task: dict, answer: str | None) -> list[float]:
    """For each mask, the share of its original span's tokens the filled span holds: partial
    credit where the exact match gives none (the paper's token recall, span by span).

    >>> task = {"metadata": {"masked": "[mask] flows through [mask].", "masks": ["Velkaran", "Ostrivel Vale"]}}
    >>> ramp_span_recall(task, "Velkaran flows through Ostrivel.")
    [1.0, 0.5]
    """
    meta = task["metadata"]
    filled = fill_masks(meta["masked"], answer, len(meta["masks"]))
    return [token_recall(f, [gold]) for f, gold in zip(filled, meta["masks"])]


def is_ramp(task: dict) -> bool:
    return "masks" in task.get("metadata", {})
