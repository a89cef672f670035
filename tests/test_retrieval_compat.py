"""`sr1 serve` as a drop-in for Search-R1's retrieval server, driven by clients shaped like the
reference trainers' own: Search-R1's (`requests.post` to /retrieve, reading `resp.json()["result"]`
and formatting passages with `_passages2string`) and SkyRL's (a session posting one query). The
corpus is 1,000 real wiki-18 passages, 121 of which store their title without quotes."""

from __future__ import annotations

import json

import pytest

from conftest import shared_file
from retrieval_support import built_index, have, sr1_serve

pytestmark = pytest.mark.skipif(not (have("fastapi") and have("uvicorn") and have("requests") and have("bm25s")),
                                reason="fastapi/uvicorn/requests/bm25s not installed")


@pytest.fixture(scope="module")
def wiki() -> dict[str, str]:
    """docid -> contents, exactly as the sample file stores them."""
    path = shared_file("wiki18_sample_1000.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["id"]: r["contents"] for r in rows}


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    """`sr1 serve` over a bm25s index of the wiki-18 sample."""
    from sr1lib.retrieval import build_index

    out = tmp_path_factory.mktemp("wiki") / "idx"
    build_index(shared_file("wiki18_sample_1000.jsonl"), out, "bm25s", progress=False)
    with sr1_serve(out, "--max-topk", "50", "--no-cache") as (base, _):
        yield base


def search_r1_batch_search(url: str, queries: list[str], topk: int = 3) -> list[str]:
    """What Search-R1's generation loop does per search turn (search_r1/llm_agent/generation.py,
    `_batch_search` + `_passages2string`), restated: post every query, read `result`, and write
    `Doc i(Title: <first line>) <later lines>` for each hit's `document.contents`."""
    import requests

    payload = {"queries": queries, "topk": topk, "return_scores": True}
    results = requests.post(url + "/retrieve", json=payload, timeout=30).json()["result"]
    out = []
    for hits in results:
        text = ""
        for i, item in enumerate(hits):
            lines = item["document"]["contents"].split("\n")
            text += f"Doc {i + 1}(Title: {lines[0]}) " + "\n".join(lines[1:]) + "\n"
        out.append(text)
    return out


def test_served_contents_are_the_stored_bytes(url, wiki):
    import requests

    unquoted = [d for d, c in wiki.items() if not c.split("\n")[0].startswith('"')]
    assert len(unquoted) == 121  # what the issue measured; the test below would miss them otherwise
    with requests.Session() as s:
        for docid, contents in wiki.items():
            assert s.get(url + "/doc", params={"id": docid}, timeout=30).json()["document"] == \
                {"id": docid, "contents": contents}
        # and the same bytes through /retrieve, searching for the unquoted-title passages by their title line
        queries = [wiki[d].split("\n")[0] for d in unquoted[:40]]
        result = s.post(url + "/retrieve", json={"queries": queries, "topk": 10}, timeout=30).json()["result"]
    assert all(doc["contents"] == wiki[doc["id"]] for hits in result for doc in hits)
    found = [d for d, hits in zip(unquoted, result) if d in {h["id"] for h in hits}]
    assert len(found) >= 30  # most title lines find their own passage, unquoted title and all


def test_information_block_is_search_r1_s_bytes(url):
    from sr1lib.protocol import format_observation
    from sr1lib.retrieval.client import HttpRetriever

    queries = ["Evan Morris lobbyist Genentech", "Paul Walker car collection", "", "history of the city"]
    reference = search_r1_batch_search(url, queries)
    with HttpRetriever(url) as client:
        ours = [format_observation(hits) for hits in client.search(queries, 3)]
    # Search-R1 appends f"\n\n<information>{passages.strip()}</information>\n\n"
    assert ours == [f"\n\n<information>{r.strip()}</information>\n\n" for r in reference]
    assert any('(Title: "' in r for r in reference) and reference[2] == ""


def test_search_r1_empty_query_and_empty_turn(url):
    import requests

    # `<search> </search>` reaches the server as "": that query gets no hits, the others are answered
    r = requests.post(url + "/retrieve", json={"queries": ["", "the history of the city and the river", "   "], "topk": 3,
                                               "return_scores": True}, timeout=30)
    result = r.json()["result"]
    assert r.status_code == 200 and result[0] == [] == result[2] and len(result[1]) == 3
    assert set(result[1][0]) == {"document", "score"}
    # a turn where no trajectory searched still posts; Search-R1 reads ["result"] from the answer
    r = requests.post(url + "/retrieve", json={"queries": [], "topk": 3, "return_scores": True}, timeout=30)
    assert r.status_code == 200 and r.json() == {"result": []}
    assert search_r1_batch_search(url, [""]) == [""]


def test_skyrl_single_query_body(url):
    import requests

    q = "Evan Morris lobbyist Genentech"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with requests.Session() as s:  # SkyRL's search tool keeps one session per server
        one = s.post(url + "/retrieve", headers=headers, json={"query": q}, timeout=30)
        batch = s.post(url + "/retrieve", headers=headers, json={"queries": [q]}, timeout=30)
        scored = s.post(url + "/retrieve", headers=headers, json={"query": q, "topk": 2, "return_scores": True},
                        timeout=30)
    assert one.status_code == 200 and one.json() == batch.json() and len(one.json()["result"]) == 1
    assert [h["document"]["id"] for h in scored.json()["result"][0]] == [h["id"] for h in one.json()["result"][0][:2]]
    assert scored.json()["result"][0][0]["document"]["contents"].startswith('"Evan Morris"')


def test_unknown_fields_are_ignored_and_logged_once():
    import requests

    body = {"queries": ["river mountain city music"], "topk": 2, "return_scores": True, "request_id": "abc", "rerank": False}
    with sr1_serve(built_index("bm25s")) as (url, proc):
        for _ in range(3):
            r = requests.post(url + "/retrieve", json=body, timeout=30)
            assert r.status_code == 200 and len(r.json()["result"][0]) == 2
        assert requests.get(url + "/health", timeout=30).json()["ignored_fields"] == ["request_id", "rerank"]
    log = proc.stderr.read().decode()
    assert log.count("ignoring unknown request field(s) ['request_id', 'rerank']") == 1, log[-2000:]


BAD = [
    # (raw body, status, words the message must contain)
    (b"queries=a", 400, "not valid JSON"),                                             # form data, not JSON
    (b'"just a string"', 400, "must be a JSON object"),                                # JSON, not an object
    (json.dumps({"queries": "a"}).encode(), 422, "'queries' must be a list"),          # wrong type
    (json.dumps({"queries": [1]}).encode(), 422, "queries[0] must be a string"),      # wrong element type
    (json.dumps({"query": 3}).encode(), 422, "'query' must be a string"),             # SkyRL field, wrong type
    (json.dumps({"queries": ["a"], "topk": 10**6}).encode(), 422, "'topk' must be between 1 and 50"),  # absurd topk
    (json.dumps({"queries": ["a"], "topk": -1}).encode(), 422, "'topk' must be between 1 and 50"),
    (json.dumps({"queries": ["a"], "topk": "3"}).encode(), 422, "'topk' must be an integer"),
    (json.dumps({"queries": ["a"], "return_scores": "yes"}).encode(), 422, "'return_scores'"),
    (json.dumps({"topk": 3}).encode(), 422, "missing field 'queries'"),
    (b'{"queries": ["' + b"x" * (9 << 20) + b'"]}', 413, "the limit is"),               # oversize body
]


@pytest.mark.parametrize("body,status,words", BAD, ids=[f"{i}-{s}" for i, (_, s, _) in enumerate(BAD)])
def test_bad_input_gets_a_4xx_naming_the_field_and_the_server_stays_up(url, body, status, words):
    import requests

    r = requests.post(url + "/retrieve", data=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == status and words in r.json()["detail"], r.text[:300]
    assert requests.post(url + "/retrieve", json={"queries": ["Genentech"]}, timeout=30).status_code == 200
