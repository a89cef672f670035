"""Pretrain the toy world's base model: a tokenizer and a small Qwen2 LM from scratch, on CPU, deterministically.

The text is generic language from *pretraining worlds*, never from the evaluation world:

    evaluation world   seed S                    (questions asked in evaluation and RL)
    pretraining worlds seeds derive(S, 1..n)     (sha256 of "sr1-toyworld-pretrain/S/i"), built with
                                                 every invented word of world S forbidden

so no name, and hence no fact, of the evaluation world occurs in pretraining text or in the
tokenizer's training text. Documents: the pretraining worlds' passages (a few per document) and
protocol demonstrations (`sr1lib.toyworld.demos`), imperfect on purpose so RL has something to
improve. Each document ends with EOS; documents are batched by length (no packing across
documents, so no episode attends to another's passages).

Determinism: every random choice comes from seeded generators, the model is initialised with
`build_tiny_model(seed=...)`, batches are drawn in a seeded order, and training runs with a fixed
number of intra-op threads (`PretrainConfig.threads`), so a config + seed gives the same weights
on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from sr1lib.errors import Sr1Error
from sr1lib.protocol import TEMPLATE_VERSION
from sr1lib.toyworld.demos import Bm25DemoRetriever, DemoMix, DemoRetriever, DemoWriter, GoldDistractorRetriever
from sr1lib.toyworld.drills import drills
from sr1lib.toyworld.world import WorldConfig, generate_world

PRETRAIN_VERSION = "toyworld-pretrain-2"


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 1536
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 6
    intermediate_size: int = 512
    max_position_embeddings: int = 1024


_LATER_FIELDS = ("decay_steps", "late_mix", "previous_token_heads", "init_jitter")
# Relative size of `init_jitter`'s perturbation: a few float32 ulps, the size by which two CPUs'
# kernels (vector width, reduction order) disagree after one step.
INIT_JITTER_SCALE = 1e-6


@dataclass(frozen=True)
class PretrainConfig:
    """How the base model is made; every field is part of the model's config hash (the `_LATER_FIELDS`
    only when set)."""

    worlds: int = 6  # pretraining worlds
    world: WorldConfig = field(default_factory=WorldConfig)  # size of each pretraining world
    episodes_per_question: float = 1.0  # demonstrations per candidate question of each world
    passages_per_doc: int = 6  # passages joined into one plain-text document
    mix: DemoMix = field(default_factory=DemoMix)
    # demonstrations of the last `decay_steps` steps (None: `mix` throughout). Copying forms while the
    # lr is high and is learned from every kind of demonstration; the decay phase sets which first
    # turn the model prefers, so a guess-heavy late mix gives a reader that copies well yet guesses
    # greedily (see cache.BASE_MODEL).
    late_mix: DemoMix | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 300
    batch_tokens: int = 8192  # padded tokens per optimizer step
    max_len: int = 768  # documents are cut to this many tokens
    lr: float = 2e-3
    warmup_steps: int = 30
    # 0: cosine decay over all steps after warm-up; n > 0: hold the peak lr, then cosine over the last
    # n steps (warmup-stable-decay; copying only forms while the lr is high, see cache.BASE_MODEL)
    decay_steps: int = 0
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    threads: int = 2
    demo_retriever: str = "bm25s"  # bm25s | gold (see sr1lib.toyworld.demos)
    tokenizer_worlds: int = 40  # extra worlds whose passages train the tokenizer (see tokenizer_texts)
    tokenizer_demos: int = 300  # demonstrations added to the tokenizer's text (protocol words)
    # Copy/look-up drill documents (sr1lib.toyworld.drills). Without them the quick model never
    # learned to copy unseen names (next-token accuracy on a copied name 0.09 after 1500 steps);
    # with 3000 drills 0.37, with 6000 0.56.
    drills: int = 0
    init_std: float | None = None  # std of the weight matrices at init (None: the HF default, 0.02)
    # heads of layer 0 that start out attending to the previous token (init_previous_token_heads)
    previous_token_heads: int = 0
    # 0: none; n > 0: every weight matrix at init is scaled by 1 + INIT_JITTER_SCALE * N(0, 1) drawn
    # from seed n, a stand-in for another machine where thread counts change no bit (`sr1 toyworld sweep`)
    init_jitter: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.decay_steps <= self.steps:
            raise Sr1Error(f"PretrainConfig.decay_steps: {self.decay_steps} is not in [0, steps={self.steps}]")
        if not 0 <= self.previous_token_heads <= self.model.num_heads:
            raise Sr1Error(f"PretrainConfig.previous_token_heads: {self.previous_token_heads} is not in "
                           f"[0, model.num_heads={self.model.num_heads}]")
        if self.late_mix is not None and not self.decay_steps:
            raise Sr1Error("PretrainConfig.late_mix is used for the last `decay_steps` steps; set decay_steps > 0 "
                           "or leave late_mix unset")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        fields = self.to_json()
        for name in _LATER_FIELDS:  # added later: configs that leave them unset keep their hash and cache entry
            if not fields[name]:
                del fields[name]
        # The demonstrations are written in the protocol's bytes, so a new template is a new base model.
        blob = json.dumps({"version": PRETRAIN_VERSION, "template": TEMPLATE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def pretrain_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the pretraining worlds for evaluation world `seed` (never `seed` itself)."""
    out = []
    for i in range(1, n + 1):
        s = int(hashlib.sha256(f"sr1-toyworld-pretrain/{seed}/{i}".encode()).hexdigest()[:8], 16)
        out.append(s if s != seed else s + 1)
    return out


def demo_retriever(kind: str, passages, rng: random.Random, workdir: Path) -> DemoRetriever:
    """`bm25s`: a real index over the world's corpus (sr1lib.retrieval); `gold`: gold + distractors."""
    if kind == "gold":
        return GoldDistractorRetriever(passages, rng)
    if kind != "bm25s":
        raise ValueError(f"demo_retriever {kind!r}: valid retrievers are ['bm25s', 'gold']")
    from sr1lib.retrieval import build_index, open_retriever

    corpus = workdir / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(p.to_json()) + "\n" for p in passages))
    build_index(corpus, workdir / "index", "bm25s", progress=False, overwrite=True)
    return Bm25DemoRetriever(open_retriever(workdir / "index", cache=False, threads=1))


def tokenizer_texts(seed: int, cfg: PretrainConfig, forbidden: set[str], docs: list[str]) -> list[str]:
    """Text for the tokenizer: passages of many extra worlds, each name occurring only a few times,
    plus some demonstrations.

    Trained on the pretraining documents alone, BPE merges the frequent pretraining names into
    single tokens while unseen evaluation names stay split into syllables: a tiny model would then
    copy 2-token names in pretraining and 5-token names in evaluation. Diluting names over many
    worlds makes merges follow syllables, so both kinds of names split alike (measured: 3.6 vs 3.9
    tokens per name at vocab 1536, against 2.8 vs 4.5 without).
    """
    texts = []
    for i in range(cfg.tokenizer_worlds):
        world = generate_world(int(hashlib.sha256(f"sr1-toyworld-tokenizer/{seed}/{i}".encode()).hexdigest()[:8], 16),
                               cfg.world, forbidden=forbidden)
        texts += [p.contents for p in world.passages]
    return texts + docs[:cfg.tokenizer_demos]


def pretrain_documents(seed: int, cfg: PretrainConfig, forbidden: set[str]) -> list[str]:
    """Passages and demonstrations of the pretraining worlds of evaluation world `seed`, shuffled."""
    docs: list[str] = []
    rng = random.Random(f"docs/{seed}")
    for wseed in pretrain_seeds(seed, cfg.worlds):
        world = generate_world(wseed, cfg.world, forbidden=forbidden)
        passages = world.passages
        for i in range(0, len(passages), cfg.passages_per_doc):
            docs.append("\n\n".join(p.contents for p in passages[i:i + cfg.passages_per_doc]))
        wrng = random.Random(wseed)
        with tempfile.TemporaryDirectory(prefix="sr1-toyworld-demos-") as tmp:
            retriever = demo_retriever(cfg.demo_retriever, passages, wrng, Path(tmp))
            writer = DemoWriter(world.kb, retriever, wrng, cfg.mix)
            n = round(len(world.candidates) * cfg.episodes_per_question)
            for j in range(n):
                docs.append(writer.episode(world.candidates[j % len(world.candidates)]))
            close = getattr(getattr(retriever, "retriever", None), "close", None)
            if close:
                close()
    docs += drills(cfg.drills, random.Random(f"drills/{seed}"), forbidden)
    rng.shuffle(docs)
    return docs


def length_batches(lengths: list[int], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped into batches of similar length, each at most `batch_tokens` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches, cur, longest = [], [], 0
    for i in order:
        longest_next = max(longest, lengths[i])
        if cur and longest_next * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur, longest_next = [], lengths[i]
        cur.append(i)
        longest = longest_next
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to `min_lr_ratio * lr` over the rest (`decay_steps` 0) or
    over the last `decay_steps` steps after a constant stretch."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = cfg.steps - cfg.decay_steps if cfg.decay_steps else cfg.warmup_steps
    if step < start:
        return cfg.lr
    t = (step - start) / max(1, cfg.steps - start)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def encode_documents(tok: Any, docs: list[str], max_len: int) -> list[list[int]]:
    """Token ids of each document, cut to `max_len - 1`, then EOS."""
    return [ids[:max_len - 1] + [tok.eos_token_id] for ids in tok(docs, add_special_tokens=False)["input_ids"]]


def collate(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels (-100 on padding), all [B, T]."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def reinit(model: Any, std: float, seed: int) -> None:
    """Redraw every weight matrix (embeddings included) from N(0, std²), seeded; norms and biases stay.

    Why: at HF's default 0.02 a 128-wide model starts with near-uniform attention, and the gradient
    that sharpens a query-key pair is the product of two tiny matrices, so the heads that copy
    (previous-token, then induction) are slow to form. Measured on the quick world (128 wide, 4
    layers, 2048-token batches): copy accuracy on unseen names 0.25 vs 0.21 after 450 steps and 0.37
    vs 0.31 after 900 at std 0.06; the gap closes by 1500 steps.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def jitter(model: Any, seed: int, scale: float = INIT_JITTER_SCALE) -> None:
    """Scale every weight matrix by 1 + scale * N(0, 1), elementwise and seeded: the low bits change,
    nothing a reader of the weights would see, and training's chaos then makes a different model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(1 + scale * torch.randn(p.shape, generator=g))


# Size of the planted query and key biases per frequency pair. With 32-dim heads the previous token
# then outscores its neighbours by ~0.12 * 7**2 ≈ 6 logits before content adds its noise, so the
# head attends ~0.5-1.0 to the previous token at step 0 (a pattern training is free to change).
PREVIOUS_TOKEN_BIAS = 7.0


def init_previous_token_heads(model: Any, heads: int, bias: float = PREVIOUS_TOKEN_BIAS) -> None:
    """Make the first `heads` heads of layer 0 attend to the previous token from step 0, through
    their query and key biases alone; every weight stays random and everything still trains.

    Why: copying a name never seen in pretraining (the question's subject into the query, a passage's
    name into the answer) is the work of an induction circuit: a previous-token head in an early layer,
    and a later head that finds the token after the last occurrence of the current one. From a random
    start the circuit forms late, as a phase change; planting its first half let quick's recipe reach
    whole-name copy accuracy 0.56 at step 1,750 where the unplanted model needed ~2,400 steps (two
    planted heads gained only ~50-100 steps more; docs/BENCHMARKS.md, "How the base models were chosen").

    How: RoPE rotates each frequency pair i of a head by its position times theta_i, so a query at
    position m and a key at n score sum_i Re[q_i conj(k_i) exp(j (m - n) theta_i)]. With the constant
    parts q_i = b and k_i = b exp(j theta_i) that is b² sum_i cos((m - n - 1) theta_i), largest at
    m - n = 1 for every pair at once. Qwen2 has query and key biases, so this is a plain Qwen2
    checkpoint like any other.
    """
    att0 = model.model.layers[0].self_attn
    head_dim = att0.head_dim
    half = head_dim // 2
    theta = model.model.rotary_emb.inv_freq.float()  # [head_dim / 2], the model's own frequencies
    q = torch.zeros(head_dim)
    k = torch.zeros(head_dim)
    q[:half] = bias  # HF's RoPE pairs dimension i with i + head_dim/2 (rotate_half)
    k[:half], k[half:] = bias * torch.cos(theta), bias * torch.sin(theta)
    with torch.no_grad():
        for h in range(heads):
            att0.q_proj.bias[h * head_dim:(h + 1) * head_dim] = q
            att0.k_proj.bias[h * head_dim:(h + 1) * head_dim] = k


def train_lm(model: Any, seqs: list[list[int]], pad_id: int, cfg: PretrainConfig, seed: int,
             progress: bool = True, on_step: Callable[[int, float], None] | None = None,
             late_seqs: list[list[int]] | None = None) -> list[float]:
    """AdamW on next-token loss for `cfg.steps` steps; returns the loss of every step.

    `late_seqs` (documents of `cfg.late_mix`) replace `seqs` for the last `cfg.decay_steps` steps."""
    from tqdm.auto import tqdm

    rng = random.Random(f"batches/{seed}")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    batches: list[list[int]] = []
    losses: list[float] = []
    model.train()
    bar = tqdm(range(cfg.steps), desc="pretrain", disable=not progress, mininterval=2)
    switch = cfg.steps - cfg.decay_steps if late_seqs is not None and cfg.decay_steps else cfg.steps
    for step in bar:
        if step == switch:
            seqs, batches = late_seqs, []
        if not batches:
            batches = length_batches([len(s) for s in seqs], cfg.batch_tokens, rng)
        batch = collate([seqs[i] for i in batches.pop()], pad_id)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(**batch).loss
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        if on_step:
            on_step(step, losses[-1])
    model.eval()
    return losses


def pretrain(seed: int, cfg: PretrainConfig, out: str | Path, *, forbidden: set[str],
             progress: bool = True) -> dict[str, Any]:
    """Build the documents, train tokenizer and model, save them to `out`; returns the report.

    `out` is written by `sr1lib.models.save_model` (atomic) plus `pretrain.json` inside it.
    """
    from sr1lib.fsutil import write_json_atomic
    from sr1lib.models import build_tiny_model, save_model, train_tokenizer

    t0 = time.perf_counter()
    docs = pretrain_documents(seed, cfg, forbidden)
    late_docs = pretrain_documents(seed, replace(cfg, mix=cfg.late_mix), forbidden) if cfg.late_mix else None
    t_docs = time.perf_counter() - t0
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        tok = train_tokenizer(tokenizer_texts(seed, cfg, forbidden, docs), vocab_size=cfg.model.vocab_size)
        seqs = encode_documents(tok, docs, cfg.max_len)
        late_seqs = encode_documents(tok, late_docs, cfg.max_len) if late_docs else None
        m = cfg.model
        model = build_tiny_model(tok, hidden_size=m.hidden_size, num_layers=m.num_layers, num_heads=m.num_heads,
                                 intermediate_size=m.intermediate_size,
                                 max_position_embeddings=m.max_position_embeddings, seed=seed)
        if cfg.init_std is not None:
            reinit(model, cfg.init_std, seed)
        init_previous_token_heads(model, cfg.previous_token_heads)
        if cfg.init_jitter:
            jitter(model, cfg.init_jitter)
        t1 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            losses = train_lm(model, seqs, tok.pad_token_id, cfg, seed, progress, late_seqs=late_seqs)
        t_train = time.perf_counter() - t1
    finally:
        torch.set_num_threads(prev_threads)
    n_tokens = sum(len(s) for s in seqs)
    report = {
        "format": "sr1-toyworld-pretrain",
        "version": PRETRAIN_VERSION,
        "seed": seed,
        "config": cfg.to_json(),
        "config_hash": cfg.hash(),
        "pretrain_world_seeds": pretrain_seeds(seed, cfg.worlds),
        "documents": len(docs),
        "late_documents": len(late_docs or []),
        "document_tokens": n_tokens,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tok),
        "loss_first": losses[0] if losses else None,
        "loss_last10": sum(losses[-10:]) / max(1, len(losses[-10:])),
        "losses_every_10": [round(x, 4) for x in losses[::10]],
        "seconds": {"documents": round(t_docs, 2), "train": round(t_train, 2),
                    "total": round(time.perf_counter() - t0, 2)},
    }
    out = save_model(model, tok, out)
    write_json_atomic(out / "pretrain.json", report)
    return report
