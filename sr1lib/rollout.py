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
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sr1lib import protocol
from sr1lib.config import RolloutConfig
from sr1lib.errors import Sr1Error
from sr1lib.generators import Generator, SamplingParams
from sr1lib.retrieval.bounded import bounded_search
from sr1lib.rewards import extract_answer, get_reward_fn
from sr1lib.types import FEEDBACK, MODEL, PROMPT, RETRIEVED, QARecord, Segment, Trajectory

RewardFn = Callable[[str, Sequence[str]], float]

# protocol.format_observation(hits) == OBS_OPEN + passages + OBS_CLOSE (a test holds them together);
# the three parts are tokenised separately so a long observation is cut inside the tags.
OBS_OPEN, OBS_CLOSE = "\n\n<information>", "</information>\n\n"
# Stands in the generator's input for response segments dropped to fit max_prompt_tokens.
CONTEXT_ELISION = "\n[... earlier turns omitted ...]\n"
# Queries longer than this are cut before they reach the retriever (a runaway sample can emit
# thousands of tokens; HTTP servers and dense encoders should not receive them).
MAX_QUERY_CHARS = 2000
PROMPT_MODES = ("search", "no_search", "rag")


@dataclass(frozen=True)
class RolloutResult:
    trajectories: list[Trajectory]
    metrics: dict[str, float]
    timings: dict[str, float]  # generate_s, retrieve_s, other_s, total_s, retriever_calls, turns


@dataclass
class _State:
    """A trajectory while it is being rolled out (mutable); frozen into a Trajectory at the end."""

    record: QARecord
    uid: str
    group_id: str
    segments: list[Segment]
    ids: list[int]  # every token so far, in order (the untruncated context)
    prompt_len: int
    n_response: int = 0
    n_searches: int = 0
    n_valid: int = 0
    n_invalid: int = 0
    n_turns: int = 0
    finished: bool = False
    truncated: bool = False
    final: bool = False  # the search budget is spent and the model was told: this turn is the last
    done: bool = False
    end: str = ""
    retrieval_s: float = 0.0
    queries: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"retriever_errors": 0, "blocked_searches": 0,
                                                            "context_truncations": 0})

    def append(self, seg: Segment) -> None:
        self.segments.append(seg)
        self.ids.extend(seg.token_ids)
        if seg.source != PROMPT:
            self.n_response += len(seg.token_ids)

    def stop(self, end: str, *, truncated: bool = False) -> None:
        self.done, self.end = True, end
        self.truncated = self.truncated or truncated


class _Timer:
    def __init__(self) -> None:
        self.generate_s = self.retrieve_s = 0.0
        self.calls = self.turns = 0


def _encode(tokenizer: Any, text: str) -> tuple[int, ...]:
    return tuple(tokenizer.encode(text, add_special_tokens=False))


class _Loop:
    """One rollout call's shared state: tokenizer, config, cached protocol token ids, timers."""

    def __init__(self, generator: Generator, retriever: Any, cfg: RolloutConfig, topk: int,
                 retriever_timeout_s: float | None) -> None:
        self.gen, self.retriever, self.cfg, self.topk = generator, retriever, cfg, topk
        self.timeout_s = retriever_timeout_s
        tok = self.tok = generator.tokenizer
        self.obs_open, self.obs_close = _encode(tok, OBS_OPEN), _encode(tok, OBS_CLOSE)
        self.elision = _encode(tok, CONTEXT_ELISION)
        self.feedback = {t: _encode(tok, t) for t in (protocol.INVALID_ACTION_FEEDBACK,
                                                      protocol.SEARCH_BUDGET_FEEDBACK)}
        self.timer = _Timer()

    # ------------------------------------------------------------------ retrieval

    def retrieve(self, queries: list[str]) -> tuple[list[list[Any]] | None, str, float]:
        """(hits per query or None on failure, error message, seconds): one retriever call."""
        t0 = time.perf_counter()
        try:
            hits, err = bounded_search(self.retriever, queries, self.topk, self.timeout_s), ""
        except Exception as e:  # noqa: BLE001 - every backend failure is reported the same way
            if self.cfg.on_retriever_error == "raise":
                raise Sr1Error(f"retriever failed on {len(queries)} queries ({type(e).__name__}: {e}); "
                               "set rollout.on_retriever_error=observe to continue with an error "
                               "observation instead") from e
            hits, err = None, f"{type(e).__name__}: {e}".strip()
        dt = time.perf_counter() - t0
        self.timer.retrieve_s += dt
        self.timer.calls += 1
        return hits, err, dt

    def observation(self, body: str, budget: int) -> Segment | None:
        """OBS_OPEN + body + OBS_CLOSE in at most `budget` tokens, cut inside the tags (None if even
        the tags do not fit)."""
        room = budget - len(self.obs_open) - len(self.obs_close)
        if room < 0:
            return None
        body_ids = _encode(self.tok, body)
        if len(body_ids) > room:
            body_ids = body_ids[:room]
            body = self.tok.decode(list(body_ids), skip_special_tokens=False)
        return Segment(RETRIEVED, self.obs_open + body_ids + self.obs_close, OBS_OPEN + body + OBS_CLOSE)

    # ------------------------------------------------------------------ context

    def context(self, s: _State) -> list[int]:
        """The generator's input: the whole context, or prompt + elision + the newest segments."""
        budget = self.cfg.max_prompt_tokens
        if len(s.ids) <= budget:
            return s.ids
        s.counts["context_truncations"] += 1
        room = budget - s.prompt_len - len(self.elision)
        kept: list[tuple[int, ...]] = []
        for seg in reversed(s.segments[1:]):
            if len(seg.token_ids) <= room:
                kept.append(seg.token_ids)
                room -= len(seg.token_ids)
            else:
                if not kept and room > 0:  # the newest segment alone is too long: keep its tail
                    kept.append(seg.token_ids[-room:])
                break
        out = list(s.ids[: s.prompt_len]) + list(self.elision)
        for ids in reversed(kept):
            out.extend(ids)
        return out

    # ------------------------------------------------------------------ one turn

    def turn(self, active: list[_State], params: SamplingParams, search_budget: int) -> None:
        t0 = time.perf_counter()
        gens = self.gen.generate([self.context(s) for s in active], params)
        self.timer.generate_s += time.perf_counter() - t0
        self.timer.turns += 1
        if len(gens) != len(active):
            raise Sr1Error(f"generator {self.gen.name!r} returned {len(gens)} generations for "
                           f"{len(active)} prompts")
        searches: list[tuple[_State, str]] = []
        for s, g in zip(active, gens):
            s.n_turns += 1
            was_final = s.final
            room = self.cfg.max_response_tokens - s.n_response
            ids, lps, text = g.token_ids, g.logprobs, g.text
            if len(ids) > room:  # the response budget ends inside this sample: keep what fits
                ids, lps = ids[:room], (None if lps is None else lps[:room])
                text = self.tok.decode(list(ids), skip_special_tokens=False)
            if ids:
                s.append(Segment(MODEL, tuple(ids), text, None if lps is None else tuple(lps)))
            if len(ids) < len(g.token_ids):
                s.stop("response_budget", truncated=True)
                continue
            kind, content = protocol.parse_action(text)
            if kind == protocol.ANSWER:
                s.finished = True
                s.stop("answer")
            elif was_final:
                s.n_invalid += kind != protocol.SEARCH or not content
                s.stop("final_turn")
            elif g.finish == "eos":
                s.stop("eos")
            elif kind == protocol.SEARCH and content:
                if s.n_searches < search_budget:
                    s.n_searches += 1
                    query = content[:MAX_QUERY_CHARS]
                    s.queries.append(query)
                    searches.append((s, query))
                else:
                    s.counts["blocked_searches"] += 1
                    s.final = True
                    self.feedback_segment(s, protocol.SEARCH_BUDGET_FEEDBACK)
            else:
                s.n_invalid += 1
                self.feedback_segment(s, protocol.INVALID_ACTION_FEEDBACK)
        if searches:
            self.observe(searches)

    def feedback_segment(self, s: _State, text: str) -> None:
        ids = self.feedback[text]
        if s.n_response + len(ids) > self.cfg.max_response_tokens:
            s.stop("response_budget", truncated=True)
            return
        s.append(Segment(FEEDBACK, ids, text))

    def observe(self, searches: list[tuple[_State, str]]) -> None:
        """All of this turn's searches in one retriever call; one observation per trajectory."""
        hits, err, dt = self.retrieve([q for _, q in searches])
        for i, (s, _) in enumerate(searches):
            s.retrieval_s += dt / len(searches)  # shares of the batch call sum to its wall time
            if hits is None:
                s.counts["retriever_errors"] += 1
                body = protocol.format_error_observation(err)[len(OBS_OPEN):-len(OBS_CLOSE)]
            else:
                s.n_valid += 1
                body = protocol.format_passages(hits[i]).strip()
            room = self.cfg.max_response_tokens - s.n_response
            seg = self.observation(body, min(self.cfg.max_obs_tokens, room))
            if seg is None:
                s.stop("response_budget", truncated=True)
                continue
            s.append(seg)
            if s.n_response >= self.cfg.max_response_tokens:
                s.stop("response_budget", truncated=True)


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
    states = _initial_states(loop, records, group_size, step, prompt_mode)

    search_budget = cfg.max_turns if prompt_mode == "search" else 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(states), desc=f"rollout step {step}", unit="traj")
    turn = 0
    while True:
        for s in states:
            if not s.done and s.n_response >= cfg.max_response_tokens:
                s.stop("response_budget", truncated=True)
        active = [s for s in states if not s.done]
        if bar is not None:
            bar.n = len(states) - len(active)
            bar.refresh()
        if not active:
            break
        room = max(cfg.max_response_tokens - s.n_response for s in active)
        params = SamplingParams(max_new_tokens=min(cfg.max_new_tokens, room), temperature=cfg.temperature,
                                top_p=cfg.top_p, greedy=cfg.greedy, stop_strings=protocol.STOP_STRINGS,
                                seed=None if seed is None else seed * 1_000_003 + step * 1009 + turn)
        loop.turn(active, params, search_budget)
        turn += 1
    if bar is not None:
        bar.close()

    trajectories = [_freeze(s, reward_fn, prompt_mode) for s in states]
    timings = _timings(loop.timer, time.perf_counter() - t_start)
    return RolloutResult(trajectories, batch_metrics(trajectories, timings), timings)


def _initial_states(loop: _Loop, records: Sequence[QARecord], group_size: int, step: int,
                    prompt_mode: str) -> list[_State]:
    """Tokenise each prompt once (for `rag`, after one retriever call for every question)."""
    tok, cfg = loop.tok, loop.cfg
    passages: list[Any] = [()] * len(records)
    rag_s = [0.0] * len(records)
    rag_errors = 0
    if prompt_mode == "rag" and records:
        hits, err, dt = loop.retrieve([protocol.normalize_question(r.question) for r in records])
        passages = hits if hits is not None else passages
        rag_errors = int(hits is None)
        rag_s = [dt / len(records)] * len(records)
    templated = bool(getattr(tok, "chat_template", None))
    states = []
    for r, hits, r_s in zip(records, passages, rag_s):
        text = protocol.build_prompt(r.question, tok, mode=prompt_mode, passages=hits)
        # A chat template already holds any BOS; plain text gets the tokenizer's special tokens.
        ids = tuple(tok.encode(text, add_special_tokens=not templated))
        if len(ids) + len(loop.elision) >= cfg.max_prompt_tokens:
            raise Sr1Error(f"record {r.id!r}: the prompt is {len(ids)} tokens, which leaves no room in "
                           f"rollout.max_prompt_tokens={cfg.max_prompt_tokens}; raise it or shorten the question")
        for g in range(group_size):
            s = _State(record=r, uid=f"{step}:{r.id}:{g}", group_id=f"{step}:{r.id}", segments=[],
                       ids=[], prompt_len=len(ids), retrieval_s=r_s / group_size)
            s.append(Segment(PROMPT, ids, text))
            s.counts["retriever_errors"] += rag_errors
            states.append(s)
    return states


def _freeze(s: _State, reward_fn: RewardFn, prompt_mode: str) -> Trajectory:
    response = "".join(seg.text for seg in s.segments if seg.source != PROMPT)
    return Trajectory(
        uid=s.uid, group_id=s.group_id, record=s.record, segments=tuple(s.segments),
        reward=float(reward_fn(response, s.record.golden_answers)), answer=extract_answer(response),
        n_searches=s.n_searches, n_valid_searches=s.n_valid, n_invalid=s.n_invalid, n_turns=s.n_turns,
        finished=s.finished, truncated=s.truncated, retrieval_s=s.retrieval_s, queries=tuple(s.queries),
        extra={**s.counts, "end": s.end, "prompt_mode": prompt_mode},
    )


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
