"""`sr1 serve --index DIR`: a Search-R1-compatible retrieval server (POST /retrieve, GET /health)."""

from __future__ import annotations

import sys

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve an index over HTTP with Search-R1's /retrieve protocol")
    p.add_argument("--index", required=True, help="index folder (sr1 or pyserini-built)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000, as Search-R1)")
    p.add_argument("--topk", type=int, default=3, help="passages per query when a request omits topk")
    p.add_argument("--max-topk", type=int, default=100, help="largest topk a request may ask for")
    p.add_argument("--max-queries", type=int, default=4096, help="most queries in one request")
    p.add_argument("--threads", type=int, default=None, help="search threads of the backend")
    p.add_argument("--no-cache", action="store_true", help="do not cache repeated (query, topk) results")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="dense only: torch CPU threads for query encoding (1 avoids OpenMP spin-waiting "
                        "on a busy machine; measured 31 ms vs 930 ms per query at load 10 on 2 cores)")
    p.set_defaults(func=run)


def run(args) -> int:
    from sr1lib.errors import Sr1Error
    from sr1lib.retrieval import open_retriever
    from sr1lib.retrieval.server import ServerLimits, serve

    import logging

    # The server's own notes (e.g. request fields it ignores) go to stderr beside uvicorn's.
    logging.basicConfig(format="sr1 serve: %(levelname)s: %(message)s", level=logging.WARNING)
    if not 1 <= args.port <= 65535:
        raise Sr1Error(f"--port must be in 1..65535, got {args.port}")
    limits = ServerLimits(default_topk=args.topk, max_topk=args.max_topk, max_queries=args.max_queries)
    if args.host not in LOOPBACK:
        print(f"sr1 serve: warning: binding to {args.host} exposes the index to the network", file=sys.stderr)
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            raise Sr1Error(f"--torch-threads must be >= 1, got {args.torch_threads}")
        import torch  # only when asked: BM25 servers never import torch

        torch.set_num_threads(args.torch_threads)
    kw = {"threads": args.threads} if args.threads else {}
    with open_retriever(args.index, cache=not args.no_cache, **kw) as r:
        print(f"sr1 serve: {r.describe().get('backend')} index {args.index} ({len(r)} passages) on "
              f"http://{args.host}:{args.port}  (POST /retrieve, GET /health)", file=sys.stderr)
        serve(r, host=args.host, port=args.port, limits=limits)
    return 0
