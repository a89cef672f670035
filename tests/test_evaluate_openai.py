"""The OpenAI-compatible endpoint generator against a real FastAPI server on loopback.

The server imitates `/v1/chat/completions` as the OpenAI API behaves (the matched stop string is
left out of the text) and plays a "copy" model: with no passages in sight it searches the question,
otherwise it answers with the first passage's title. Through the evaluation loop it must then score
exactly what the oracle-copy generator scores, question by question.
"""

# No `from __future__ import annotations` here: FastAPI reads the handler's `Request` annotation
# at run time, and it is imported inside make_app (fastapi is an optional dependency).
import json
import re
import socket
import threading
import time

import pytest

from sr1lib.errors import Sr1Error
from sr1lib.evaluate.core import evaluate
from sr1lib.evaluate.openai_chat import ChatClient, parse_spec, restore_stop
from tests.conftest import shared_file


def make_app(requests: list):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "copy-model", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        requests.append(body)
        if body["model"] == "fail-500":
            return JSONResponse({"error": "boom"}, status_code=500)
        msgs = body["messages"]
        partial = msgs[-1]["content"] if body.get("continue_final_message") else ""
        user = next(m["content"] for m in reversed(msgs) if m["role"] == "user")
        seen = partial if "<information>" in partial else user
        m = re.search(r"Doc 1\(Title: (.*?)\) ", seen)
        if "<information>" in seen and m:
            text = f"<think>copying</think>\n<answer> {m.group(1).strip(chr(34))} "  # stop string "</answer>" left out
        else:
            q = user[user.rfind("Question: ") + len("Question: "):].strip()
            text = f"<think>I should search.</think>\n<search> {q} "
        return {"id": "x", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]}

    return app


@pytest.fixture(scope="module")
def server():
    import uvicorn

    requests: list = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(make_app(requests), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the loopback server did not start"
    yield {"url": f"http://127.0.0.1:{port}/v1", "requests": requests}
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from sr1lib.retrieval import build_index
    from sr1lib.retrieval.corpus import write_hotpotqa_corpus

    root = tmp_path_factory.mktemp("oa")
    corpus = write_hotpotqa_corpus(shared_file("hotpotqa_dev_distractor_100.json"), root / "c.jsonl")
    build_index(corpus, root / "idx", "bm25s", progress=False)
    return root / "idx"


def _methods():
    try:
        import sr1lib.rollout  # noqa: F401
    except ImportError:
        return ["ircot"]
    return ["ircot", "rag", "search-r1"]


def _rows(out):
    lines = out.with_name(out.stem + ".predictions.jsonl").read_text().splitlines()[1:]
    return {(r["method"], r["id"]): r for r in map(json.loads, lines)}


def test_endpoint_scores_like_the_copy_oracle(server, index, tmp_path):
    methods = _methods()
    server["requests"].clear()
    api = evaluate(f"openai:{server['url']}#copy-model", index, ["hotpotqa-100"], methods, limit=12,
                   progress=False, out=tmp_path / "api.json", batch_size=4)
    ref = evaluate("oracle-copy", index, ["hotpotqa-100"], methods, limit=12, progress=False,
                   out=tmp_path / "ref.json")
    a, b = _rows(tmp_path / "api.json"), _rows(tmp_path / "ref.json")
    assert a.keys() == b.keys() and len(a) == 12 * len(methods)
    for key in a:
        assert (a[key]["prediction"], a[key]["em"]) == (b[key]["prediction"], b[key]["em"]), key
        # The stop string the API left out was restored, and lengths are words (no tokenizer given).
        assert a[key]["response"].count("</answer>") == 1
    prov = api["provenance"]["model"]
    assert prov["generator"] == "openai" and prov["model"] == "copy-model" and prov["tokenizer"] == "words"
    reqs = server["requests"]
    assert reqs and all(r["temperature"] == 0.0 and r["model"] == "copy-model" for r in reqs)
    assert all("</answer>" in r["stop"] for r in reqs)
    if "search-r1" in methods:
        # The second turn of a search continues the assistant message holding <information>.
        cont = [r for r in reqs if r.get("continue_final_message")]
        assert cont and all(r["messages"][-1]["role"] == "assistant" for r in cont)
        assert all("<information>" in r["messages"][-1]["content"] for r in cont)
        assert any(r["stop"] == ["</search>", "</answer>"] for r in reqs)


@pytest.mark.slow  # builds the session's tiny model when it runs first
def test_a_local_tokenizer_counts_tokens_and_model_name_is_discovered(server, index, tiny_model_dir, tmp_path):
    from sr1lib.models import load_tokenizer

    out = tmp_path / "tok.json"
    report = evaluate(f"openai:{server['url']}", index, ["hotpotqa-100"], ["ircot"], limit=3,
                      progress=False, out=out, tokenizer=tiny_model_dir)
    assert report["provenance"]["model"]["model"] == "copy-model"  # from GET /v1/models
    tok = load_tokenizer(tiny_model_dir)
    for row in _rows(out).values():
        model_text = row["response"]  # IRCoT answers in one turn here: the response is the model's text
        assert row["model_tokens"] == len(tok.encode(model_text, add_special_tokens=False))
        assert row["model_tokens"] != len(model_text.split())  # BPE pieces, not words


def test_client_errors_name_the_url(server):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with pytest.raises(Sr1Error, match=rf"127\.0\.0\.1:{dead}/v1/models: request failed .* is the server up"):
        ChatClient(parse_spec(f"openai:http://127.0.0.1:{dead}/v1"), retries=0)
    server["requests"].clear()
    client = ChatClient(parse_spec(f"openai:{server['url']}#fail-500"), retries=1)
    with pytest.raises(Sr1Error, match=r"chat/completions: HTTP 500"):
        client.complete([{"role": "user", "content": "hi"}], None, stop=["</answer>"], max_tokens=4)
    assert len(server["requests"]) == 2  # one retry after the server error
    client.close()
    with pytest.raises(Sr1Error, match="must start with http"):
        parse_spec("openai:localhost:8000/v1")


def test_restore_stop():
    stops = ("</search>", "</answer>")
    assert restore_stop("<search> q ", "stop", stops) == "<search> q </search>"
    assert restore_stop("<search> q </search><answer> a", "stop", stops) == "<search> q </search><answer> a</answer>"
    assert restore_stop("<answer> a </answer>", "stop", stops) == "<answer> a </answer>"  # already there
    assert restore_stop("no tags", "stop", stops) == "no tags"  # a natural end (EOS)
    assert restore_stop("<answer> a", "length", stops) == "<answer> a"  # cut by the budget
    assert restore_stop("x", "stop", stops, stop_reason="</search>") == "x</search>"  # vLLM says which
