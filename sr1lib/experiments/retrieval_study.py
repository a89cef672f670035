"""Notebook 01's job: index one corpus with several backends; answer-recall@k vs k, latency, build time.

The question itself is the query (one search, as RAG does). On two-hop questions the answer is
usually NOT in the passages found for the question, because it sits in the bridge entity's passage:
that gap is what multi-turn search exists to close, so recall is also reported per hop type when the
questions carry one (the toy world's `extra_info.hop`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from sr1lib.choices import BUILDABLE_BACKENDS
from sr1lib.errors import Sr1Error


def _hop(record: Any) -> str | None:
    info = (record.extra or {}).get("extra_info") or {}
    return info.get("hop") if isinstance(info, dict) else None


def measure_backend(corpus: Path, backend: str, queries: list[str], golds: list[list[str]], ks: Sequence[int],
                    hops: list[str | None], encoder: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Build (or reuse from the cache) an index with `backend`, search every query once at max(ks)."""
    from sr1lib.experiments.setup import index_for
    from sr1lib.retrieval import open_retriever, read_manifest
    from sr1lib.retrieval.evaluation import answer_recall

    t0 = time.perf_counter()
    folder = index_for(corpus, backend, encoder=encoder if backend == "dense" else None, progress=progress)
    manifest = read_manifest(folder) or {}
    built_now = time.perf_counter() - t0
    with open_retriever(folder, cache=False) as r:
        t1 = time.perf_counter()
        r.search(queries[:1], max(ks))  # warm-up: JVM classes, encoder weights, page cache
        t_open = time.perf_counter() - t1
        t2 = time.perf_counter()
        results = r.search(queries, max(ks))
        search_s = time.perf_counter() - t2
    out = {
        "index": str(folder), "doc_count": manifest.get("doc_count"),
        "build_s": round(float(manifest.get("build_seconds", built_now)), 3),
        "first_query_s": round(t_open, 3), "search_s": round(search_s, 4),
        "latency_ms": round(1000 * search_s / max(len(queries), 1), 4),
        "recall": {int(k): v for k, v in answer_recall(results, golds, ks).items()},
    }
    kinds = sorted({h for h in hops if h})
    if kinds:
        out["recall_by_hop"] = {}
        for h in kinds:
            idx = [i for i, x in enumerate(hops) if x == h]
            out["recall_by_hop"][h] = {int(k): v for k, v in
                                       answer_recall([results[i] for i in idx], [golds[i] for i in idx], ks).items()}
    return out


def retrieval_study(profile: str = "quick", seed: int = 0, *, corpus: str = "", questions: str = "",
                    backends: Sequence[str] = ("bm25s", "pyserini", "dense"), ks: Sequence[int] = (1, 2, 3, 5, 10),
                    n_questions: int = 100, encoder: str = "", progress: bool = True,
                    artifacts: str = "") -> dict[str, Any]:
    """Answer recall@k, latency and build time per backend over one corpus and question set.

    corpus / questions: a JSONL corpus and a question file with gold answers (empty: the toy
    world's corpus and its validation + test questions). A backend that fails (e.g. no Java for
    pyserini) is reported with its error and the others still run.

    Returns {corpus, n_passages, n_questions, ks, backends: name -> measures or {"error"}, table}.
    """
    from sr1lib.experiments.setup import load_questions, toy_world

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise Sr1Error(f"ks must be integers >= 1, got {list(ks)}")
    if not backends:
        raise Sr1Error(f"backends is empty; valid backends are {list(BUILDABLE_BACKENDS)}")
    if corpus:
        corpus_path = Path(corpus)
        if not questions:
            raise Sr1Error("corpus= was given without questions= (a question file with gold answers)")
        records = load_questions(questions, limit=n_questions)
    else:
        world = toy_world(profile, seed)
        corpus_path = world / "corpus.jsonl"
        if questions:
            records = load_questions(questions, limit=n_questions)
        else:
            records = (load_questions(str(world / "validation.parquet"), split="validation")
                       + load_questions(str(world / "test.parquet"), split="test"))[:n_questions]
    from sr1lib.protocol import normalize_question
    from sr1lib.retrieval.corpus import count_lines

    queries = [normalize_question(r.question) for r in records]
    golds = [list(r.golden_answers) for r in records]
    hops = [_hop(r) for r in records]
    out: dict[str, Any] = {"corpus": str(corpus_path), "n_passages": count_lines(corpus_path),
                           "n_questions": len(records), "ks": ks, "backends": {}}
    for b in backends:
        try:
            out["backends"][b] = measure_backend(corpus_path, b, queries, golds, ks, hops, encoder or None, progress)
        except Exception as e:  # noqa: BLE001 - one backend's failure is a finding, not the end
            out["backends"][b] = {"error": f"{type(e).__name__}: {e}"}
    out["table"] = recall_table(out)
    from sr1lib.experiments.artifacts import markdown_table, publish

    publish(artifacts, out, f"Answer recall@k with the question as the query ({len(records)} questions, "
            f"{out['n_passages']} passages):\n\n" + markdown_table(out["table"]))
    return out


def recall_table(study: dict[str, Any]) -> Any:
    """One row per backend: recall@k columns (all questions and per hop), latency, build time, error."""
    import pandas as pd

    rows = []
    for name, m in study["backends"].items():
        row: dict[str, Any] = {"backend": name}
        if "error" in m:
            row["error"] = m["error"]
        else:
            row.update({f"R@{k}": round(v, 3) for k, v in m["recall"].items()})
            for hop, rec in (m.get("recall_by_hop") or {}).items():
                row.update({f"R@{k} ({hop}-hop)": round(v, 3) for k, v in rec.items() if k in (1, max(rec))})
            row.update({"ms/query": m["latency_ms"], "build s": m["build_s"], "passages": m["doc_count"]})
        rows.append(row)
    return pd.DataFrame(rows)
