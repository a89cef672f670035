"""Diagnostic generators that stand in for a model: `oracle-gold`, `oracle-empty`, `oracle-copy`.

They test the evaluation pipeline, not a model: each runs through exactly the same loop, prompts,
stop strings, retriever and scoring as a real model, so a wrong number means a broken pipeline.

- `oracle-gold`  answers `<answer> GOLD </answer>` (the first gold answer): EM must be 1.0;
- `oracle-empty` answers `<answer> </answer>`: EM must be 0.0;
- `oracle-copy`  searches the question (`<search> QUESTION </search>`), then answers with the title
  of the first passage the environment returned: EM must equal the retriever's answer-recall@1 by
  title (the fraction of questions whose top-1 passage for the question has a title that exactly
  matches a gold answer after SQuAD normalisation). Under the RAG prompt the passages are already in
  the prompt, so it answers at once from Doc 1.

How they know the question and its gold answers: the evaluation loop calls `bind_records(records)`
before each dataset (the hook; any generator may define it), and each call to `generate` decodes
the prompt, parses the ChatML context (`textchat.parse_chatml`) and reads the question after the
last `Question: ` of the user message, which every prompt template of sr1 ends with. A question the
oracle was not told about is an error, never a silent guess.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from sr1lib.errors import Sr1Error
from sr1lib.generators import Generation, SamplingParams
from sr1lib.generators.scripted import ScriptedGenerator
from sr1lib.protocol import normalize_question
from sr1lib.types import QARecord, unquote_title

ORACLES = ("oracle-gold", "oracle-empty", "oracle-copy")
_QUESTION_RE = re.compile(r"Question: (.*?)\s*$", re.DOTALL)
_DOC1 = "Doc 1(Title: "


def question_of(user_message: str) -> str:
    """The question after the last `Question: ` of a prompt (sr1's templates end with it)."""
    i = user_message.rfind("Question: ")
    if i < 0:
        raise Sr1Error("oracle: the prompt has no 'Question: ' line to read the question from")
    m = _QUESTION_RE.match(user_message[i:])
    assert m is not None
    return m.group(1).strip()


def first_title(text: str) -> str | None:
    """The title of Doc 1 of the last <information> block in `text`, or None.

    The passage line is `Doc 1(Title: TITLE) TEXT`; titles may hold parentheses ("Up (2009 film)"),
    so the title ends at the first `) ` after which its parentheses are balanced. The title line's
    wiki-18 quotes are markup, not part of the title.

    >>> first_title('<information>Doc 1(Title: "A (b) c") some text\\nDoc 2(Title: X) y</information>')
    'A (b) c'
    """
    block = text.rfind("<information>")
    start = text.find(_DOC1, block) if block >= 0 else -1
    if start < 0:
        return None
    line = text[start + len(_DOC1):].split("\n", 1)[0]
    for m in re.finditer(r"\) |\)$", line):
        title = line[:m.start()]
        if title.count("(") == title.count(")"):
            return unquote_title(title)
    return None


def continue_from(partial: str, action: str) -> str:
    """The rest of `action` when the response already ends inside it, else `action` itself.

    A loop may stop a turn early (IRCoT stops at "." so "<answer> Henry J." is cut after "J.") and
    then ask for the continuation, as a model would continue; the oracle finishes its action.

    >>> continue_from("<think>x</think><answer> Henry J.", "<answer> Henry J. Kaiser </answer>")
    ' Kaiser </answer>'
    """
    opened = max(partial.rfind("<answer>"), partial.rfind("<search>"))
    if opened >= 0:
        written = partial[opened:]
        if written != action and action.startswith(written):
            return action[len(written):]
    return action


class OracleGenerator(ScriptedGenerator):
    """One of the diagnostic generators by name (see the module docstring)."""

    def __init__(self, kind: str, tokenizer: Any = None):
        if kind not in ORACLES:
            raise Sr1Error(f"unknown oracle {kind!r}; valid oracles are {list(ORACLES)}")
        if tokenizer is None:
            from sr1lib.evaluate.textchat import WordTokenizer

            tokenizer = WordTokenizer()
        super().__init__(tokenizer, fn=self._respond)
        self.name = kind
        self.kind = kind
        self._golds: dict[str, tuple[str, ...]] = {}

    def bind_records(self, records: Sequence[QARecord]) -> None:
        """Learn the questions of the dataset about to be evaluated and their gold answers."""
        self._golds = {}
        for r in records:
            # Two records with one question keep the first's answers: an oracle cannot tell them apart.
            self._golds.setdefault(normalize_question(r.question), r.golden_answers)

    def _respond(self, prompt_ids: tuple[int, ...], call: int) -> str:
        from sr1lib.evaluate.textchat import parse_chatml

        messages, partial = parse_chatml(self.tokenizer.decode(list(prompt_ids), skip_special_tokens=False))
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        question = question_of(user)
        golds = self._golds.get(normalize_question(question))
        if golds is None:
            raise Sr1Error(f"{self.kind}: the question {question!r} is not among the bound records; "
                           "call bind_records(records) before generating")
        return continue_from(partial or "", self._action(question, golds, partial or "", user))

    def _action(self, question: str, golds: tuple[str, ...], partial: str, user: str) -> str:
        if self.kind == "oracle-gold":
            return f"<answer> {golds[0]} </answer>"
        if self.kind == "oracle-empty":
            return "<answer> </answer>"
        title = first_title(partial) or first_title(user)
        if title is None:  # nothing retrieved yet: search the question exactly as asked
            return f"<search> {question} </search>"
        return f"<answer> {title} </answer>"

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        out = super().generate(prompts, params)
        # The scripted base class records every call for tests; over a large evaluation that would
        # hold every prompt in memory, so the record is dropped (call indices are unused here).
        self.calls.clear()
        self.params.clear()
        return out
