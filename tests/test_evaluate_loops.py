"""The direct and IRCoT loops, driven turn by turn by the scripted generator over a real bm25s index
of a few passages."""

from __future__ import annotations

import json

import pytest

from sr1lib.config import RolloutConfig
from sr1lib.evaluate.loops import OBS_CLOSE, OBS_OPEN, run_direct, run_ircot
from sr1lib.evaluate.textchat import WordTokenizer
from sr1lib.generators.scripted import ScriptedGenerator
from sr1lib.protocol import SEARCH_BUDGET_FEEDBACK, format_observation, format_passages
from sr1lib.types import FEEDBACK, MODEL, PROMPT, RETRIEVED, Hit, QARecord

PASSAGES = {
    "Scott Derrickson": "Scott Derrickson is an American director of horror films.",
    "Ed Wood": "Ed Wood was an American filmmaker known for low-budget films.",
    "Henry J. Kaiser": "Henry J. Kaiser was an American industrialist who built ships.",
    "Paris": "Paris is the capital of France.",
}
Q = QARecord("t/1", "Were Scott Derrickson and Ed Wood of the same nationality", ("yes",), "t")


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    from sr1lib.retrieval import build_index, open_retriever

    root = tmp_path_factory.mktemp("loops")
    corpus = root / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "contents": f'"{t}"\n{x}'}) + "\n"
                              for i, (t, x) in enumerate(PASSAGES.items())))
    build_index(corpus, root / "idx", "bm25s", progress=False)
    with open_retriever(root / "idx") as r:
        yield r


def cfg(**kw) -> RolloutConfig:
    return RolloutConfig(**{"max_turns": 4, "max_new_tokens": 64, "greedy": True, **kw})


def scripted(turns: list[str]) -> ScriptedGenerator:
    # The same text for every question in a call; each output is cut by the shared stopping rule,
    # exactly as a model's sample would be.
    return ScriptedGenerator(WordTokenizer(), fn=lambda prompt, call: turns[min(call, len(turns) - 1)])


def test_observation_frame_matches_the_protocol():
    hits = [Hit.from_title_text("0", 1.0, "A", "x y"), Hit.from_title_text("1", 0.5, "B (film)", "z")]
    assert OBS_OPEN + format_passages(hits).strip() + OBS_CLOSE == format_observation(hits)


def test_ircot_searches_each_sentence_then_answers(retriever):
    gen = scripted(["<think>Scott Derrickson is American. More text", "Ed Wood is American too.",
                    "<answer> yes </answer>"])
    (t,) = run_ircot([Q], gen, retriever, cfg(), topk=2)
    assert [s.source for s in t.segments] == [PROMPT, MODEL, RETRIEVED, MODEL, RETRIEVED, MODEL]
    # Each turn stopped at the sentence's period; the sentence (tags removed) was the query.
    assert t.queries == ("Scott Derrickson is American.", "Ed Wood is American too.")
    assert t.n_searches == 2 and t.answer == "yes" and t.finished
    # The prompt opened with the top-2 passages for the question itself.
    prompt = t.segments[0].text
    assert 'Doc 1(Title: "Scott Derrickson")' in prompt or 'Doc 1(Title: "Ed Wood")' in prompt
    assert 'Doc 1(Title: "Scott Derrickson")' in t.segments[2].text
    assert t.segments[4].text.startswith(OBS_OPEN) and t.segments[4].text.endswith(OBS_CLOSE)


def test_ircot_asks_for_the_answer_when_the_search_budget_is_spent(retriever):
    gen = scripted(["Scott Derrickson is American.", "<answer> yes </answer>"])
    (t,) = run_ircot([Q], gen, retriever, cfg(max_turns=1), topk=1)
    assert [s.source for s in t.segments] == [PROMPT, MODEL, RETRIEVED, FEEDBACK, MODEL]
    assert t.segments[3].text == SEARCH_BUDGET_FEEDBACK and t.answer == "yes" and t.n_searches == 1
    # The feedback quotes the answer tags; only the model's answer is extracted.
    assert "<answer> and </answer>" in t.response_text


def test_ircot_never_cuts_an_answer_at_its_periods(retriever):
    # A model continues its own text: the first sample is cut at "J.", the loop asks again with
    # only "</answer>" as the stop, and the model writes the rest.
    gen = scripted(["<answer> Henry J. Kaiser </answer>", " Kaiser </answer>"])
    (t,) = run_ircot([Q], gen, retriever, cfg(), topk=1)
    assert gen.params[1].stop_strings == ("</answer>",)
    assert t.answer == "Henry J. Kaiser" and t.n_searches == 0
    assert [s.source for s in t.segments] == [PROMPT, MODEL, MODEL]  # "…Henry J." then " Kaiser </answer>"


def test_ircot_keeps_the_response_budget(retriever):
    gen = scripted(["Scott Derrickson is an American director who made horror films in the last decades."])
    (t,) = run_ircot([Q], gen, retriever, cfg(max_response_tokens=40, max_obs_tokens=25), topk=3)
    assert t.truncated and not t.finished and t.n_response_tokens <= 40
    for s in t.segments:
        if s.source == RETRIEVED:  # cut inside the tags, never the tags themselves
            assert s.text.startswith(OBS_OPEN) and s.text.endswith(OBS_CLOSE) and len(s.token_ids) <= 25


def test_direct_is_one_turn_without_reasoning(retriever):
    gen = scripted(["<answer> yes </answer> and more"])
    (t,) = run_direct([Q], gen, cfg())
    assert [s.source for s in t.segments] == [PROMPT, MODEL]
    assert t.answer == "yes" and t.segments[1].text == "<answer> yes </answer>"  # stopped at </answer>
    assert "no reasoning" in t.segments[0].text and t.segments[0].text.startswith("<|im_start|>user\n")
    assert gen.params[0].greedy and gen.params[0].stop_strings == ("</answer>",)
