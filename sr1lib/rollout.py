"""The multi-turn search loop: prompts x group size -> token-exact trajectories with facts and metrics.

Each turn, the still-active trajectories (only those) go to the generator in one call; every
search they emit goes to the retriever in ONE batched call; observations, protocol feedback and
the model's samples are appended as segments. A trajectory's tokens are built by appending:

- the prompt is tokenised once per question;
- a model segment holds exactly the ids the generator sampled, with their log-probs;
- an observation or feedback segment is tokenised once, on its own.

Nothing is ever decoded and re-encoded, so `trajectory.model_token_ids` are the sampled ids and
`sr1lib.masking` builds the loss mask from segment sources (Search-R1 re-tokenises decoded text
and recovers its mask from pad sentinels).

The rules below are one trajectory's state machine, `sr1lib.turns.Episode`; this module drives a
batch of them in lockstep, and `sr1lib.engines.verl` drives the same machine one sample at a time
inside verl's async agent loop.

Turn rules (departures from Search-R1's `generation.py` are marked *):
- an `<answer>` ends the trajectory (`finished`); the reward reads the response only*;
- a `<search>` with a non-empty query is sent to the retriever while the search budget
  (`rollout.max_turns` searches*; Search-R1 counts every turn) lasts; the observation is cut to
  `rollout.max_obs_tokens` inside the tags, so `</information>` is always there*;
- a search after the budget is spent gets `SEARCH_BUDGET_FEEDBACK` and one final turn, whose
  output ends the trajectory whatever it is; `no_search` and `rag` prompts have a budget of 0;
- no complete action, or an empty query, gets `INVALID_ACTION_FEEDBACK` (counted) and another turn;
- EOS without an answer ends the trajectory unfinished* (Search-R1 feeds more text after EOS);
- the response (model + observations + feedback) never exceeds `rollout.max_response_tokens`:
  a sample or an observation that would cross it is cut there and the trajectory ends `truncated`;
- the generator's input is capped at `rollout.max_prompt_tokens`: the prompt segment (with the
  question) is always kept whole and the oldest response segments are replaced by an elision
  line*, in the generator's input only; the trajectory keeps every segment (Search-R1 cuts the
  context from the left, which can drop the question);
- a retriever error or timeout becomes an error observation (counted in
  `extra["retriever_errors"]`) or, with `rollout.on_retriever_error=raise`, an Sr1Error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from sr1lib import protocol
from sr1lib.config import RolloutConfig
from sr1lib.errors import Sr1Error
from sr1lib.generators import Generator, SamplingParams
from sr1lib.rewards import get_reward_fn
from sr1lib.turns import (  # noqa: F401 - the protocol constants are re-exported for callers
    CONTEXT_ELISION, MAX_QUERY_CHARS, OBS_CLOSE, OBS_OPEN, PROMPT_MODES, Episode, RewardFn, TurnRules, retrieve,
    search_budget, turn_seed,
)
from sr1lib.types import QARecord, Trajectory


@dataclass(frozen=True)
class RolloutResult:
    trajectories: list[Trajectory]
    metrics: dict[str, float]
    timings: dict[str, float]  # generate_s, retrieve_s, other_s, total_s, retriever_calls, turns


class _Timer:
    def __init__(self) -> None:
        self.generate_s = self.retrieve_s = 0.0
        self.calls = self.turns = 0


class _Loop:
    """One rollout call's shared state: the turn rules, the retriever, timers. It steps every active
    episode of the batch through one turn at a time (the rules themselves live in `sr1lib.turns`)."""

    def __init__(self, generator: Generator, retriever: Any, cfg: RolloutConfig, topk: int,
                 retriever_timeout_s: float | None) -> None:
        self.gen, self.retriever, self.cfg, self.topk = generator, retriever, cfg, topk
        self.timeout_s = retriever_timeout_s
        self.rules = TurnRules(generator.tokenizer, cfg)
        self.timer = _Timer()

    def retrieve(self, queries: list[str]) -> tuple[list[list[Any]] | None, str, float]:
        hits, err, dt = retrieve(self.retriever, queries, self.topk, self.timeout_s, self.cfg.on_retriever_error)
        self.timer.retrieve_s += dt
        self.timer.calls += 1
        return hits, err, dt

    def turn(self, active: list[Episode], params: SamplingParams, budget: int) -> None:
        """One generate call for every active episode, then ONE retriever call for all their searches."""
        t0 = time.perf_counter()
        gens = self.gen.generate([ep.context(self.rules) for ep in active], params)
        self.timer.generate_s += time.perf_counter() - t0
        self.timer.turns += 1
        if len(gens) != len(active):
            raise Sr1Error(f"generator {self.gen.name!r} returned {len(gens)} generations for "
                           f"{len(active)} prompts")
        searches = [(ep, q) for ep, g in zip(active, gens) if (q := ep.on_sample(self.rules, g, budget)) is not None]
        if not searches:
            return
        hits, err, dt = self.retrieve([q for _, q in searches])
        for i, (ep, _) in enumerate(searches):
            # shares of the batch call sum to its wall time
            ep.on_hits(self.rules, None if hits is None else hits[i], err, dt / len(searches))


def rollout(records: Sequence[QARecord], generator: Generator, retriever: Any | None, cfg: RolloutConfig, *,
            topk: int = 3, reward_fn: RewardFn = get_reward_fn("em"), group_size: int | None = None,
            step: int = 0, prompt_mode: str = "search", seed: int | None = None, progress: bool = False,
            retriever_timeout_s: float | None = 60.0) -> RolloutResult:
    """Roll out `group_size` trajectories per record (see the module docstring for the rules).

    retriever: any object with `search(queries, k) -> list[list[Hit]]`; may be None only for
    prompt_mode `no_search`. Group ids are `f"{step}:{record.id}"`, unique across datasets and
    steps; trajectory uids add the member index. `seed` fixes the sampling of every turn.
    """
    t_start = time.perf_counter()
    if prompt_mode not in PROMPT_MODES:
        raise Sr1Error(f"rollout: unknown prompt_mode {prompt_mode!r}; valid modes are {list(PROMPT_MODES)}")
    if retriever is None and prompt_mode != "no_search":
        raise Sr1Error(f"rollout: prompt_mode {prompt_mode!r} needs a retriever (only 'no_search' runs without)")
    group_size = cfg.group_size if group_size is None else group_size
    if group_size < 1:
        raise Sr1Error(f"rollout: group_size must be >= 1, got {group_size}")
    seen: set[str] = set()
    for r in records:
        if r.id in seen:
            raise Sr1Error(f"rollout: record id {r.id!r} appears twice in the batch; group ids "
                           f"(step:record.id) must be unique, so de-duplicate the batch")
        seen.add(r.id)
    loop = _Loop(generator, retriever, cfg, topk, retriever_timeout_s)
    episodes = _initial_episodes(loop, records, group_size, step, prompt_mode)

    budget = search_budget(cfg, prompt_mode)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(episodes), desc=f"rollout step {step}", unit="traj")
    turn = 0
    while True:
        active = [ep for ep in episodes if ep.before_turn(cfg)]
        if bar is not None:
            bar.n = len(episodes) - len(active)
            bar.refresh()
        if not active:
            break
        # One call for the whole batch: as many new tokens as the roomiest episode may take (the
        # rules cut each sample at its own episode's budget).
        room = max(ep.room(cfg) for ep in active)
        params = SamplingParams(max_new_tokens=min(cfg.max_new_tokens, room), temperature=cfg.temperature,
                                top_p=cfg.top_p, greedy=cfg.greedy, stop_strings=protocol.STOP_STRINGS,
                                seed=turn_seed(seed, step, turn))
        loop.turn(active, params, budget)
        turn += 1
    if bar is not None:
        bar.close()

    trajectories = [ep.freeze(reward_fn, prompt_mode) for ep in episodes]
    timings = _timings(loop.timer, time.perf_counter() - t_start)
    return RolloutResult(trajectories, batch_metrics(trajectories, timings), timings)


def _initial_episodes(loop: _Loop, records: Sequence[QARecord], group_size: int, step: int,
                      prompt_mode: str) -> list[Episode]:
    """Tokenise each prompt once (for `rag`, after one retriever call for every question)."""
    passages: list[Any] = [()] * len(records)
    rag_s = [0.0] * len(records)
    rag_errors = 0
    if prompt_mode == "rag" and records:
        hits, err, dt = loop.retrieve([protocol.normalize_question(r.question) for r in records])
        passages = hits if hits is not None else passages
        rag_errors = int(hits is None)
        rag_s = [dt / len(records)] * len(records)
    episodes = []
    for r, hits, r_s in zip(records, passages, rag_s):
        prompt = loop.rules.prompt(r, prompt_mode, hits)
        episodes += [loop.rules.start(r, f"{step}:{r.id}:{g}", f"{step}:{r.id}", prompt,
                                      retrieval_s=r_s / group_size, retriever_errors=rag_errors)
                     for g in range(group_size)]
    return episodes


def _timings(timer: _Timer, total: float) -> dict[str, float]:
    return {"generate_s": timer.generate_s, "retrieve_s": timer.retrieve_s,
            "other_s": max(total - timer.generate_s - timer.retrieve_s, 0.0), "total_s": total,
            "retriever_calls": float(timer.calls), "turns": float(timer.turns)}


def batch_metrics(trajectories: Sequence[Trajectory], timings: dict[str, float] | None = None) -> dict[str, float]:
    """Means and ratios over a batch, for logging (keys are stable: plots read them)."""
    n = max(len(trajectories), 1)
    mean = lambda xs: sum(xs) / n  # noqa: E731
    rewards = [t.reward for t in trajectories]
    r_mean = mean(rewards)
    em = get_reward_fn("em")
    searches = sum(t.n_searches for t in trajectories)
    out = {
        "n_trajectories": float(len(trajectories)),
        "reward_mean": r_mean,
        "reward_std": math.sqrt(mean([(r - r_mean) ** 2 for r in rewards])),
        "em": mean([em(t.response_text, t.record.golden_answers) for t in trajectories]),
        "response_model_tokens_mean": mean([t.n_model_tokens for t in trajectories]),
        "response_tokens_mean": mean([t.n_response_tokens for t in trajectories]),
        "searches_mean": mean([t.n_searches for t in trajectories]),
        "valid_search_ratio": sum(t.n_valid_searches for t in trajectories) / searches if searches else 0.0,
        "invalid_mean": mean([t.n_invalid for t in trajectories]),
        "turns_mean": mean([t.n_turns for t in trajectories]),
        "finish_ratio": mean([float(t.finished) for t in trajectories]),
        "truncation_ratio": mean([float(t.truncated) for t in trajectories]),
        "retriever_errors": float(sum(t.extra.get("retriever_errors", 0) for t in trajectories)),
        "retrieval_s_mean": mean([t.retrieval_s for t in trajectories]),
    }
    if timings is not None:
        calls = timings.get("retriever_calls", 0.0)
        out["retrieval_latency_s"] = timings["retrieve_s"] / calls if calls else 0.0
    return out
