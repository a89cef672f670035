"""Notebook 05's job: the EM table in the layout of the paper's Table 2 for the models at hand.

Rows: the baselines on the base model (direct answer, RAG, and the base model with the search
protocol, i.e. before RL) and Search-R1 after RL for each trained run's final checkpoint. Columns:
the datasets; on the toy world its test split is cut by hop type (`toy-1hop`, `toy-2hop`), because
the paper's claim that search helps most on multi-hop questions is what the toy world can test.
Every cell comes from `sr1lib.evaluate.evaluate` (greedy, resumable, with provenance).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from sr1lib.errors import Sr1Error

BASE_SEARCH = "base model + search"


def hop_files(test_parquet: str, out_dir: Path) -> list[str]:
    """The toy test split as one FlashRAG JSONL file per hop type (`toy-1hop.jsonl`, `toy-2hop.jsonl`)."""
    from sr1lib.data import load_records
    from sr1lib.fsutil import sha256_file, write_text_atomic

    folder = out_dir / f"toy-test-{sha256_file(test_parquet)[:12]}"
    by_hop: dict[str, list[str]] = {}
    for r in load_records(test_parquet, split="test"):
        hop = ((r.extra or {}).get("extra_info") or {}).get("hop", "all")
        name = {"single": "toy-1hop", "two": "toy-2hop"}.get(hop, "toy")
        row = {"id": r.id.split("/", 1)[-1], "question": r.question, "golden_answers": list(r.golden_answers)}
        by_hop.setdefault(name, []).append(json.dumps(row))
    paths = []
    for name in sorted(by_hop):
        path = folder / f"{name}.jsonl"
        if not path.exists():
            write_text_atomic(path, "\n".join(by_hop[name]) + "\n")
        paths.append(str(path))
    return paths


def trained_policies(runs: Sequence[str | Path]) -> list[tuple[str, Path, dict[str, Any]]]:
    """(row label, policy folder of the last checkpoint, run info) per run that has a checkpoint."""
    from sr1lib.experiments.frames import run_info
    from sr1lib.runs import RunDir

    infos = []
    for r in runs:
        rd = RunDir.open(r)
        steps = rd.checkpoint_steps()
        if steps:
            infos.append((run_info(r), rd.checkpoint_dir(steps[-1]) / "policy", steps[-1]))
    seeds: dict[str, int] = {}
    for info, _, _ in infos:
        seeds[info["variant"]] = seeds.get(info["variant"], 0) + 1
    out = []
    for info, policy, step in infos:
        label = f"search-r1 ({info['variant']})" + (f" s{info['seed']}" if seeds[info["variant"]] > 1 else "")
        out.append((label, policy, {**info, "checkpoint_step": step}))
    return out


def _merge(into: dict[str, Any], report: dict[str, Any], rename: dict[str, str]) -> None:
    for ds, per in report["results"].items():
        for method, cell in per.items():
            if method in rename:
                into.setdefault(ds, {})[rename[method]] = cell


def evaluate_table(profile: str = "quick", seed: int = 0, *, runs: Sequence[str] = (),
                   runs_root: str = "runs/notebooks",
                   methods: Sequence[str] = ("direct", "rag", "search-r1"), datasets: Sequence[str] = (),
                   limit: int = 0, by_hop: bool = True, overrides: Sequence[str] = (), model: str = "",
                   index: str = "", out_dir: str = "", progress: bool = True,
                   artifacts: str = "") -> dict[str, Any]:
    """Evaluate the base model with `methods` and every trained run with `search-r1`.

    runs: run folders (empty: every run under `runs_root` with a checkpoint); datasets: names or
    files for `sr1lib.evaluate` (empty: the toy test split, by hop type when `by_hop`); limit: the
    first N questions per dataset (0: all). Returns {report (results/averages/provenance, rows
    labelled as in the table), table (text, the paper's layout), frame (rows x datasets EM),
    models (row -> model folder)}.
    """
    from sr1lib.evaluate import evaluate, render_table
    from sr1lib.evaluate.scoring import averages
    from sr1lib.experiments.frames import runs_in
    from sr1lib.experiments.profiles import run_config
    from sr1lib.experiments.setup import cache_dir, resolve_setup

    setup = resolve_setup(profile, seed, model=model, index=index, progress=progress)
    if not datasets:
        datasets = hop_files(setup.test, cache_dir() / "eval") if by_hop else [setup.test]
    run_list = [Path(r) for r in runs] if runs else (runs_in(runs_root) if Path(runs_root).exists() else [])
    out = Path(out_dir or Path(runs_root) / "eval")
    run = run_config(profile, overrides)  # the profile's rollout settings, as its training runs use them
    r = run.rollout
    common = dict(topk=run.retrieval.topk, max_turns=r.max_turns, max_new_tokens=r.max_new_tokens,
                  max_response_tokens=r.max_response_tokens, limit=limit or None, device=run.train.device,
                  progress=progress)
    results: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    models: dict[str, str] = {}
    base_rows = {m: (BASE_SEARCH if m == "search-r1" else m) for m in methods}
    rep = evaluate(setup.model, setup.index, list(datasets), list(methods), out=out / "base.json", **common)
    _merge(results, rep, base_rows)
    for row in base_rows.values():
        provenance[row], models[row] = rep["provenance"], setup.model
    for label, policy, info in trained_policies(run_list):
        slug = label.replace(" ", "_").replace("(", "").replace(")", "")
        rep = evaluate(str(policy), setup.index, list(datasets), ["search-r1"], out=out / f"{slug}.json", **common)
        _merge(results, rep, {"search-r1": label})
        provenance[label], models[label] = {**rep["provenance"], "run": info}, str(policy)
    if not results:
        raise Sr1Error("evaluate_table: nothing was evaluated")
    report = {"results": results, "averages": averages(results), "provenance": provenance}
    out = {"report": report, "table": render_table(report, title="Exact match (greedy)"),
           "searches": render_table(report, metric="mean_searches", title="Searches per question"),
           "frame": em_frame(report), "models": models}
    from sr1lib.experiments.artifacts import publish
    from sr1lib.views.tables import table2_html

    publish(artifacts, {"report": report, "models": models},
            render_table(report, fmt="markdown", title="Exact match (greedy)") + "\n"
            + render_table(report, metric="mean_searches", fmt="markdown", title="Searches per question"),
            table2_html(report))
    return out


def em_frame(report: dict[str, Any], metric: str = "em") -> Any:
    """Rows (as the table orders them) x datasets, plus `avg`, as a DataFrame of floats."""
    import pandas as pd

    from sr1lib.evaluate.table import column_groups, ordered_methods

    cols = [d for _, ds in column_groups(list(report["results"])) for d in ds]
    rows = ordered_methods(sorted({m for per in report["results"].values() for m in per}))
    data = {d: [report["results"][d].get(m, {}).get(metric) for m in rows] for d in cols}
    data["avg"] = [report["averages"].get(m, {}).get(metric) for m in rows]
    return pd.DataFrame(data, index=rows)
