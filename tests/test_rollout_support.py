"""Shared pieces of the rollout tests: a real bm25s index over a small corpus written here, a
generator proxy that records what was sampled, and the invariants checked on EVERY rollout:
model segments are exactly the sampled ids (and log-probs), and sampled_mask is 1 exactly on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pytest
import torch

from sr1lib.generators import Generation, Generator, SamplingParams
from sr1lib.masking import build_padded
from sr1lib.types import MODEL, PROMPT, QARecord

PASSAGES = [
    ("Paris", "Paris is the capital and largest city of France, on the Seine."),
    ("Lyon", "Lyon is the third-largest city of France, at the confluence of the Rhone and the Saone."),
    ("Hamlet", "Hamlet is a tragedy written by William Shakespeare around 1600."),
    ("William Shakespeare", "William Shakespeare was an English playwright, born in Stratford-upon-Avon."),
    ("Nile", "The Nile is a major river in Africa, long considered the longest river in the world."),
    ("Amazon River", "The Amazon River in South America is the largest river by discharge volume."),
    ("Apollo 11", "Apollo 11 was the spaceflight that first landed humans on the Moon, in July 1969."),
    ("Neil Armstrong", "Neil Armstrong was the first person to walk on the Moon, in 1969."),
    ("Mount Everest", "Mount Everest is the highest mountain above sea level, in the Himalayas."),
    ("Pacific Ocean", "The Pacific Ocean is the largest and deepest of the oceans of the Earth."),
    ("Tokyo", "Tokyo is the capital of Japan and its most populous city."),
    ("Canberra", "Canberra is the capital city of Australia."),
]

RECORDS = [
    QARecord("toy/1", "What is the capital of France", ("Paris",), "toy"),
    QARecord("toy/2", "Who wrote Hamlet?", ("William Shakespeare", "Shakespeare"), "toy"),
    QARecord("toy/3", "What is the longest river in the world?", ("Nile",), "toy"),
]


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "contents": f'"{t}"\n{x}'}) + "\n"
                            for i, (t, x) in enumerate(PASSAGES)))
    return path


@pytest.fixture(scope="session")
def bm25_dir(corpus_file, tmp_path_factory) -> Path:
    from sr1lib.retrieval import build_index

    out = tmp_path_factory.mktemp("index") / "bm25s"
    build_index(corpus_file, out, "bm25s", progress=False)
    return out


@pytest.fixture()
def retriever(bm25_dir):
    from sr1lib.retrieval import open_retriever

    r = CountingRetriever(open_retriever(bm25_dir, cache=False))
    yield r
    r.inner.close()


class CountingRetriever:
    """Passes searches through to a real retriever, counting calls and keeping the queries."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []

    def search(self, queries: Sequence[str], k: int) -> list[list[Any]]:
        self.calls.append(list(queries))
        return self.inner.search(queries, k)


class Recording(Generator):
    """A generator proxy that keeps every call's prompts, params and generations."""

    def __init__(self, inner: Generator) -> None:
        self.inner, self.tokenizer, self.name = inner, inner.tokenizer, f"recording({inner.name})"
        self.prompts: list[list[tuple[int, ...]]] = []
        self.outputs: list[list[Generation]] = []
        self.params: list[SamplingParams] = []

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        out = self.inner.generate(prompts, params)
        self.prompts.append([tuple(p) for p in prompts])
        self.params.append(params)
        self.outputs.append(list(out))
        return out


def check_rollout(result: Any, rec: Recording, cfg: Any, pad_id: int = 0) -> None:
    """The invariants every rollout must hold (call on every rollout in the tests)."""
    trajs = result.trajectories
    # Trajectory j took part in calls 0..n_turns-1, in batch order among those still active.
    for call, outs in enumerate(rec.outputs):
        active = [t for t in trajs if t.n_turns > call]
        assert len(active) == len(outs) == len(rec.prompts[call]), "only active trajectories are sent"
    for j, tr in enumerate(trajs):
        sampled = []
        for call in range(tr.n_turns):
            rank = [t.uid for t in trajs if t.n_turns > call].index(tr.uid)
            sampled.append(rec.outputs[call][rank])
        model_segs = [s for s in tr.segments if s.source == MODEL]
        nonempty = [g for g in sampled if g.token_ids]
        assert len(model_segs) == len(nonempty)
        for k, (seg, g) in enumerate(zip(model_segs, nonempty)):
            if k == len(nonempty) - 1 and tr.extra.get("end") == "response_budget" and seg.token_ids != g.token_ids:
                # the response budget ended inside the last sample: a prefix of it is kept
                assert g.token_ids[: len(seg.token_ids)] == seg.token_ids and tr.truncated
            else:
                assert seg.token_ids == g.token_ids, "model segment differs from the sampled ids"
                assert seg.logprobs == g.logprobs
        assert tr.segments[0].source == PROMPT and all(s.source != PROMPT for s in tr.segments[1:])
        assert tr.n_response_tokens <= cfg.max_response_tokens
    batch = build_padded(trajs, pad_id)
    for b, tr in enumerate(trajs):
        picked = batch.input_ids[b][batch.sampled_mask[b] == 1].tolist()
        assert picked == list(tr.model_token_ids), "sampled_mask must be 1 exactly on model tokens"
        want = torch.zeros(batch.input_ids.shape[1])
        pos = 0
        for s in tr.segments:
            if s.source == MODEL:
                want[pos: pos + len(s.token_ids)] = 1
            pos += len(s.token_ids)
        assert torch.equal(batch.sampled_mask[b], want)
    assert result.timings["turns"] == len(rec.outputs)
    assert set(result.timings) >= {"generate_s", "retrieve_s", "other_s", "total_s", "retriever_calls", "turns"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op torch thread for the tests that import this fixture: on this shared 2-core box
    other jobs keep the cores busy, and torch's spinning worker threads then make tiny-model work
    3-10x slower (measured). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
