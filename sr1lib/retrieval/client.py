"""The `http` backend: a client for any server speaking Search-R1's `POST /retrieve` protocol.

Request `{"queries": [...], "topk": k, "return_scores": true}`; answer
`{"result": [[{"document": {"id", "contents"}, "score": s}, ...], ...]}`. Search-R1's own BM25
server returns documents with `title`/`text`/`contents` and no `id`, and bare documents when scores
are not asked for; both shapes are read. Large batches are split into requests of `batch_size`
queries. Connection failures, timeouts and 5xx/429 answers are retried a bounded number of times
with exponential backoff (retrieval is read-only, so a retry is safe); a 4xx is the caller's
mistake and fails at once with the server's message.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sr1lib.errors import Sr1Error
from sr1lib.retrieval.base import Retriever
from sr1lib.retrieval.docstore import make_hit
from sr1lib.types import Hit

RETRYABLE_STATUS = (429, 500, 502, 503, 504)


class HttpRetriever(Retriever):
    name = "http"

    def __init__(self, url: str, *, timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 0.2,
                 batch_size: int = 512, max_in_flight: int = 2):
        try:
            import httpx
        except ImportError:
            raise Sr1Error("the http backend needs httpx: pip install 'sr1[retrieval]'") from None
        if not url.startswith(("http://", "https://")):
            raise Sr1Error(f"retrieval server URL must start with http:// or https://, got {url!r}")
        self.base = url.rstrip("/").removesuffix("/retrieve")
        self.timeout_s, self.retries, self.backoff_s = float(timeout_s), int(retries), float(backoff_s)
        self.batch_size = int(batch_size)
        # Requests of one search() call in flight at once: the server searches batch i+1 while this
        # side parses batch i (and micro-batches them when they arrive together).
        self.max_in_flight = max(1, int(max_in_flight))
        self._httpx = httpx
        self._client = httpx.Client(timeout=self.timeout_s, limits=httpx.Limits(max_keepalive_connections=32))
        self._n: int | None = None

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        """JSON body of a 2xx answer, retrying transient failures; Sr1Error naming the URL otherwise."""
        url = self.base + path
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = self._client.request(method, url, **kw)
            except self._httpx.TimeoutException:
                last = f"timed out after {self.timeout_s:g} s"
                continue
            except self._httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if r.status_code in RETRYABLE_STATUS:
                last = f"HTTP {r.status_code}: {_detail(r)}"
                continue
            if r.status_code >= 400:
                raise Sr1Error(f"retrieval server {url} rejected the request (HTTP {r.status_code}): {_detail(r)}")
            try:
                return json.loads(r.content)
            except json.JSONDecodeError:
                raise Sr1Error(f"retrieval server {url} answered with invalid JSON: {r.text[:200]!r}") from None
        raise Sr1Error(f"retrieval server {url} failed after {self.retries + 1} attempts ({last}); is it running? "
                       "Start one with `sr1 serve --index DIR --port PORT`")

    # ------------------------------------------------------------------ Retriever

    def _search(self, queries: list[str], k: int) -> list[list[Hit]]:
        chunks = [queries[i:i + self.batch_size] for i in range(0, len(queries), self.batch_size)]
        if len(chunks) == 1 or self.max_in_flight == 1:
            return [hits for chunk in chunks for hits in self._post(chunk, k)]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="sr1-http") as pool:
            return [hits for part in pool.map(lambda c: self._post(c, k), chunks) for hits in part]

    def _post(self, chunk: list[str], k: int) -> list[list[Hit]]:
        body = self._request("POST", "/retrieve", json={"queries": chunk, "topk": k, "return_scores": True})
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, list) or len(result) != len(chunk):
            raise Sr1Error(f"retrieval server {self.base}/retrieve: expected 'result' with {len(chunk)} lists, "
                           f"got {str(body)[:200]}")
        return [[parse_hit(item) for item in hits] for hits in result]

    def doc(self, docid: str) -> Hit | None:
        try:
            body = self._request("GET", "/doc", params={"id": docid})
        except Sr1Error as e:
            if "HTTP 404" in str(e):
                raise Sr1Error(f"retrieval server {self.base} does not offer GET /doc (a Search-R1 server has "
                               "only /retrieve)") from None
            raise
        return None if body.get("document") is None else parse_hit({"document": body["document"], "score": 0.0})

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")

    def __len__(self) -> int:
        if self._n is None:
            try:
                self._n = int(self.health()["doc_count"])
            except (Sr1Error, KeyError, TypeError, ValueError) as e:
                raise Sr1Error(f"retrieval server {self.base} does not report its size via GET /health ({e})") from None
        return self._n

    def close(self) -> None:
        self._client.close()

    def describe(self) -> dict[str, Any]:
        try:
            server = self.health()
        except Sr1Error as e:
            server = {"error": str(e)}
        return {"backend": self.name, "index": self.base, "server": server, "timeout_s": self.timeout_s}


def parse_hit(item: Any) -> Hit:
    """A Hit from `{"document": {...}, "score": s}` or from a bare document (no scores asked)."""
    doc = item.get("document", item) if isinstance(item, dict) else None
    if not isinstance(doc, dict):
        raise Sr1Error(f"retrieval server answered with a hit that is not an object: {str(item)[:200]}")
    score = float(item.get("score", 0.0) if "document" in item else 0.0)
    contents = doc.get("contents")
    if isinstance(contents, str):
        return make_hit(str(doc.get("id", "")), score, contents)
    return Hit.from_title_text(str(doc.get("id", "")), score, str(doc.get("title", "")), str(doc.get("text", "")))


def _detail(r: Any) -> str:
    try:
        body = json.loads(r.content)
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except (json.JSONDecodeError, ValueError):
        return r.text[:300]
