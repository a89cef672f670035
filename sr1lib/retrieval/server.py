"""A retrieval server speaking Search-R1's protocol (FastAPI + uvicorn), with micro-batching.

`POST /retrieve` takes `{"queries": [str], "topk": int, "return_scores": bool}` and answers
`{"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]}`; without
`return_scores` each hit is the bare document, exactly as Search-R1's server answers, so its trainer
can use this server and our client can use its server. `contents` is the corpus's stored string,
byte for byte. `topk` may be omitted (the server's default). SkyRL's `{"query": str}` gets the same
answer as `{"queries": [str]}`; an empty query gets an empty hit list; unknown fields are ignored
(logged once per name, listed by `/health`). `GET /health` reports backend, the index manifest, doc
count and uptime; `GET /doc?id=` returns one passage.

Departures from Search-R1's server: bad input (not JSON, wrong types, topk out of range, oversize
bodies) gets a 4xx naming the field (it would raise or return 500), sizes are bounded, and it binds
to loopback by default.
Concurrent requests are queued and each backend call takes every query waiting (micro-batching),
so 8 clients cost about as much as one client sending 8x larger batches.
"""

# No `from __future__ import annotations` here: FastAPI must see the real `Request` class on the
# endpoint (imported lazily inside create_app), not a string it cannot resolve.
import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sr1lib.errors import Sr1Error
from sr1lib.retrieval.base import Retriever
from sr1lib.types import Hit

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ServerLimits:
    default_topk: int = 3  # Search-R1 appends the top 3 passages
    max_topk: int = 100
    max_queries: int = 4096  # Search-R1's trainer sends a whole rollout batch in one request
    max_query_chars: int = 4096
    max_body_bytes: int = 8 << 20
    max_batch_queries: int = 8192  # queries merged into one backend call

    def __post_init__(self) -> None:
        for name in ("default_topk", "max_topk", "max_queries", "max_query_chars", "max_body_bytes", "max_batch_queries"):
            if getattr(self, name) < 1:
                raise Sr1Error(f"server limit {name} must be >= 1, got {getattr(self, name)}")
        if self.default_topk > self.max_topk:
            raise Sr1Error(f"--topk {self.default_topk} is above the maximum topk {self.max_topk}")


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


FIELDS = ("queries", "query", "topk", "return_scores")


@dataclass(frozen=True)
class RetrieveRequest:
    """A checked `/retrieve` body; `ignored` names the unknown fields it carried."""

    queries: list[str]
    topk: int
    return_scores: bool
    ignored: tuple[str, ...] = ()


def _json_object(body: bytes, limits: ServerLimits) -> dict[str, Any]:
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"request body is {len(body)} bytes; the limit is {limits.max_body_bytes}")
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"request body is not valid JSON ({e})") from None
    if not isinstance(req, dict):
        raise RequestError(400, f"request body must be a JSON object with fields {list(FIELDS)}, "
                                f"got {type(req).__name__}")
    return req


def _queries(req: dict[str, Any], limits: ServerLimits) -> list[str]:
    """Search-R1's `queries` list, or SkyRL's single `query` string as a list of one."""
    if "queries" in req and "query" in req:
        raise RequestError(422, "send 'queries' (a list of strings) or 'query' (one string), not both")
    if "query" in req:
        if not isinstance(req["query"], str):
            raise RequestError(422, f"'query' must be a string, got {type(req['query']).__name__}")
        queries = [req["query"]]
    elif "queries" in req:
        queries = req["queries"]
        if not isinstance(queries, list):
            raise RequestError(422, f"'queries' must be a list of strings, got {type(queries).__name__}")
    else:
        raise RequestError(422, "missing field 'queries' (a list of query strings; or 'query', one string)")
    if len(queries) > limits.max_queries:
        raise RequestError(422, f"'queries' has {len(queries)} queries; the limit is {limits.max_queries} per request")
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise RequestError(422, f"queries[{i}] must be a string, got {type(q).__name__}")
        if len(q) > limits.max_query_chars:
            raise RequestError(422, f"queries[{i}] has {len(q)} characters; the limit is {limits.max_query_chars}")
    return queries


def parse_retrieve(body: bytes, limits: ServerLimits) -> RetrieveRequest:
    """The checked request, or RequestError(status, message naming the field).

    Lenient where other trainers' clients differ and the meaning is clear: Search-R1 sends `""` for
    `<search> </search>` and `[]` on a turn where no trajectory searched (an empty hit list each),
    SkyRL sends `{"query": str}`, and fields this server does not know are ignored.
    """
    req = _json_object(body, limits)
    queries = _queries(req, limits)
    topk = req.get("topk")
    if topk is None:
        topk = limits.default_topk
    elif isinstance(topk, bool) or not isinstance(topk, int):
        raise RequestError(422, f"'topk' must be an integer, got {json.dumps(topk)}")
    elif not 1 <= topk <= limits.max_topk:
        raise RequestError(422, f"'topk' must be between 1 and {limits.max_topk}, got {topk}")
    scores = req.get("return_scores")
    if scores is None:
        scores = False
    elif not isinstance(scores, bool):
        raise RequestError(422, f"'return_scores' must be true or false, got {json.dumps(scores)}")
    return RetrieveRequest(queries, topk, scores, tuple(sorted(set(req) - set(FIELDS))))


def document(hit: Hit) -> dict[str, str]:
    return {"id": hit.docid, "contents": hit.contents}


def format_result(results: list[list[Hit]], return_scores: bool) -> dict[str, Any]:
    """The answer as Python objects: the obviously-correct twin of `ResultEncoder`."""
    if return_scores:
        return {"result": [[{"document": document(h), "score": h.score} for h in hits] for hits in results]}
    return {"result": [[document(h) for h in hits] for hits in results]}


class ResultEncoder:
    """The answer as JSON bytes, equal to `json.dumps(format_result(...))` once parsed.

    Each passage's `{"id", "contents"}` JSON is made once and kept (bounded), so an answer is
    string joins instead of re-escaping ~1 KB per hit on every request: at 64 queries x top-10 that
    was most of the server's own time.
    """

    def __init__(self, max_entries: int = 200_000):
        self.max_entries = max_entries
        self._docs: dict[tuple[str, str], str] = {}

    def _doc(self, h: Hit) -> str:
        key = (h.docid, h.contents)
        frag = self._docs.get(key)
        if frag is None:
            if len(self._docs) >= self.max_entries:
                self._docs.clear()  # simple and bounded; a hot set refills at once
            frag = self._docs[key] = json.dumps(document(h), ensure_ascii=False)
        return frag

    def encode(self, results: list[list[Hit]], return_scores: bool) -> bytes:
        doc = self._doc
        if return_scores:
            lists = (",".join(f'{{"document":{doc(h)},"score":{float(h.score)!r}}}' for h in hits) for hits in results)
        else:
            lists = (",".join(doc(h) for h in hits) for hits in results)
        return ('{"result":[' + ",".join(f"[{x}]" for x in lists) + "]}").encode("utf-8")


class MicroBatcher:
    """Queue searches; one worker thread runs each backend call on every query waiting."""

    def __init__(self, retriever: Retriever, max_batch_queries: int):
        self.retriever, self.max_batch = retriever, max_batch_queries
        self.queue: asyncio.Queue | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="sr1-search")
        self.batches = self.queries = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        from sr1lib.retrieval.java import detach_thread

        if self._task is not None:
            self._task.cancel()
        self.executor.submit(detach_thread)  # the search thread may have attached to the JVM
        self.executor.shutdown(wait=False)

    async def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        assert self.queue is not None
        fut = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((queries, k, fut))
        return await fut

    async def _run(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            n = len(batch[0][0])
            while not self.queue.empty() and n < self.max_batch:
                item = self.queue.get_nowait()
                batch.append(item)
                n += len(item[0])
            flat = [q for qs, _, _ in batch for q in qs]
            kmax = max(k for _, k, _ in batch)
            try:
                found = await loop.run_in_executor(self.executor, self.retriever.search, flat, kmax)
            except Exception as e:  # noqa: BLE001 - every waiting request learns why
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.batches += 1
            self.queries += len(flat)
            start = 0
            for qs, k, fut in batch:
                if not fut.done():
                    fut.set_result([hits[:k] for hits in found[start:start + len(qs)]])
                start += len(qs)


def create_app(retriever: Retriever, limits: ServerLimits = ServerLimits()):
    """The FastAPI app serving `retriever`."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    batcher = MicroBatcher(retriever, limits.max_batch_queries)
    encoder = ResultEncoder()
    started = time.time()
    counts = {"requests": 0, "rejected": 0, "errors": 0}
    info = retriever.describe()

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="sr1 retrieval server", lifespan=lifespan)

    ignored: set[str] = set()

    def note_ignored(names: tuple[str, ...]) -> None:
        new = [n for n in names if n not in ignored]
        if new:  # once per field name: a trainer sends the same body shape on every request
            ignored.update(new)
            log.warning("ignoring unknown request field(s) %s; this server reads %s", new, list(FIELDS))

    def error(status: int, message: str) -> JSONResponse:
        counts["rejected" if status < 500 else "errors"] += 1
        return JSONResponse({"detail": message}, status_code=status)

    @app.post("/retrieve")
    async def retrieve(request: Request):
        counts["requests"] += 1
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return error(413, f"request body is {declared} bytes; the limit is {limits.max_body_bytes}")
        body = bytearray()
        async for chunk in request.stream():  # bounded read, also for chunked bodies
            body += chunk
            if len(body) > limits.max_body_bytes:
                return error(413, f"request body exceeds the limit of {limits.max_body_bytes} bytes")
        try:
            req = parse_retrieve(bytes(body), limits)
        except RequestError as e:
            return error(e.status, e.message)
        note_ignored(req.ignored)
        try:
            results = await batcher.search(req.queries, req.topk) if req.queries else []
        except Exception as e:  # noqa: BLE001 - report, keep serving
            return error(500, f"search failed: {type(e).__name__}: {e}")
        return Response(encoder.encode(results, req.return_scores), media_type="application/json")

    @app.get("/health")
    async def health():
        # The manifest (corpus path and sha256) lets a client's evaluation record what it searched.
        return {"status": "ok", "backend": info.get("backend"), "index": info.get("index"),
                "manifest": info.get("manifest"), "doc_count": len(retriever), "uptime_s": round(time.time() - started, 3),
                "batches": batcher.batches, "queries": batcher.queries, **counts, "ignored_fields": sorted(ignored),
                "limits": {"default_topk": limits.default_topk, "max_topk": limits.max_topk,
                           "max_queries": limits.max_queries, "max_body_bytes": limits.max_body_bytes}}

    @app.get("/doc")
    async def doc(id: str):
        hit = retriever.doc(id)
        return {"document": None if hit is None else document(hit)}

    return app


class ServerThread:
    """Run the server in a background thread (tests, benchmarks, notebooks): `with ServerThread(r) as s: s.url`.

    Port 0 picks a free port; the real one is read from the bound socket once uvicorn has started.
    """

    def __init__(self, retriever: Retriever, *, host: str = "127.0.0.1", port: int = 0,
                 limits: ServerLimits = ServerLimits(), log_level: str = "warning"):
        import uvicorn

        config = uvicorn.Config(create_app(retriever, limits), host=host, port=port, log_level=log_level,
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="sr1-server", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 30.0) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise Sr1Error(f"the retrieval server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(retriever: Retriever, *, host: str = "127.0.0.1", port: int = 8000,
          limits: ServerLimits = ServerLimits(), log_level: str = "info") -> None:
    """Serve in the foreground until interrupted (`sr1 serve`)."""
    import uvicorn

    uvicorn.run(create_app(retriever, limits), host=host, port=port, log_level=log_level, access_log=False)
