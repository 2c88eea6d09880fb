"""Answer metrics: exact match, F1 and token recall with SQuAD-style normalisation, and the
span accuracy of a RAMP answer. Pure functions, shared by rejection, rewards and eval.

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
"""

from __future__ import annotations

from collections import Counter

from minisearch.ramp.spans import fill_masks, normalize_answer, span_match


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
