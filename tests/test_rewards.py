"""Table tests for sr1lib.rewards: normalisation, extraction, EM/cover-EM/F1, format check, rewards."""

from __future__ import annotations

import doctest

import pytest

from sr1lib import protocol, rewards
from sr1lib.errors import Sr1Error
from sr1lib.rewards import (
    em_reward, exact_match, extract_answer, f1_score, format_reward, get_reward_fn, is_valid_format,
    normalize_answer, substring_match,
)

NORMALIZE = [
    ("Paris", "paris"),                                   # lower-case
    ("  The   Eiffel  Tower ", "eiffel tower"),           # leading article and extra white space
    ("an apple a day", "apple day"),                      # articles inside the text
    ("theatre", "theatre"),                               # 'the' inside a word survives
    ("U.S.A.", "usa"),                                    # ASCII punctuation
    ("$1,000", "1000"),                                   # ASCII symbols that Unicode calls S*, not P*
    ("“Hamlet” — Shakespeare", "hamlet shakespeare"),     # curly quotes and an em dash
    ("ＮＡＳＡ", "nasa"),                                  # full-width letters fold under NFKC
    ("Beyonce\u0301", "beyoncé"),                          # decomposed accent composes; accents kept
    ("?!...", ""),                                        # punctuation only
    ("", ""),                                             # empty
    ("a\tb\nc", "b c"),                                   # tabs/newlines are white space; 'a' is an article
    ("東京。", "東京"),                                     # CJK full stop is punctuation
]


@pytest.mark.parametrize("text,expected", NORMALIZE)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


EXTRACT = [
    ("<think>x</think><answer>Paris</answer>", "Paris"),                 # plain answer
    ("<answer>  Paris \n</answer>", "Paris"),                            # white space stripped
    ("<answer>Lyon</answer> wait <answer>Paris</answer>", "Paris"),      # several answers: last wins
    ("<answer></answer>", ""),                                           # empty answer is "", not None
    ("<think>no answer here</think>", None),                             # answer missing
    ("<answer>Paris", None),                                             # unclosed tag
    ("Paris</answer>", None),                                            # closing tag only
    ("<answer>a<answer>b</answer>", "a<answer>b"),                       # nested opening: first open, first close
    ("<ANSWER>Paris</ANSWER>", None),                                    # tags are case-sensitive
    ("<answer>New\nYork</answer>", "New\nYork"),                         # content spans lines
    ("<information>Doc 1(Title: X) <answer>Lyon</answer></information>", None),  # retrieved text never counts
    ("<think>x</think><answer>Paris</answer>" + protocol.INVALID_ACTION_FEEDBACK, "Paris"),  # feedback quotes tags
    ("<search>x</search>" + protocol.SEARCH_BUDGET_FEEDBACK, None),     # budget feedback's example tag ignored
]


@pytest.mark.parametrize("response,expected", EXTRACT)
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_extract_answer_reads_only_what_it_is_given():
    # The prompt's example answer is found when a caller wrongly passes the prompt; the rollout must
    # pass the response. With the response appended, the model's own (last) answer wins.
    prompt = protocol.build_prompt("capital of France")
    assert "<answer>" in prompt
    assert extract_answer(prompt) == "Paris"
    assert extract_answer(prompt + "<think>x</think><answer>Lyon</answer>") == "Lyon"
    assert extract_answer("<think>x</think>") is None


def test_what_the_docstring_says_the_reference_does_on_a_response_without_answer():
    # Search-R1's qa_em.extract_solution, restated: None below two `<answer>(.*?)</answer>` matches in
    # prompt + response, else the last. Its nq_search.py prompt already holds two of them.
    import re

    def reference_extract(text):
        found = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
        return found[-1].strip() if len(found) >= 2 else None

    prompt = ("... you can directly provide the answer inside <answer> and </answer>, without detailed "
              "illustrations. For example, <answer> Beijing </answer>. Question: who wrote hamlet?\n")
    response = "<think>I do not know.</think>"
    assert reference_extract(prompt + response) == "Beijing" and extract_answer(response) is None
    doc = " ".join(rewards.__doc__.split())
    assert "its prompt already matches twice" in doc and "extracts the example answer from the prompt" in doc


EM = [
    ("Paris", ["Paris"], 1.0),                              # identical
    ("the paris.", ["Paris"], 1.0),                         # normalised equal
    ("Paris, France", ["Paris"], 0.0),                      # extra words are not EM
    ("Lyon", ["Paris", "Lyon"], 1.0),                       # several gold answers: any one
    ("Lyon", "Lyon", 1.0),                                  # a single gold string is accepted
    ("Lyon", [], 0.0),                                      # no gold answers
    (None, ["Paris"], 0.0),                                 # no answer extracted
    ("", ["Paris"], 0.0),                                   # empty answer
    ("", [""], 0.0),                                        # an empty prediction never matches
    ("...", ["?!"], 0.0),                                   # punctuation-only gold compared raw: differs
    ("?!", ["?!"], 1.0),                                    # punctuation-only gold compared raw: equal
    (".", ["Paris", "?"], 0.0),                             # a dot does not match a punctuation gold '?'
    ("Beyoncé", ["Beyonce\u0301"], 1.0),                    # composed vs decomposed accent
    ("Beyonce", ["Beyoncé"], 0.0),                          # accents are kept (documented choice)
    ("The", ["the"], 1.0),                                  # an article-only gold keeps its article
    ("A.", ["A"], 1.0),                                     # ... and the prediction's punctuation still goes
    ("a", ["A"], 1.0),                                      # ... and case
    ("The", ["A"], 0.0),                                    # one article is not another
    ("Paris", ["A"], 0.0),                                  # a letter-answer gold does not match a word
    ("A. Paris", ["A"], 0.0),                               # extra words are not EM in the fallback either
    ("1,000", ["1000"], 1.0),                               # digit grouping comma is punctuation
]


@pytest.mark.parametrize("pred,golds,expected", EM)
def test_exact_match(pred, golds, expected):
    assert exact_match(pred, golds) == expected


SUBEM = [
    ("it is Paris, France", ["Paris"], 1.0),                # gold inside a longer answer
    ("Paris", ["Paris, France"], 0.0),                      # prediction inside gold is not cover
    ("1984", ["1"], 1.0),                                   # character level, as the reference
    ("the answer", ["the"], 1.0),                           # gold normalising to '': its word is there
    ("an answer", ["the"], 0.0),                            # ... and 'the' is not in 'an answer'
    ("Paris", ["A"], 0.0),                                  # the letter 'a' inside a word is not the answer 'A'
    ("Option A.", ["A"], 1.0),                              # ... the word 'a' is
    ("theory", ["The"], 0.0),                               # word level in the fallback
    ("what?!", ["?!"], 0.0),                                # punctuation-only gold: raw words, not characters
    ("so ?! it is", ["?!"], 1.0),                           # ... a raw word equal to it
    ("", ["Paris"], 0.0),                                   # empty prediction
    (None, ["Paris"], 0.0),                                 # missing prediction
    ("Lyon or Paris", ["Nice", "paris"], 1.0),              # any of several golds
]


@pytest.mark.parametrize("pred,golds,expected", SUBEM)
def test_substring_match(pred, golds, expected):
    assert substring_match(pred, golds) == expected


F1 = [
    ("Eiffel Tower", ["the Eiffel Tower"], 1.0),            # articles dropped: exact
    ("Eiffel Tower Paris", ["Eiffel Tower"], 0.8),          # P 2/3, R 1
    ("Tower", ["Eiffel Tower"], 2 / 3),                     # P 1, R 1/2
    ("Lyon", ["Paris"], 0.0),                               # no overlap
    ("Paris Paris", ["Paris"], 2 / 3),                      # repeated token counted once in overlap
    ("Tower", ["Lyon", "Eiffel Tower"], 2 / 3),             # max over golds
    (None, ["Paris"], 0.0),                                 # missing
    ("", ["Paris"], 0.0),                                   # empty
    ("A", ["A"], 1.0),                                      # a gold SQuAD empties: fallback tokens
    ("option A", ["A"], 2 / 3),                             # P 1/2, R 1
]


@pytest.mark.parametrize("pred,golds,expected", F1)
def test_f1_score(pred, golds, expected):
    assert f1_score(pred, golds) == pytest.approx(expected)


VALID = [
    ("<think>a</think><answer>x</answer>", True),                                     # think then answer
    ("\n<think>a</think>\n\n<answer>x</answer>\n", True),                             # white space between tags
    ("<think>a</think><search>q</search>\n\n<information>Doc 1(Title: T) t</information>\n\n"
     "<think>b</think><answer>x</answer>", True),                                     # one search round
    ("<think>a</think><search>q</search><information>d</information><think>b</think>"
     "<search>r</search><information>e</information><think>c</think><answer>x</answer>", True),  # two rounds
    ("<answer>x</answer>", False),                                                    # no think first
    ("<think>a</think>", False),                                                      # never answers
    ("<think>a</think><answer>x</answer> because", False),                            # text after the answer
    ("<think>a</think> so <answer>x</answer>", False),                                # text between tags
    ("<think>a</think><search>q</search><think>b</think><answer>x</answer>", False),  # search without information
    ("<think>a</think><search>q</search><information>d</information><answer>x</answer>", False),  # no think after info
    ("<think>a <think>b</think></think><answer>x</answer>", False),                   # nested think
    ("<think>a</think><answer>x", False),                                             # unbalanced answer
    ("<think>plan <answer></think><answer>x</answer>", False),                        # a tag inside think
    ("<think>a</think><answer>x</answer><answer>y</answer>", False),                  # two answers
    ("<think>a</think>" + protocol.INVALID_ACTION_FEEDBACK + "<think>b</think><answer>x</answer>", False),  # feedback
    ("", False),                                                                      # empty
]


@pytest.mark.parametrize("response,expected", VALID)
def test_is_valid_format(response, expected):
    assert is_valid_format(response) is expected


GOOD = "<think>a</think><answer>Paris</answer>"
REWARDS = [
    ("em", GOOD, ["paris"], 1.0),                                  # correct
    ("em", "<answer>Lyon</answer>", ["Paris"], 0.0),               # wrong
    ("em", "<think>a</think>", ["Paris"], 0.0),                    # no answer
    ("em", "<answer>Lyon</answer><answer>Paris</answer>", ["Paris"], 1.0),  # last answer wins
    ("format", GOOD, ["Paris"], 1.0),                              # correct + valid format
    ("format", "<answer>Paris</answer>", ["Paris"], 0.8),          # correct + invalid format
    ("format", "<think>a</think><answer>Lyon</answer>", ["Paris"], 0.2),  # wrong + valid format
    ("format", "<answer>Lyon</answer>", ["Paris"], 0.1),           # wrong, invalid, but an answer
    ("format", "<think>a</think> Paris", ["Paris"], 0.0),          # nothing extracted
    ("format", "<think>a</think><answer></answer>", ["Paris"], 0.2),  # empty answer is a wrong answer
]


@pytest.mark.parametrize("name,response,golds,expected", REWARDS)
def test_registered_rewards(name, response, golds, expected):
    assert get_reward_fn(name)(response, golds) == pytest.approx(expected)


def test_format_reward_weights_are_parameters():
    assert format_reward("<answer>Paris</answer>", ["Paris"], correct_bad_format=0.5) == 0.5
    assert format_reward("<answer>Lyon</answer>", ["Paris"], wrong_with_answer=0.0) == 0.0


def test_em_reward_matches_exact_match_of_extracted_answer():
    for response, _ in EXTRACT:
        assert em_reward(response, ["Paris"]) == exact_match(extract_answer(response), ["Paris"])


def test_unknown_reward_lists_valid_names():
    with pytest.raises(Sr1Error, match=r"'f1'.*\['em', 'format'\]"):
        get_reward_fn("f1")


def test_docstring_examples():
    result = doctest.testmod(rewards, verbose=False)
    assert result.attempted >= 10 and result.failed == 0
