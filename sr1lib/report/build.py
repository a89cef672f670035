"""`run_report`: every notebook in order, executed with one profile's parameters, into one folder.

    OUT/notebooks/NN_name.ipynb   executed notebooks (outputs kept)
    OUT/html/NN_name.html         their HTML export
    OUT/figures/NN_name_KK.png    every figure, as PNG
    OUT/artifacts/NN_name/        machine-readable results the notebooks wrote (summary.json,
                                  headline.md/.html)
    OUT/runs/                     the run folders the training notebooks wrote (reused on a rerun)
    OUT/index.html, OUT/README.md the summary: status and time per notebook, links, headline tables
    OUT/summary.json              the same as data

A failing notebook is recorded with its error and the next one still runs; notebooks that read
its results then say what is missing. Running the same command again with the same OUT reuses the
finished training runs, so an interrupted report continues rather than starting over.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from sr1lib.experiments.profiles import NOTEBOOKS, check_profile, notebook_params
from sr1lib.experiments.execute import execute, export_html, extract_figures, notebook_path


def default_out(profile: str) -> Path:
    return Path("reports") / f"{time.strftime('%Y-%m-%d')}-{profile}"


def notebook_question(path: Path) -> str:
    """The first markdown heading of a notebook (its question), without the leading #s."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.strip().startswith("#"):
                    return line.strip().lstrip("#").strip()
    return path.stem


def declared_parameters(name: str) -> set[str]:
    """Names in the notebook's `parameters` cell (papermill's own reading of it)."""
    import papermill as pm

    return set(pm.inspect_notebook(str(notebook_path(name))))


def params_for(profile: str, name: str, out: Path) -> dict[str, Any]:
    """The profile's parameters plus, where the notebook declares them, where this report keeps runs
    and artifacts, and no progress bars or live widgets (an executed file cannot show them)."""
    p = notebook_params(profile, name)
    report = dict(runs_root=str((out / "runs").resolve()), artifacts=str((out / "artifacts" / name).resolve()),
                  progress=False, live=False)
    declared = declared_parameters(name)
    p.update({k: v for k, v in report.items() if k in declared})
    return p


def _echo(line: str) -> None:
    print(f"[sr1 report] {line}", flush=True)


def run_report(profile: str = "quick", out: str | Path | None = None, *, notebooks: Sequence[str] | None = None,
               cwd: str | Path | None = None, timeout_s: int | None = None, prepare: bool = True,
               echo: Callable[[str], None] | None = _echo) -> dict[str, Any]:
    """Execute `notebooks` (default: all, in order) with `profile`'s parameters into `out`.

    prepare: build the toy world, base model and index first (see `prepare_toy_world`). Returns the
    summary (also written to OUT/summary.json): profile, out, seconds, prepared, and per notebook
    its status, error, seconds, output paths and figures.
    """
    from sr1lib.errors import Sr1Error

    check_profile(profile)
    names = list(notebooks or NOTEBOOKS)
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        raise Sr1Error(f"unknown notebooks {unknown}; valid notebooks are {list(NOTEBOOKS)}")
    for n in names:
        notebook_path(n)  # fail before running anything when the checkout lacks one
    out = Path(out) if out else default_out(profile)
    out.mkdir(parents=True, exist_ok=True)
    say = echo or (lambda _: None)
    say(f"profile {profile}: {len(names)} notebooks into {out}/")
    t0 = time.perf_counter()
    prepared = prepare_toy_world(profile, say) if prepare else None
    entries = []
    for i, name in enumerate(names, 1):
        say(f"({i}/{len(names)}) {name} ...")
        params = params_for(profile, name, out)
        res = execute(name, out / "notebooks" / f"{name}.ipynb", params, cwd=cwd, timeout_s=timeout_s,
                      on_progress=lambda line: say(f"    {line}"))
        res["question"] = notebook_question(notebook_path(name))
        res["parameters"] = params
        if Path(res["output"]).exists():
            res["html"] = str(export_html(res["output"], out / "html" / f"{name}.html"))
            res["figures"] = [str(p) for p in extract_figures(res["output"], out / "figures", name)]
        res["headline"] = _headline(out / "artifacts" / name)
        entries.append(res)
        state = "ok" if res["status"] == "ok" else f"FAILED: {res['error']}"
        say(f"({i}/{len(names)}) {name}: {state} ({res['seconds']:.1f} s, {len(res.get('figures', []))} figures)")
    summary = {"profile": profile, "out": str(out), "seconds": round(time.perf_counter() - t0, 1), "prepared": prepared,
               "created": time.strftime("%Y-%m-%d %H:%M:%S"), "git_commit": _commit(),
               "notebooks": entries, "failed": [e["notebook"] for e in entries if e["status"] != "ok"]}
    from sr1lib.fsutil import write_json_atomic, write_text_atomic
    from sr1lib.report.summary import index_html, readme_md

    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "index.html", index_html(summary, out))
    write_text_atomic(out / "README.md", readme_md(summary, out))
    say(f"done in {summary['seconds']:.0f} s: {len(entries) - len(summary['failed'])} ok, "
        f"{len(summary['failed'])} failed; open {out / 'index.html'}")
    return summary


def prepare_toy_world(profile: str, say: Callable[[str], None], seed: int = 0) -> dict[str, Any]:
    """Build (once; cached) the toy world, its base model and its index before the notebooks run,
    here with a terminal progress bar, instead of silently inside the first notebook. A failure is
    recorded and the notebooks still run (they report the same error where they need the world)."""
    t0 = time.perf_counter()
    try:
        from sr1lib.experiments.setup import index_for, toy_model, toy_world
        from sr1lib.toyworld.cache import model_dir

        world = toy_world(profile, seed)
        if not (model_dir(profile, seed) / "pretrain.json").exists():
            say(f"pretraining the toy world's base model ({profile}, seed {seed}); once, then cached ...")
        model = toy_model(profile, seed, progress=True)
        index = index_for(world / "corpus.jsonl", "bm25s")
        say(f"toy world, base model and index ready ({time.perf_counter() - t0:.0f} s): {model}")
        return {"world": str(world), "model": str(model), "index": str(index), "error": None,
                "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as e:  # noqa: BLE001 - the notebooks will say what is missing
        say(f"the toy world ({profile}) could not be prepared: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}", "seconds": round(time.perf_counter() - t0, 1)}


def _headline(folder: Path) -> dict[str, str] | None:
    """What a notebook published for the summary (`headline.md` and `headline.html`), if anything."""
    md, html = folder / "headline.md", folder / "headline.html"
    if not md.exists() and not html.exists():
        return None
    return {"markdown": md.read_text() if md.exists() else "", "html": html.read_text() if html.exists() else ""}


def _commit() -> str | None:
    from sr1lib.runs import git_commit

    return git_commit()


def load_summary(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "summary.json").read_text())
