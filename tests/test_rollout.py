"""The rollout loop, branch by branch, with a scripted "model" and a real bm25s index.

Every rollout here also goes through `check_rollout`: model segments are exactly the sampled ids
and sampled_mask is 1 exactly on them."""

from __future__ import annotations

import dataclasses
import time

import pytest

from sr1lib import protocol
from sr1lib.config import RolloutConfig
from sr1lib.errors import Sr1Error
from sr1lib.generators import make_generator
from sr1lib.models import load_tokenizer
from sr1lib.rollout import CONTEXT_ELISION, MAX_QUERY_CHARS, OBS_CLOSE, OBS_OPEN, rollout
from sr1lib.types import FEEDBACK, MODEL, PROMPT, RETRIEVED, Hit, QARecord
from tests.test_rollout_support import (RECORDS, Recording, bm25_dir, check_rollout, corpus_file,  # noqa: F401
                                        one_torch_thread, retriever)

CFG = RolloutConfig(max_turns=2, max_new_tokens=64, max_response_tokens=400, max_obs_tokens=120,
                    max_prompt_tokens=600, group_size=1)


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def run(tok, retriever, script, records=RECORDS[:1], cfg=CFG, **kw):
    """Roll out with a scripted generator (a list of calls, or a function) and check the invariants."""
    gen = (make_generator("scripted", tokenizer=tok, fn=script) if callable(script)
           else make_generator("scripted", tokenizer=tok, script=script, logprob=-1.0))
    rec = Recording(gen)
    result = rollout(records, rec, retriever, cfg, **kw)
    check_rollout(result, rec, cfg, pad_id=tok.pad_token_id)
    return result, rec


def sources(tr):
    return [s.source for s in tr.segments]


def test_observation_format_matches_protocol():
    hits = [Hit.from_title_text("1", 1.0, "A", "text a"), Hit.from_title_text("2", 0.5, "B", "text b")]
    assert protocol.format_observation(hits) == OBS_OPEN + protocol.format_passages(hits).strip() + OBS_CLOSE
    assert protocol.format_error_observation("boom") == OBS_OPEN + "Search failed: boom" + OBS_CLOSE


def test_search_then_answer(tok, retriever):
    result, rec = run(tok, retriever, [["<think> I need the capital. </think>\n<search> capital of France </search>"],
                                       ["<think> It is Paris. </think>\n<answer> Paris </answer>"]])
    (tr,) = result.trajectories
    assert sources(tr) == [PROMPT, MODEL, RETRIEVED, MODEL]
    obs = tr.segments[2]
    assert obs.text.startswith(OBS_OPEN + 'Doc 1(Title: "Paris")') and obs.text.endswith(OBS_CLOSE)
    assert (tr.reward, tr.answer, tr.finished, tr.truncated) == (1.0, "Paris", True, False)
    assert (tr.n_searches, tr.n_valid_searches, tr.n_invalid, tr.n_turns) == (1, 1, 0, 2)
    assert tr.queries == ("capital of France",) and retriever.calls == [["capital of France"]]
    assert tr.group_id == "0:toy/1" and tr.uid == "0:toy/1:0" and tr.extra["end"] == "answer"
    assert tr.retrieval_s > 0
    # the second turn's input is the whole context so far, token for token
    assert rec.prompts[1][0] == tuple(t for s in tr.segments[:3] for t in s.token_ids)
    assert result.metrics["reward_mean"] == 1.0 and result.metrics["valid_search_ratio"] == 1.0


def test_answer_at_once_and_reward_reads_the_response_only(tok, retriever):
    # The prompt holds the example "<answer> Paris </answer>"; a response without an answer scores 0
    # even though the gold answer is Paris.
    assert "<answer> Paris </answer>" in protocol.build_prompt("q", None)
    result, _ = run(tok, retriever, [["<think> no idea </think>" + tok.eos_token]])
    (tr,) = result.trajectories
    assert (tr.reward, tr.answer, tr.finished, tr.extra["end"]) == (0.0, None, False, "eos")
    result, _ = run(tok, retriever, [["<answer> paris </answer>"]])
    assert result.trajectories[0].reward == 1.0 and result.trajectories[0].n_turns == 1
    assert retriever.calls == []


def test_invalid_action_gets_feedback_and_is_counted(tok, retriever):
    result, _ = run(tok, retriever, [["I think the answer is Paris."], ["<answer> Paris </answer>"]])
    (tr,) = result.trajectories
    assert sources(tr) == [PROMPT, MODEL, FEEDBACK, MODEL]
    assert tr.segments[2].text == protocol.INVALID_ACTION_FEEDBACK
    assert (tr.n_invalid, tr.finished, tr.reward) == (1, True, 1.0)


@pytest.mark.parametrize("output, kind", [
    ("<search> capital <answer> Paris </answer>", "answer"),  # nested: the first complete pair wins
    ("<search> <search> capital of France </search>", "search"),  # doubled opening tag
    ("<search> capital of France", "invalid"),  # unclosed (ends on length)
    ("<answer> Paris", "invalid"),  # unclosed answer
    ("</search>", "invalid"),  # a closing tag alone
    ("<search>   </search>", "invalid"),  # empty query: not sent to the retriever
])
def test_malformed_actions_end_correctly(tok, retriever, output, kind):
    script = lambda prompt, call: output if call == 0 else "<answer> Paris </answer>"  # noqa: E731
    result, _ = run(tok, retriever, script)
    (tr,) = result.trajectories
    assert tr.finished
    assert tr.n_invalid == (kind == "invalid")
    assert tr.n_searches == (kind == "search") == len(retriever.calls)
    assert tr.n_turns == (1 if kind == "answer" else 2)


def test_huge_query_and_observation_truncation(tok, retriever):
    cfg = dataclasses.replace(CFG, max_new_tokens=8000, max_response_tokens=9000, max_obs_tokens=40)
    query = " ".join(["capital of France"] * 1500)
    result, _ = run(tok, retriever, [[f"<search> {query} </search>"], ["<answer> Paris </answer>"]], cfg=cfg)
    (tr,) = result.trajectories
    assert tr.n_model_tokens > 3000  # the query really is thousands of tokens
    assert len(retriever.calls[0][0]) == MAX_QUERY_CHARS and tr.queries[0] == retriever.calls[0][0]
    obs = tr.segments[2]
    assert obs.source == RETRIEVED and len(obs.token_ids) == 40
    # cut inside the tags: the closing </information> (and what follows it) is always there
    assert obs.text.endswith(OBS_CLOSE) and obs.text.startswith(OBS_OPEN)
    close = tuple(tok.encode(OBS_CLOSE, add_special_tokens=False))
    assert obs.token_ids[-len(close):] == close
    assert tr.finished and tr.reward == 1.0


def test_model_that_never_stops_is_truncated(tok, retriever):
    cfg = dataclasses.replace(CFG, max_new_tokens=32, max_response_tokens=150)
    result, rec = run(tok, retriever, lambda p, call: "and so on " * 50, cfg=cfg)
    (tr,) = result.trajectories
    assert tr.truncated and not tr.finished and tr.extra["end"] == "response_budget"
    assert tr.n_response_tokens == 150  # exactly the budget: the last sample was cut to fit
    assert tr.n_invalid >= 2 and FEEDBACK in sources(tr)
    assert all(p.max_new_tokens <= 32 for p in rec.params)
    assert result.metrics["truncation_ratio"] == 1.0


def test_context_truncation_keeps_the_question(tok, retriever):
    cfg = dataclasses.replace(CFG, max_turns=6, max_prompt_tokens=400, max_obs_tokens=60, max_response_tokens=2000)
    script = lambda p, call: f"<think> step {call} </think><search> capital of France {call} </search>" \
        if call < 5 else "<answer> Paris </answer>"  # noqa: E731
    result, rec = run(tok, retriever, script, cfg=cfg)
    (tr,) = result.trajectories
    prompt = tr.segments[0].token_ids
    elision = tuple(tok.encode(CONTEXT_ELISION, add_special_tokens=False))
    truncated_inputs = [p[0] for p in rec.prompts if p[0][len(prompt):len(prompt) + len(elision)] == elision]
    assert truncated_inputs, "the context never needed truncating; the test is too small"
    for inp in (p[0] for p in rec.prompts):
        assert len(inp) <= cfg.max_prompt_tokens
        assert inp[: len(prompt)] == prompt  # the prompt (with the question) is always whole
        assert "What is the capital of France?" in tok.decode(list(inp[: len(prompt)]))
    # the newest segments are kept whole at the end of a truncated input
    last = rec.prompts[-1][0]
    assert last[-len(tr.segments[-2].token_ids):] == tr.segments[-2].token_ids
    # the trajectory keeps everything
    assert tr.n_tokens > cfg.max_prompt_tokens and tr.n_searches == 5 and tr.finished
    assert tr.extra["context_truncations"] >= 1


@pytest.mark.parametrize("last, finished, end", [
    ("<answer> Paris </answer>", True, "answer"),
    ("<search> still searching </search>", False, "final_turn"),
    ("no action at all", False, "final_turn"),
])
def test_final_turn_after_the_search_budget(tok, retriever, last, finished, end):
    cfg = dataclasses.replace(CFG, max_turns=1)
    result, rec = run(tok, retriever, [["<search> capital of France </search>"], ["<search> Paris France </search>"],
                                       [last]], cfg=cfg)
    (tr,) = result.trajectories
    assert sources(tr) == [PROMPT, MODEL, RETRIEVED, MODEL, FEEDBACK, MODEL]
    assert tr.segments[4].text == protocol.SEARCH_BUDGET_FEEDBACK
    assert (tr.n_searches, tr.finished, tr.extra["end"], tr.extra["blocked_searches"]) == (1, finished, end, 1)
    assert len(retriever.calls) == 1 and len(rec.outputs) == 3


def test_zero_search_budget(tok, retriever):
    cfg = dataclasses.replace(CFG, max_turns=0)
    result, _ = run(tok, retriever, [["<search> capital of France </search>"], ["<answer> Paris </answer>"]], cfg=cfg)
    (tr,) = result.trajectories
    assert sources(tr) == [PROMPT, MODEL, FEEDBACK, MODEL] and tr.finished and retriever.calls == []


class Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc, self.calls = exc, 0

    def search(self, queries, k):
        self.calls += 1
        raise self.exc


class Hanging:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def search(self, queries, k):
        time.sleep(self.seconds)
        return [[] for _ in queries]


def test_retriever_error_is_observed_and_counted(tok):
    bad = Failing(ConnectionError("index server down"))
    result, _ = run(tok, bad, [["<search> capital of France </search>"], ["<answer> Paris </answer>"]])
    (tr,) = result.trajectories
    assert sources(tr) == [PROMPT, MODEL, RETRIEVED, MODEL]
    assert "Search failed: ConnectionError: index server down" in tr.segments[2].text
    assert tr.segments[2].text.endswith(OBS_CLOSE)
    assert (tr.n_searches, tr.n_valid_searches, tr.extra["retriever_errors"]) == (1, 0, 1)
    assert result.metrics["retriever_errors"] == 1 and result.metrics["valid_search_ratio"] == 0.0


def test_retriever_error_can_raise(tok):
    cfg = dataclasses.replace(CFG, on_retriever_error="raise")
    with pytest.raises(Sr1Error, match="retriever failed on 1 queries.*index server down"):
        run(tok, Failing(ConnectionError("index server down")), [["<search> q </search>"]], cfg=cfg)


def test_retriever_timeout_never_hangs(tok):
    t0 = time.perf_counter()
    result, _ = run(tok, Hanging(30.0), [["<search> capital of France </search>"], ["<answer> Paris </answer>"]],
                    retriever_timeout_s=0.3)
    assert time.perf_counter() - t0 < 10
    (tr,) = result.trajectories
    assert "TimeoutError" in tr.segments[2].text and tr.extra["retriever_errors"] == 1 and tr.finished


def test_only_active_trajectories_and_one_retriever_call_per_turn(tok, retriever):
    records = RECORDS  # 3 questions x group 2 = 6 trajectories
    script = [
        # call 0: all six; two answer at once, four search
        ["<answer> Paris </answer>", "<search> capital of France </search>", "<search> Hamlet author </search>",
         "<answer> Shakespeare </answer>", "<search> longest river </search>", "<search> Nile river </search>"],
        # call 1: the four that searched; all search again
        ["<search> Paris city </search>"] * 4,
        # call 2: still four; they answer
        ["<answer> Paris </answer>", "<answer> William Shakespeare </answer>", "<answer> Nile </answer>",
         "<answer> Amazon </answer>"],
    ]
    result, rec = run(tok, retriever, script, records=records, group_size=2, step=7)
    assert [len(p) for p in rec.prompts] == [6, 4, 4]
    assert len(retriever.calls) == 2 and [len(c) for c in retriever.calls] == [4, 4]
    assert result.timings["retriever_calls"] == 2 and result.timings["turns"] == 3
    trajs = result.trajectories
    assert [t.group_id for t in trajs] == ["7:toy/1", "7:toy/1", "7:toy/2", "7:toy/2", "7:toy/3", "7:toy/3"]
    assert len({t.uid for t in trajs}) == 6
    assert [t.reward for t in trajs] == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert result.metrics["reward_mean"] == pytest.approx(5 / 6)
    # every trajectory of a group starts from the same prompt ids, tokenised once
    assert trajs[0].segments[0].token_ids == trajs[1].segments[0].token_ids


def test_sampling_settings_come_from_the_config(tok, retriever):
    cfg = dataclasses.replace(CFG, temperature=0.7, top_p=0.9, max_new_tokens=33)
    _, rec = run(tok, retriever, [["<answer> x </answer>"]], cfg=cfg, seed=5)
    (p,) = rec.params
    assert (p.temperature, p.top_p, p.max_new_tokens, p.greedy, p.seed is not None) == (0.7, 0.9, 33, False, True)
    assert p.stop_strings == protocol.STOP_STRINGS
    _, rec = run(tok, retriever, [["<answer> x </answer>"]], cfg=dataclasses.replace(cfg, greedy=True))
    assert rec.params[0].greedy and rec.params[0].seed is None


def test_no_search_and_rag_prompt_modes(tok, retriever):
    result, rec = run(tok, None, [["<search> x </search>"], ["<answer> Paris </answer>"]], prompt_mode="no_search")
    (tr,) = result.trajectories
    assert "<search>" not in tr.segments[0].text.split("Question:")[0]  # the no-search instruction
    assert sources(tr) == [PROMPT, MODEL, FEEDBACK, MODEL] and tr.segments[2].text == protocol.SEARCH_BUDGET_FEEDBACK
    result, rec = run(tok, retriever, [["<answer> Paris </answer>"] * 3], records=RECORDS, prompt_mode="rag")
    assert retriever.calls == [[protocol.normalize_question(r.question) for r in RECORDS]]  # one call, all questions
    assert 'Doc 1(Title: "Paris")' in result.trajectories[0].segments[0].text
    assert all(t.retrieval_s > 0 and t.n_searches == 0 for t in result.trajectories)
    assert result.timings["retriever_calls"] == 1


def test_exact_ids_without_re_encoding(tok, retriever):
    # Non-canonical ids: "Paris" spelled one byte-token at a time. decode -> encode would merge them
    # into other ids; the trajectory keeps exactly the ids the generator produced.
    spelled = [i for ch in "<answer> Paris </answer>" for i in tok.encode(ch, add_special_tokens=False)]
    assert tok.encode(tok.decode(spelled), add_special_tokens=False) != spelled
    result, _ = run(tok, retriever, [[spelled]])
    (tr,) = result.trajectories
    assert list(tr.model_token_ids) == spelled and tr.reward == 1.0


def test_bad_input_errors(tok, retriever):
    with pytest.raises(Sr1Error, match="valid modes"):
        run(tok, retriever, [["x"]], prompt_mode="oracle")
    with pytest.raises(Sr1Error, match="needs a retriever"):
        run(tok, None, [["x"]])
    with pytest.raises(Sr1Error, match="appears twice"):
        run(tok, retriever, [["x"]], records=[RECORDS[0], RECORDS[0]])
    long_q = QARecord("toy/long", "word " * 2000, ("x",), "toy")
    with pytest.raises(Sr1Error, match="toy/long.*max_prompt_tokens=600"):
        run(tok, retriever, [["x"]], records=[long_q])


class ThreadNoting:
    """A real retriever that notes which thread each search runs on."""

    def __init__(self, inner) -> None:
        self.inner, self.threads = inner, []

    def search(self, queries, k):
        import threading

        self.threads.append(threading.get_ident())
        return self.inner.search(queries, k)


def test_retriever_runs_on_one_long_lived_thread_and_recovers_after_a_timeout(tok, retriever):
    # Backends that bind state to threads (pyjnius attaches each thread to the JVM) must see one
    # thread across turns and rollouts, not a new one per call.
    noting = ThreadNoting(retriever)
    script = [["<search> capital of France </search>"], ["<search> Paris </search>"], ["<answer> Paris </answer>"]]
    run(tok, noting, script)
    run(tok, noting, script)
    assert len(noting.threads) == 4 and len(set(noting.threads)) == 1
    run(tok, Hanging(5.0), [["<search> q </search>"], ["<answer> x </answer>"]], retriever_timeout_s=0.2)
    result, _ = run(tok, noting, script)  # a fresh worker thread answers after the stuck one
    assert result.trajectories[0].n_valid_searches == 2 and len(set(noting.threads)) == 2


def test_unreachable_retrieval_server_becomes_an_error_observation(tok):
    # A real http client against a loopback port nobody listens on.
    import socket

    from sr1lib.retrieval import open_retriever

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = open_retriever(f"http://127.0.0.1:{port}", cache=False, timeout_s=1.0, retries=0)
    try:
        result, _ = run(tok, client, [["<search> capital of France </search>"], ["<answer> Paris </answer>"]])
    finally:
        client.close()
    (tr,) = result.trajectories
    assert "Search failed:" in tr.segments[2].text and f"127.0.0.1:{port}" in tr.segments[2].text
    assert tr.extra["retriever_errors"] == 1 and tr.finished
