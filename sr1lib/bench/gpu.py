"""`sr1 bench gpu`: sr1's own GRPO and PPO steps on Qwen2.5-0.5B- and 1.5B-shaped models, timed.

One command, one JSON object, nothing downloaded; hard requirements torch, transformers, numpy,
pyyaml and tqdm. Per shape: a random-weight model of the real architecture (`bench.train.SHAPES`,
from the checkpoints' config.json) and a BPE tokenizer trained here (`--shapes tiny`: a small Qwen2,
which is how the test suite runs the same code on CPU). Per algorithm: a real `sr1lib.train.Trainer`
(bf16 autocast on CUDA over fp32 weights, AdamW, prefix sharing) whose steps run multi-turn rollouts
through the `hf` generator against `MemoryRetriever` (no Java, no bm25s) over a toy-world corpus
built in memory, the reference and old-policy log-probs (two mini-batches per step, so the old pass
runs, as with Search-R1's 512/256 batches), the policy update and, for PPO, values and the critic
update. GRPO samples --group responses for each of --questions questions; PPO one response for each
of questions x group questions (Search-R1's PPO samples once), so both train the same row count.

A random model never writes `<search>`, so the trainer's generator is wrapped as in `sr1 bench rollout
--policy searching`: every generate call runs the model for real (what `decode_s` and generation
tokens/s measure) and the text appended is a scripted policy's that thinks for about --max-new-tokens
tokens per turn and searches --searches times before answering. Updates then train on scripted tokens:
the same compute as sampled ones.

Per run (medians over --steps timed steps after --warmup untimed ones; the trainer synchronises CUDA
at each phase boundary, the decode timer around each generate call):
- `split`: the median step's seconds by phase, the trainer's own timers, which tile the step:
  generate (the rollout's generate calls, the scripted text included), retrieve, rollout_other
  (prompts, segments, rewards), logprobs (batching onto the device, then the reference, old-policy
  and value passes), update (advantages, then the policy update), critic (PPO's critic update, the
  scheduler steps, the generator's weight hand-over);
- `generate_tokens_per_s`: tokens the model decoded over the seconds inside its generate calls;
- `update_tokens_per_s`, `update_mfu`: tokens the policy update's forward pass runs (each distinct
  prompt once per micro-batch, every response token; `bench.train.forward_tokens`) per second, and
  6 x parameters FLOPs per such token against the card's dense bf16 peak (attention's quadratic term
  left out, so MFU is understated a little); `logprobs_mfu` with 2 x parameters per no-grad pass,
  `critic_mfu` for PPO's critic update;
- `peak_memory_gib`: torch's peak allocated CUDA memory over the run's steps (None on CPU);
- `largest_micro_batch`: see `_gpu_parts.largest_micro_batch`.
Per shape, `generate_baseline` (`_gpu_parts.generate_baseline`) replays the first run's last first
turn through sr1's generator and through plain `generate` with a static KV cache.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sr1lib.bench.train import SHAPES, build_model, forward_tokens, peak_tflops_for, reward_text

SHAPE_CHOICES = ("tiny", *SHAPES)
ALGOS = ("grpo", "ppo")
# A step's phases, in the order they run; they tile the step (`split` adds up to `split_step_s`).
PHASES = ("generate_s", "retrieve_s", "rollout_other_s", "logprobs_s", "update_s", "critic_s")


def register(sub) -> None:
    p = sub.add_parser("gpu", help="sr1's GRPO and PPO steps on Qwen2.5-0.5B/1.5B shapes: tokens/s, MFU, memory")
    p.add_argument("--shapes", default="qwen2.5-0.5b,qwen2.5-1.5b", help=f"comma-separated, from {list(SHAPE_CHOICES)}")
    p.add_argument("--algos", default="grpo,ppo", help=f"comma-separated, from {list(ALGOS)}")
    p.add_argument("--hidden", type=int, default=64, help="hidden size of the tiny shape")
    p.add_argument("--layers", type=int, default=2, help="layers of the tiny shape")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--questions", type=int, default=8, help="GRPO questions per step (PPO: questions x group)")
    p.add_argument("--group", type=int, default=5, help="GRPO responses per question (Search-R1 uses 5)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens per generation turn")
    p.add_argument("--searches", type=int, default=2, help="searches per trajectory before it answers")
    p.add_argument("--topk", type=int, default=3, help="passages per search")
    p.add_argument("--max-obs-tokens", type=int, default=256, help="token budget of one <information> block")
    p.add_argument("--doc-passages", type=int, default=6, help="toy-world passages joined into one document")
    p.add_argument("--mini-batches", type=int, default=2,
                   help="optimizer steps per training step (>= 2: the old-log-prob pass runs)")
    p.add_argument("--micro-batch", type=int, default=4, help="rows per forward pass (gradients accumulated)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per run")
    p.add_argument("--steps", type=int, default=3, help="timed steps per run (medians reported)")
    p.add_argument("--probe-max", type=int, default=256,
                   help="largest micro-batch the memory probe tries (0 = no probe)")
    p.add_argument("--baseline-reps", type=int, default=3, help="timed calls per generate-baseline variant (0 = none)")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for MFU (default: known GPUs)")
    p.add_argument("--out", default=None, help="also write the JSON object to this file")
    p.set_defaults(func=run)


def _names(value: str, valid: tuple[str, ...], flag: str) -> list[str]:
    from sr1lib.errors import Sr1Error

    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in valid]
    if bad or not names:
        raise Sr1Error(f"{flag} {value!r}: valid names are {list(valid)} (comma-separated)")
    return names


def check_args(args: Any) -> tuple[list[str], list[str]]:
    """(shapes, algorithms), after checking the numbers that must be positive or divide."""
    from sr1lib.errors import Sr1Error

    positive = ("questions", "group", "max_new_tokens", "topk", "doc_passages", "mini_batches", "micro_batch", "steps")
    for flag in positive:
        if getattr(args, flag) < 1:
            raise Sr1Error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    for flag in ("searches", "warmup", "probe_max", "baseline_reps"):
        if getattr(args, flag) < 0:
            raise Sr1Error(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    if (args.questions * args.group) % args.mini_batches:
        raise Sr1Error(f"--mini-batches {args.mini_batches} must divide the rows per step "
                       f"(questions x group = {args.questions * args.group})")
    return _names(args.shapes, SHAPE_CHOICES, "--shapes"), _names(args.algos, ALGOS, "--algos")


def run_config(model: Path, algo: str, args: Any, device: str) -> Any:
    from sr1lib import config as C

    rows = args.questions * args.group
    grpo = algo == "grpo"
    # room for every turn and observation, so no trajectory is cut by the response budget
    response = (args.searches + 1) * args.max_new_tokens + args.searches * (args.max_obs_tokens + 16)
    return C.with_overrides(C.RunConfig(), [
        f"train.model={model}", f"train.device={device}", "train.lr=1e-6", "train.critic_lr=1e-5",
        f"train.batch_size={args.questions if grpo else rows}", f"train.mini_batch_size={rows // args.mini_batches}",
        f"train.micro_batch_size={args.micro_batch}", f"algorithm.name={algo}", "algorithm.kl_coef=0.001",
        f"rollout.group_size={args.group if grpo else 1}", f"rollout.max_new_tokens={args.max_new_tokens}",
        f"rollout.max_turns={args.searches}", f"rollout.max_obs_tokens={args.max_obs_tokens}",
        f"rollout.max_response_tokens={response}", "rollout.max_prompt_tokens=8192", f"retrieval.topk={args.topk}"])


def step_row(m: dict[str, Any], trajs: list[Any], decode: Any, trainer: Any) -> dict[str, float]:
    """One step's seconds by phase and its token counts, from the trainer's metrics and the decode timer."""
    from sr1lib.train.batched import micro_slices

    t = trainer.cfg.train
    mini = t.mini_batch_size or len(trajs)
    row = {"step_s": m["step_s"], "generate_s": m["generate_s"], "retrieve_s": m["retrieve_s"],
           "rollout_other_s": m["rollout_s"] - m["generate_s"] - m["retrieve_s"], "logprobs_s": m["logprob_s"],
           "update_s": m["update_s"], "critic_s": m["critic_s"]}
    return {**row, "decode_s": decode.seconds, "decoded_tokens": decode.tokens, "generate_calls": decode.calls,
            "trajectories": len(trajs), "model_tokens": sum(tr.n_model_tokens for tr in trajs),
            "searches": sum(tr.n_searches for tr in trajs), "sequence_tokens": m["tokens"],
            "update_tokens": sum(forward_tokens(trajs[sl], t.micro_batch_size)
                                 for sl in micro_slices(len(trajs), mini)),
            "logprob_pass_tokens": forward_tokens(trajs, t.micro_batch_size)}


def _median_rate(rows: list[dict[str, float]], work: str, seconds: str, scale: float = 1.0) -> float:
    """Median over steps of scale x row[work] / row[seconds]."""
    return statistics.median(scale * r[work] / r[seconds] for r in rows)


def figures(rows: list[dict[str, float]], trainer: Any, peak_tflops: float | None) -> dict[str, Any]:
    """Medians of the per-step rates, MFU against `peak_tflops` (None without one), the median step's split."""
    from sr1lib.train.batched import micro_slices

    t = trainer.cfg.train
    n_policy = sum(p.numel() for p in trainer.models.policy.parameters())
    n_critic = sum(p.numel() for p in trainer.models.critic.parameters()) if trainer.has_critic else 0
    old_pass = t.ppo_epochs > 1 or len(micro_slices(int(rows[0]["trajectories"]), t.mini_batch_size)) > 1
    # parameters run per no-grad token: old policy, reference, critic values (as Trainer.step runs them)
    lp_params = n_policy * (int(old_pass) + int(trainer.need_ref)) + n_critic

    def mfu(flops_per_token: float, work: str, seconds: str) -> float | None:
        if not peak_tflops or not flops_per_token:
            return None
        return round(_median_rate(rows, work, seconds, flops_per_token) / (peak_tflops * 1e12), 4)

    median_step = sorted(rows, key=lambda r: r["step_s"])[(len(rows) - 1) // 2]
    return {
        "params": n_policy, "critic_params": n_critic or None,
        "step_s": round(statistics.median(r["step_s"] for r in rows), 4),
        "split": {k: round(median_step[k], 4) for k in PHASES}, "split_step_s": round(median_step["step_s"], 4),
        "generate_tokens_per_s": round(_median_rate(rows, "decoded_tokens", "decode_s"), 1),
        "update_tokens_per_s": round(_median_rate(rows, "update_tokens", "update_s"), 1),
        "update_mfu": mfu(6 * n_policy, "update_tokens", "update_s"),
        "logprobs_mfu": mfu(2 * lp_params, "logprob_pass_tokens", "logprobs_s"),
        "critic_mfu": mfu(6 * n_critic, "update_tokens", "critic_s"),
        "old_logprob_pass": old_pass,
        "steps": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }


def run_algo(model: Path, algo: str, args: Any, device: Any, retriever: Any, records: list[Any],
             peak_tflops: float | None, baseline: bool) -> dict[str, Any]:
    """Warm-up and timed steps of one algorithm on one model, then (optionally) the generate
    baseline, then the memory probe; every model of the run is freed before returning."""
    import torch

    from sr1lib.bench._gpu_parts import DecodeTimer, cycle_records, free_memory, generate_baseline, largest_micro_batch
    from sr1lib.bench.rollout import SearchingPolicy
    from sr1lib.train.step import Trainer

    cfg = run_config(model, algo, args, str(device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer(cfg, retriever=retriever, reward_fn=lambda r, g: reward_text(r), device=device)
    hf = trainer.generator
    decode = DecodeTimer(hf, device)
    trainer.generator = SearchingPolicy(decode, args.searches)
    batch = cycle_records(records, cfg.train.batch_size)
    rows, trajs = [], []
    for i in range(args.warmup + args.steps):
        decode.reset()
        m, trajs = trainer.step(i + 1, batch)
        if i >= args.warmup:
            rows.append(step_row(m, trajs, decode, trainer))
    out = figures(rows, trainer, peak_tflops)
    cuda = device.type == "cuda"
    out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if cuda else None
    if baseline and decode.first is not None:
        out["generate_baseline"] = generate_baseline(trainer, hf, str(model), *decode.first, args.baseline_reps)
    if args.probe_max:
        out["largest_micro_batch"] = largest_micro_batch(trainer, trajs, args.probe_max)
    del trainer, hf, decode
    free_memory(device)
    return out


def corpus_texts(docs: list[tuple[str, str]], records: list[Any]) -> list[str]:
    """What the tokenizer is trained on: the corpus and the search prompts of the questions."""
    from sr1lib.protocol import build_prompt

    return [c for _, c in docs] + [build_prompt(r.question) for r in records]


def run(args: Any) -> int:
    import torch

    from sr1lib.bench._gpu_parts import MemoryRetriever, toy_corpus
    from sr1lib.models import pick_device
    from sr1lib.runs import environment

    shapes, algos = check_args(args)
    t_start = time.perf_counter()
    device = pick_device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak, peak_source = peak_tflops_for(gpu or "cpu", args.peak_tflops)
    docs, records = toy_corpus(args.doc_passages)
    retriever = MemoryRetriever(docs)
    result: dict[str, Any] = {"bench": "gpu", "device": str(device), "gpu": gpu, "peak_tflops": peak,
                              "peak_source": peak_source, "shapes": {}}
    with tempfile.TemporaryDirectory(prefix="sr1-bench-gpu-") as tmp:
        for shape in shapes:
            t0 = time.perf_counter()
            model = build_model(Path(tmp) / shape, args.hidden, args.layers, shape, str(device),
                                texts=corpus_texts(docs, records))
            entry: dict[str, Any] = {"build_s": round(time.perf_counter() - t0, 2), "runs": {}}
            for i, algo in enumerate(algos):
                run_out = run_algo(model, algo, args, device, retriever, records, peak,
                                   baseline=i == 0 and args.baseline_reps > 0)
                if "generate_baseline" in run_out:
                    entry["generate_baseline"] = {"from_run": algo, **run_out.pop("generate_baseline")}
                entry["runs"][algo] = run_out
            result["shapes"][shape] = entry
    result["settings"] = {k: v for k, v in vars(args).items() if k != "func"}
    result["settings"].update(corpus_docs=len(docs), retriever=retriever.name, environment=environment())
    result["bench_wall_s"] = round(time.perf_counter() - t_start, 2)
    print(json.dumps(result))
    if args.out:
        from sr1lib.fsutil import write_text_atomic

        write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    return 0
