"""Notebook 00's job: the world, the base model, a few rollouts, one trajectory to look at."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any, Sequence

from sr1lib.experiments.setup import load_questions, resolve_setup


def trajectory_rows(trajectories: list[Any]) -> Any:
    """One row per trajectory: question, gold, answer, correct, reward, searches, queries, tokens."""
    import pandas as pd

    from sr1lib.rewards import exact_match

    return pd.DataFrame([{
        "question": t.record.question, "gold": " | ".join(t.record.golden_answers), "answer": t.answer,
        "correct": bool(exact_match(t.answer, t.record.golden_answers)), "reward": t.reward,
        "searches": t.n_searches, "valid_searches": t.n_valid_searches, "queries": " | ".join(t.queries),
        "model_tokens": t.n_model_tokens, "response_tokens": t.n_response_tokens, "end": t.extra.get("end", ""),
    } for t in trajectories])


def world_summary(world: Any) -> dict[str, Any]:
    """Counts from the toy world's manifest (entities, facts, passages, questions per split/hop)."""
    if world is None:
        return {}
    manifest = json.loads((world / "world.json").read_text())
    return {"seed": manifest["seed"], "config_hash": manifest["config_hash"], **manifest["counts"]}


def quickstart(profile: str = "quick", seed: int = 0, *, n_questions: int = 4, group_size: int = 2,
               split: str = "validation", overrides: Sequence[str] = (), model: str = "", data: str = "",
               index: str = "", progress: bool = True, artifacts: str = "") -> dict[str, Any]:
    """Build or load the world and base model, roll out `n_questions` x `group_size` trajectories.

    Returns {setup, world (counts), trajectories, table (one row per trajectory), metrics (batch
    means, `sr1lib.rollout.batch_metrics`), timings, seconds (setup, rollout)}.
    """
    from sr1lib.experiments.profiles import run_config
    from sr1lib.generators import make_generator
    from sr1lib.retrieval import open_retriever
    from sr1lib.rollout import rollout

    t0 = time.perf_counter()
    run = run_config(profile, overrides)
    setup = resolve_setup(profile, seed, model=model, data=data, index=index, progress=progress)
    path = {"train": setup.train, "validation": setup.validation, "test": setup.test}.get(split)
    if path is None:
        from sr1lib.errors import Sr1Error

        raise Sr1Error(f"split={split!r}: valid splits are ['train', 'validation', 'test']")
    records = load_questions(path, limit=n_questions, split=split)
    generator = make_generator("hf", model_path=setup.model, device=run.train.device)
    t1 = time.perf_counter()
    cfg = replace(run.rollout, group_size=group_size)
    with open_retriever(setup.index) as retriever:
        result = rollout(records, generator, retriever, cfg, topk=run.retrieval.topk, group_size=group_size, seed=seed,
                         progress=progress)
    out = {"setup": setup.to_json(), "world": world_summary(setup.world), "trajectories": result.trajectories,
           "table": trajectory_rows(result.trajectories), "metrics": result.metrics, "timings": result.timings,
           "seconds": {"setup": round(t1 - t0, 2), "rollout": round(time.perf_counter() - t1, 2)}}
    from sr1lib.experiments.artifacts import publish

    m = result.metrics
    publish(artifacts, {k: v for k, v in out.items() if k != "trajectories"},
            f"{len(result.trajectories)} trajectories of the untrained base model: mean reward "
            f"{m['reward_mean']:.3f}, {m['searches_mean']:.2f} searches and {m['response_tokens_mean']:.0f} "
            "response tokens per trajectory.\n")
    return out


def pick_example(trajectories: list[Any]) -> Any:
    """The trajectory most worth showing first: a correct one with a search, else one with a search,
    else the first."""
    from sr1lib.rewards import exact_match

    def score(t: Any) -> tuple[int, int]:
        return (int(exact_match(t.answer, t.record.golden_answers) > 0), int(t.n_valid_searches > 0))

    return max(trajectories, key=score) if trajectories else None
