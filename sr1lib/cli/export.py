"""`sr1 export verl --config run.yaml --out DIR`: the files a verl 0.9.1 run of the same experiment needs.

    sr1 export verl --config grpo.yaml --retriever http://HOST:8000 --out verl_grpo
    N_GPUS=8 bash verl_grpo/launch.sh        # on the cluster, after `sr1 serve` is up

Prints the Hydra overrides and the sr1 fields with no verl equivalent (also in launch.sh's comments).
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("export", help="write an sr1 experiment as another engine's run (verl)")
    engines = p.add_subparsers(dest="engine", metavar="ENGINE", required=True)
    v = engines.add_parser("verl", help="parquet, agent-loop YAML, reward hook and launch script for verl 0.9.1",
                           description="Write DIR/data/*.parquet, agent_loop.yaml, reward.py, launch.sh, "
                                       "sr1_config.yaml and mapping.json for a verl run of this config.")
    v.add_argument("--config", default=None, help="sr1 run config (.yaml / .json); omitted = the defaults")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field (repeatable)")
    v.add_argument("--retriever", default=None,
                   help="retrieval server URL the verl workers call (default: retrieval.index); run `sr1 serve`")
    v.add_argument("--out", required=True, help="output folder")
    v.set_defaults(func=run_verl)


def run_verl(args) -> int:
    from sr1lib import config as cfgmod
    from sr1lib.engines.verl_export import export_verl

    cfg = cfgmod.with_overrides(cfgmod.load(args.config) if args.config else cfgmod.RunConfig(), args.set)
    ex = export_verl(cfg, args.out, retriever=args.retriever)
    print(f"wrote {ex.out}: {ex.n_train} training and {ex.n_val} validation rows, agent_loop.yaml, reward.py, launch.sh")
    print("Hydra overrides (launch.sh):")
    for o in ex.overrides:
        note = f"   <- {o.source}" + (f" ({o.note})" if o.note else "") if o.source else ""
        print(f"  {o.text()}{note}")
    print("sr1 fields with no verl equivalent:")
    for field, why in ex.unmapped.items():
        print(f"  {field}: {why}")
    target = args.retriever or cfg.retrieval.index
    if not str(target).startswith(("http://", "https://")):
        print(f"note: the retriever is the folder {target}; every verl node must read it. On a cluster, "
              "run `sr1 serve --index DIR` and pass --retriever http://HOST:PORT instead.")
    return 0
