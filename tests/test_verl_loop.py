"""sr1's verl agent loop against verl 0.9.1's real classes, with a fake server manager backed by sr1's
HF generator on a tiny local model (verl's own CPU tests drive agent loops the same way).

The contract: for the same sampled ids, the `AgentLoopOutput` equals sr1's own rollout token for
token: prompt and response ids, the loss mask (`sr1lib.masking`), log-probs and reward. Runs in
.venv-verl (`make test` builds it); skips where verl is not installed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from typing import Any

import pytest

pytest.importorskip("verl", reason="verl is not installed here; `make test` runs this in .venv-verl")

from omegaconf import OmegaConf  # noqa: E402
from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, DictConfigWrap  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

from sr1lib.config import RolloutConfig  # noqa: E402
from sr1lib.data.searchr1 import searchr1_row  # noqa: E402
from sr1lib.engines import verl as sv  # noqa: E402
from sr1lib.generators import SamplingParams, make_generator  # noqa: E402
from sr1lib.masking import build_padded  # noqa: E402
from sr1lib.models import load_policy  # noqa: E402
from sr1lib.rollout import rollout  # noqa: E402
from sr1lib.turns import turn_seed  # noqa: E402
from tests.test_rollout_support import RECORDS, bm25_dir, corpus_file, one_torch_thread, retriever  # noqa: E402,F401

CFG = RolloutConfig(max_turns=2, max_new_tokens=24, max_response_tokens=400, max_obs_tokens=48,
                    max_prompt_tokens=512, group_size=1, temperature=1.0)
SEED = 5


class HFServerManager:
    """verl's server-manager interface over sr1's HF generator: one prompt per call, seeded by the
    request's turn number as sr1's rollout seeds turn t of step 0."""

    def __init__(self, gen: Any) -> None:
        self.gen, self.turns, self.requests = gen, defaultdict(int), []

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> TokenOutput:
        turn = self.turns[request_id]
        self.turns[request_id] += 1
        self.requests.append(dict(sampling_params))
        params = SamplingParams(max_new_tokens=sampling_params["max_tokens"], temperature=sampling_params["temperature"],
                                top_p=sampling_params["top_p"], stop_strings=tuple(sampling_params["stop"]),
                                seed=turn_seed(SEED, 0, turn))
        (g,) = self.gen.generate([prompt_ids], params)
        return TokenOutput(token_ids=list(g.token_ids), log_probs=list(g.logprobs) if sampling_params["logprobs"] else None)


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    return load_policy(tiny_model_dir, device="cpu")


def verl_config(tiny_model_dir):
    return OmegaConf.create({
        "actor_rollout_ref": {"rollout": {"prompt_length": CFG.max_prompt_tokens, "response_length": CFG.max_response_tokens,
                                          "multi_turn": {"tool_config_path": None}},
                              "model": {"path": str(tiny_model_dir), "tokenizer_path": str(tiny_model_dir)}},
        "data": {"tool_config_path": None, "apply_chat_template_kwargs": {}},
    })


def make_loop(tiny_model_dir, tok, server, retriever, **settings):
    cfg = verl_config(tiny_model_dir)
    s = sv.LoopSettings(rollout=CFG, retriever="unused", topk=3, **settings)
    return sv.Sr1SearchAgentLoop(trainer_config=DictConfigWrap(cfg), server_manager=server, tokenizer=tok,
                                 processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(cfg.data),
                                 sr1=s.to_mapping(), retriever=retriever)


def verl_row(record, i):
    """What verl's RLHFDataset hands an agent loop for an exported row (raw_prompt instead of prompt)."""
    row = {**searchr1_row(record, i), "agent_name": sv.AGENT_NAME, "index": i}
    row["raw_prompt"] = row.pop("prompt")
    return row


SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}


def scripted_policy(tok):
    """A deterministic "model" that walks the rules' branches: search then answer (right for the first
    question, wrong for the second), and for the third an invalid turn, then searches past the budget."""
    def fn(prompt_ids, call):
        text = tok.decode(list(prompt_ids), skip_special_tokens=False)
        seen = text.count("<information>") - 1  # the instruction itself mentions the tag once
        if "France" in text:
            return "<search> capital of France </search>" if seen == 0 else "<answer> Paris </answer>"
        if "Hamlet" in text:
            return "<search> Hamlet author </search>" if seen == 0 else "<answer> Marlowe </answer>"
        return "<think> hm" if "invalid" not in text else "<search> longest river </search>"
    return make_generator("scripted", tokenizer=tok, fn=fn, logprob=-0.5)


@pytest.mark.parametrize("policy_kind", ["hf", "scripted"])
def test_agent_loop_output_equals_sr1_rollout_token_for_token(policy, tiny_model_dir, retriever, policy_kind):
    model, tok = policy
    gen = make_generator("hf", model=model, tokenizer=tok) if policy_kind == "hf" else scripted_policy(tok)
    server = HFServerManager(gen)
    loop = make_loop(tiny_model_dir, tok, server, retriever)
    ends = set()
    for i, record in enumerate(RECORDS):
        out = asyncio.run(loop.run(dict(SAMPLING), **verl_row(record, i)))
        assert isinstance(out, AgentLoopOutput)
        # sr1's own rollout of the same question: one trajectory per call, so the same turn seeds
        (tr,) = rollout([record], gen, retriever, CFG, seed=SEED, step=0, group_size=1).trajectories
        padded = build_padded([tr], pad_id=tok.pad_token_id)
        p = len(tr.prompt_ids)
        assert out.prompt_ids == list(tr.prompt_ids)
        assert out.prompt_ids + out.response_ids == padded.input_ids[0].tolist()
        assert out.response_mask == padded.sampled_mask[0, p:].long().tolist()
        sampler_lps = [lp for seg in tr.segments if seg.source != "prompt"
                       for lp in (seg.logprobs if seg.source == "model" else [0.0] * len(seg.token_ids))]
        assert out.response_logprobs == pytest.approx(sampler_lps, abs=0)
        assert out.reward_score == tr.reward
        facts = out.extra_fields["reward_extra_info"]
        assert (facts["n_searches"], facts["end"], facts["queries"]) == (tr.n_searches, tr.extra["end"], list(tr.queries))
        assert (facts["n_invalid"], facts["blocked_searches"]) == (tr.n_invalid, tr.extra["blocked_searches"])
        ends.add((tr.n_searches, tr.extra["end"], tr.reward))
    if policy_kind == "scripted":  # the contract held on every branch the script walks
        assert ends == {(1, "answer", 1.0), (1, "answer", 0.0), (2, "final_turn", 0.0)}, ends
    assert all(r["stop"] == ["</search>", "</answer>"] and r["max_tokens"] <= CFG.max_new_tokens for r in server.requests)


def test_mask_retrieved_off_trains_every_response_token(policy, tiny_model_dir, retriever):
    model, tok = policy
    loop = make_loop(tiny_model_dir, tok, HFServerManager(make_generator("hf", model=model, tokenizer=tok)), retriever,
                     mask_retrieved=False)
    out = asyncio.run(loop.run(dict(SAMPLING), **verl_row(RECORDS[0], 0)))
    assert out.response_mask == [1] * len(out.response_ids)


def test_verl_worker_builds_the_loop_from_the_exported_yaml_and_pads_it(policy, tiny_model_dir, bm25_dir, tmp_path,
                                                                        monkeypatch):
    """verl's AgentLoopWorker path: the YAML entry through hydra.instantiate, then verl's padding and
    batching (`_agent_loop_postprocess`, `_postprocess`) with sr1's reward as rm_scores."""
    from contextlib import nullcontext

    import numpy as np

    import verl.experimental.agent_loop.agent_loop as al

    from sr1lib.config import RunConfig
    from sr1lib.engines.verl_export import agent_loop_yaml, loop_settings

    model, tok = policy
    yaml_path = tmp_path / "agent_loop.yaml"
    yaml_path.write_text(agent_loop_yaml(loop_settings(RunConfig(rollout=CFG), str(bm25_dir))))
    for entry in OmegaConf.load(yaml_path):  # what AgentLoopWorker.__init__ does with the path
        monkeypatch.setitem(al._agent_loop_registry, entry.name, entry)
    monkeypatch.setattr(al, "rollout_trace_attr", lambda **kw: nullcontext())
    worker = object.__new__(al.AgentLoopWorker)
    worker.config = verl_config(tiny_model_dir)
    worker.rollout_config = worker.config.actor_rollout_ref.rollout
    worker.llm_client = HFServerManager(make_generator("hf", model=model, tokenizer=tok))
    worker.tokenizer, worker.processor, worker.hf_model_type = tok, None, None
    worker.dataset_cls, worker.tools, worker.reward_loop_worker_handles = RLHFDataset, [], None
    worker.distillation_enabled, worker.mm_processor_kwargs = False, {}
    traj = {"step": 0, "sample_index": 0, "rollout_n": 0, "validate": False}
    rows = [verl_row(r, i) for i, r in enumerate(RECORDS[:2])]
    outs = [asyncio.run(worker._run_agent_loop(dict(SAMPLING), traj, **row)) for row in rows]
    batch = worker._postprocess(outs, input_non_tensor_batch={"index": np.array([0, 1], dtype=object)})
    assert batch.batch["responses"].shape == (2, CFG.max_response_tokens)
    assert batch.batch["prompts"].shape == (2, CFG.max_prompt_tokens)
    scores = batch.batch["rm_scores"].sum(-1).tolist()
    assert scores == [o.reward_score for o in outs]
    assert "n_searches" in batch.meta_info["reward_extra_keys"]
    assert batch.non_tensor_batch["end"].shape == (2,)


def test_episode_driver_matches_a_batched_rollout_of_one(policy, retriever):
    """`run_episode` is the only driver code verl adds; with one trajectory it takes the same turns
    as sr1's batched loop (the rules are shared, so only the request sizing could differ)."""
    model, tok = policy
    gen = make_generator("hf", model=model, tokenizer=tok)
    cfg = dataclasses.replace(CFG, max_response_tokens=40)  # force the response-budget branches
    settings = sv.LoopSettings(rollout=cfg, retriever="unused")
    episode = sv.Sr1Episode(settings, tok, HFServerManager(gen), retriever, eos_ids=gen.eos_ids)
    for i, record in enumerate(RECORDS):
        mine = asyncio.run(episode.run(dict(SAMPLING), verl_row(record, i)))
        (ref,) = rollout([record], gen, retriever, cfg, seed=SEED, step=0, group_size=1).trajectories
        assert [s.token_ids for s in mine.segments] == [s.token_ids for s in ref.segments]
        assert (mine.extra["end"], mine.n_invalid, mine.truncated) == (ref.extra["end"], ref.n_invalid, ref.truncated)


def test_concurrent_samples_over_an_sr1_serve_url(policy, tiny_model_dir, bm25_dir):
    """As verl runs them: many samples at once in one event loop, searching a real `sr1 serve` on
    loopback through the loop's own shared http retriever (calls in parallel threads, each bounded by
    the client's timeout); every sample still equals sr1's rollout of its question."""
    from sr1lib.retrieval import open_retriever
    from sr1lib.retrieval.server import ServerThread

    _, tok = policy
    local = open_retriever(bm25_dir, cache=False)
    cfg = verl_config(tiny_model_dir)
    with ServerThread(local) as server:
        s = sv.LoopSettings(rollout=CFG, retriever=server.url, topk=3)
        loops = [sv.Sr1SearchAgentLoop(trainer_config=DictConfigWrap(cfg), server_manager=HFServerManager(scripted_policy(tok)),
                                       tokenizer=tok, processor=None, dataset_cls=RLHFDataset,
                                       data_config=DictConfigWrap(cfg.data), sr1=s.to_mapping()) for _ in range(9)]
        rows = [verl_row(RECORDS[i % 3], i % 3) for i in range(9)]

        async def all_at_once():
            return await asyncio.gather(*(lp.run(dict(SAMPLING), **row) for lp, row in zip(loops, rows)))

        outs = asyncio.run(all_at_once())
        assert len({id(lp.episode.retriever) for lp in loops}) == 1 and loops[0].episode.timeout_s is None
    for out, row, i in zip(outs, rows, range(9)):
        (tr,) = rollout([RECORDS[i % 3]], scripted_policy(tok), local, CFG, group_size=1).trajectories
        assert out.prompt_ids + out.response_ids == list(tr.prompt_ids) + [t for sg in tr.response_segments
                                                                            for t in sg.token_ids]
        assert out.reward_score == tr.reward
    local.close()
