"""`sr1 toyworld sweep`: the toy-world pipeline over a grid of world seeds, RL seeds and thread
counts, so a learning claim is a distribution (min / median / max), not one run.

    DIR/cells/w{seed}-r{rl_seed}-t{threads}[-p{perturb}]/   one `sr1 toyworld run` each (experiments.pipeline)
    DIR/sweep.json                             every finished cell and the summary, rewritten after each cell

A world seed fixes the evaluation world and its base model; the RL seed fixes RL's sampling; the
thread count and the init jitter (`perturb`, `PretrainConfig.init_jitter`) are float perturbations
that stand in for another machine: another reduction order, or other low bits in the initial
weights, and training's chaos makes another base model. A thread count perturbs only where torch
actually splits a reduction across threads; the sweep records whether two cells' base models came
out bit-identical (`identical_models`), so a perturbation that changed nothing is seen as such. Cells resume like the pipeline
itself: cached worlds and base models, finished runs and evaluations are reused, so an interrupted
sweep continues where it stopped, and a finished one rewrites its summary in seconds.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from sr1lib.errors import Sr1Error
from sr1lib.experiments.pipeline import HOPS, METHODS, RL_STAGES, toyworld_pipeline

SWEEP = "sweep.json"
# The quantities summarised over cells: (key, label, read from one cell's record)
STATS: tuple[tuple[str, str], ...] = (
    ("em_all", "test EM"), ("em_two", "test EM two-hop"), ("gain", "EM - base"),
    ("reward_rise", "training-reward rise"), ("searches_two", "searches / two-hop q"))


def cpu_info() -> dict[str, Any]:
    """The CPU's model name, its vector-instruction flags and torch's kernel level for it."""
    import platform

    import torch

    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            if key.strip() == "flags" and not flags:
                flags = sorted(f for f in value.split() if f.startswith(("avx", "fma", "amx", "sse4", "f16c")))
    except OSError:  # not Linux
        pass
    return {"model": model, "flags": flags, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def cell_name(seed: int, rl_seed: int, threads: int, perturb: int = 0) -> str:
    return f"w{seed}-r{rl_seed}-t{threads}" + (f"-p{perturb}" if perturb else "")


def cell_record(summary: dict[str, Any], methods: Sequence[str]) -> dict[str, Any]:
    """What the sweep keeps of one pipeline summary."""
    return {
        "seed": summary["seed"], "rl_seed": summary["rl_seed"], "threads": summary["threads"],
        "perturb": summary["perturb"], "base_model_sha256": model_sha256(summary["base_model"]),
        "em": {m: summary["em"][m] for m in METHODS if m in ("direct", "rag", "base", *methods)},
        "searches_by_hop": {m: summary["searches_by_hop"][m] for m in ("base", *methods)},
        "reward_rise": {m: summary["training"][m]["reward_rise"] for m in methods},
        "gains_over_base": summary["gains_over_base"],
        "stage_seconds": summary["stage_seconds"],
        "stage_status": summary["stage_status"],
        "out": summary["out"],
    }


def model_sha256(folder: str) -> str:
    from sr1lib.fsutil import sha256_file

    weights = sorted(Path(folder).glob("*.safetensors"))
    return sha256_file(weights[0]) if weights else ""


def identical_models(cells: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Groups of cells of one world seed whose base models differ in their settings yet not in a bit."""
    groups: dict[tuple[int, str], set[tuple[Any, Any]]] = {}
    names: dict[tuple[int, str], list[str]] = {}
    for c in cells:
        key = (c["seed"], c["base_model_sha256"])
        groups.setdefault(key, set()).add((c["threads"], c["perturb"]))
        names.setdefault(key, []).append(c["cell"])
    return [sorted(names[k]) for k, settings in groups.items() if len(settings) > 1]


def cell_values(cell: dict[str, Any], method: str) -> dict[str, float | None]:
    """The `STATS` quantities of `method` in one cell (None where not measured)."""
    em, two = cell["em"][method]["all"], cell["em"][method]["two"]
    rise = cell["reward_rise"].get(method, {}).get("rise") if method in RL_STAGES else None
    base = cell["em"]["base"]["all"]
    return {"em_all": em, "em_two": two, "gain": None if em is None or base is None else round(em - base, 4),
            "reward_rise": rise, "searches_two": cell["searches_by_hop"].get(method, {}).get("two")}


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(vals)}


def summarise(cells: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """method -> quantity -> {min, median, max, n} over the cells, plus the mean EM by hop type."""
    out: dict[str, dict[str, Any]] = {}
    for m in ("direct", "rag", "base", *methods):
        per = [cell_values(c, m) for c in cells]
        out[m] = {key: spread([p[key] for p in per]) for key, _ in STATS}
        out[m]["mean_em"] = {h: _mean([c["em"][m][h] for c in cells]) for h in (*HOPS, "all")}
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def sweep_table(result: dict[str, Any]) -> str:
    """Markdown: one row per method, min / median / max of each quantity over the cells."""
    summary = result["summary"]
    head = ["method", *(label for _, label in STATS)]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for m, stats in summary.items():
        cells = []
        for key, _ in STATS:
            s = stats[key]
            cells.append("-" if s["min"] is None else f"{s['min']:.2f} / {s['median']:.2f} / {s['max']:.2f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    grid = result["grid"]
    cpu = result["cpu"]
    title = (f"toy world '{result['profile']}' sweep: {len(result['cells'])} cells (world seeds {grid['seeds']} x "
             f"RL seeds {grid['rl_seeds']} x threads {grid['threads']} x init jitter {grid['perturb']}), "
             f"min / median / max over cells; CPU {cpu['model']} ({cpu['torch_cpu_capability']})")
    same = [f"base models bit-identical across settings: {', '.join(g)}" for g in result.get("identical_models", [])]
    return "\n".join([title, "", *lines, *([""] + same if same else [])])


def cells_table(result: dict[str, Any]) -> str:
    """Markdown: one row per cell, greedy test EM (all / two-hop) and the training-reward rise per method."""
    methods = result["grid"]["methods"]
    head = ["cell", "base EM", "RAG EM", *(f"{m} EM (two-hop)" for m in methods), *(f"{m} reward rise" for m in methods),
            "pretrain s"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    f = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    for c in result["cells"]:
        row = [c["cell"], f(c["em"]["base"]["all"]), f(c["em"]["rag"]["all"]),
               *(f"{f(c['em'][m]['all'])} ({f(c['em'][m]['two'])})" for m in methods),
               *(f(c["reward_rise"][m]["rise"]) for m in methods),
               f"{c['stage_seconds']['pretrain']:.0f}" if c["stage_status"]["pretrain"] == "built" else "cached"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_sweep(profile: str, seeds: Sequence[int], out: str | Path, *, rl_seeds: Sequence[int] = (0,),
              threads: Sequence[int] = (2,), perturb: Sequence[int] = (0,), methods: Sequence[str] = ("ppo", "grpo"), overrides: Sequence[str] = (),
              device: str = "cpu", progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every cell of seeds x rl_seeds x threads; returns (and writes) DIR/sweep.json."""
    from sr1lib.fsutil import write_json_atomic

    if not seeds or not rl_seeds or not threads:
        raise Sr1Error("sweep: --seeds, --rl-seeds and --threads each need at least one value")
    if not perturb or any(p < 0 for p in perturb):
        raise Sr1Error(f"sweep: --perturb {list(perturb)}: jitter seeds must be >= 0 (0 = no jitter)")
    bad = [t for t in threads if t < 1]
    if bad:
        raise Sr1Error(f"sweep: --threads {bad}: thread counts must be >= 1")
    unknown = [m for m in methods if m not in RL_STAGES]
    if unknown:
        raise Sr1Error(f"sweep: --methods {unknown}: valid methods are {list(RL_STAGES)}")
    out = Path(out).resolve()
    grid = {"seeds": list(seeds), "rl_seeds": list(rl_seeds), "threads": list(threads), "perturb": list(perturb),
            "methods": list(methods),
            "overrides": list(overrides)}
    result: dict[str, Any] = {"format": "sr1-toyworld-sweep", "profile": profile, "grid": grid, "cpu": cpu_info(),
                              "cells": [], "summary": {}}
    t0 = time.perf_counter()
    todo = [(s, r, t, p) for s in seeds for t in threads for p in perturb for r in rl_seeds]
    for i, (s, r, t, p) in enumerate(todo, 1):
        name = cell_name(s, r, t, p)
        log(f"[sweep] cell {i}/{len(todo)}: {name}")
        summary = toyworld_pipeline(profile, s, out / "cells" / name, rl_seed=r, threads=t, perturb=p,
                                    methods=tuple(methods),
                                    overrides=overrides, device=device, progress=progress, log=log)
        result["cells"].append({"cell": name, **cell_record(summary, methods)})
        result["summary"] = summarise(result["cells"], methods)
        result["identical_models"] = identical_models(result["cells"])
        result["seconds"] = round(time.perf_counter() - t0, 2)
        write_json_atomic(out / SWEEP, result)
    return result
