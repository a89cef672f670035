"""The pieces `sr1 bench gpu` (sr1lib.bench.gpu) runs around sr1's trainer: a corpus and retriever held
in memory, a timing wrapper for the trainer's generator, the plain-`generate` baseline and the
largest-micro-batch probe. Private (the leading underscore keeps it out of `sr1 bench NAME`)."""

from __future__ import annotations

import gc
import math
import re
import statistics
import time
from collections import Counter
from dataclasses import replace
from typing import Any, Callable, Sequence

import torch

from sr1lib.retrieval.base import Retriever
from sr1lib.types import Hit, QARecord


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- corpus and retriever

def toy_corpus(passages_per_doc: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[QARecord]]:
    """(docid, contents) documents and training questions of toy world `seed`, generated in memory
    (no files, no download). The world's passages are one or two sentences; `passages_per_doc`
    consecutive ones are joined into one document so that retrieved passages have a wiki-like length."""
    from sr1lib.toyworld.world import WorldConfig, generate_world, question_records

    world = generate_world(seed, WorldConfig())
    ps = world.passages
    docs = []
    for i in range(0, len(ps), passages_per_doc):
        chunk = ps[i:i + passages_per_doc]
        docs.append((str(len(docs)), f'"{chunk[0].title}"\n' + " ".join(p.text for p in chunk)))
    return docs, question_records(world.splits["train"], "train")


def cycle_records(records: Sequence[QARecord], n: int) -> list[QARecord]:
    """`n` records cycling through `records`, ids kept unique (a batch may not repeat an id)."""
    return [replace(records[i % len(records)], id=f"{records[i % len(records)].id}#{i // len(records)}")
            for i in range(n)]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class MemoryRetriever(Retriever):
    """Documents ranked by the summed IDF of the query words they contain (BM25 without term
    frequency or length normalisation): needs no Java, no bm25s and no index on disk, which is all
    a throughput benchmark asks of a retriever. Not a retrieval-quality baseline."""

    name = "memory"

    def __init__(self, docs: Sequence[tuple[str, str]]) -> None:
        self.docs = list(docs)
        self.rows: dict[str, list[int]] = {}
        for row, (_, contents) in enumerate(self.docs):
            for w in set(_words(contents)):
                self.rows.setdefault(w, []).append(row)
        self.idf = {w: math.log(1 + len(self.docs) / len(r)) for w, r in self.rows.items()}
        self.by_id = {d: row for row, (d, _) in enumerate(self.docs)}

    def _search(self, queries: list[str], k: int) -> list[list[Hit]]:
        out = []
        for q in queries:
            scores: Counter = Counter()
            for w in set(_words(q)):
                for row in self.rows.get(w, ()):
                    scores[row] += self.idf[w]
            out.append([Hit(self.docs[row][0], float(s), self.docs[row][1]) for row, s in scores.most_common(k)])
        return out

    def doc(self, docid: str) -> Hit | None:
        row = self.by_id.get(docid)
        return None if row is None else Hit(docid, 0.0, self.docs[row][1])

    def __len__(self) -> int:
        return len(self.docs)


# ---------------------------------------------------------------------------- the generator's decode

class DecodeTimer:
    """The trainer's `hf` generator with its generate calls timed (CUDA synchronised before and after)
    and the tokens they return counted; it also keeps the first call's prompts and sampling
    parameters (a step's first turn), which the plain-`generate` baseline replays."""

    def __init__(self, inner: Any, device: torch.device) -> None:
        self.inner, self.device = inner, device
        self.tokenizer, self.name = inner.tokenizer, inner.name
        self.reset()

    def reset(self) -> None:
        self.seconds, self.tokens, self.calls, self.rows = 0.0, 0, 0, 0
        self.first: tuple[list[list[int]], Any] | None = None

    def update_weights(self, model: Any) -> None:
        self.inner.update_weights(model)

    def generate(self, prompts: Sequence[Sequence[int]], params: Any) -> list[Any]:
        if self.first is None:
            self.first = ([list(p) for p in prompts], params)
        sync(self.device)
        t0 = time.perf_counter()
        out = self.inner.generate(prompts, params)
        sync(self.device)
        self.seconds += time.perf_counter() - t0
        self.tokens += sum(len(g.token_ids) for g in out)
        self.calls += 1
        self.rows += len(prompts)
        return out


def _timed(fn: Callable[[], int], device: torch.device, reps: int) -> dict[str, float]:
    """{tokens, seconds (median of `reps` calls after one untimed warm-up), tokens_per_s}."""
    fn()
    times, tokens = [], 0
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        tokens = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    return {"tokens": tokens, "seconds": round(s, 4), "tokens_per_s": round(tokens / s, 1)}


def generate_baseline(trainer: Any, hf: Any, model_dir: str, prompts: list[list[int]], params: Any,
                      reps: int) -> dict[str, Any]:
    """The same batch (one step's first-turn prompts, the same per-turn budget) three ways:
    - `sr1_hf`: sr1's hf generator as the trainer runs it (fp32 weights under bf16 autocast on CUDA,
      stop strings, log-prob recorder, rows ending at a stop string);
    - `plain_dynamic`, `plain_static`: plain `generate` on the model loaded in bf16 (fp32 on CPU),
      sampling at temperature 1 with every row decoding exactly the budget, with transformers'
      default dynamic KV cache and with a static one (`cache_implementation="static"`, no compile).
    Tokens are the tokens returned; `sr1_vs_static` = sr1_hf / plain_static tokens per second."""
    from transformers import GenerationConfig

    from sr1lib.generators.hf import left_pad
    from sr1lib.models import load_policy

    dev, m = trainer.device, trainer.models

    def sr1_call() -> int:
        with torch.no_grad(), m.autocast():
            return sum(len(g.token_ids) for g in hf.generate(prompts, params))

    plain = m.policy
    if dev.type == "cuda":
        plain = load_policy(model_dir, device=str(dev), dtype="bfloat16")[0]
    ids, mask = left_pad(prompts, hf.pad_id)
    ids, mask = ids.to(dev), mask.to(dev)
    n = params.max_new_tokens

    def plain_call(cache: str | None) -> Callable[[], int]:
        cfg = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=n,
                               min_new_tokens=n, num_beams=1, pad_token_id=hf.pad_id,
                               eos_token_id=sorted(hf.eos_ids), bos_token_id=None, cache_implementation=cache)

        def call() -> int:
            with torch.no_grad():
                out = plain.generate(input_ids=ids, attention_mask=mask, generation_config=cfg)
            return int(out.shape[0] * (out.shape[1] - ids.shape[1]))
        return call

    variants = {"sr1_hf": _timed(sr1_call, dev, reps), "plain_dynamic": _timed(plain_call(None), dev, reps),
                "plain_static": _timed(plain_call("static"), dev, reps)}
    del plain
    free_memory(dev)
    return {"rows": len(prompts), "widest_prompt_tokens": int(ids.shape[1]), "max_new_tokens": n,
            "plain_dtype": "bfloat16" if dev.type == "cuda" else "float32", "reps": reps, **variants,
            "sr1_vs_static": round(variants["sr1_hf"]["tokens_per_s"] / variants["plain_static"]["tokens_per_s"], 3)}


# ---------------------------------------------------------------------------- memory probe

def _update_fits(trainer: Any, rows: list[Any]) -> bool:
    """Whether one policy forward + backward over `rows` in a single micro-batch fits in memory."""
    from sr1lib.masking import build_padded
    from sr1lib.train.batched import TokenBatch
    from sr1lib.train.step import token_masks
    from sr1lib.train.update import PolicyBatch, accumulate_policy_grads

    m = trainer.models
    try:
        pb = build_padded(rows, trainer.pad_id).to(trainer.device)
        masks = token_masks(pb, trainer.cfg.algorithm)
        batch = PolicyBatch(TokenBatch.of(pb), masks["policy"], torch.ones_like(masks["policy"]),
                            sampled_mask=masks["sampled"])
        accumulate_policy_grads(m.policy, batch, trainer.loss_cfg, micro_batch_size=len(rows),
                                autocast_ctx=m.autocast)
        sync(trainer.device)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        m.policy.zero_grad(set_to_none=True)
        free_memory(trainer.device)


def largest_micro_batch(trainer: Any, trajectories: list[Any], cap: int) -> dict[str, Any]:
    """Doubling from 1 row to `cap`, the largest micro-batch of rows cycled from `trajectories` (the
    last step's) whose policy forward + backward fits beside the run's models, gradients and
    optimizer state. `first_out_of_memory` is None when even `cap` fitted (always so on CPU)."""
    tried, fit, oom, b = [], 0, None, 1
    while b <= cap:
        tried.append(b)
        if not _update_fits(trainer, [trajectories[i % len(trajectories)] for i in range(b)]):
            oom = b
            break
        fit, b = b, b * 2
    return {"largest": fit, "first_out_of_memory": oom, "tried": tried,
            "row_tokens_max": max(t.n_tokens for t in trajectories)}
