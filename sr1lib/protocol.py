"""The Search-R1 text protocol: the prompt, the model's actions, and what the environment writes back.

The model reasons in `<think>`, searches with `<search> query </search>`, reads passages the
environment appends inside `<information>`, and ends with `<answer>`. This module is pure string
logic; the rollout loop turns its strings into token segments.

Departures from the reference implementation (Search-R1, arXiv 2503.09516, Table 1):
- the instruction is our own wording of the paper's template (same tags, same rules); its version
  string is recorded with every evaluation so numbers stay comparable. What follows a search is
  Search-R1's bytes: its `<information>` frame and `_passages2string` lines for the same hits;
- rewards read only the response, so the example `<answer>` in the instruction never counts
  (the reference needs two `<answer>` tags in the full text for that reason).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from sr1lib.types import Hit, split_contents  # noqa: F401 - re-exported for callers

# Names the bytes the model sees: the instruction wording and the passage lines. sr1-v2 shows each
# passage's stored title line, quotes included, as Search-R1 does (docs/LOG.md has what v1 showed).
TEMPLATE_VERSION = "sr1-v2"

# Our wording of the Search-R1 instruction (paper Table 1): think first, search when knowledge is
# missing, read <information>, answer briefly inside <answer>.
INSTRUCTION = (
    "Answer the question below. Reason inside <think> and </think> every time you receive new "
    "information. If you are missing knowledge, call the search engine with <search> query </search>; "
    "it returns the top results between <information> and </information>. You may search as often "
    "as you need. When you need no further knowledge, give only the final answer inside <answer> and "
    "</answer>, with no explanation, for example <answer> Paris </answer>. Question: {question}\n"
)

# The instruction without search, for the no-retrieval baselines (direct answer, R1 without search).
INSTRUCTION_NO_SEARCH = (
    "Answer the question below. Reason inside <think> and </think> first, then give only the final "
    "answer inside <answer> and </answer>, with no explanation, for example <answer> Paris </answer>. "
    "Question: {question}\n"
)

# RAG: the passages for the question come first, then the same instruction without search.
INSTRUCTION_RAG = (
    "Answer the question below using the passages. Reason inside <think> and </think> first, then give "
    "only the final answer inside <answer> and </answer>, with no explanation, for example "
    "<answer> Paris </answer>.\n<information>{passages}</information>\nQuestion: {question}\n"
)

# What the environment appends after an action it cannot parse (our wording of Search-R1's text).
INVALID_ACTION_FEEDBACK = (
    "\nMy previous action is invalid. To search, I must put the query between <search> and </search>. "
    "To give the final answer, I must put it between <answer> and </answer>. Let me try again.\n"
)

# Appended when the search budget is spent and the model still searches (final no-search turn).
SEARCH_BUDGET_FEEDBACK = (
    "\nI have used all my searches. I must now give the final answer between <answer> and </answer>.\n"
)

STOP_STRINGS = ("</search>", "</answer>")

ACTION_RE = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)

SEARCH, ANSWER, INVALID = "search", "answer", "invalid"


def normalize_question(question: str) -> str:
    """Strip white space and end with a question mark, as Search-R1's data scripts do."""
    q = question.strip()
    if q and not q.endswith("?"):
        q += "?"
    return q


def build_prompt(question: str, tokenizer: Any = None, *, mode: str = "search",
                 passages: Sequence[Hit] = ()) -> str:
    """The prompt text for `question`, wrapped in the tokenizer's chat template when it has one.

    mode: `search` (the Search-R1 protocol), `no_search` (direct/CoT/R1 baselines) or `rag`
    (the top-k passages for the question placed before it).
    """
    q = normalize_question(question)
    if mode == "search":
        text = INSTRUCTION.format(question=q)
    elif mode == "no_search":
        text = INSTRUCTION_NO_SEARCH.format(question=q)
    elif mode == "rag":
        text = INSTRUCTION_RAG.format(question=q, passages=format_passages(passages))
    else:
        raise ValueError(f"build_prompt: unknown mode {mode!r}; valid modes are ['search', 'no_search', 'rag']")
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
    return text


def parse_action(text: str) -> tuple[str, str]:
    """(kind, content) of the first complete `<search>` or `<answer>` pair in `text`.

    kind is `search`, `answer` or `invalid` (no complete pair; content is then ""). Content is
    stripped of surrounding white space.

    >>> parse_action("<think>hm</think><search> capital of France </search>")
    ('search', 'capital of France')
    >>> parse_action("<answer>Paris</answer><search>x</search>")
    ('answer', 'Paris')
    >>> parse_action("<search>unclosed")
    ('invalid', '')
    """
    m = ACTION_RE.search(text)
    if m is None:
        return INVALID, ""
    return m.group(1), m.group(2).strip()


def format_passage(i: int, hit: Hit) -> str:
    """`Doc {i}(Title: {title line}) {rest}`, 1-based, byte for byte as Search-R1's `_passages2string`.

    The title line is the first line of the stored `contents`, quotes and all when the corpus has
    them (`Doc 1(Title: "Paul Walker") ...`), and the rest is every later line unchanged.
    """
    title, _, text = hit.contents.partition("\n")
    return f"Doc {i}(Title: {title}) {text}"


def format_passages(hits: Sequence[Hit]) -> str:
    return "".join(format_passage(i, h) + "\n" for i, h in enumerate(hits, 1))


def format_observation(hits: Sequence[Hit]) -> str:
    """The block appended after a search, as Search-R1's generation loop writes it."""
    return f"\n\n<information>{format_passages(hits).strip()}</information>\n\n"


def format_error_observation(message: str) -> str:
    """An observation that tells the model the search failed (the retriever errored or timed out)."""
    return f"\n\n<information>Search failed: {message}</information>\n\n"
