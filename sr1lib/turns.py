"""One trajectory's turn rules: the state machine that every rollout driver steps.

`sr1lib.rollout` drives many episodes in lockstep (one batched generate call and one batched
retriever call per turn); `sr1lib.engines.verl` drives one episode per asyncio task over verl's
server manager. A driver only

1. checks `episode.before_turn()` (False: the episode is over) and asks `episode.context(rules)`
   for the generator's input, with at most `episode.room` new tokens of budget left;
2. hands the sampled `Generation` to `episode.on_sample(rules, g, search_budget)`, which returns
   the query to retrieve, or None;
3. hands that query's hits (None on failure, with the error text) to `episode.on_hits(...)`.

Every decision of the rules (cuts, feedback, search budget, end reasons, counters) is made here,
so the batched and the per-sample loops cannot drift apart; the rules themselves are listed in
`sr1lib.rollout`'s docstring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sr1lib import protocol
from sr1lib.config import RolloutConfig
from sr1lib.errors import Sr1Error
from sr1lib.generators import Generation
from sr1lib.retrieval.bounded import bounded_search
from sr1lib.rewards import extract_answer
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


def encode(tokenizer: Any, text: str) -> tuple[int, ...]:
    return tuple(tokenizer.encode(text, add_special_tokens=False))


def search_budget(cfg: RolloutConfig, prompt_mode: str) -> int:
    """Searches allowed per trajectory: `no_search` and `rag` prompts get none."""
    return cfg.max_turns if prompt_mode == "search" else 0


def turn_seed(seed: int | None, step: int, turn: int) -> int | None:
    """The sampling seed of one turn of one step (None: unseeded)."""
    return None if seed is None else seed * 1_000_003 + step * 1009 + turn


def retrieve(retriever: Any, queries: list[str], topk: int, timeout_s: float | None,
             on_error: str) -> tuple[list[list[Any]] | None, str, float]:
    """(hits per query or None on failure, error message, seconds): one retriever call."""
    t0 = time.perf_counter()
    try:
        hits, err = bounded_search(retriever, queries, topk, timeout_s), ""
    except Exception as e:  # noqa: BLE001 - every backend failure is reported the same way
        if on_error == "raise":
            raise Sr1Error(f"retriever failed on {len(queries)} queries ({type(e).__name__}: {e}); "
                           "set rollout.on_retriever_error=observe to continue with an error "
                           "observation instead") from e
        hits, err = None, f"{type(e).__name__}: {e}".strip()
    return hits, err, time.perf_counter() - t0


class TurnRules:
    """What the rules need besides one episode: the config and the protocol's token ids, encoded once."""

    def __init__(self, tokenizer: Any, cfg: RolloutConfig) -> None:
        self.tok, self.cfg = tokenizer, cfg
        self.obs_open, self.obs_close = encode(tokenizer, OBS_OPEN), encode(tokenizer, OBS_CLOSE)
        self.elision = encode(tokenizer, CONTEXT_ELISION)
        self.feedback = {t: encode(tokenizer, t) for t in (protocol.INVALID_ACTION_FEEDBACK,
                                                           protocol.SEARCH_BUDGET_FEEDBACK)}

    def prompt(self, record: QARecord, prompt_mode: str = "search", passages: Sequence[Any] = ()) -> Segment:
        """The prompt segment of `record`, tokenised once; fails when it leaves no context room."""
        text = protocol.build_prompt(record.question, self.tok, mode=prompt_mode, passages=passages)
        # A chat template already holds any BOS; plain text gets the tokenizer's special tokens.
        templated = bool(getattr(self.tok, "chat_template", None))
        ids = tuple(self.tok.encode(text, add_special_tokens=not templated))
        if len(ids) + len(self.elision) >= self.cfg.max_prompt_tokens:
            raise Sr1Error(f"record {record.id!r}: the prompt is {len(ids)} tokens, which leaves no room in "
                           f"rollout.max_prompt_tokens={self.cfg.max_prompt_tokens}; raise it or shorten the question")
        return Segment(PROMPT, ids, text)

    def start(self, record: QARecord, uid: str, group_id: str, prompt: Segment, retrieval_s: float = 0.0,
              retriever_errors: int = 0) -> Episode:
        ep = Episode(record=record, uid=uid, group_id=group_id, segments=[], ids=[],
                     prompt_len=len(prompt.token_ids), retrieval_s=retrieval_s)
        ep.append(prompt)
        ep.counts["retriever_errors"] += retriever_errors
        return ep

    def observation(self, body: str, budget: int) -> Segment | None:
        """OBS_OPEN + body + OBS_CLOSE in at most `budget` tokens, cut inside the tags (None if even
        the tags do not fit)."""
        room = budget - len(self.obs_open) - len(self.obs_close)
        if room < 0:
            return None
        body_ids = encode(self.tok, body)
        if len(body_ids) > room:
            body_ids = body_ids[:room]
            body = self.tok.decode(list(body_ids), skip_special_tokens=False)
        return Segment(RETRIEVED, self.obs_open + body_ids + self.obs_close, OBS_OPEN + body + OBS_CLOSE)


@dataclass
class Episode:
    """A trajectory while it is being rolled out (mutable); `freeze` turns it into a Trajectory."""

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

    def room(self, cfg: RolloutConfig) -> int:
        """Response tokens still allowed (model + observations + feedback)."""
        return cfg.max_response_tokens - self.n_response

    def before_turn(self, cfg: RolloutConfig) -> bool:
        """Whether another turn runs: a spent response budget ends the episode here."""
        if not self.done and self.room(cfg) <= 0:
            self.stop("response_budget", truncated=True)
        return not self.done

    def context(self, rules: TurnRules) -> list[int]:
        """The generator's input: the whole context, or prompt + elision + the newest segments."""
        budget = rules.cfg.max_prompt_tokens
        if len(self.ids) <= budget:
            return self.ids
        self.counts["context_truncations"] += 1
        room = budget - self.prompt_len - len(rules.elision)
        kept: list[tuple[int, ...]] = []
        for seg in reversed(self.segments[1:]):
            if len(seg.token_ids) <= room:
                kept.append(seg.token_ids)
                room -= len(seg.token_ids)
            else:
                if not kept and room > 0:  # the newest segment alone is too long: keep its tail
                    kept.append(seg.token_ids[-room:])
                break
        out = list(self.ids[: self.prompt_len]) + list(rules.elision)
        for ids in reversed(kept):
            out.extend(ids)
        return out

    def on_sample(self, rules: TurnRules, g: Generation, search_budget: int) -> str | None:
        """Append one sampled turn and apply the rules; returns the query to retrieve, or None."""
        self.n_turns += 1
        was_final = self.final
        room = self.room(rules.cfg)
        ids, lps, text = g.token_ids, g.logprobs, g.text
        if len(ids) > room:  # the response budget ends inside this sample: keep what fits
            ids, lps = ids[:room], (None if lps is None else lps[:room])
            text = rules.tok.decode(list(ids), skip_special_tokens=False)
        if ids:
            self.append(Segment(MODEL, tuple(ids), text, None if lps is None else tuple(lps)))
        if len(ids) < len(g.token_ids):
            self.stop("response_budget", truncated=True)
            return None
        kind, content = protocol.parse_action(text)
        if kind == protocol.ANSWER:
            self.finished = True
            self.stop("answer")
        elif was_final:
            self.n_invalid += kind != protocol.SEARCH or not content
            self.stop("final_turn")
        elif g.finish == "eos":
            self.stop("eos")
        elif kind == protocol.SEARCH and content:
            if self.n_searches < search_budget:
                self.n_searches += 1
                query = content[:MAX_QUERY_CHARS]
                self.queries.append(query)
                return query
            self.counts["blocked_searches"] += 1
            self.final = True
            self._feedback(rules, protocol.SEARCH_BUDGET_FEEDBACK)
        else:
            self.n_invalid += 1
            self._feedback(rules, protocol.INVALID_ACTION_FEEDBACK)
        return None

    def on_hits(self, rules: TurnRules, hits: Sequence[Any] | None, err: str, retrieval_s: float) -> None:
        """Append the observation of this episode's query: its hits, or the error when hits is None."""
        self.retrieval_s += retrieval_s
        if hits is None:
            self.counts["retriever_errors"] += 1
            body = protocol.format_error_observation(err)[len(OBS_OPEN):-len(OBS_CLOSE)]
        else:
            self.n_valid += 1
            body = protocol.format_passages(hits).strip()
        seg = rules.observation(body, min(rules.cfg.max_obs_tokens, self.room(rules.cfg)))
        if seg is None:
            self.stop("response_budget", truncated=True)
            return
        self.append(seg)
        if self.room(rules.cfg) <= 0:
            self.stop("response_budget", truncated=True)

    def _feedback(self, rules: TurnRules, text: str) -> None:
        ids = rules.feedback[text]
        if len(ids) > self.room(rules.cfg):
            self.stop("response_budget", truncated=True)
            return
        self.append(Segment(FEEDBACK, ids, text))

    def freeze(self, reward_fn: RewardFn, prompt_mode: str) -> Trajectory:
        response = "".join(seg.text for seg in self.segments if seg.source != PROMPT)
        return Trajectory(
            uid=self.uid, group_id=self.group_id, record=self.record, segments=tuple(self.segments),
            reward=float(reward_fn(response, self.record.golden_answers)), answer=extract_answer(response),
            n_searches=self.n_searches, n_valid_searches=self.n_valid, n_invalid=self.n_invalid,
            n_turns=self.n_turns, finished=self.finished, truncated=self.truncated,
            retrieval_s=self.retrieval_s, queries=tuple(self.queries),
            extra={**self.counts, "end": self.end, "prompt_mode": prompt_mode},
        )
