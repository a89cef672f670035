"""Retriever calls with a time limit, for loops that must not hang on a stuck backend (the rollout).

`bounded_search(retriever, queries, k, timeout_s)` runs `retriever.search` on one long-lived worker
thread and raises TimeoutError when it does not answer in time; the caller decides what a timeout
means (the rollout turns it into an error observation, or an Sr1Error).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class RetrieverThread:
    """One long-lived daemon thread that runs retriever calls, so a hung backend becomes a
    TimeoutError instead of a hang, and backends that bind state to the calling thread see the same
    thread every time (pyjnius attaches a thread to the JVM on its first Java call; a fresh thread
    per call would leak that state each turn). A thread stuck past its timeout is abandoned and the
    next call gets a new one."""

    _current: "RetrieverThread | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, name="sr1-retriever", daemon=True).start()

    def _serve(self) -> None:
        while True:
            fn, box, done = self.jobs.get()
            try:
                box["out"] = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["err"] = e
            done.set()

    @classmethod
    def call(cls, fn: Callable[[], Any], timeout_s: float) -> Any:
        with cls._lock:
            if cls._current is None:
                cls._current = cls()
            worker = cls._current
        box: dict[str, Any] = {}
        done = threading.Event()
        worker.jobs.put((fn, box, done))
        if not done.wait(timeout_s):
            with cls._lock:
                if cls._current is worker:
                    cls._current = None  # abandoned: it may never come back
            raise TimeoutError(f"the retriever did not answer within {timeout_s:g} s")
        if "err" in box:
            raise box["err"]
        return box["out"]


def bounded_search(retriever: Any, queries: list[str], k: int, timeout_s: float | None) -> list[list[Any]]:
    """retriever.search(queries, k), bounded by `timeout_s` (None: called in this thread)."""
    if timeout_s is None:
        out = retriever.search(queries, k)
    else:
        out = RetrieverThread.call(lambda: retriever.search(queries, k), timeout_s)
    if len(out) != len(queries):
        raise RuntimeError(f"the retriever returned {len(out)} hit lists for {len(queries)} queries")
    return out
