"""Outcome rewards and QA metrics: answer normalisation, extraction, EM, cover-EM, F1, format reward.

A reward function has the signature `(response_text, golden_answers) -> float` and is picked by
name from `REWARD_FNS` (`em`, the paper's outcome reward; `format`, Search-R1 v0.3's format-aware
reward). Rewards score the RESPONSE only (everything after the prompt): the prompt holds an example
`<answer> Paris </answer>` that must never count.

Departures from the reference implementation (Search-R1 `qa_em.py` / `qa_em_format.py`):
- the reference scores prompt + response and believes an answer only when `<answer>(.*?)</answer>`
  matches at least twice, but its prompt already matches twice (`<answer> and </answer>` and the
  example `<answer> Beijing </answer>`), so whenever the response has no answer it extracts the
  example answer from the prompt. We score the response alone, and its last complete `<answer>` wins;
- text the environment wrote into the response (`<information>` blocks, the invalid-action and
  search-budget feedback, which quote the tags as instructions) never counts as the model's answer;
- `normalize_answer` also folds Unicode: NFKC (so composed/decomposed and full-width forms compare
  equal) and removal of every Unicode punctuation character, not only ASCII ones. Accents are KEPT
  (`Beyoncé` != `Beyonce`), as in the reference; for ASCII text the result equals SQuAD's;
- a gold answer that SQuAD normalisation empties (`"A"`, `"The"`, `"?!"`) is compared, with the
  prediction, on the lighter `light_normalize` (articles kept), else, for punctuation only, on the
  lower-cased raw text; in that fallback cover-EM asks for the gold's words as a run of the
  prediction's words, since a one-letter gold is a substring of almost any text. So
  `exact_match("A.", ["A"])` is 1 and `substring_match("Paris", ["A"])` is 0;
- an empty prediction never matches.
"""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from typing import Callable, Sequence

from sr1lib.errors import Sr1Error
from sr1lib.protocol import INVALID_ACTION_FEEDBACK, SEARCH_BUDGET_FEEDBACK

RewardFn = Callable[[str, Sequence[str]], float]

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_INFORMATION_RE = re.compile(r"<information>.*?</information>", re.DOTALL)
_TAGS = ("think", "search", "information", "answer")
_TAG_SPLIT_RE = re.compile(r"(</?(?:think|search|information|answer)>)")


def _is_punct(ch: str) -> bool:
    # string.punctuation holds ASCII symbols ($, +, <, ...) that Unicode files under S*, not P*.
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation, drop articles, collapse white space.

    Unicode is first folded with NFKC; punctuation means ASCII punctuation plus every Unicode
    punctuation character (curly quotes, dashes, CJK marks). Accents are kept.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    >>> normalize_answer("“A Tale of Two Cities”")
    'tale of two cities'
    >>> normalize_answer("ＮＡＳＡ")  # full-width letters fold to ASCII
    'nasa'
    """
    s = unicodedata.normalize("NFKC", s).lower()
    s = "".join(ch for ch in s if not _is_punct(ch))
    s = _ARTICLES_RE.sub(" ", s)
    return " ".join(s.split())


def light_normalize(s: str) -> str:
    """`normalize_answer` without dropping articles: the fallback for golds it would empty.

    >>> light_normalize("A."), normalize_answer("A.")
    ('a', '')
    """
    s = unicodedata.normalize("NFKC", s).lower()
    return " ".join("".join(ch for ch in s if not _is_punct(ch)).split())


def _raw(s: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", s).lower().split())


def _golds(golden_answers: Sequence[str] | str) -> list[str]:
    if isinstance(golden_answers, str):
        return [golden_answers]
    return [str(g) for g in golden_answers]


def _norm_pair(prediction: str, gold: str) -> tuple[str, str, bool]:
    """(prediction, gold, fallback): both under the first normalisation that leaves the gold non-empty
    (SQuAD's, then `light_normalize`, then lower-cased raw text); `fallback` when it was not SQuAD's."""
    g = normalize_answer(gold)
    if g:
        return normalize_answer(prediction), g, False
    for norm in (light_normalize, _raw):
        g = norm(gold)
        if g:
            return norm(prediction), g, True
    return "", "", True  # a blank gold never matches


def _has_run(words: list[str], run: list[str]) -> bool:
    return any(words[i:i + len(run)] == run for i in range(len(words) - len(run) + 1))


def extract_answer(response: str) -> str | None:
    """The stripped content of the last complete `<answer>...</answer>` in `response`, else None.

    Pass the response only, never the prompt (its example answer would be found instead).
    Environment text (`<information>` blocks, protocol feedback) is skipped.

    >>> extract_answer("<think>hm</think><answer> Paris </answer>")
    'Paris'
    >>> extract_answer("<answer>Lyon</answer> no, <answer>Paris</answer>")
    'Paris'
    >>> extract_answer("<answer>unclosed") is None
    True
    """
    text = _INFORMATION_RE.sub(" ", response)
    for feedback in (INVALID_ACTION_FEEDBACK, SEARCH_BUDGET_FEEDBACK):
        text = text.replace(feedback, " ").replace(feedback.strip(), " ")
    matches = _ANSWER_RE.findall(text)
    return matches[-1].strip() if matches else None


def exact_match(prediction: str | None, golden_answers: Sequence[str] | str) -> float:
    """1.0 when the normalised prediction equals some normalised gold answer, else 0.0.

    >>> exact_match("the Eiffel Tower", ["Eiffel Tower", "La tour Eiffel"])
    1.0
    >>> exact_match("Eiffel", "Eiffel Tower")
    0.0
    """
    if prediction is None or not prediction.strip():
        return 0.0
    for gold in _golds(golden_answers):
        p, g, _ = _norm_pair(prediction, gold)
        if p and p == g:
            return 1.0
    return 0.0


def substring_match(prediction: str | None, golden_answers: Sequence[str] | str) -> float:
    """Cover-EM: 1.0 when some normalised gold answer is a substring of the normalised prediction.

    Character-level, as in the reference (`subem_check`), so `"1"` is covered by `"1984"`; for a
    gold SQuAD normalisation empties, word-level (see the module docstring).

    >>> substring_match("it is the Eiffel Tower in Paris", ["Eiffel Tower"])
    1.0
    >>> substring_match("Paris", ["A"]), substring_match("option A", ["A"])
    (0.0, 1.0)
    """
    if prediction is None or not prediction.strip():
        return 0.0
    for gold in _golds(golden_answers):
        p, g, fallback = _norm_pair(prediction, gold)
        if g and (_has_run(p.split(), g.split()) if fallback else g in p):
            return 1.0
    return 0.0


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str | None, golden_answers: Sequence[str] | str) -> float:
    """SQuAD token F1 between the normalised prediction and each gold answer; the maximum.

    >>> round(f1_score("Eiffel Tower Paris", ["the Eiffel Tower"]), 3)
    0.8
    """
    if prediction is None or not prediction.strip():
        return 0.0
    best = 0.0
    for gold in _golds(golden_answers):
        p, g, _ = _norm_pair(prediction, gold)
        best = max(best, _f1(p.split(), g.split()))
    return best


def is_valid_format(response: str) -> bool:
    """Search-R1 v0.3's structural check of a response (`is_valid_sequence`, minus the chat marker).

    Accepted: `<think>..</think>` then any number of `<search>..</search> <information>..
    </information> <think>..</think>` rounds, then `<answer>..</answer>`; white space only between
    tags; nothing but white space after `</answer>`; every tag balanced. Anything else (text outside
    tags, a tag inside another, a search without its information block, answering without thinking
    first, the protocol's feedback text) is invalid. Pass the response decoded without special
    tokens: a trailing `<|im_end|>` counts as text after the answer.

    >>> is_valid_format("<think>a</think><search>q</search><information>d</information>"
    ...                 "<think>b</think><answer>x</answer>")
    True
    >>> is_valid_format("<answer>x</answer>")
    False
    """
    for tag in _TAGS:
        if response.count(f"<{tag}>") != response.count(f"</{tag}>"):
            return False
    # state: where we are in think -> (search -> information -> think)* -> answer
    transitions = {
        ("start", "<think>"): "in_think", ("information", "<think>"): "in_think",
        ("in_think", "</think>"): "after_think",
        ("after_think", "<search>"): "in_search", ("in_search", "</search>"): "after_search",
        ("after_search", "<information>"): "in_information",
        ("in_information", "</information>"): "information",
        ("after_think", "<answer>"): "in_answer", ("in_answer", "</answer>"): "end",
    }
    state = "start"
    for part in _TAG_SPLIT_RE.split(response):
        if _TAG_SPLIT_RE.fullmatch(part):
            state = transitions.get((state, part), "")
            if not state:
                return False
        elif part.strip() and not state.startswith("in_"):
            return False  # text between tags or after the answer
    return state == "end"


def em_reward(response: str, golden_answers: Sequence[str] | str) -> float:
    """Search-R1's outcome reward: exact match of the response's last answer (0.0 without one).

    >>> em_reward("<think>x</think><answer>Paris</answer>", ["paris"])
    1.0
    """
    return exact_match(extract_answer(response), golden_answers)


def format_reward(response: str, golden_answers: Sequence[str] | str, *, correct: float = 1.0,
                  correct_bad_format: float = 0.8, wrong_good_format: float = 0.2,
                  wrong_with_answer: float = 0.1) -> float:
    """Search-R1 v0.3's format-aware reward (`qa_em_format.compute_score_em`, no retrieval bonus).

    correct answer + valid format -> `correct`; correct + invalid format -> `correct_bad_format`;
    wrong + valid format -> `wrong_good_format`; wrong, invalid format, but an answer was given ->
    `wrong_with_answer`; no answer -> 0.0 (a valid format always ends in an answer).

    >>> format_reward("<think>x</think><answer>Paris</answer>", ["Paris"])
    1.0
    >>> format_reward("<answer>Paris</answer>", ["Paris"])
    0.8
    >>> format_reward("<think>x</think><answer>Lyon</answer>", ["Paris"])
    0.2
    >>> format_reward("<answer>Lyon</answer>", ["Paris"])
    0.1
    """
    answer = extract_answer(response)
    if answer is None:
        return 0.0
    valid = is_valid_format(response)
    if exact_match(answer, golden_answers):
        return correct if valid else correct_bad_format
    return wrong_good_format if valid else wrong_with_answer


REWARD_FNS: dict[str, RewardFn] = {"em": em_reward, "format": format_reward}


def get_reward_fn(name: str) -> RewardFn:
    """The reward function registered as `name`; unknown names list the valid ones."""
    try:
        return REWARD_FNS[name]
    except KeyError:
        raise Sr1Error(f"unknown reward {name!r}; valid rewards are {sorted(REWARD_FNS)}") from None
