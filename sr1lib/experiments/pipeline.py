"""`sr1 toyworld run`: the paper's whole story on the toy world, in one command.

Stages, each timed (`stage_seconds`) with the process's peak memory after it:

    world       generate the evaluation world of (profile, seed)          cached (sr1lib.toyworld)
    pretrain    its base model, pretrained on other worlds                 cached
    index       a bm25s index of the world's corpus                        cached
    ppo         RL with PPO, retrieved tokens masked out of the loss       DIR/runs/...
    grpo        RL with GRPO, masked
    ppo-nomask  RL with PPO, retrieved tokens trained on (the masking ablation)
    eval        greedy EM on the held-out test split, by hop type: Direct, RAG and the base model
                with the search protocol (`base`), then each RL policy with the search protocol

`DIR/summary.json` holds `em` (method -> single | two | all -> EM), `searches_per_question`
(method -> mean over all test questions; by hop type under `searches_by_hop`), `stage_seconds`,
`stage_status` (cached / built, trained / resumed / reused), `peak_rss_mb`, the training curves'
start and end (and `reward_rise`: the sampled training reward's mean over the last `RISE_WINDOW`
steps minus that over the first), and where every run and model lives.

`rl_seed` (default: the world seed) seeds RL alone; `threads` sets torch's intra-op threads for
pretraining (a separate cached base model) and for RL and evaluation; `perturb` n > 0 pretrains
from an init whose low bits are jittered with seed n (`PretrainConfig.init_jitter`). Both stand in
for another machine: where a thread count changes no bit (small matrices run single-threaded
whatever the setting), the jitter still does. `sr1 toyworld sweep`
(`sr1lib.experiments.sweep`) runs this over a grid of both.
Everything resumes: cached stages are reused, finished runs are reused, unfinished ones resume
from their last checkpoint, and evaluation resumes from its predictions files. The RL sizes are
the notebooks' (`sr1lib.experiments.profiles.TRAIN`), so a report and this command train alike.
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Sequence

from sr1lib.errors import Sr1Error

METHODS = ("direct", "rag", "base", "ppo", "grpo", "ppo-nomask")
RL_STAGES = {"ppo": ("ppo", True), "grpo": ("grpo", True), "ppo-nomask": ("ppo", False)}
RISE_WINDOW = 5  # steps averaged at each end of the training-reward curve
HOPS = ("single", "two")
HOP_OF_DATASET = {"toy-1hop": "single", "toy-2hop": "two"}
SUMMARY = "summary.json"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def hop_means(cells: dict[str, dict[str, Any]], metric: str) -> dict[str, float | None]:
    """{single, two, all} from per-hop result cells ({metric, n}); `all` weights hops by question count."""
    out: dict[str, float | None] = {h: (cells[h][metric] if h in cells else None) for h in HOPS}
    n = sum(cells[h]["n"] for h in cells)
    out["all"] = sum(cells[h][metric] * cells[h]["n"] for h in cells) / n if n else None
    return out


def method_cells(results: dict[str, dict[str, Any]], row: str) -> dict[str, dict[str, Any]]:
    """Hop type -> result cell of one evaluated row (`results` is dataset -> row -> cell)."""
    return {HOP_OF_DATASET[ds]: per[row] for ds, per in results.items() if ds in HOP_OF_DATASET and row in per}


def window_rise(frame: Any, metric: str, window: int = RISE_WINDOW) -> dict[str, float | None]:
    """Mean of `metric` over the first and the last `window` training steps (step 0, validation
    only, left out) and their difference."""
    col = frame[frame["step"] > 0][metric].dropna() if metric in frame else []
    if not len(col):
        return {"first": None, "last": None, "rise": None}
    first, last = float(col.iloc[:window].mean()), float(col.iloc[-window:].mean())
    return {"first": round(first, 4), "last": round(last, 4), "rise": round(last - first, 4)}


@contextmanager
def torch_threads(n: int | None):
    """torch's intra-op thread count set to `n` inside the block (None: left alone)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def curve_ends(frame: Any, metric: str) -> dict[str, float | None]:
    col = frame[metric].dropna() if metric in frame else []
    return {"first": float(col.iloc[0]), "last": float(col.iloc[-1])} if len(col) else {"first": None, "last": None}


class Stages:
    """Runs named stages in order, recording seconds and peak memory, with a one-line log per stage."""

    def __init__(self, log: Callable[[str], None]):
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self.log = log

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self.log(f"[{name}] ...")
        t0 = time.perf_counter()
        out = fn()
        self.seconds[name] = round(time.perf_counter() - t0, 2)
        self.peak_mb[name] = peak_rss_mb()
        self.log(f"[{name}] done in {self.seconds[name]:.1f}s (peak memory {self.peak_mb[name]:.0f} MB)")
        return out


def toyworld_pipeline(profile: str = "quick", seed: int = 0, out: str | Path = "", *, rl_seed: int | None = None,
                      threads: int | None = None, perturb: int = 0, methods: tuple[str, ...] = tuple(RL_STAGES),
                      overrides: Sequence[str] = (), device: str = "cpu", progress: bool = True,
                      log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build, pretrain, train the RL `methods` (default PPO, GRPO, PPO without masking), evaluate;
    returns (and writes) the summary. `overrides` (`sr1 train --set` strings) apply to every RL run."""
    from sr1lib.experiments.evaluation import hop_files
    from sr1lib.experiments.frames import metrics_frame
    from sr1lib.experiments.profiles import check_profile, train_sizes
    from sr1lib.experiments.setup import index_for
    from sr1lib.experiments.training import default_run_name, train_run
    from sr1lib.fsutil import write_json_atomic
    from sr1lib.toyworld.cache import ensure_base_model, ensure_world, get_profile, model_dir, with_overrides, world_dir

    check_profile(profile)
    unknown = [m for m in methods if m not in RL_STAGES]
    if unknown:
        raise Sr1Error(f"RL methods {unknown}: valid methods are {list(RL_STAGES)}")
    rl_seed = seed if rl_seed is None else rl_seed
    pretrain_fields = {**({"threads": threads} if threads else {}), **({"init_jitter": perturb} if perturb else {})}
    toy = with_overrides(profile, **pretrain_fields) if pretrain_fields else get_profile(profile)
    out = Path(out or f"runs/toyworld-{profile}-s{seed}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    sizes = train_sizes(profile)
    stages = Stages(log)
    t_start = time.perf_counter()

    cached = {"world": (world_dir(toy, seed) / "world.json").exists(),
              "pretrain": (model_dir(toy, seed) / "pretrain.json").exists()}
    world = stages.run("world", lambda: ensure_world(toy, seed).resolve())
    model = stages.run("pretrain", lambda: ensure_base_model(toy, seed, progress=progress).resolve())
    index = stages.run("index", lambda: index_for(world / "corpus.jsonl", "bm25s", progress=progress))
    runs: dict[str, dict[str, Any]] = {}
    with torch_threads(threads):
        for method in methods:
            algorithm, masked = RL_STAGES[method]
            res = stages.run(method, lambda a=algorithm, m=masked: train_run(
                profile, rl_seed, algorithm=a, mask_retrieved=m, model=str(model),
                data=str(world / "train.parquet"), val_data=str(world / "validation.parquet"), index=str(index),
                runs_root=str(out / "runs"), run_name=default_run_name(profile, a, m, rl_seed), progress=progress,
                overrides=[f"train.device={device}", *overrides]))
            frame = res["metrics"]
            runs[method] = {"run": res["run"], "status": res["status"], "reward": curve_ends(frame, "reward_mean"),
                            "reward_rise": window_rise(frame, "reward_mean"),
                            "val_em": curve_ends(frame, "val_em"),
                            "response_tokens": curve_ends(frame, "response_tokens_mean"),
                            "valid_searches": curve_ends(frame, "valid_searches_mean")}

        datasets = hop_files(str(world / "test.parquet"), out / "eval")
        results = stages.run("eval", lambda: evaluate_all(model, runs, index, datasets, sizes, out / "eval", device,
                                                          progress))
    em = {m: hop_means(method_cells(results, m), "em") for m in METHODS}
    searches = {m: hop_means(method_cells(results, m), "mean_searches") for m in METHODS}
    summary = {
        "format": "sr1-toyworld-run", "profile": profile, "seed": seed, "rl_seed": rl_seed, "threads": threads, "perturb": perturb,
        "overrides": list(overrides), "out": str(out),
        "em": em,
        "searches_per_question": {m: v["all"] for m, v in searches.items()},
        "searches_by_hop": searches,
        "response_tokens": {m: hop_means(method_cells(results, m), "mean_response_tokens")["all"] for m in METHODS},
        "test_questions": {h: c["n"] for h, c in method_cells(results, "base").items()},
        "stage_seconds": {**stages.seconds, "total": round(time.perf_counter() - t_start, 2)},
        # what the stage times mean: a cached world or model costs ~0 s, a reused run likewise
        "stage_status": {**{k: "cached" if v else "built" for k, v in cached.items()},
                         **{m: r["status"] for m, r in runs.items()}},
        "peak_rss_mb": stages.peak_mb,
        "training": runs,
        "train_sizes": sizes,
        "world": str(world), "base_model": str(model), "index": str(index),
        "gains_over_base": {m: _minus(em[m]["all"], em["base"]["all"]) for m in methods},
    }
    write_json_atomic(out / SUMMARY, summary)
    metrics = metrics_frame([Path(r["run"]) for r in runs.values()])
    metrics.to_csv(out / "training_metrics.csv", index=False)
    return summary


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def evaluate_all(model: Path, runs: dict[str, dict[str, Any]], index: Path, datasets: list[str],
                 sizes: dict[str, Any], folder: Path, device: str, progress: bool) -> dict[str, dict[str, Any]]:
    """dataset -> row (`direct`, `rag`, `base`, `ppo`, ...) -> result cell, all greedy on the test split."""
    from sr1lib.evaluate import evaluate
    from sr1lib.experiments.evaluation import trained_policies

    common = dict(topk=sizes["topk"], max_turns=sizes["max_turns"], max_new_tokens=sizes["max_new_tokens"],
                  max_response_tokens=sizes["max_response_tokens"], device=device, progress=progress)
    results: dict[str, dict[str, Any]] = {}

    def merge(report: dict[str, Any], rename: dict[str, str]) -> None:
        for ds, per in report["results"].items():
            for method, cell in per.items():
                if method in rename:
                    results.setdefault(ds, {})[rename[method]] = cell

    rep = evaluate(str(model), str(index), datasets, ["direct", "rag", "search-r1"], out=folder / "base.json",
                   **common)
    merge(rep, {"direct": "direct", "rag": "rag", "search-r1": "base"})
    for method, run in runs.items():
        policies = trained_policies([run["run"]])
        if not policies:
            raise Sr1Error(f"{run['run']}: the {method} run has no checkpoint to evaluate")
        _, policy, _ = policies[0]
        rep = evaluate(str(policy), str(index), datasets, ["search-r1"], out=folder / f"{method}.json", **common)
        merge(rep, {"search-r1": method})
    return results


def _f(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def summary_table(summary: dict[str, Any], fmt: str = "text") -> str:
    """The EM table by hop type with searches per question (all and by hop), as text or markdown."""
    head = ("method", "EM single", "EM two-hop", "EM all", "searches", "searches single", "searches two-hop")
    rows = []
    for m in METHODS:
        e, s = summary["em"][m], summary["searches_by_hop"][m]
        rows.append((m, _f(e["single"], 3), _f(e["two"], 3), _f(e["all"], 3), _f(s["all"], 2),
                     _f(s["single"], 2), _f(s["two"], 2)))
    n = summary["test_questions"]
    title = (f"toy world '{summary['profile']}' seed {summary['seed']}: greedy EM on the held-out test split "
             f"({n.get('single', 0)} single-hop, {n.get('two', 0)} two-hop questions)")
    stages = "stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["stage_seconds"].items())
    if fmt == "markdown":
        lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join([title, "", *lines, "", stages])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in (head, *rows)]
    return "\n".join([title, *lines, stages])
