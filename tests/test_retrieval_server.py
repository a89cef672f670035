"""The retrieval server on a real uvicorn (loopback, free port): Search-R1's wire format, the full
bad-input table, health, concurrency with micro-batching, errors that do not stop it, and `sr1 serve`."""

from __future__ import annotations

import json
import threading

import pytest

from retrieval_support import FACTS, built_index, have, sr1_serve
from sr1lib.retrieval import Retriever, open_retriever
from sr1lib.retrieval.server import (ResultEncoder, RetrieveRequest, ServerLimits, ServerThread, format_result,
                                     parse_retrieve)
from sr1lib.types import Hit

pytestmark = pytest.mark.skipif(not (have("fastapi") and have("uvicorn") and have("httpx") and have("bm25s")),
                                reason="fastapi/uvicorn/httpx/bm25s not installed")

LIMITS = ServerLimits(default_topk=3, max_topk=20, max_queries=50, max_query_chars=200, max_body_bytes=20_000)


class Flaky(Retriever):
    """A real retriever that fails on one query, to show the server survives backend errors."""

    name = "flaky"

    def __init__(self, inner: Retriever):
        self.inner = inner

    def _search(self, queries, k):
        if "explode" in queries:
            raise RuntimeError("backend exploded")
        return self.inner.search(queries, k)

    def doc(self, docid):
        return self.inner.doc(docid)

    def __len__(self):
        return len(self.inner)

    def describe(self):
        return {**self.inner.describe(), "backend": "flaky"}


@pytest.fixture(scope="module")
def backend():
    r = open_retriever(built_index("bm25s"), cache=False)
    yield r
    r.close()


@pytest.fixture(scope="module")
def server(backend):
    with ServerThread(Flaky(backend), limits=LIMITS) as s:
        yield s


@pytest.fixture(scope="module")
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_binds_loopback_on_a_free_port(server):
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0


def test_search_r1_format_with_scores(http, backend):
    r = http.post("/retrieve", json={"queries": ["who discovered penicillin in Toronto", "Danube river Vienna"], "topk": 2,
                                     "return_scores": True})
    assert r.status_code == 200
    result = r.json()["result"]
    assert len(result) == 2 and len(result[0]) == 2
    first = result[0][0]
    assert set(first) == {"document", "score"} and set(first["document"]) == {"id", "contents"}
    assert first["document"] == {"id": "10", "contents": f'"{FACTS[10][0]}"\n{FACTS[10][1]}'}
    expected = backend.search(["who discovered penicillin in Toronto"], 2)[0]
    assert [(x["document"]["id"], x["score"]) for x in result[0]] == [(h.docid, pytest.approx(h.score)) for h in expected]
    # What Search-R1's trainer does with the answer (generation.py, _passages2string):
    titles = [d["document"]["contents"].split("\n")[0] for d in result[1]]
    assert titles[0] == '"Danube"'


def test_without_scores_hits_are_bare_documents_and_topk_defaults(http):
    r = http.post("/retrieve", json={"queries": ["giraffe neck animal river"]})
    (hits,) = r.json()["result"]
    assert r.status_code == 200 and len(hits) == LIMITS.default_topk
    assert set(hits[0]) == {"id", "contents"} and hits[0]["id"] == "13"  # as Search-R1's server answers


BAD = [
    # (body bytes or JSON value, status, words the message must contain)
    (b"{not json", 400, "not valid JSON"),                                       # malformed JSON
    (b"\xff\xfe", 400, "not valid JSON"),                                        # not UTF-8
    (["a", "b"], 400, "must be a JSON object"),                                  # not an object
    ({"topk": 3}, 422, "missing field 'queries'"),                               # missing field
    ({"queries": "giraffe"}, 422, "'queries' must be a list"),                   # not a list
    ({"queries": ["a", 5]}, 422, "queries[1] must be a string"),                 # non-string query
    ({"queries": ["a", None]}, 422, "queries[1] must be a string"),              # null query
    ({"query": ["a"]}, 422, "'query' must be a string"),                         # SkyRL's field, wrong type
    ({"query": "a", "queries": ["a"]}, 422, "not both"),                         # both shapes at once
    ({"queries": ["a"], "topk": 10**9}, 422, "between 1 and 20"),                # absurd topk
    ({"queries": ["a" * 201]}, 422, "queries[0] has 201 characters"),            # query too long
    ({"queries": ["a"] * 51}, 422, "the limit is 50 per request"),               # too many queries
    ({"queries": ["a"], "topk": 0}, 422, "between 1 and 20, got 0"),             # topk < 1
    ({"queries": ["a"], "topk": 21}, 422, "between 1 and 20, got 21"),           # topk > max
    ({"queries": ["a"], "topk": "3"}, 422, "'topk' must be an integer"),         # topk a string
    ({"queries": ["a"], "topk": 2.5}, 422, "'topk' must be an integer"),         # topk a float
    ({"queries": ["a"], "topk": True}, 422, "'topk' must be an integer"),        # bool is not an int
    ({"queries": ["a"], "return_scores": "yes"}, 422, "'return_scores' must be true or false"),
    (b'{"queries": ["' + b"x" * 30_000 + b'"]}', 413, "the limit is 20000"),     # oversized body
]


@pytest.mark.parametrize("body,status,words", BAD, ids=[f"{i}-{s}" for i, (_, s, _) in enumerate(BAD)])
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(http, body, status, words):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = http.post("/retrieve", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status and words in r.json()["detail"], r.text
    assert http.post("/retrieve", json={"queries": ["giraffe"], "topk": 1}).status_code == 200


def test_oversized_chunked_body_is_cut_off(http):
    def chunks():
        for _ in range(30):
            yield b"x" * 1000
    r = http.post("/retrieve", content=chunks())  # no content-length: read until the limit
    assert r.status_code == 413 and "exceeds the limit of 20000 bytes" in r.json()["detail"]


def test_wrong_method_and_path(http):
    assert http.get("/retrieve").status_code == 405
    assert http.post("/search", json={"queries": ["a"]}).status_code == 404


def test_backend_error_is_a_500_and_does_not_stop_the_server(http):
    r = http.post("/retrieve", json={"queries": ["explode"]})
    assert r.status_code == 500 and "backend exploded" in r.json()["detail"]
    assert http.post("/retrieve", json={"queries": ["giraffe"]}).status_code == 200


def test_health_and_doc(http):
    h = http.get("/health").json()
    assert h["status"] == "ok" and h["backend"] == "flaky" and h["doc_count"] == 48 and h["uptime_s"] > 0
    assert h["limits"]["max_topk"] == 20
    assert http.get("/doc", params={"id": "3"}).json()["document"]["contents"].startswith('"Danube"')
    assert http.get("/doc", params={"id": "nope"}).json() == {"document": None}


def test_concurrent_clients_are_batched_without_errors(server, http, backend):
    import httpx

    before = http.get("/health").json()
    errors, qs = [], [f"{t} {x.split()[-1]}" for t, x in FACTS]
    expected = {q: [h.docid for h in hits] for q, hits in zip(qs, backend.search(qs, 3))}

    def client(cid):
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for i in range(25):
                q = qs[(cid + i) % len(qs)]
                r = c.post("/retrieve", json={"queries": [q], "topk": 3, "return_scores": True})
                got = [d["document"]["id"] for d in r.json()["result"][0]] if r.status_code == 200 else None
                if got != expected[q]:
                    errors.append((r.status_code, q, got))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = http.get("/health").json()
    assert errors == []
    requests, batches = after["requests"] - before["requests"], after["batches"] - before["batches"]
    assert requests == 200 and batches <= requests  # concurrent requests may share a backend call


def test_parse_retrieve_directly():
    assert parse_retrieve(b'{"queries": ["a"], "topk": 5, "return_scores": true}', LIMITS) == RetrieveRequest(["a"], 5, True)
    assert parse_retrieve(b'{"queries": ["a"], "topk": null}', LIMITS) == RetrieveRequest(["a"], 3, False)
    assert parse_retrieve(b'{"query": "a", "b": 1, "a": 2}', LIMITS) == RetrieveRequest(["a"], 3, False, ("a", "b"))
    assert parse_retrieve(b'{"queries": ["", " "]}', LIMITS).queries == ["", " "]  # answered with no hits


def test_fast_encoder_equals_plain_json():
    # The server's string-joining encoder against json.dumps of the plain objects, on awkward text.
    hits = [[Hit.from_title_text("1", 7.4720001220703125, 'Say "hi"', "back\\slash\nnew line — ünï 😀"), Hit.from_title_text("2", 0.1, "", "")],
            [], [Hit.from_title_text("3", 1e-7, "T", "x" * 3000)]]
    enc = ResultEncoder(max_entries=2)  # also exercises the bounded fragment cache
    for scores in (True, False):
        for _ in range(2):
            assert json.loads(enc.encode(hits, scores)) == json.loads(json.dumps(format_result(hits, scores)))


def test_sr1_serve_command(tmp_path):
    import httpx

    with sr1_serve(built_index("bm25s"), "--topk", "2") as (url, _):
        h = httpx.get(url + "/health", timeout=5).json()
        assert h["backend"] == "bm25s" and h["doc_count"] == 48
        from sr1lib.fsutil import sha256_file
        from sr1lib.evaluate.provenance import corpus_info
        from sr1lib.retrieval.client import HttpRetriever

        # The manifest travels so an evaluation against this URL can verify the corpus it searched.
        corpus = h["manifest"]["corpus"]
        assert corpus["sha256"] == sha256_file(corpus["path"])
        with HttpRetriever(url) as client:
            assert corpus_info(client)["sha256"] == corpus["sha256"]
        r = httpx.post(url + "/retrieve", json={"queries": ["Eiffel Tower Paris bridge"], "return_scores": True}).json()
        assert [d["document"]["id"] for d in r["result"][0]][:1] == ["15"] and len(r["result"][0]) == 2
