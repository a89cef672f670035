"""The one retriever interface every backend implements, and the checks they share.

`search(queries, k)` takes a batch (RL rollouts search many trajectories at once) and returns one
best-first list of `Hit`s per query, like pyserini's `batch_search` but without its flags that change
the return type. Input checks live here so every backend rejects the same bad input the same way.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from typing import Any, Sequence

from sr1lib.errors import Sr1Error
from sr1lib.types import Hit


class Retriever(ABC):
    """Search a passage collection. Subclasses implement `_search`, `doc` and `__len__`.

    Empty or white-space-only queries get an empty hit list without reaching the backend (Lucene
    returns nothing for them anyway, and a dense encoder would return arbitrary passages).
    """

    name: str = ""

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Top-`k` hits per query, best first; `len(result) == len(queries)`."""
        queries = check_queries(queries)
        k = check_k(k)
        live = [i for i, q in enumerate(queries) if q.strip()]
        out: list[list[Hit]] = [[] for _ in queries]
        if live:
            found = self._search([queries[i] for i in live], k)
            for i, hits in zip(live, found):
                out[i] = hits
        return out

    @abstractmethod
    def _search(self, queries: list[str], k: int) -> list[list[Hit]]:
        """Backend search on checked, non-empty queries."""

    @abstractmethod
    def doc(self, docid: str) -> Hit | None:
        """The passage with this docid (score 0.0), or None when the index has none."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of passages in the index."""

    def close(self) -> None:
        """Release files, sockets and models; the retriever is unusable afterwards."""

    def describe(self) -> dict[str, Any]:
        """Provenance for run folders and benchmarks: backend, index location, manifest."""
        return {"backend": self.name}

    def __enter__(self) -> "Retriever":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        d = self.describe()
        return f"{type(self).__name__}(backend={d.get('backend')!r}, index={d.get('index')!r})"


def check_queries(queries: Sequence[str]) -> list[str]:
    if isinstance(queries, (str, bytes)):
        raise Sr1Error("search(queries, k): queries must be a list of strings, got a single string; "
                       "wrap it in a list")
    queries = list(queries)
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise Sr1Error(f"search(queries, k): queries[{i}] must be a string, got {type(q).__name__}")
    return queries


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise Sr1Error(f"search(queries, k): k must be an integer >= 1, got {k!r}")
    return k


def sr1_version() -> str:
    try:
        return importlib.metadata.version("sr1")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads() -> int:
    return max(1, min(8, available_cores()))
