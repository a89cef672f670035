"""Pipeline checks with the diagnostic generators on HotpotQA-100 and its own corpus (bm25s index).

oracle-gold must score 1.0 and oracle-empty 0.0 through every method's loop; oracle-copy (search
the question, answer with the first passage's title) must score exactly the retriever's
answer-recall@1 by title, computed here independently from the retriever's own results.
"""

from __future__ import annotations

import json

import pytest

from sr1lib.evaluate.core import evaluate
from sr1lib.evaluate.datasets import resolve_dataset
from sr1lib.evaluate.oracles import OracleGenerator, continue_from, first_title, question_of
from sr1lib.protocol import normalize_question
from sr1lib.rewards import exact_match
from tests.conftest import shared_file

ROLLOUT = ["cot", "rag", "r1", "search-r1"]  # the methods that run through sr1lib.rollout


def available(methods: list[str]) -> list[str]:
    """`methods` without the rollout ones while sr1lib.rollout is not installed (see the skip below)."""
    try:
        import sr1lib.rollout  # noqa: F401
    except ImportError:
        return [m for m in methods if m not in ROLLOUT]
    return methods


ALL = available(["direct", "cot", "ircot", "rag", "r1", "search-r1"])


def test_rollout_methods_are_checked():
    pytest.importorskip("sr1lib.rollout", reason="cot/rag/r1/search-r1 oracle checks need sr1lib.rollout")


@pytest.fixture(scope="module")
def hotpot_index(tmp_path_factory):
    from sr1lib.retrieval import build_index
    from sr1lib.retrieval.corpus import write_hotpotqa_corpus

    src = shared_file("hotpotqa_dev_distractor_100.json")
    root = tmp_path_factory.mktemp("hotpot")
    corpus = write_hotpotqa_corpus(src, root / "corpus.jsonl")
    build_index(corpus, root / "bm25s", "bm25s", progress=False)
    return root / "bm25s"


@pytest.fixture(scope="module")
def records():
    shared_file("hotpotqa_dev_distractor_100.json")
    return resolve_dataset("hotpotqa-100").records


def _predictions(out) -> list[dict]:
    lines = (out.parent / (out.stem + ".predictions.jsonl")).read_text().splitlines()
    return [json.loads(x) for x in lines[1:]]


def test_oracle_gold_scores_one_through_every_loop(hotpot_index, tmp_path):
    report = evaluate("oracle-gold", hotpot_index, ["hotpotqa-100"], ALL, progress=False,
                      out=tmp_path / "gold.json")
    for method, cell in report["results"]["hotpotqa-100"].items():
        assert cell["n"] == 100, method
        assert (cell["em"], cell["cover_em"], cell["f1"]) == (1.0, 1.0, 1.0), method
    assert report["averages"]["search-r1"]["em"] == 1.0


def test_oracle_empty_scores_zero(hotpot_index, tmp_path):
    report = evaluate("oracle-empty", hotpot_index, ["hotpotqa-100"], ALL, progress=False)
    for method, cell in report["results"]["hotpotqa-100"].items():
        assert (cell["n"], cell["em"], cell["cover_em"], cell["f1"]) == (100, 0.0, 0.0, 0.0), method


def test_oracle_copy_scores_the_retrievers_answer_recall_at_1_by_title(hotpot_index, records, tmp_path):
    from sr1lib.retrieval import open_retriever

    # answer-recall@1 by title: the top-1 passage for the question (as the prompt states it) has a
    # title that exactly matches a gold answer after SQuAD normalisation.
    with open_retriever(hotpot_index) as r:
        top1 = r.search([normalize_question(x.question) for x in records], 1)
    hit = {x.id: exact_match(h[0].title, x.golden_answers) for x, h in zip(records, top1)}
    recall = sum(hit.values()) / len(hit)
    assert 0.0 < recall < 0.5  # HotpotQA comparison questions often answer with a title; most do not

    out = tmp_path / "copy.json"
    copy_methods = available(["rag", "ircot", "search-r1"])
    report = evaluate("oracle-copy", hotpot_index, ["hotpotqa-100"], copy_methods, progress=False, out=out)
    for method in copy_methods:
        assert report["results"]["hotpotqa-100"][method]["em"] == pytest.approx(recall), method
    rows = _predictions(out)
    for row in rows:  # question by question, not only on average
        assert row["em"] == hit[row["id"]], (row["method"], row["id"], row["prediction"])
    # search-r1: exactly one search, the question itself; rag: the passages came with the prompt.
    sr1 = [r for r in rows if r["method"] == "search-r1"]
    assert all(r["n_searches"] == 1 for r in sr1)
    if "rag" in copy_methods:
        assert report["results"]["hotpotqa-100"]["rag"]["mean_searches"] == 0.0


def test_question_and_title_parsing():
    assert question_of("Answer... Question: Who wrote Hamlet?\n") == "Who wrote Hamlet?"
    assert first_title("<information>Doc 1(Title: Up (2009 film)) A film.\nDoc 2(Title: B) c</information>") \
        == first_title('<information>Doc 1(Title: "Up (2009 film)") A film.</information>') == "Up (2009 film)"
    assert first_title("no passages here") is None
    assert continue_from("<answer> Henry J.", "<answer> Henry J. Kaiser </answer>") == " Kaiser </answer>"
    assert continue_from("<think>x</think>", "<answer> a </answer>") == "<answer> a </answer>"


def test_oracle_refuses_a_question_it_was_not_told_about(records):
    from sr1lib.errors import Sr1Error
    from sr1lib.generators import SamplingParams

    oracle = OracleGenerator("oracle-gold")
    oracle.bind_records(records[:1])
    ids = oracle.tokenizer.encode(oracle.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Question: What is unknown?\n"}], tokenize=False))
    with pytest.raises(Sr1Error, match="not among the bound records"):
        oracle.generate([ids], SamplingParams(greedy=True))
    with pytest.raises(Sr1Error, match="valid oracles are"):
        OracleGenerator("oracle-lucky")


@pytest.mark.slow  # builds a smoke-profile toy world and its index
def test_toy_world_by_name_with_its_own_corpus(tmp_path, monkeypatch):
    from sr1lib.retrieval import open_retriever

    monkeypatch.setenv("SR1_CACHE", str(tmp_path / "cache"))  # the world and its index are built here
    gold = evaluate("oracle-gold", None, ["toy:smoke"], available(["direct", "ircot", "search-r1"]), progress=False)
    assert all(c["em"] == 1.0 and c["n"] == 12 for c in gold["results"]["toy:smoke"].values())
    copy = evaluate("oracle-copy", None, ["toy:smoke"], available(["ircot", "search-r1"]), progress=False)
    prov = copy["provenance"]
    assert prov["corpus"]["path"].startswith(str(tmp_path / "cache")) and prov["corpus"]["sha256_verified"]
    toy = resolve_dataset("toy:smoke").records
    with open_retriever(prov["retriever"]["index"]) as r:
        top1 = r.search([normalize_question(x.question) for x in toy], 1)
    recall = sum(exact_match(h[0].title, x.golden_answers) for x, h in zip(toy, top1)) / len(toy)
    assert all(c["em"] == pytest.approx(recall) for c in copy["results"]["toy:smoke"].values())
    from sr1lib.errors import Sr1Error

    with pytest.raises(Sr1Error, match=r"PROFILE one of \['smoke', 'quick', 'full'\]"):
        resolve_dataset("toy:huge")


def test_a_retrieval_server_url_serves_the_same_passages(hotpot_index, records, tmp_path):
    # --retriever may be a URL: the same index behind sr1's Search-R1-compatible server on loopback
    # must give oracle-copy the same answers, question by question.
    import socket
    import threading
    import time

    import uvicorn

    from sr1lib.retrieval import open_retriever
    from sr1lib.retrieval.server import create_app

    local = evaluate("oracle-copy", hotpot_index, ["hotpotqa-100"], available(["search-r1", "ircot"]), limit=25,
                     progress=False, out=tmp_path / "local.json")
    backing = open_retriever(hotpot_index)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(create_app(backing), log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not srv.started and time.time() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        remote = evaluate("oracle-copy", url, ["hotpotqa-100"], available(["search-r1", "ircot"]), limit=25,
                          progress=False, out=tmp_path / "remote.json")
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()
        backing.close()
    assert remote["results"] == local["results"]
    assert remote["provenance"]["retriever"]["backend"] == "http"
    assert remote["provenance"]["retriever"]["index"] == url
    a, b = _predictions(tmp_path / "local.json"), _predictions(tmp_path / "remote.json")
    assert [(r["id"], r["prediction"]) for r in a] == [(r["id"], r["prediction"]) for r in b]
