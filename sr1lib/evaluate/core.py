"""`evaluate`: datasets x methods with one model and one retriever, into a report with provenance.

The loop, per dataset and method: skip the questions the predictions file already holds (resume),
run the rest in batches of `batch_size` questions through the method's loop (greedy), score each
trajectory's extracted answer, and append one line per question to the predictions file as each
batch finishes. The report is then computed from the predictions of the questions asked for, so a
resumed evaluation gives the same report as one run in one go.

Datasets with a corpus of their own (`hotpotqa-100`, `toy`) get an index built once into
`$SR1_CACHE/indexes/` (`.sr1-cache` by default) when no retriever is given (`index_backend`, bm25s by default; pyserini for the
paper's BM25 via Lucene). A given retriever serves every dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from sr1lib.config import RetrievalConfig, RolloutConfig, TrainConfig
from sr1lib.errors import Sr1Error
from sr1lib.evaluate.datasets import EvalDataset, cache_root, resolve_dataset
from sr1lib.evaluate.methods import METHODS, get_method
from sr1lib.evaluate.modelspec import make_model
from sr1lib.evaluate.provenance import identity, provenance
from sr1lib.evaluate.scoring import aggregate, averages, score
from sr1lib.evaluate.store import PredictionStore, sidecar_path
from sr1lib.types import Trajectory


def prediction_row(dataset: str, method: str, t: Trajectory) -> dict[str, Any]:
    """One line of the predictions file: the question, what was answered, its scores and costs."""
    from sr1lib.rewards import extract_answer

    prediction = extract_answer(t.response_text)
    return {"dataset": dataset, "method": method, "id": t.record.id, "question": t.record.question,
            "golden_answers": list(t.record.golden_answers), "prediction": prediction,
            **score(prediction, t.record.golden_answers), "n_searches": t.n_searches,
            "queries": list(t.queries), "response_tokens": t.n_response_tokens,
            "model_tokens": t.n_model_tokens, "finished": prediction is not None,
            "truncated": t.truncated, "response": t.response_text}


def index_for(corpus: Path, backend: str, progress: bool) -> Path:
    """An index of `corpus` built once into the cache (the corpus file name carries its hash)."""
    from sr1lib.retrieval import build_index
    from sr1lib.retrieval.manifest import is_current

    # Keyed by the corpus's own hash: corpus files of the same name never share an index.
    from sr1lib.fsutil import sha256_file

    out = (cache_root() / "indexes" / f"{corpus.stem}-{sha256_file(corpus)[:12]}-{backend}").resolve()
    if not is_current(out):  # missing, or built by an sr1 that stored passages differently
        build_index(corpus, out, backend, progress=progress, overwrite=True)
    return out


def _open_retrievers(retriever: Any, sets: list[EvalDataset], needed: bool, backend: str,
                     progress: bool) -> tuple[dict[str, Any], list[Any]]:
    """dataset -> retriever (None where no method needs one), and the ones to close afterwards."""
    from sr1lib.retrieval import Retriever, open_retriever

    if not needed:
        return {d.name: None for d in sets}, []
    if isinstance(retriever, Retriever):
        return {d.name: retriever for d in sets}, []
    if retriever is not None:
        r = open_retriever(str(retriever))
        return {d.name: r for d in sets}, [r]
    missing = [d.name for d in sets if d.corpus is None]
    if missing:
        raise Sr1Error(f"datasets {missing} have no corpus of their own: give a retriever (an index folder "
                       "from `sr1 index build` or a retrieval server URL) with --retriever")
    opened: dict[Path, Any] = {}
    chosen = {}
    for d in sets:
        assert d.corpus is not None
        corpus = d.corpus()
        if corpus not in opened:
            opened[corpus] = open_retriever(index_for(corpus, backend, progress))
        chosen[d.name] = opened[corpus]
    return chosen, list(opened.values())


# The rollout settings' defaults are the run config's, so an evaluation and a training run agree
_R, _K, _T = RolloutConfig(), RetrievalConfig(), TrainConfig()


def evaluate(model: Any, retriever: Any = None, datasets: Sequence[str] = ("hotpotqa-100",),
             methods: Sequence[str] = ("search-r1",), *, topk: int = _K.topk, max_turns: int = _R.max_turns,
             limit: int | None = None, out: str | Path | None = None, batch_size: int = 32,
             progress: bool = True, resume: bool = True, max_new_tokens: int = _R.max_new_tokens,
             max_response_tokens: int = _R.max_response_tokens, max_obs_tokens: int = _R.max_obs_tokens,
             max_prompt_tokens: int = _R.max_prompt_tokens, tokenizer: str | Path | None = None,
             device: str = _T.device, index_backend: str = "bm25s",
             data_root: str | Path = "data/downloads") -> dict[str, Any]:
    """Evaluate `model` on `datasets` x `methods`; returns (and writes to `out`) the report.

    model: a model folder, `oracle-gold` / `oracle-empty` / `oracle-copy`, `openai:URL#MODEL`, or a
    Generator. retriever: an index folder, a server URL, a Retriever, or None (datasets with their
    own corpus are indexed with `index_backend`). datasets: names (see `datasets.valid_names`) or
    data files. methods: names in `METHODS`. limit: the first N questions of each dataset.
    out: the report's JSON path; predictions go beside it (`RUN.predictions.jsonl`) and a rerun
    resumes from them unless `resume=False`.

    The report: `results` dataset -> method -> {em, cover_em, f1, n, mean_searches,
    mean_response_tokens, mean_model_tokens, answered}, `averages` method -> macro means over
    datasets, `provenance`, and `timings` dataset -> method -> {questions, seconds} of this call.
    """
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise Sr1Error(f"no method given; valid methods are {list(METHODS)}")
    chosen = [get_method(m) for m in methods]
    if not datasets:
        raise Sr1Error("no dataset given")
    if topk < 1:
        raise Sr1Error(f"topk must be >= 1, got {topk}")
    if batch_size < 1:
        raise Sr1Error(f"batch_size must be >= 1, got {batch_size}")
    cfg = RolloutConfig(max_turns=max_turns, max_new_tokens=max_new_tokens, greedy=True, group_size=1,
                        max_response_tokens=max_response_tokens, max_obs_tokens=max_obs_tokens,
                        max_prompt_tokens=max_prompt_tokens)
    sets = [resolve_dataset(d, limit=limit, data_root=data_root) for d in dict.fromkeys(datasets)]
    names = [d.name for d in sets]
    if len(set(names)) != len(names):
        raise Sr1Error(f"two datasets resolve to the same name in {names}; rename one of the files")

    retrievers, to_close = _open_retrievers(retriever, sets, any(m.needs_retriever for m in chosen),
                                            index_backend, progress)
    generator = None
    try:
        generator, model_info = make_model(model, tokenizer=tokenizer, device=device, batch_size=batch_size)
        store = PredictionStore(sidecar_path(out) if out else None,
                                identity(model_info, retrievers, cfg, topk), resume=resume)
        timings: dict[str, dict[str, Any]] = {}
        for d in sets:
            timings[d.name] = _run_dataset(d, chosen, generator, retrievers[d.name], cfg, topk, batch_size,
                                           store, progress)
        report = build_report(sets, methods, store)
        report["timings"] = timings
        report["provenance"] = provenance(
            model_info, retrievers, {d.name: {"source": d.source, "n": len(d.records), "limit": limit}
                                     for d in sets}, cfg, topk, methods)
        report["provenance"]["predictions"] = str(store.path.resolve()) if store.path else None
        report["provenance"]["resumed_rows"] = store.resumed
    finally:
        for r in to_close:
            r.close()
        # Close what this call created; a Generator passed in stays the caller's to close.
        if generator is not None and generator is not model and callable(getattr(generator, "close", None)):
            generator.close()
    if out:
        from sr1lib.fsutil import write_json_atomic

        write_json_atomic(out, report)
    return report


def _run_dataset(d: EvalDataset, chosen: list[Any], generator: Any, retriever: Any, cfg: RolloutConfig,
                 topk: int, batch_size: int, store: PredictionStore, progress: bool) -> dict[str, Any]:
    """Answer the questions of `d` the store lacks; returns method -> {questions, seconds} of this run
    (resumed questions cost nothing and are not counted)."""
    import time

    from tqdm.auto import tqdm

    bind = getattr(generator, "bind_records", None)
    if callable(bind):  # the hook the diagnostic oracles use to learn questions and gold answers
        bind(d.records)
    timings = {}
    for m in chosen:
        done = store.done_ids(d.name, m.name)
        todo = [r for r in d.records if r.id not in done]
        t0 = time.perf_counter()
        with tqdm(total=len(d.records), initial=len(d.records) - len(todo), desc=f"{d.name}/{m.name}",
                  unit="q", disable=not progress) as bar:
            for i in range(0, len(todo), batch_size):
                chunk = todo[i:i + batch_size]
                trajectories = m.run(chunk, generator, retriever, cfg, topk)
                if sorted(t.record.id for t in trajectories) != sorted(r.id for r in chunk):
                    raise AssertionError(f"{m.name}: the loop returned trajectories for other questions "
                                         "than it was given")
                store.add(prediction_row(d.name, m.name, t) for t in trajectories)
                bar.update(len(chunk))
        timings[m.name] = {"questions": len(todo), "seconds": round(time.perf_counter() - t0, 3)}
    return timings


def build_report(sets: Sequence[EvalDataset], methods: Sequence[str], store: PredictionStore) -> dict[str, Any]:
    """`results` and `averages` from the stored predictions of exactly the questions asked for."""
    results: dict[str, dict[str, Any]] = {}
    for d in sets:
        ids = [r.id for r in d.records]
        results[d.name] = {m: aggregate(store.rows(d.name, m, ids)) for m in methods}
    return {"results": results, "averages": averages(results)}
