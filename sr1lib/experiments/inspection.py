"""Notebook 06's job: which run to inspect, and static views of a few of its trajectories.

The live inspector is `sr1lib.widgets.TrajectoryInspector`; executed reports cannot run widgets, so
this picks examples worth reading (a correct and an incorrect trajectory from the last logged
step, preferring ones that searched) and renders them, and one question across steps, as HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sr1lib.errors import Sr1Error


def choose_run(run: str = "", runs_root: str = "runs/notebooks") -> Path:
    """`run` when given, else the first run under `runs_root` that logged trajectories (GRPO first,
    the algorithm notebook 02 trains by default)."""
    from sr1lib.runs import find_runs

    if run:
        return Path(run)
    if not Path(runs_root).exists():
        raise Sr1Error(f"no runs: {runs_root} does not exist; train one first (notebook 02) or set run=")
    runs = [r for r in find_runs(runs_root) if (r / "rollouts.jsonl").exists()]
    if not runs:
        raise Sr1Error(f"no run under {runs_root} has logged trajectories (rollouts.jsonl); train one first")
    return sorted(runs, key=lambda r: ("-grpo-" not in r.name, r.name))[0]


def _examples(items: list[tuple[int, Any]], n: int) -> list[tuple[int, Any]]:
    """Up to `n` trajectories of the last logged step, of different questions: correct ones and
    incorrect ones in turn, those with more valid searches first."""
    from sr1lib.views.trajectory import is_correct

    last = max(s for s, _ in items)
    at_last = sorted(((s, t) for s, t in items if s == last), key=lambda x: -x[1].n_valid_searches)
    pools = [[x for x in at_last if is_correct(x[1])], [x for x in at_last if not is_correct(x[1])]]
    picked: list[tuple[int, Any]] = []
    seen: set[str] = set()
    while len(picked) < n and any(pools):
        for pool in pools:
            while pool and pool[0][1].record.id in seen:
                pool.pop(0)
            if pool and len(picked) < n:
                picked.append(pool.pop(0))
                seen.add(picked[-1][1].record.id)
    return picked


def inspect_examples(run: str = "", runs_root: str = "runs/notebooks", n_examples: int = 2,
                     token_detail: bool = True, artifacts: str = "") -> dict[str, Any]:
    """Static HTML of `n_examples` trajectories of the run's last logged step and of one question
    across steps. Returns {run, steps, n_trajectories, examples: [html], comparison: html}."""
    from sr1lib.views.trajectory import render_comparison_html, render_trajectory_html
    from sr1lib.views.select import load_trajectories, run_masks_retrieved, run_tokenizer, same_question

    folder = choose_run(run, runs_root)
    items = load_trajectories(folder)
    if not items:
        raise Sr1Error(f"{folder}: no logged trajectories in rollouts.jsonl")
    tok = run_tokenizer(folder) if token_detail else None
    mask = run_masks_retrieved(folder)
    chosen = _examples(items, n_examples)
    html = [render_trajectory_html(t, step=s, tokenizer=tok, mask_retrieved=mask, css=i == 0)
            for i, (s, t) in enumerate(chosen)]
    # the question logged at the most steps shows the policy changing
    steps_of: dict[str, set[int]] = {}
    for s, t in items:
        steps_of.setdefault(t.record.id, set()).add(s)
    qid = max(steps_of, key=lambda k: (len(steps_of[k]), k))
    if len(steps_of[qid]) > 1:
        comparison = render_comparison_html(same_question(items, qid), css=False)
    else:
        comparison = ("<p><i>No question was logged at two different steps: questions recur only after an "
                      "epoch of the training set (train.log_rollouts trajectories are logged per step).</i></p>")
    out = {"run": str(folder), "steps": sorted({s for s, _ in items}), "n_trajectories": len(items),
           "examples": html, "comparison": comparison,
           "recurring_questions": sum(len(v) > 1 for v in steps_of.values())}
    from sr1lib.experiments.artifacts import publish

    publish(artifacts, {k: v for k, v in out.items() if k not in ("examples", "comparison")})
    return out
