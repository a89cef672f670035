"""Run folders into tables: the data every plot and summary table is drawn from.

Only run folders are read (`config.json`, `metrics.jsonl`), so a figure can be redrawn from the
folders alone, long after the training process is gone. Each run gets a `variant` label that says
what distinguishes it in an ablation, the variant name the ablation takes (`ppo`, `ppo-nomask` when
retrieved tokens were trained on; `training.variant_slug`); seeds of one variant are aggregated by
the plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from sr1lib.errors import Sr1Error
from sr1lib.experiments.variants import variant_slug
from sr1lib.runs import RunDir

# metrics.jsonl key -> (axis label with unit, short title). Order = the order of the panels.
CURVES: dict[str, tuple[str, str]] = {
    "reward_mean": ("mean reward (0-1)", "training reward"),
    "em": ("exact match (0-1)", "training EM (sampled)"),
    "val_em": ("exact match (0-1)", "validation EM (greedy)"),
    "response_tokens_mean": ("tokens per trajectory", "response length"),
    "searches_mean": ("searches per trajectory", "searches"),
    "kl": ("nats per token", "KL to the reference"),
    "entropy": ("nats per token", "policy entropy"),
}


def run_info(run: str | Path) -> dict[str, Any]:
    """What identifies a run in a table: name, path, algorithm, masking, seed, variant, model."""
    rd = RunDir.open(run)
    cfg = rd.config()
    return {"run": cfg.name, "path": str(rd.path), "algorithm": cfg.algorithm.name,
            "mask_retrieved": cfg.algorithm.mask_retrieved, "seed": cfg.seed,
            "variant": variant_slug(cfg.algorithm.name, cfg.algorithm.mask_retrieved),
            "model": cfg.train.model, "steps_planned": cfg.train.steps}


def metrics_frame(runs: Iterable[str | Path]) -> Any:
    """One row per (run, step): run_info columns + every metric; `alarms` is a list per row and
    `n_alarms` its length. Runs without metrics contribute no rows."""
    import pandas as pd

    rows = []
    for run in runs:
        info = run_info(run)
        for m in RunDir.open(run).metrics():
            alarms = m.get("alarms") or []
            rows.append({**info, **m, "alarms": list(alarms), "n_alarms": len(alarms)})
    if not rows:
        return pd.DataFrame(columns=["run", "path", "algorithm", "mask_retrieved", "seed", "variant", "step"])
    df = pd.DataFrame(rows)
    if "searches_mean" in df and "valid_search_ratio" in df:
        # valid searches per trajectory: the paper's Fig. 2(b) quantity
        df["valid_searches_mean"] = df["searches_mean"] * df["valid_search_ratio"]
    return df.sort_values(["variant", "seed", "run", "step"]).reset_index(drop=True)


def _last(series: Any) -> Any:
    s = series.dropna()
    return s.iloc[-1] if len(s) else None


def final_table(frame: Any) -> Any:
    """Per variant: final validation EM (mean and std over seeds), final training reward, the
    number of seeds, and stability (steps with collapse alarms, which alarms)."""
    import pandas as pd

    if frame is None or len(frame) == 0:
        raise Sr1Error("final_table: no metrics rows (the runs have not logged any step yet)")
    per_run = []
    for (variant, run), g in frame.groupby(["variant", "run"], sort=False):
        g = g.sort_values("step")
        alarms = sorted({a for lst in g["alarms"] for a in lst})
        per_run.append({"variant": variant, "run": run, "seed": g["seed"].iloc[0],
                        "final_val_em": _last(g["val_em"]) if "val_em" in g else None,
                        "final_reward": _last(g["reward_mean"].rolling(3, min_periods=1).mean()),
                        "steps": int(g["step"].max()), "alarm_steps": int((g["n_alarms"] > 0).sum()),
                        "alarms": ", ".join(alarms)})
    runs = pd.DataFrame(per_run)
    out = runs.groupby("variant", sort=False).agg(
        seeds=("seed", "nunique"), steps=("steps", "max"),
        val_em=("final_val_em", "mean"), val_em_std=("final_val_em", "std"),
        reward=("final_reward", "mean"), alarm_steps=("alarm_steps", "sum"),
        alarms=("alarms", lambda s: ", ".join(sorted({a for x in s for a in x.split(", ") if a}))))
    out["stable"] = out["alarm_steps"] == 0
    return out.reset_index()


def alarm_points(frame: Any, metric: str) -> Any:
    """Rows (variant, run, step, value) where a run raised any alarm, for marking on a curve."""
    if metric not in frame:
        return frame.iloc[0:0]
    return frame[frame["n_alarms"] > 0][["variant", "run", "seed", "step", metric, "alarms"]]


def band(frame: Any, metric: str) -> Any:
    """Per (variant, step): mean, min, max and count over seeds of `metric` (rows without it dropped)."""
    sub = frame[["variant", "step", metric]].dropna()
    g = sub.groupby(["variant", "step"])[metric]
    return g.agg(["mean", "min", "max", "std", "count"]).reset_index()


def runs_in(root: str | Path | Sequence[str | Path]) -> list[Path]:
    """Run folders at or under `root` (a folder, or a list of them)."""
    from sr1lib.runs import find_runs

    return find_runs(root)
