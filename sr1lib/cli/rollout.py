"""`sr1 rollout`: roll out N questions x G trajectories and write one JSON line per trajectory.

    sr1 rollout --model DIR --retriever DIR_OR_URL --data FILE --n 8 --group 5 --out r.jsonl \\
        [--set rollout.max_turns=3 --set retrieval.topk=5 ...] [--config run.yaml]

Each line is `Trajectory.to_json()` (segments with their token ids, source and text, plus the
facts), which the inspector and notebooks read. The batch metrics and timings are printed as one
JSON object on stdout.
"""

from __future__ import annotations

import json

from sr1lib.choices import PROMPT_MODES


def register(sub) -> None:
    p = sub.add_parser("rollout", help="roll out questions with a policy and a retriever; JSONL trajectories")
    p.add_argument("--model", required=True, help="policy folder (save_pretrained layout)")
    p.add_argument("--retriever", default=None,
                   help="index folder or http(s):// server URL (not needed with --prompt-mode no_search)")
    p.add_argument("--data", required=True, help="questions: .jsonl (FlashRAG), .json or .parquet (Search-R1)")
    p.add_argument("--n", type=int, default=8, help="questions to roll out, from the start of the file (default 8)")
    p.add_argument("--group", type=int, default=None, help="trajectories per question (default rollout.group_size)")
    p.add_argument("--out", required=True, help="output JSONL file, one trajectory per line (written atomically)")
    p.add_argument("--config", default=None, help="run config (.json/.yaml) whose rollout/retrieval sections apply")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. rollout.max_turns=3 (repeatable)")
    p.add_argument("--prompt-mode", default="search", choices=PROMPT_MODES,
                   help="prompt template: search (Search-R1), no_search, rag (default search)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default train.device)")
    p.add_argument("--step", type=int, default=0, help="step number used in group ids (default 0)")
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses

    from sr1lib import config as cfgmod
    from sr1lib.errors import Sr1Error
    from sr1lib.fsutil import write_text_atomic
    from sr1lib.generators import make_generator
    from sr1lib.rewards import get_reward_fn
    from sr1lib.rollout import rollout

    cfg = cfgmod.load(args.config) if args.config else cfgmod.RunConfig()
    cfg = cfgmod.with_overrides(cfg, args.set)
    rcfg = cfg.rollout
    if args.group is not None:
        if args.group < 1:
            raise Sr1Error(f"--group must be >= 1, got {args.group}")
        rcfg = dataclasses.replace(rcfg, group_size=args.group)
    if args.n < 1:
        raise Sr1Error(f"--n must be >= 1, got {args.n}")
    if args.retriever is None and args.prompt_mode != "no_search":
        raise Sr1Error(f"--retriever is required with --prompt-mode {args.prompt_mode} (an index folder or URL)")

    records = _load_records(args.data, args.n)
    generator = _make_generator(make_generator, rcfg.generator, args.model, args.device or cfg.train.device)
    retriever = _open_retriever(args.retriever, cfg) if args.retriever else None
    try:
        result = rollout(records, generator, retriever, rcfg, topk=cfg.retrieval.topk,
                         reward_fn=get_reward_fn(cfg.algorithm.reward), step=args.step,
                         prompt_mode=args.prompt_mode, seed=cfg.seed, progress=True,
                         retriever_timeout_s=cfg.retrieval.timeout_s * 4)  # the http client retries 3x
    finally:
        if retriever is not None and hasattr(retriever, "close"):
            retriever.close()
    write_text_atomic(args.out, "".join(json.dumps(t.to_json(), ensure_ascii=False) + "\n"
                                        for t in result.trajectories))
    print(json.dumps({"out": str(args.out), "trajectories": len(result.trajectories),
                      "metrics": result.metrics, "timings": result.timings}, indent=2))
    return 0


def _load_records(path: str, n: int) -> list:
    from sr1lib.errors import Sr1Error

    try:
        from sr1lib.data import load_records
    except ImportError:
        raise Sr1Error("sr1 rollout needs sr1lib.data (dataset readers), which this install lacks") from None
    records = load_records(path, limit=n)
    if not records:
        raise Sr1Error(f"{path}: no questions found")
    return records


def _open_retriever(target: str, cfg) -> object:
    from sr1lib.errors import Sr1Error

    try:
        from sr1lib.retrieval import open_retriever
    except ImportError:
        raise Sr1Error("sr1 rollout needs sr1lib.retrieval, which this install lacks") from None
    kw = {"timeout_s": cfg.retrieval.timeout_s} if str(target).startswith(("http://", "https://")) else {}
    return open_retriever(target, cache=cfg.retrieval.cache, **kw)


def _make_generator(make_generator, name: str, model: str, device: str):
    if name == "hf":
        return make_generator("hf", model_path=model, device=device)
    return make_generator(name, model_path=model)
