"""`sr1 eval`: the paper's Table 2 for one model, without the trainer.

    sr1 eval --model runs/x/checkpoints/step_100 --retriever idx/wiki18-bm25 \\
             --data nq hotpotqa --method rag search-r1 --out runs/eval/x.json

Prints the table in the paper's layout and writes the report (results, averages, provenance) to
--out, with per-question predictions beside it; rerunning the same command resumes.
"""

from __future__ import annotations

import json

from sr1lib.config import RetrievalConfig, RolloutConfig, TrainConfig

# defaults are the run config's (tests/test_settings.py holds them together)
_R, _K, _T = RolloutConfig(), RetrievalConfig(), TrainConfig()


def register(sub) -> None:
    from sr1lib.evaluate.methods import METHODS

    p = sub.add_parser("eval", help="evaluate a model on QA datasets x methods (the paper's Table 2)",
                       description="Evaluate a model (or a diagnostic oracle, or an OpenAI-compatible "
                                   "endpoint) on datasets x methods; greedy decoding; resumable.")
    p.add_argument("--model", required=True,
                   help="model folder, oracle-gold | oracle-empty | oracle-copy, or openai:URL#MODEL")
    p.add_argument("--retriever", default=None,
                   help="index folder or retrieval server URL (default: index the dataset's own corpus, "
                        "for hotpotqa-100 and toy)")
    p.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_NAME",
                   help="data files or names: nq triviaqa popqa hotpotqa 2wikimultihopqa musique bamboogle "
                        "hotpotqa-100 toy[:PROFILE[:SEED]]")
    p.add_argument("--method", nargs="+", required=True, metavar="METHOD",
                   help=f"methods: {' '.join(METHODS)}")
    p.add_argument("--topk", type=int, default=_K.topk, help="passages per search (the paper: 3)")
    p.add_argument("--max-turns", type=int, default=_R.max_turns, help="search budget per question (the paper: 4)")
    p.add_argument("--limit", type=int, default=None, help="the first N questions of each dataset")
    p.add_argument("--out", required=True, help="report JSON; predictions go to OUT.predictions.jsonl")
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out's predictions")
    p.add_argument("--batch-size", type=int, default=32, help="questions generated together")
    p.add_argument("--max-new-tokens", type=int, default=_R.max_new_tokens, help="tokens per generation turn")
    p.add_argument("--max-response-tokens", type=int, default=_R.max_response_tokens,
                   help="response budget per question")
    p.add_argument("--max-prompt-tokens", type=int, default=_R.max_prompt_tokens,
                   help="context budget (rollout.max_prompt_tokens); a prompt longer than this is an error")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer folder for oracles and openai: endpoints (default: count words)")
    p.add_argument("--device", default=_T.device, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--index-backend", default="bm25s", choices=["bm25s", "pyserini"],
                   help="backend for indexing a dataset's own corpus when --retriever is not given")
    p.add_argument("--data-root", default="data/downloads", help="where data/download.py put the datasets")
    p.add_argument("--format", default="text", choices=["text", "markdown"], help="table format")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from sr1lib.evaluate.core import evaluate
    from sr1lib.evaluate.table import render_table

    report = evaluate(
        args.model, args.retriever, args.data, args.method, topk=args.topk, max_turns=args.max_turns,
        limit=args.limit, out=args.out, batch_size=args.batch_size, progress=not args.quiet,
        resume=not args.no_resume, max_new_tokens=args.max_new_tokens,
        max_response_tokens=args.max_response_tokens, max_prompt_tokens=args.max_prompt_tokens,
        tokenizer=args.tokenizer, device=args.device,
        index_backend=args.index_backend, data_root=args.data_root,
    )
    print(render_table(report, fmt=args.format, title=f"{args.model} (top-{args.topk}, {args.max_turns} turns)"))
    for metric in ("cover_em", "f1"):
        print(render_table(report, metric=metric, fmt=args.format))
    prov = report["provenance"]
    print(json.dumps({"out": args.out, "predictions": prov["predictions"], "resumed_rows": prov["resumed_rows"]}))
    return 0
