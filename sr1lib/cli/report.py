"""`sr1 report`: execute the notebooks with papermill into a report folder (see `sr1lib.report`).

    sr1 report [--profile smoke|quick|full] [--out reports/DATE-PROFILE] [--notebooks 00_quickstart,02_train]

Exit status 0 when every notebook ran, 1 when some failed (each failure is in the summary with
its error; the others still ran), 2 for bad arguments.
"""

from __future__ import annotations


def register(sub) -> None:
    from sr1lib.experiments.profiles import NOTEBOOKS, PROFILE_NAMES, PURPOSE

    p = sub.add_parser("report", help="execute the notebooks (papermill) into an HTML/PNG report with a summary")
    p.add_argument("--profile", default="quick", choices=PROFILE_NAMES,
                   help="; ".join(f"{name}: {PURPOSE[name]}" for name in PROFILE_NAMES))
    p.add_argument("--out", default=None, help="report folder (default reports/YYYY-MM-DD-PROFILE); a rerun into "
                                               "the same folder reuses its finished training runs")
    p.add_argument("--notebooks", default=None, metavar="NAMES",
                   help=f"comma-separated subset, in the order given (default all: {','.join(NOTEBOOKS)})")
    p.add_argument("--timeout", type=int, default=None, metavar="S", help="per-cell time limit in seconds")
    p.set_defaults(func=run)


def run(args) -> int:
    from sr1lib.report import run_report

    names = [n.strip() for n in args.notebooks.split(",") if n.strip()] if args.notebooks else None
    summary = run_report(args.profile, args.out, notebooks=names, timeout_s=args.timeout)
    return 0 if not summary["failed"] else 1
