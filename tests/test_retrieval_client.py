"""The http backend against a real server: same answers as in-process, batching, bounded retries,
clear errors when the server is down or rejects a request, and Search-R1's answer shapes."""

from __future__ import annotations

import socket
import time

import pytest

from retrieval_support import built_index, have
from sr1lib.errors import Sr1Error
from sr1lib.retrieval import CachedRetriever, Hit, Retriever, open_retriever
from sr1lib.retrieval.client import HttpRetriever, parse_hit
from sr1lib.retrieval.server import ServerLimits, ServerThread

pytestmark = pytest.mark.skipif(not (have("fastapi") and have("uvicorn") and have("httpx") and have("bm25s")),
                                reason="fastapi/uvicorn/httpx/bm25s not installed")

QS = ["who discovered penicillin", "Danube river Vienna", "giraffe neck", "Tokyo capital of Japan", "zzqqx"]


class Troubled(Retriever):
    """Fails on 'explode', sleeps on 'slow'; otherwise the real bm25s index answers."""

    name = "bm25s"

    def __init__(self, inner):
        self.inner = inner

    def _search(self, queries, k):
        if "explode" in queries:
            raise RuntimeError("backend exploded")
        if "slow" in queries:
            time.sleep(0.6)
        return self.inner.search(queries, k)

    def doc(self, docid):
        return self.inner.doc(docid)

    def __len__(self):
        return len(self.inner)


@pytest.fixture(scope="module")
def local():
    r = open_retriever(built_index("bm25s"), cache=False)
    yield r
    r.close()


@pytest.fixture(scope="module")
def server(local):
    with ServerThread(Troubled(local), limits=ServerLimits(max_topk=20)) as s:
        yield s


def requests_seen(client: HttpRetriever) -> int:
    return client.health()["requests"]


def test_http_answers_equal_in_process(server, local):
    with HttpRetriever(server.url) as client:
        assert client.search(QS, 5) == local.search(QS, 5)  # docids, scores, titles, texts


def test_batches_split_by_batch_size(server):
    with HttpRetriever(server.url + "/retrieve", batch_size=2) as client:  # a /retrieve suffix is accepted
        before = requests_seen(client)
        client.search(QS + ["", "  "], 3)
        assert requests_seen(client) - before == 3  # 5 non-blank queries -> 3 requests of <= 2


def test_len_doc_and_describe(server, local):
    with HttpRetriever(server.url) as client:
        assert len(client) == len(local) and client.doc("3") == local.doc("3") and client.doc("nope") is None
        d = client.describe()
        assert d["backend"] == "http" and d["index"] == server.url and d["server"]["doc_count"] == len(local)


def test_open_retriever_with_a_url_is_cached_http(server, local):
    r = open_retriever(server.url)
    assert isinstance(r, CachedRetriever) and isinstance(r.inner, HttpRetriever)
    assert r.search(QS[:2], 3) == local.search(QS[:2], 3)
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_fails_fast_with_bounded_retries():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    client = HttpRetriever(url, retries=2, backoff_s=0.01, timeout_s=2)
    t = time.perf_counter()
    with pytest.raises(Sr1Error) as e:
        client.search(["anything"], 3)
    msg = str(e.value)
    assert f"{url}/retrieve failed after 3 attempts" in msg and "ConnectError" in msg and "sr1 serve" in msg
    assert time.perf_counter() - t < 2.0  # 0.01 + 0.02 s of backoff, connection refused at once
    with pytest.raises(Sr1Error, match="does not report its size"):
        len(client)


def test_4xx_is_not_retried_and_names_the_problem(server):
    with HttpRetriever(server.url, retries=3, backoff_s=0.01) as client:
        before = requests_seen(client)
        with pytest.raises(Sr1Error, match=r"rejected the request \(HTTP 422\): 'topk' must be between 1 and 20"):
            client.search(["giraffe"], 50)
        assert requests_seen(client) - before == 1


def test_5xx_is_retried_then_reported(server):
    with HttpRetriever(server.url, retries=2, backoff_s=0.01) as client:
        before = requests_seen(client)
        with pytest.raises(Sr1Error, match=r"failed after 3 attempts \(HTTP 500: search failed: RuntimeError: backend exploded\)"):
            client.search(["explode"], 3)
        assert requests_seen(client) - before == 3
        assert client.search(["giraffe"], 1)[0][0].docid == "13"  # and it still serves


def test_timeout_is_reported(server):
    with HttpRetriever(server.url, retries=0, timeout_s=0.2) as client:
        with pytest.raises(Sr1Error, match=r"failed after 1 attempts \(timed out after 0.2 s\)"):
            client.search(["slow"], 3)


def test_bad_url():
    with pytest.raises(Sr1Error, match="must start with http:// or https://"):
        HttpRetriever("localhost:8000")


SEARCH_R1_SHAPES = [
    # Search-R1's BM25 server: no id, title/text/contents, wrapped with a score
    ({"document": {"title": "Paris", "text": "Capital.", "contents": '"Paris"\nCapital.'}, "score": 3.5},
     Hit.from_title_text("", 3.5, "Paris", "Capital.")),
    # its dense server: the corpus row
    ({"document": {"id": "7", "contents": '"Rome"\nCity.'}, "score": 0.8}, Hit.from_title_text("7", 0.8, "Rome", "City.")),
    # return_scores false: bare documents
    ({"id": "8", "contents": '"Oslo"\nNorway.'}, Hit.from_title_text("8", 0.0, "Oslo", "Norway.")),
    # title/text only
    ({"document": {"id": "9", "title": "Bern", "text": "Swiss."}, "score": 1}, Hit.from_title_text("9", 1.0, "Bern", "Swiss.")),
]


@pytest.mark.parametrize("item,hit", SEARCH_R1_SHAPES)
def test_reads_search_r1_answer_shapes(item, hit):
    assert parse_hit(item) == hit


def test_rejects_a_hit_that_is_not_an_object():
    with pytest.raises(Sr1Error, match="not an object"):
        parse_hit(["x"])
