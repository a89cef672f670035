"""A handful of RL steps on the smoke world raise the training reward (fixed seed).

The smoke profile's base model is too small to copy names, so its reward is 0 everywhere and RL
has nothing to amplify. This test therefore gives RL a policy with something to learn on the smoke
world's own training questions: a tiny model fine-tuned here to answer each question with its gold
answer either exactly (`<answer> Gillil </answer>`) or verbosely (`<answer> the answer is Gillil
</answer>`, which exact match rejects), with equal weight; the imperfect-format habit the toy base
model's demonstrations also teach. GRPO with the EM reward, through the same `train()` and the
world's real bm25s index, must then move probability to the exact form; measured exactly (the
model's probability of the exact answer against the verbose one) on the final checkpoint and in the
sampled reward of later steps against step 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sr1lib import config as C
from sr1lib.protocol import build_prompt
from test_train_support import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")
N_QUESTIONS = 6


def answer_text(a: str) -> str:
    return f"<answer> {a} </answer>"


def answer_logprob(model, tok, question: str, answer: str) -> float:
    p = tok.encode(build_prompt(question, tok), add_special_tokens=False)
    r = tok.encode(answer_text(answer), add_special_tokens=False)
    ids = torch.tensor([p + r])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    return float(logp[torch.arange(len(p) - 1, len(p) + len(r) - 1), ids[0, len(p):]].sum())


def p_gold(model, tok, pairs) -> float:
    """Mean probability of the exact answer against the verbose one, per question."""
    out = []
    for q, gold, other in pairs:
        g, o = answer_logprob(model, tok, q, gold), answer_logprob(model, tok, q, other)
        out.append(1 / (1 + math.exp(o - g)))
    return sum(out) / len(out)


def sft(model, tok, pairs, steps: int = 150, lr: float = 3e-3) -> None:
    """Fine-tune to give the exact or the verbose answer with equal weight straight after the prompt."""
    rows = []
    for q, gold, other in pairs:
        p = tok.encode(build_prompt(q, tok), add_special_tokens=False)
        rows += [(p, tok.encode(answer_text(a), add_special_tokens=False)) for a in (gold, other)]
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, r) in enumerate(rows):
        ids[i, :len(p) + len(r)] = torch.tensor(p + r)
        labels[i, len(p):len(p) + len(r)] = torch.tensor(r)
        att[i, :len(p) + len(r)] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke world, its first training questions as a data file, an index, and the fine-tuned policy."""
    import pandas as pd

    from sr1lib.data import load_records
    from sr1lib.models import build_tiny_model, load_policy, save_model, train_tokenizer
    from sr1lib.retrieval import build_index
    from sr1lib.toyworld import build_world, get_profile

    root = tmp_path_factory.mktemp("twrl")
    world = root / "world"
    build_world(world, 0, config=get_profile("smoke").world)
    data = root / "train.parquet"
    pd.read_parquet(world / "train.parquet").head(N_QUESTIONS).to_parquet(data)
    records = load_records(data)
    pairs = [(r.question, r.golden_answers[0], f"the answer is {r.golden_answers[0]}") for r in records]
    corpus = (world / "corpus.jsonl").read_text().splitlines()
    texts = corpus + [build_prompt(q) + " " + answer_text(g) + " " + answer_text(o) for q, g, o in pairs] * 20
    tok = train_tokenizer(texts, vocab_size=1000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_tiny_model(tok, hidden_size=64, num_layers=2, num_heads=4, seed=0)
        sft(model, tok, pairs)
    policy = save_model(model, tok, root / "policy")
    build_index(world / "corpus.jsonl", root / "index", "bm25s", progress=False)
    return {"root": root, "data": data, "pairs": pairs, "policy": policy, "index": root / "index",
            "p0": p_gold(*load_policy(policy, device="cpu"), pairs)}


@pytest.mark.slow
def test_grpo_steps_raise_the_training_reward_on_the_smoke_world(smoke):
    from sr1lib.models import load_policy
    from sr1lib.train import train

    assert 0.25 < smoke["p0"] < 0.75, f"the fine-tuned policy should be undecided, P(gold) = {smoke['p0']:.3f}"
    steps = 6
    cfg = C.with_overrides(C.RunConfig(), [
        f"out_dir={smoke['root'] / 'runs'}", "name=grpo", "seed=0", f"train.model={smoke['policy']}",
        f"data.train={smoke['data']}", "retrieval.backend=bm25s", f"retrieval.index={smoke['index']}",
        "retrieval.topk=2", "rollout.group_size=4", "rollout.max_new_tokens=12", "rollout.max_response_tokens=32",
        "rollout.max_turns=1", f"train.batch_size={N_QUESTIONS}", f"train.steps={steps}", "train.lr=1e-3",
        "algorithm.name=grpo", "algorithm.kl_coef=0.0", "train.log_rollouts=0"])
    run = train(cfg, progress=False)
    rewards = [r["reward_mean"] for r in run.metrics()]
    after = p_gold(*load_policy(run.checkpoint_dir(steps) / "policy", device="cpu"), smoke["pairs"])
    assert after > smoke["p0"] + 0.15, (smoke["p0"], after, rewards)
    assert sum(rewards[-3:]) / 3 > rewards[0], rewards
