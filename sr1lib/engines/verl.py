"""sr1's search environment as a verl 0.9.1 agent loop: `Sr1SearchAgentLoop`, agent name `sr1_search`.

verl calls `await loop.run(sampling_params, **row)` once per sample, concurrently, and trains on
the `AgentLoopOutput` it returns. This loop drives ONE `sr1lib.turns.Episode` (the state machine
`sr1lib.rollout` drives in batches) over `server_manager.generate`:

- the prompt is sr1's (`protocol.build_prompt` on the row's question, tokenised once), not verl's
  chat-templated `raw_prompt`, so the bytes are those a local rollout sees;
- each turn asks the server for at most min(max_new_tokens, response budget left) tokens with
  Search-R1's stop strings, then applies sr1's stopping rule (`finish_generation`) to the ids it
  returns, so a server that stops later or earlier than sr1 would cannot change the rules;
- each search goes to sr1's retriever (an `sr1 serve` URL, or an index folder) in a worker thread;
- `response_mask` is 1 on model tokens (every response token with `mask_retrieved: false`, the
  paper's ablation), `response_logprobs` are the server's for model tokens and 0.0 elsewhere (as
  verl's ToolAgentLoop pads them), `reward_score` is sr1's reward, so verl's reward loop is skipped;
- sr1's trajectory facts go to `extra_fields["reward_extra_info"]`, which verl logs and writes into
  its rollout dumps (`trainer.rollout_data_dir`), where `sr1 import verl` reads them back.

Departure from a batched sr1 rollout: when several trajectories are in flight, the batched loop asks
for as many tokens as the roomiest one may take and cuts each sample at its own budget; here each
request is sized to its own budget. Only a sample that fills the budget exactly without an action
is counted differently (one more `n_invalid`); with one trajectory the two are identical.

verl is imported only when `Sr1SearchAgentLoop` is first looked up (hydra's `_target_` does that).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from sr1lib import config as cfgmod
from sr1lib import protocol
from sr1lib.config import RolloutConfig
from sr1lib.data.searchr1 import searchr1_record
from sr1lib.generators import Generation, SamplingParams, eos_token_ids, finish_generation
from sr1lib.rewards import get_reward_fn
from sr1lib.turns import Episode, TurnRules, retrieve, search_budget
from sr1lib.types import MODEL, Trajectory

AGENT_NAME = "sr1_search"
CLASS_PATH = "sr1lib.engines.verl.Sr1SearchAgentLoop"
# Facts copied from each trajectory into verl's reward_extra_info (scalars: verl stacks them per batch).
FACTS = ("n_searches", "n_valid_searches", "n_invalid", "n_turns", "finished", "truncated")
COUNTS = ("retriever_errors", "blocked_searches", "context_truncations")


@dataclass(frozen=True)
class LoopSettings:
    """What the agent-loop YAML passes to the loop (keys under `sr1:`), all read from an sr1 RunConfig."""

    rollout: RolloutConfig
    retriever: str  # an `sr1 serve` URL or an index folder; env SR1_RETRIEVER overrides it per node
    topk: int = 3
    reward: str = "em"
    mask_retrieved: bool = True
    retriever_timeout_s: float = 30.0

    @classmethod
    def from_mapping(cls, d: dict[str, Any]) -> LoopSettings:
        d = dict(d)
        rollout = cfgmod.from_dict(RolloutConfig, dict(d.pop("rollout", {})), prefix="sr1.rollout")
        return cls(rollout=rollout, **d)

    def to_mapping(self) -> dict[str, Any]:
        return {"rollout": cfgmod.to_dict(self.rollout), "retriever": self.retriever, "topk": self.topk,
                "reward": self.reward, "mask_retrieved": self.mask_retrieved,
                "retriever_timeout_s": self.retriever_timeout_s}


def plain(value: Any) -> Any:
    """numpy arrays and OmegaConf containers (what verl hands over) as plain lists and dicts."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    return value


def record_of(row: dict[str, Any]):
    """The QARecord of a verl dataset row (the columns `sr1 export verl` wrote), via sr1's reader."""
    keep = ("id", "question", "golden_answers", "data_source", "reward_model", "extra_info", "prompt")
    fields = {k: plain(row[k]) for k in keep if row.get(k) is not None}
    if "prompt" not in fields and row.get("raw_prompt") is not None:
        fields["prompt"] = plain(row["raw_prompt"])
    index = int(plain(row.get("index", 0)) or 0)
    return searchr1_record(fields, path="verl row", where=f"index {index}", index=index, data_source=None, split="")


def server_sampling(params: dict[str, Any], max_new: int) -> dict[str, Any]:
    """verl's per-request sampling params plus sr1's turn budget and stop strings (vLLM/SGLang names)."""
    out = dict(params)
    out.update(max_tokens=max_new, stop=list(protocol.STOP_STRINGS), include_stop_str_in_output=True)
    return out


async def run_episode(rules: TurnRules, ep: Episode, budget: int,
                      generate: Callable[[list[int], int], Awaitable[Generation]],
                      search: Callable[[str], Awaitable[tuple[Any, str, float]]]) -> Episode:
    """Step one episode to its end: generate a turn, apply the rules, retrieve when they ask to."""
    while ep.before_turn(rules.cfg):
        max_new = min(rules.cfg.max_new_tokens, ep.room(rules.cfg))
        g = await generate(ep.context(rules), max_new)
        query = ep.on_sample(rules, g, budget)
        if query is not None:
            hits, err, dt = await search(query)
            ep.on_hits(rules, hits, err, dt)
    return ep


def output_fields(traj: Trajectory, *, mask_retrieved: bool, with_logprobs: bool) -> dict[str, Any]:
    """AgentLoopOutput's fields (less metrics) for a finished trajectory."""
    ids: list[int] = []
    mask: list[int] = []
    lps: list[float] = []
    for seg in traj.response_segments:
        is_model = seg.source == MODEL
        ids += seg.token_ids
        mask += [1 if is_model or not mask_retrieved else 0] * len(seg.token_ids)
        lps += list(seg.logprobs) if is_model and seg.logprobs is not None else [0.0] * len(seg.token_ids)
    facts: dict[str, Any] = {k: getattr(traj, k) for k in FACTS}
    facts.update({k: int(traj.extra.get(k, 0)) for k in COUNTS})
    facts.update(end=traj.extra.get("end", ""), answer=traj.answer or "", queries=list(traj.queries),
                 sr1_reward=traj.reward, question=traj.record.question)
    n_env = sum(1 for s in traj.response_segments if s.source != MODEL)
    return dict(prompt_ids=list(traj.prompt_ids), response_ids=ids, response_mask=mask,
                response_logprobs=lps if with_logprobs else None, reward_score=float(traj.reward),
                num_turns=1 + traj.n_turns + n_env,  # verl counts user, assistant and tool messages
                extra_fields={"reward_extra_info": facts})


class Sr1Episode:
    """The verl-independent half of the loop: one row -> one finished Trajectory, over async callables."""

    def __init__(self, settings: LoopSettings, tokenizer: Any, server_manager: Any, retriever: Any,
                 eos_ids: frozenset[int] | None = None, bounded: bool = True) -> None:
        self.s, self.tok, self.server, self.retriever = settings, tokenizer, server_manager, retriever
        # sr1's time limit runs calls on ONE shared thread (see retrieval.bounded): right for a local
        # index, but hundreds of concurrent verl samples would queue there and time out waiting. An
        # http retriever bounds each request itself, so its calls run in parallel worker threads.
        self.timeout_s = settings.retriever_timeout_s if bounded else None
        self.rules = TurnRules(tokenizer, settings.rollout)
        self.eos = eos_ids if eos_ids is not None else eos_token_ids(tokenizer)
        self.reward_fn = get_reward_fn(settings.reward)
        self.generate_s = self.retrieve_s = 0.0
        self.with_logprobs = True

    async def run(self, sampling_params: dict[str, Any], row: dict[str, Any]) -> Trajectory:
        self.generate_s = self.retrieve_s = 0.0  # this run's timings (verl builds one loop per sample)
        self.with_logprobs = True
        record = record_of(row)
        request_id = uuid.uuid4().hex  # one id for every turn: sticky routing, prefix-cache reuse
        ep = self.rules.start(record, request_id, str(plain(row.get("uid", record.id))),
                              self.rules.prompt(record, "search"))

        async def generate(prompt_ids: list[int], max_new: int) -> Generation:
            t0 = time.perf_counter()
            out = await self.server.generate(request_id=request_id, prompt_ids=list(prompt_ids),
                                             sampling_params=server_sampling(sampling_params, max_new))
            self.generate_s += time.perf_counter() - t0
            if out.token_ids and not out.log_probs:  # a server without log-probs: report none at all
                self.with_logprobs = False
            params = SamplingParams(max_new_tokens=max_new, stop_strings=protocol.STOP_STRINGS)
            return finish_generation(out.token_ids, out.log_probs or None, self.tok, params, self.eos)

        async def search(query: str) -> tuple[Any, str, float]:
            hits, err, dt = await asyncio.to_thread(retrieve, self.retriever, [query], self.s.topk,
                                                    self.timeout_s, self.s.rollout.on_retriever_error)
            self.retrieve_s += dt
            return (None if hits is None else hits[0]), err, dt

        await run_episode(self.rules, ep, search_budget(self.s.rollout, "search"), generate, search)
        return ep.freeze(self.reward_fn, "search")


_RETRIEVERS: dict[str, Any] = {}


def is_url(target: str) -> bool:
    return str(target).startswith(("http://", "https://"))


def shared_retriever(target: str, timeout_s: float) -> Any:
    """One retriever per process and target: every loop instance (one per sample) reuses it."""
    if target not in _RETRIEVERS:
        from sr1lib.retrieval import open_retriever

        kw = {"timeout_s": timeout_s} if is_url(target) else {}
        _RETRIEVERS[target] = open_retriever(target, **kw)
    return _RETRIEVERS[target]


def _build_loop_class() -> type:
    import os

    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register

    @register(AGENT_NAME)
    class Sr1SearchAgentLoop(AgentLoopBase):
        """sr1's multi-turn search protocol over verl's server manager (see the module docstring).

        Constructed by verl's worker through hydra with the YAML entry's extra keys as keyword
        arguments: `sr1` (LoopSettings as a mapping); tests may pass `retriever=` directly."""

        def __init__(self, *args: Any, sr1: Any = None, retriever: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if sr1 is None:
                raise ValueError(f"{AGENT_NAME}: the agent-loop YAML entry needs an `sr1:` mapping "
                                 "(write it with `sr1 export verl`)")
            settings = LoopSettings.from_mapping(plain(sr1))
            target = os.environ.get("SR1_RETRIEVER") or settings.retriever
            if retriever is None:
                retriever = shared_retriever(target, settings.retriever_timeout_s)
            self.episode = Sr1Episode(settings, self.tokenizer, self.server_manager, retriever,
                                      bounded=not is_url(target))

        async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
            traj = await self.episode.run(sampling_params, kwargs)
            fields = output_fields(traj, mask_retrieved=self.episode.s.mask_retrieved,
                                   with_logprobs=self.episode.with_logprobs)
            metrics = AgentLoopMetrics(generate_sequences=self.episode.generate_s,
                                       tool_calls=self.episode.retrieve_s)
            return AgentLoopOutput(metrics=metrics, **fields)

    return Sr1SearchAgentLoop


def __getattr__(name: str) -> Any:
    # PEP 562: the class (and verl) load on first lookup, so this module imports without verl.
    if name == "Sr1SearchAgentLoop":
        cls = _build_loop_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
