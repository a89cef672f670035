"""`sr1 import verl --from DIR --out RUN`: a verl run's metrics log and rollout dumps as an sr1 run folder.

    sr1 import verl --from verl_grpo --out runs/verl_grpo     # then plot it like any sr1 run

DIR is an `sr1 export verl` folder (its verl_run/ holds what launch.sh logged) or a verl run's own
folder. What verl did not log is listed on stdout and in RUN/import.json.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("import", help="turn another engine's run (verl) into an sr1 run folder")
    engines = p.add_subparsers(dest="engine", metavar="ENGINE", required=True)
    v = engines.add_parser("verl", help="verl's file/console metrics log and rollout dumps -> an sr1 run folder")
    v.add_argument("--from", dest="src", required=True, help="the export folder or verl run folder")
    v.add_argument("--out", required=True, help="the sr1 run folder to write (must not hold a run)")
    v.set_defaults(func=run_verl)


def run_verl(args) -> int:
    from sr1lib.engines.verl_import import import_verl

    r = import_verl(args.src, args.out)
    print(f"wrote {args.out}: {r['steps']} steps of metrics from {len(r['metrics_files'])} log file(s), "
          f"{r['trajectories']} trajectories")
    print("not logged by verl (missing, not invented): " + ", ".join(r["missing_metrics"]))
    print("per trajectory: " + ", ".join(r["missing_per_trajectory"]) + " (verl dumps decoded text only)")
    return 0
