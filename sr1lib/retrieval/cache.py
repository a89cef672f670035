"""A cache in front of any retriever: repeated (query, k) pairs cost nothing.

RL rollouts repeat queries constantly (a group of G trajectories for one question often issues the
same first search). Results live in an in-memory LRU keyed by (query, k) and, optionally, in an
SQLite file keyed also by the index's identity, so a cache never answers for a rebuilt index.
Misses are de-duplicated before they reach the backend; `stats()` counts hits and misses.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sr1lib.errors import Sr1Error
from sr1lib.retrieval.base import Retriever
from sr1lib.types import Hit


# Part of every fingerprint: rows written in another layout (a title and a text) are never read back.
ROW_FORMAT = "docid-score-contents"


class CachedRetriever(Retriever):
    def __init__(self, inner: Retriever, *, max_entries: int = 100_000, path: str | Path | None = None):
        if max_entries < 1:
            raise Sr1Error(f"cache: max_entries must be >= 1, got {max_entries}")
        self.inner = inner
        self.name = inner.name
        self.max_entries = int(max_entries)
        self._lru: OrderedDict[tuple[str, int], tuple[Hit, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self._db: sqlite3.Connection | None = None
        self.path = Path(path) if path else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS hits (fp TEXT, query TEXT, k INTEGER, value TEXT, "
                             "PRIMARY KEY (fp, query, k))")
            self._fp = index_fingerprint(inner)

    def _search(self, queries: list[str], k: int) -> list[list[Hit]]:
        found: dict[str, tuple[Hit, ...]] = {}
        with self._lock:
            for q in queries:
                v = self._lru.get((q, k))
                if v is not None:
                    self._lru.move_to_end((q, k))
                    found[q] = v
        missing = list(dict.fromkeys(q for q in queries if q not in found))
        if missing and self._db is not None:
            found.update(self._disk_get(missing, k))
            missing = [q for q in missing if q not in found]
        if missing:
            fresh = self.inner.search(missing, k)
            new = {q: tuple(h) for q, h in zip(missing, fresh)}
            found.update(new)
            if self._db is not None:
                self._disk_put(new, k)
        with self._lock:
            for q in queries:
                if (q, k) in self._lru:
                    self.hits += 1
                else:
                    self.misses += 1
                    self._lru[(q, k)] = found[q]
            while len(self._lru) > self.max_entries:
                self._lru.popitem(last=False)
        return [list(found[q]) for q in queries]

    def _disk_get(self, queries: list[str], k: int) -> dict[str, tuple[Hit, ...]]:
        out = {}
        with self._lock:
            assert self._db is not None
            for q in queries:
                row = self._db.execute("SELECT value FROM hits WHERE fp=? AND query=? AND k=?", (self._fp, q, k)).fetchone()
                if row is not None:
                    out[q] = tuple(Hit(*h) for h in json.loads(row[0]))  # [docid, score, contents]
        return out

    def _disk_put(self, new: dict[str, tuple[Hit, ...]], k: int) -> None:
        rows = [(self._fp, q, k, json.dumps([[h.docid, h.score, h.contents] for h in hits]))
                for q, hits in new.items()]
        with self._lock:
            assert self._db is not None
            self._db.executemany("INSERT OR REPLACE INTO hits VALUES (?, ?, ?, ?)", rows)
            self._db.commit()

    def stats(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / total if total else 0.0,
                "entries": len(self._lru), "max_entries": self.max_entries,
                "path": str(self.path) if self.path else None}

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()
            self.hits = self.misses = 0

    def doc(self, docid: str) -> Hit | None:
        return self.inner.doc(docid)

    def __len__(self) -> int:
        return len(self.inner)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self.inner.close()

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "cache": self.stats()}


def index_fingerprint(r: Retriever) -> str:
    """What identifies an index across processes: backend, location, build id and corpus hash."""
    d = r.describe()
    m = d.get("manifest") or {}
    key = {"rows": ROW_FORMAT, "backend": d.get("backend"), "index": d.get("index"), "build": m.get("build_id"),
           "corpus": (m.get("corpus") or {}).get("sha256"), "params": m.get("params")}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
