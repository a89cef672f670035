"""Notebook 02's job (one training run) and notebook 04's (response-length dynamics from run folders).

`train_run` turns notebook parameters into a `RunConfig` and calls `sr1lib.train.train`. A run
folder that already holds the same configuration is reused when finished and resumed when not, so
the ablation (notebook 03), which runs notebook 02 once per variant and seed, never trains the same
configuration twice, and a report that is run again picks up where it stopped. A folder holding a
different configuration is an error, never silently overwritten.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from sr1lib.errors import Sr1Error
from sr1lib.experiments.variants import ALGORITHMS, default_run_name, name_prefix, parse_variant, variant_slug

__all__ = ["ALGORITHMS", "build_config", "default_run_name", "name_prefix", "parse_variant", "response_length_study",
           "run_or_reuse", "train_run", "variant_slug"]

def build_config(setup: Any, profile: str, *, algorithm: str, mask_retrieved: bool, seed: int, runs_root: str,
                 name: str, overrides: Sequence[str] = ()) -> Any:
    """The RunConfig of one training run: the profile's settings (`profiles.run_config`), the setup's
    data, index and model, the variant, then `overrides` (`section.field=value` strings) last."""
    from sr1lib.config import with_overrides
    from sr1lib.experiments.profiles import run_config

    if algorithm not in ALGORITHMS:
        raise Sr1Error(f"algorithm={algorithm!r}: valid algorithms are {list(ALGORITHMS)}")
    cfg = run_config(profile)
    cfg = replace(
        cfg, name=name, out_dir=str(runs_root), seed=seed,
        data=replace(cfg.data, train=[setup.train], val=[setup.validation] if cfg.train.val_every else []),
        retrieval=replace(cfg.retrieval, backend=_backend_of(setup.index), index=setup.index),
        algorithm=replace(cfg.algorithm, name=algorithm, mask_retrieved=mask_retrieved),
        train=replace(cfg.train, model=setup.model))
    return with_overrides(cfg, list(overrides))


def _backend_of(index: str) -> str:
    if index.startswith(("http://", "https://")):
        return "http"
    from sr1lib.retrieval import read_manifest

    manifest = read_manifest(Path(index)) or {}
    return manifest.get("backend", "pyserini")  # a bare Lucene index from pyserini's own CLI


def _finished(run: Any, steps: int) -> bool:
    done = run.checkpoint_steps()
    return bool(done) and done[-1] >= steps


def run_or_reuse(cfg: Any, progress: bool = True) -> tuple[Path, str]:
    """Train `cfg`, resume it, or reuse its finished folder; returns (folder, what happened)."""
    from sr1lib import config as C
    from sr1lib.runs import RunDir
    from sr1lib.train import train

    folder = cfg.run_dir
    if (folder / "config.json").exists():
        old = RunDir.open(folder)
        if C.to_dict(old.config()) != C.to_dict(cfg):
            raise Sr1Error(f"{folder} holds a run with a different configuration; choose another run_name or "
                           "runs_root, or delete that folder")
        if _finished(old, cfg.train.steps):
            return folder, "reused"
        # resume restarts from scratch when the run never reached a checkpoint
        train(cfg, resume=True, progress=progress)
        return folder, "resumed"
    train(cfg, progress=progress)
    return folder, "trained"


def train_run(profile: str = "quick", seed: int = 0, *, algorithm: str = "grpo", mask_retrieved: bool = True,
              overrides: Sequence[str] = (), model: str = "", data: str = "", val_data: str = "", index: str = "",
              runs_root: str = "runs/notebooks", run_name: str = "", progress: bool = True,
              artifacts: str = "") -> dict[str, Any]:
    """One training run with the profile's settings on the toy world of (profile, seed), or on the
    data/model/index given; `overrides` (`sr1 train --set` strings) change any other setting.

    Returns {run (folder), status (trained | resumed | reused), config (dict), metrics (one row per
    step), final (the last step's metrics), seconds}.
    """
    from sr1lib import config as C
    from sr1lib.experiments.frames import metrics_frame
    from sr1lib.experiments.setup import resolve_setup

    t0 = time.perf_counter()
    setup = resolve_setup(profile, seed, model=model, data=data, val_data=val_data, index=index, progress=progress)
    name = run_name or default_run_name(name_prefix(profile, model, data), algorithm, mask_retrieved, seed)
    cfg = build_config(setup, profile, algorithm=algorithm, mask_retrieved=mask_retrieved, seed=seed,
                       runs_root=str(Path(runs_root).resolve()), name=name, overrides=overrides)
    folder, status = run_or_reuse(cfg, progress)
    frame = metrics_frame([folder])
    final = frame.iloc[-1].to_dict() if len(frame) else {}
    out = {"run": str(folder), "status": status, "config": C.to_dict(cfg), "metrics": frame, "final": final,
           "seconds": round(time.perf_counter() - t0, 2)}
    from sr1lib.experiments.artifacts import fmt, publish

    steps_run = frame[frame["step"] > 0] if len(frame) else frame  # step 0: validation only
    first = steps_run.iloc[0].to_dict() if len(steps_run) else {}
    publish(artifacts, {k: v for k, v in out.items() if k != "metrics"},
            f"{algorithm} ({'retrieved tokens masked' if mask_retrieved else 'no masking'}), {cfg.train.steps} steps "
            f"({status}): training reward {fmt(first.get('reward_mean'))} -> {fmt(final.get('reward_mean'))}, "
            f"validation EM {fmt(final.get('val_em'))} at the end.\n")
    return out


def curve_summary(frame: Any, metric: str) -> dict[str, Any]:
    """Start, minimum (and its step), end of a per-step metric averaged over a variant's seeds, and
    whether it dipped and then rose (min below the start and the end above the min, both by > 5%)."""
    g = frame[["step", metric]].dropna().groupby("step")[metric].mean()
    if not len(g):
        return {}
    start, end, lo, lo_step = float(g.iloc[0]), float(g.iloc[-1]), float(g.min()), int(g.idxmin())
    tol = 0.05 * max(abs(start), 1e-9)
    return {"start": start, "min": lo, "min_step": lo_step, "end": end,
            "dip_then_rise": lo < start - tol and end > lo + tol and 0 < lo_step < int(g.index[-1])}


def response_length_study(runs: Sequence[str | Path] = (), runs_root: str = "runs/notebooks",
                          artifacts: str = "") -> dict[str, Any]:
    """Response length and searches over training, per variant, from run folders only.

    runs: run folders (empty: every run under `runs_root`). Returns {runs, frame (metrics per
    step), summary (per variant: length start/min/end and whether it dipped then rose, valid
    searches start/end)}.
    """
    import pandas as pd

    from sr1lib.experiments.frames import metrics_frame, runs_in

    folders = [Path(r) for r in runs] if runs else runs_in(runs_root)
    if not folders:
        raise Sr1Error(f"no run folders under {runs_root}; train some first (notebooks 02 and 03)")
    frame = metrics_frame(folders)
    rows = []
    for variant, g in frame.groupby("variant", sort=False):
        length = curve_summary(g, "response_tokens_mean")
        searches = curve_summary(g, "valid_searches_mean") if "valid_searches_mean" in g else {}
        rows.append({"variant": variant, "seeds": g["seed"].nunique(), "steps": int(g["step"].max()),
                     "length_start": length.get("start"), "length_min": length.get("min"),
                     "length_min_step": length.get("min_step"), "length_end": length.get("end"),
                     "length_dips_then_rises": length.get("dip_then_rise"),
                     "valid_searches_start": searches.get("start"), "valid_searches_end": searches.get("end")})
    out = {"runs": [str(f) for f in folders], "frame": frame, "summary": pd.DataFrame(rows)}
    from sr1lib.experiments.artifacts import markdown_table, publish

    publish(artifacts, {"runs": out["runs"], "summary": out["summary"]}, markdown_table(out["summary"], 1))
    return out
