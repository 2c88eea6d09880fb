"""Answer metrics against the official HotpotQA evaluation (hotpot_evaluate_v1.py): its
normalisation (lowercase, strip punctuation, drop a/an/the as words, collapse spaces) and its
F1, where yes / no / noanswer only score by an exact match. Expected values worked by hand."""

from __future__ import annotations

import pytest

from minisearch.metrics import exact_match, f1, token_recall

CASES = [  # prediction, gold, EM, F1
    ("The Eiffel Tower", "eiffel tower", 1.0, 1.0),
    ("Eiffel Tower, Paris!", "the Eiffel Tower", 0.0, 0.8),
    ("An apple a day", "apple day", 1.0, 1.0),
    ("Anthem", "anthem", 1.0, 1.0),  # "an" is dropped as a word only
    ("theatre", "atre", 0.0, 0.0),
    ("1,000", "1000", 1.0, 1.0),
    ("U.S.", "US", 1.0, 1.0),
    ("  multiple \t spaces ", "multiple spaces", 1.0, 1.0),
    ("Paris Paris", "Paris", 0.0, 2 / 3),
    ("Café", "cafe", 0.0, 0.0),  # no accent folding
    ("yes", "no", 0.0, 0.0),
    ("no", "No.", 1.0, 1.0),
    ("yes it is", "yes", 0.0, 0.0),  # gold is yes/no: exact match or nothing
    ("noanswer", "Paris", 0.0, 0.0),
    ("", "Paris", 0.0, 0.0),
    ("the", "a", 1.0, 0.0),  # both normalise to "": EM 1, F1 0 (no common token)
]


@pytest.mark.parametrize("pred, gold, em, f", CASES)
def test_em_and_f1_match_the_official_hotpotqa_evaluation(pred, gold, em, f):
    assert exact_match(pred, gold) == em
    assert f1(pred, gold) == pytest.approx(f)


def test_best_gold_counts_and_no_answer_scores_zero():
    assert f1("Eiffel Tower", ["Paris", "the eiffel tower"]) == 1.0
    assert exact_match(None, ["x"]) == f1(None, ["x"]) == token_recall(None, ["x"]) == 0.0


def test_token_recall_is_the_share_of_gold_tokens_found():
    assert token_recall("the tower in Paris by Eiffel", ["Eiffel Tower"]) == 1.0
    assert token_recall("Eiffel", ["Eiffel Tower"]) == 0.5
