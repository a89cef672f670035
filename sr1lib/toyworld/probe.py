"""A quick look at what a base model does with the search protocol: its first turn on some questions,
and whether it can copy the names the protocol makes it copy.

First turn: for each question the prompt is `protocol.build_prompt(question)` and the model
generates one turn (until `</search>`, `</answer>`, EOS or `max_new_tokens`), greedily and sampled
(temperature 1, seeded). Reported rates: the first action is a search / an answer / invalid (no
complete pair), the turn opens with `<think>`, and a search names the question's subject.

Copying (`copy_accuracy`): a policy must copy the question's subject into its query and a name
read in a passage into its answer, and every name in the evaluation world is new to the model.
On the "good" demonstration of each question (bm25s retrieval over the world's corpus), the model
predicts each next token with the true text before it (teacher forcing); scored are the tokens of
every entity name the policy itself writes (think, query, answer; not the prompt or passages).
`name_exact` (every token of a name right) bounds what RL can reach: with it near 0 no rollout
earns a reward and RL has nothing to learn from. Full episodes with a retriever, and EM, belong
to the rollout loop (`sr1lib.rollout`), a layer above this package.
"""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from sr1lib import protocol

OBSERVATION_RE = re.compile(r"<information>.*?</information>", re.DOTALL)


def first_turns(model: Any, tok: Any, prompts: list[str], *, greedy: bool, max_new_tokens: int = 64,
                seed: int = 0, batch_size: int = 32) -> list[str]:
    """The first generated turn for each prompt, decoded (special tokens dropped)."""
    out: list[str] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(prompts), batch_size):
            enc = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=not greedy,
                                     temperature=1.0, top_p=1.0, stop_strings=list(protocol.STOP_STRINGS),
                                     tokenizer=tok, pad_token_id=tok.pad_token_id)
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def turn_stats(turns: list[str], subjects: list[str]) -> dict[str, float]:
    kinds = [protocol.parse_action(t) for t in turns]
    n = max(1, len(turns))
    searches = [(k, c, s) for (k, c), s in zip(kinds, subjects) if k == protocol.SEARCH]
    return {
        "search": round(sum(k == protocol.SEARCH for k, _ in kinds) / n, 3),
        "answer": round(sum(k == protocol.ANSWER for k, _ in kinds) / n, 3),
        "invalid": round(sum(k == protocol.INVALID for k, _ in kinds) / n, 3),
        "opens_with_think": round(sum(t.lstrip().startswith("<think>") for t in turns) / n, 3),
        "query_names_subject": round(sum(s.lower() in c.lower() for _, c, s in searches) / max(1, len(searches)), 3),
    }


def written_name_spans(response: str, names: list[str]) -> list[tuple[int, int, bool]]:
    """(start, end, is_answer) of every name in `response` outside <information> blocks, longest
    names first and never overlapping; `is_answer` when the name opens an <answer>."""
    blocked = [(m.start(), m.end()) for m in OBSERVATION_RE.finditer(response)]
    spans: list[tuple[int, int, bool]] = []
    for name in sorted(set(names), key=len, reverse=True):
        for m in re.finditer(re.escape(name), response):
            a, b = m.start(), m.end()
            if any(x <= a < y for x, y in blocked) or any(a < e and b > s for s, e, _ in spans):
                continue
            spans.append((a, b, response[:a].endswith("<answer> ")))
    return spans


def copy_accuracy(model: Any, tok: Any, world_dir: str | Path, *, n: int = 40, split: str = "validation"
                  ) -> dict[str, float]:
    """Teacher-forced accuracy on the names a policy writes in good demonstrations (module docstring).

    Returns token_acc (tokens of written names predicted right), name_exact (names with every
    token right), answer_exact (the same for the name inside <answer>) and names (how many).
    """
    from sr1lib.toyworld.demos import DemoMix, DemoWriter
    from sr1lib.toyworld.pretrain import demo_retriever
    from sr1lib.toyworld.world import WorldConfig, generate_world, read_manifest

    manifest = read_manifest(world_dir)
    world = generate_world(manifest["seed"], WorldConfig.from_json(manifest["config"]))
    names = [e.name for e in world.kb.entities.values()]
    rng = random.Random(0)
    counts = {"tokens": 0, "tokens_right": 0, "names": 0, "names_right": 0, "answers": 0, "answers_right": 0}
    with tempfile.TemporaryDirectory(prefix="sr1-probe-") as tmp:
        writer = DemoWriter(world.kb, demo_retriever("bm25s", world.passages, rng, Path(tmp)), rng, DemoMix())
        episodes = [(protocol.build_prompt(q.text), writer.good(q)) for q in world.splits[split][:n]]
    for prompt, response in episodes:
        enc = tok(prompt + response, return_offsets_mapping=True, add_special_tokens=False)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        with torch.no_grad():
            pred = model(input_ids=torch.tensor([ids], device=model.device)).logits[0].argmax(-1).tolist()
        for a, b, is_answer in written_name_spans(response, names):
            a, b = a + len(prompt), b + len(prompt)
            right = [pred[i - 1] == ids[i] for i, (s, e) in enumerate(offsets) if i and s < b and e > a]
            counts["tokens"] += len(right)
            counts["tokens_right"] += sum(right)
            counts["names"] += 1
            counts["names_right"] += all(right)
            counts["answers"] += is_answer
            counts["answers_right"] += is_answer and all(right)
    return {"token_acc": round(counts["tokens_right"] / max(1, counts["tokens"]), 3),
            "name_exact": round(counts["names_right"] / max(1, counts["names"]), 3),
            "answer_exact": round(counts["answers_right"] / max(1, counts["answers"]), 3),
            "names": counts["names"]}


def probe_model(model_dir: str | Path, world_dir: str | Path, *, n: int = 32, split: str = "validation",
                seed: int = 0) -> dict[str, Any]:
    """First-turn behaviour and copy accuracy of the model in `model_dir` on `n` questions of the
    world's `split`."""
    from sr1lib.data import load_records
    from sr1lib.models import load_policy

    records = load_records(Path(world_dir) / f"{split}.parquet", limit=n)
    model, tok = load_policy(model_dir, device="cpu")
    prompts = [protocol.build_prompt(r.question) for r in records]
    subjects = [r.extra["extra_info"]["chain"][0] for r in records]
    out: dict[str, Any] = {"questions": len(records)}
    for mode in ("greedy", "sampled"):
        turns = first_turns(model, tok, prompts, greedy=mode == "greedy", seed=seed)
        out[mode] = turn_stats(turns, subjects)
    out["copy"] = copy_accuracy(model, tok, world_dir, n=n, split=split)
    return out
