"""`sr1 train`: one RL run (PPO, GRPO, RLOO or REINFORCE) from a config file, recorded in its run folder.

    sr1 train --config configs/grpo.yaml --set train.steps=200 --set algorithm.kl_coef=0.001
    sr1 train --config configs/grpo.yaml --resume          # continue from the latest checkpoint

The run folder is `out_dir/name` (config.json, env.json, metrics.jsonl, rollouts.jsonl, train.log,
checkpoints/). `--show-config` prints the resolved config (with every field's default) and exits.
"""

from __future__ import annotations

import json

from sr1lib.choices import PROMPT_MODES


def register(sub) -> None:
    p = sub.add_parser("train", help="train a policy with RL (PPO / GRPO / RLOO / REINFORCE) from a config",
                       description="Train a Search-R1 policy. Every step appends to the run folder's "
                                   "metrics.jsonl; checkpoints are atomic and --resume continues exactly.")
    p.add_argument("--config", required=False, default=None,
                   help="run config (.json / .yaml); omitted = the defaults of sr1lib.config.RunConfig")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set algorithm.name=ppo --set train.lr=1e-6 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in out_dir/name from its latest checkpoint")
    p.add_argument("--prompt-mode", default=None, choices=PROMPT_MODES,
                   help="shorthand for --set rollout.prompt_mode=MODE (search = Search-R1); the run folder's "
                        "config records it, so --resume keeps it")
    p.add_argument("--show-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from sr1lib import config as cfgmod

    cfg = cfgmod.load(args.config) if args.config else cfgmod.RunConfig()
    prompt_mode = [f"rollout.prompt_mode={args.prompt_mode}"] if args.prompt_mode else []
    cfg = cfgmod.with_overrides(cfg, prompt_mode + args.set)
    if args.show_config:
        print(json.dumps(cfgmod.to_dict(cfg), indent=2))
        return 0
    from sr1lib.train import train

    run_dir = train(cfg, resume=args.resume, progress=not args.quiet)
    rows = run_dir.metrics()
    if rows:
        last = rows[-1]
        # .get: with train.steps=0 the only row is step 0's validation, which has no training reward
        print(json.dumps({"run": str(run_dir.path), "step": last["step"], "reward_mean": last.get("reward_mean"),
                          "em": last.get("em"), "checkpoints": run_dir.checkpoint_steps()}))
    return 0
