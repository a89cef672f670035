"""`sr1 toyworld build|pretrain|run`: the generated world, its locally pretrained base model, and
the whole pipeline (build, pretrain, PPO, GRPO, PPO without masking, evaluation) in one command.

    sr1 toyworld build --out DIR [--seed S] [--profile P]       a world folder (see sr1lib.toyworld)
    sr1 toyworld pretrain [--world DIR] [--out DIR] [--profile P] [--seed S]
    sr1 toyworld run --profile smoke|quick|full [--out DIR] [--seed S]   (sr1lib.experiments.pipeline)
    sr1 toyworld sweep --profile P --seeds 0,1,2 [--rl-seeds 0,1] [--threads 1,2] [--perturb 0,1] [--out DIR]
                                                              (sr1lib.experiments.sweep)

Without --out, pretrain fills the cache (.sr1-cache/toyworld/...) and reuses it when present;
without --world it uses the cached evaluation world of (profile, seed). After training it prints
what the base model does on validation questions (first turn, greedy and sampled).
"""

from __future__ import annotations

import json
import time


def register(sub) -> None:
    p = sub.add_parser("toyworld", help="the toy world: generate a world, pretrain its base model")
    tw = p.add_subparsers(dest="toyworld_command", metavar="ACTION")

    b = tw.add_parser("build", help="generate a world (corpus, questions, manifest) into a folder")
    b.add_argument("--out", required=True, help="folder to create")
    b.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    b.add_argument("--profile", default="quick", help="size preset: smoke | quick | full (default quick)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    b.set_defaults(func=run_build)

    t = tw.add_parser("pretrain", help="train the tokenizer and base model for a world (cached)")
    t.add_argument("--world", help="evaluation world folder (default: the cached world of profile and seed)")
    t.add_argument("--out", help="model folder to create (default: the cache)")
    t.add_argument("--profile", default="quick", help="smoke | quick | full (default quick)")
    t.add_argument("--seed", type=int, default=0, help="evaluation world seed (default 0; ignored with --world)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    t.add_argument("--probe", type=int, default=32, help="validation questions for the behaviour check (0 = off)")
    t.set_defaults(func=run_pretrain)

    r = tw.add_parser("run", help="the whole pipeline: world, base model, PPO, GRPO, PPO without masking, "
                                  "evaluation; writes DIR/summary.json")
    r.add_argument("--profile", default="quick", help="smoke (structure only) | quick (the main job) | full (the "
                                                      "larger research setting)")
    r.add_argument("--out", default="", help="output folder (default runs/toyworld-PROFILE-sSEED); reruns resume")
    r.add_argument("--seed", type=int, default=0, help="world and training seed (default 0)")
    r.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--markdown", action="store_true", help="print the summary table as markdown")
    r.set_defaults(func=run_pipeline)

    w = tw.add_parser("sweep", help="the pipeline over world seeds x RL seeds x thread counts; writes "
                                    "DIR/sweep.json and prints min / median / max")
    w.add_argument("--profile", default="quick", help="smoke | quick | full (default quick)")
    w.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="world and base-model seeds (default 0,1,2)")
    w.add_argument("--rl-seeds", type=int_list, default=[0], help="RL seeds (default 0)")
    w.add_argument("--threads", type=int_list, default=[2],
                   help="torch intra-op threads for pretraining and RL, a float perturbation where torch splits "
                        "reductions across threads (default 2)")
    w.add_argument("--perturb", type=int_list, default=[0],
                   help="init-jitter seeds (0 = none): low-bit noise on the base model's initial weights, "
                        "another stand-in for another machine (default 0)")
    w.add_argument("--methods", type=lambda s: [m for m in s.split(",") if m], default=["ppo", "grpo"],
                   help="RL methods: ppo, grpo, ppo-nomask (default ppo,grpo)")
    w.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="an RL config override for every run, as `sr1 train --set` (repeatable)")
    w.add_argument("--out", default="", help="output folder (default runs/toyworld-sweep-PROFILE); reruns resume")
    w.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    w.add_argument("--quiet", action="store_true", help="no progress bars")
    w.set_defaults(func=run_sweep_cmd)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_build(args) -> int:
    from sr1lib.toyworld import build_world, get_profile

    prof = get_profile(args.profile)
    t0 = time.perf_counter()
    manifest = build_world(args.out, args.seed, config=prof.world, overwrite=args.overwrite)
    c = manifest["counts"]
    print(f"world seed {args.seed} ({prof.name}, config {manifest['config_hash']}) -> {args.out} "
          f"in {time.perf_counter() - t0:.1f}s")
    print(f"  entities {sum(c['entities'].values())} {c['entities']}")
    print(f"  passages {c['passages']} {c['passages_by_kind']}")
    print(f"  questions {json.dumps(c['questions'])}")
    return 0


def run_pretrain(args) -> int:
    from pathlib import Path

    from sr1lib.toyworld import build_model, ensure_base_model, ensure_world, get_profile, model_dir, probe_model

    prof = get_profile(args.profile)
    world = Path(args.world) if args.world else ensure_world(prof, args.seed)
    if args.out:
        build_model(args.out, world, prof.pretrain, overwrite=args.overwrite)
        out = Path(args.out)
    else:
        if args.world:
            from sr1lib.errors import Sr1Error

            raise Sr1Error("--world needs --out (the cache holds only the worlds it builds itself)")
        cached = (model_dir(prof, args.seed) / "pretrain.json").exists()
        out = ensure_base_model(prof, args.seed)
        print(f"{'reused' if cached else 'built'} cached model {out}")
    report = json.loads((out / "pretrain.json").read_text())
    print(f"model {out}: {report['parameters'] / 1e6:.2f} M parameters, vocab {report['vocab_size']}, "
          f"{report['documents']} documents / {report['document_tokens']} tokens, "
          f"loss {report['loss_first']:.2f} -> {report['loss_last10']:.2f}, "
          f"train {report['seconds']['train']:.0f}s, total {report['seconds']['total']:.0f}s")
    if args.probe:
        res = probe_model(out, world, n=args.probe)
        copy = res.pop("copy")
        print("behaviour on validation questions (first turn):", json.dumps(res))
        print("copying the names a policy writes (teacher-forced, good demonstrations):", json.dumps(copy))
    return 0


def run_pipeline(args) -> int:
    import sys

    from sr1lib.experiments.pipeline import summary_table, toyworld_pipeline

    summary = toyworld_pipeline(args.profile, args.seed, args.out, device=args.device, progress=not args.quiet,
                                log=lambda line: print(line, file=sys.stderr, flush=True))
    print(summary_table(summary, fmt='markdown' if args.markdown else 'text'))
    print(f"summary: {summary['out']}/summary.json; training curves: {summary['out']}/training_metrics.csv")
    return 0


def int_list(text: str) -> list[int]:
    import argparse

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def run_sweep_cmd(args) -> int:
    import sys

    from sr1lib.experiments.sweep import SWEEP, cells_table, run_sweep, sweep_table

    out = args.out or f"runs/toyworld-sweep-{args.profile}"
    result = run_sweep(args.profile, args.seeds, out, rl_seeds=args.rl_seeds, threads=args.threads,
                       perturb=args.perturb, methods=args.methods, overrides=args.overrides, device=args.device,
                       progress=not args.quiet,
                       log=lambda line: print(line, file=sys.stderr, flush=True))
    print(sweep_table(result))
    print()
    print(cells_table(result))
    print(f"sweep: {out}/{SWEEP}")
    return 0
