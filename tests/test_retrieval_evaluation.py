"""Answer recall, overlap and parity: the measures the retrieval benchmark reports."""

from __future__ import annotations

import pytest

from sr1lib.retrieval.evaluation import answer_recall, contains_answer, overlap_at_k, parity
from sr1lib.types import Hit

CONTAINS = [
    ("The Eiffel Tower is in Paris.", ["paris"], True),            # case and punctuation normalised
    ("It opened in 1889 for the fair.", ["1889"], True),
    ("The start of the race.", ["art"], False),                      # only on token boundaries
    ("Directed by Tim Burton.", ["The Tim Burton"], True),           # articles dropped on both sides
    ("Nothing relevant here.", ["Paris", "Rome"], False),
    ("Some text.", [""], False),                                      # an empty gold never matches
]


@pytest.mark.parametrize("passage,golds,found", CONTAINS)
def test_contains_answer(passage, golds, found):
    assert contains_answer(passage, golds) is found


def hit(i: int, text: str) -> Hit:
    return Hit.from_title_text(str(i), 1.0, f"T{i}", text)


def test_answer_recall_counts_first_rank():
    results = [[hit(1, "no"), hit(2, "Paris is here")], [hit(3, "Rome")], []]
    golds = [["Paris"], ["Rome"], ["Oslo"]]
    assert answer_recall(results, golds, (1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 2 / 3}
    with pytest.raises(ValueError):
        answer_recall(results, golds[:2])


def test_overlap_and_parity():
    assert overlap_at_k([["a", "b", "c"], []], [["c", "b", "x"], []], 3) == pytest.approx((2 / 3 + 1) / 2)
    assert overlap_at_k([["a", "b"]], [["a", "b", "c"]], 2) == 1.0  # only the top k count
    assert parity([[("a", 1.0)], [("b", 2.0)]], [[("a", 1.0)], [("b", 2.5)]]) == 0.5
