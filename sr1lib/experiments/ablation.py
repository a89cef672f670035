"""Notebook 03's job: notebook 02 once per (variant, seed), then the comparison from the run folders.

Each run goes through papermill (`via="papermill"`, the default): the executed copy of 02_train for
every variant and seed is kept beside the runs, so each run has its own readable record with its
curves. `via="direct"` calls `train_run` in this process instead (no notebook copies; what a
script or a test without Jupyter would use). Either way the runs are plain run folders, reused
when they already hold the same finished configuration (see `training.run_or_reuse`).

A variant that fails is reported with its error; the comparison is drawn from the runs that exist.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from sr1lib.errors import Sr1Error
from sr1lib.experiments.variants import default_run_name, name_prefix, parse_variant, variant_slug

VIA = ("papermill", "direct")


def ablation(profile: str = "quick", seeds: Sequence[int] = (0,),
             variants: Sequence[str] = ("ppo", "grpo", "reinforce", "ppo-nomask"), *, overrides: Sequence[str] = (),
             model: str = "", data: str = "", val_data: str = "", index: str = "", runs_root: str = "runs/notebooks",
             executed_dir: str = "", via: str = "papermill", progress: bool = True,
             artifacts: str = "") -> dict[str, Any]:
    """Train every variant x seed (see the module docstring) and compare them.

    variants: algorithm names, `-nomask` for the masking ablation (`ppo-nomask`: PPO with
    retrieved tokens in the loss). Returns {runs (folders), executed (notebook copies), errors
    (variant/seed -> message), frame (metrics per run and step), final (per variant: final
    validation EM over seeds, reward, alarm steps), seconds}.
    """
    from sr1lib.experiments.frames import final_table, metrics_frame

    if via not in VIA:
        raise Sr1Error(f"via={via!r}: valid choices are {list(VIA)}")
    parsed = [(v, *parse_variant(v)) for v in variants]
    if not parsed or not seeds:
        raise Sr1Error("ablation: give at least one variant and one seed")
    t0 = time.perf_counter()
    root = Path(runs_root).resolve()
    executed = Path(executed_dir).resolve() if executed_dir else root / "notebooks"
    runs, notebooks, errors = [], [], {}
    jobs = [(v, algo, mask, seed) for seed in seeds for v, algo, mask in parsed]
    for i, (v, algo, mask, seed) in enumerate(jobs, 1):
        name = default_run_name(name_prefix(profile, model, data), algo, mask, seed)
        params = dict(profile=profile, seed=seed, algorithm=algo, mask_retrieved=mask, overrides=list(overrides),
                      model=model, data=data, val_data=val_data, index=index, runs_root=str(root), run_name=name)
        print(f"[ablation] ({i}/{len(jobs)}) {variant_slug(algo, mask)} seed {seed} ...", flush=True)
        err = _run_one(params, executed / f"02_train-{name}.ipynb", via, progress)
        if via == "papermill":
            notebooks.append(str(executed / f"02_train-{name}.ipynb"))
        if err:
            errors[f"{v} seed {seed}"] = err
        if (root / name / "metrics.jsonl").exists():
            runs.append(str(root / name))
    if not runs:
        raise Sr1Error("ablation: no run produced metrics; errors: "
                       + "; ".join(f"{k}: {e}" for k, e in errors.items()))
    frame = metrics_frame(runs)
    out = {"runs": runs, "executed": notebooks, "errors": errors, "frame": frame, "final": final_table(frame),
           "seconds": round(time.perf_counter() - t0, 1)}
    from sr1lib.experiments.artifacts import markdown_table, publish
    from sr1lib.views.tables import final_table_html

    note = "".join(f"\n- {k}: failed ({e})" for k, e in errors.items())
    publish(artifacts, {k: v for k, v in out.items() if k != "frame"}, markdown_table(out["final"]) + note,
            final_table_html(out["final"]))
    return out


def _run_one(params: dict[str, Any], out: Path, via: str, progress: bool) -> str | None:
    """Run one training job; the error message when it failed, else None."""
    if via == "direct":
        from sr1lib.experiments.training import train_run

        t0 = time.perf_counter()
        try:
            res = train_run(**params, progress=progress)
        except Exception as e:  # noqa: BLE001 - reported per variant
            print(f"[ablation] (failed: {type(e).__name__}: {e})", flush=True)
            return f"{type(e).__name__}: {e}"
        print(f"[ablation] ({res['status']} in {time.perf_counter() - t0:.0f} s)", flush=True)
        return None
    from sr1lib.experiments.execute import execute

    res = execute("02_train", out, {**params, "progress": False})
    print(f"[ablation] ({res['status']} in {res['seconds']:.0f} s: {out.name})", flush=True)
    return res["error"]
