"""`sr1 bench train`: sr1lib's single-turn GRPO step beside TRL's `GRPOTrainer`, same model, same batch.

Both sides get the same tiny Qwen2 model (built locally unless --model is given), the same prompts
(`protocol.build_prompt(..., mode="no_search")`, so one generation turn per trajectory), the same
group size, completion budget, sampling (temperature 1, no top-k/top-p), learning rate, KL (k3,
coefficient --kl against a frozen reference), token-mean loss (TRL's `dapo`), group-std scaled
advantages, one optimizer step per batch, and the same reward function on the response text.

Timing: the sides alternate step by step (one sr1lib step after each TRL step) so that other load on
the machine hits both alike; --warmup untimed steps, then --steps timed steps per side; the median
step is reported with its phases: generate (sampling), logprobs (no-grad reference / old-policy passes), update (the rest:
loss forward, backward, optimizer; for sr1lib also rollout bookkeeping and advantages). TRL's phases
are measured by wrapping its `_generate_single_turn` and `_get_per_token_logps_and_entropies`
(no-grad calls only) on the trainer instance; its step time comes from a callback around each
optimizer step. Prints one JSON object: sr1lib_step_s, trl_step_s, speedup (= trl / sr1lib), the
per-phase split for both, tokens per step and the settings.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

# Random-weight models of the shapes of real checkpoints (config.json of Qwen/Qwen2.5-0.5B and -1.5B),
# for GPU throughput figures; the tokenizer stays a small local one (token ids < its size).
SHAPES: dict[str, dict[str, int]] = {
    "qwen2.5-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         intermediate_size=4864, vocab_size=151936),
    "qwen2.5-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         intermediate_size=8960, vocab_size=151936),
}
# Dense (no sparsity) bf16 peak TFLOP/s by a part of `torch.cuda.get_device_name()`, for MFU; the
# longest matching key wins (NVIDIA's datasheets: H100/H200 SXM 989, H100 NVL 835, H100 PCIe 756).
PEAK_TFLOPS = {"H100": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H200": 989.0, "A100": 312.0}

QUESTIONS = ["who wrote the novel about the longest river", "what is the capital of the mountain country",
             "when was the first moon landing", "which ocean is the deepest", "who was born in 1969",
             "what is the population of the city", "which author wrote hamlet", "where is the nile"]


def register(sub) -> None:
    p = sub.add_parser("train", help="sr1lib's GRPO step vs TRL's GRPOTrainer (same model and batch)")
    p.add_argument("--model", default=None, help="model folder (default: build a tiny Qwen2 locally)")
    p.add_argument("--shape", default="tiny", choices=["tiny", *SHAPES],
                   help="built model: tiny (--hidden x --layers) or a random-weight real-model shape (GPU)")
    p.add_argument("--hidden", type=int, default=256, help="hidden size of the built model")
    p.add_argument("--layers", type=int, default=4, help="layers of the built model")
    p.add_argument("--questions", type=int, default=8, help="prompts per step")
    p.add_argument("--group", type=int, default=5, help="completions per prompt (GRPO group; Search-R1 uses 5)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="completion budget")
    p.add_argument("--kl", type=float, default=0.001, help="KL coefficient (0 = no reference model)")
    p.add_argument("--lr", type=float, default=1e-5, help="learning rate")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per side")
    p.add_argument("--steps", type=int, default=3, help="timed steps per side (median reported)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--sr1-only", action="store_true", help="skip TRL (sr1lib's throughput, MFU and memory only)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="accelerator peak bf16 TFLOP/s for MFU (default: known GPUs; none on CPU)")
    p.add_argument("--out", default=None, help="also write the JSON object to this file")
    p.set_defaults(func=run)


def reward_text(response: str) -> float:
    """A reward with variance on a random model: an even number of words scores 1."""
    return float(len(response.split()) % 2 == 0)


def build_model(out: Path, hidden: int, layers: int, shape: str = "tiny", device: str = "cpu",
                texts: list[str] | None = None) -> Path:
    """A random-weight Qwen2 (tiny, or one of SHAPES) with a BPE tokenizer trained on `texts`
    (default: this benchmark's no-search prompts and answers), saved to `out`."""
    import torch

    from sr1lib.models import build_tiny_model, save_model, train_tokenizer
    from sr1lib.protocol import build_prompt

    texts = texts or [build_prompt(q, mode="no_search") + " <think> maybe </think> <answer> nile </answer>"
                      for q in QUESTIONS] * 40
    # Tags split into pieces (as in real Qwen tokenizers): a random model then almost never samples a
    # stop string by chance, so both sides generate the same number of tokens.
    tok = train_tokenizer(texts, vocab_size=2000, atomic_tags=False)
    if shape == "tiny":
        return save_model(build_tiny_model(tok, hidden_size=hidden, num_layers=layers, num_heads=4, seed=0), tok, out)
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**SHAPES[shape], max_position_embeddings=32768, rope_theta=1e6, tie_word_embeddings=True,
                      bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.device(device):  # initialising 1.5 B parameters is much faster on the GPU
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    return save_model(model, tok, out)


def forward_tokens(trajectories: list[Any], micro_batch_size: int = 0) -> int:
    """Tokens a prefix-shared forward pass runs over `trajectories` in micro-batches of
    `micro_batch_size` rows (0 = one): each distinct prompt once per micro-batch, every response token."""
    from sr1lib.train.batched import micro_slices

    total = 0
    for sl in micro_slices(len(trajectories), micro_batch_size):
        rows = trajectories[sl]
        total += sum(len(p) for p in {t.prompt_ids for t in rows}) + sum(t.n_response_tokens for t in rows)
    return total


def peak_tflops_for(device_name: str, override: float | None = None) -> tuple[float | None, str]:
    """(dense bf16 peak TFLOP/s, where it comes from) for a device name; (None, ...) when unknown."""
    if override:
        return override, "--peak-tflops"
    keys = sorted((k for k in PEAK_TFLOPS if k in device_name), key=len)
    if not keys:
        return None, f"unknown for {device_name!r}: pass --peak-tflops"
    return PEAK_TFLOPS[keys[-1]], f"datasheet dense bf16 of {keys[-1]} (sr1lib.bench.train.PEAK_TFLOPS)"


def _median_phases(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def sr1_stepper(model: Path, args: Any, device: str) -> Any:
    """A function running one timed sr1lib GRPO step and returning its phases."""
    from sr1lib import config as C
    from sr1lib.train.step import Trainer
    from sr1lib.types import QARecord

    cfg = C.with_overrides(C.RunConfig(), [
        f"train.model={model}", f"train.device={device}", f"train.lr={args.lr}", "train.grad_clip=1.0",
        "algorithm.name=grpo", f"algorithm.kl_coef={args.kl}", "algorithm.kl_type=low_var_kl",
        "algorithm.loss_agg_mode=token-mean", f"rollout.group_size={args.group}",
        f"rollout.max_new_tokens={args.max_new_tokens}", f"rollout.max_response_tokens={args.max_new_tokens}",
        "rollout.max_prompt_tokens=4096", "rollout.max_turns=0", "rollout.prompt_mode=no_search",
        f"train.batch_size={args.questions}"])
    trainer = Trainer(cfg, retriever=None, reward_fn=lambda r, g: reward_text(r))
    records = [QARecord(f"bench/{i}", QUESTIONS[i % len(QUESTIONS)] + f" ({i})", ("nile",), "bench")
               for i in range(args.questions)]
    counter = [0]

    def one_step() -> dict[str, float]:
        counter[0] += 1
        m, trajs = trainer.step(counter[0], records)
        # tokens the update's forward pass actually runs: each distinct prompt once (prefix sharing)
        run_tokens = forward_tokens(trajs)
        return {"step_s": m["step_s"], "generate_s": m["generate_s"], "logprobs_s": m["logprob_s"],
                "update_s": m["step_s"] - m["generate_s"] - m["logprob_s"], "update_only_s": m["update_s"],
                "completion_tokens": sum(t.n_model_tokens for t in trajs) / len(trajs),
                "sequence_tokens": float(m["tokens"]), "forward_tokens": float(run_tokens)}
    one_step.trainer = trainer  # type: ignore[attr-defined]
    return one_step


def bench_both(model: Path, args: Any, device: str) -> tuple[dict[str, float], dict[str, float], Any]:
    """Alternate TRL and sr1lib steps (an sr1lib step runs right after each TRL optimizer step, outside
    TRL's timed window), so load from other processes slows both sides alike. Median phases of the
    timed steps: (sr1lib, trl, the sr1lib Trainer)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from sr1lib.models import load_tokenizer
    from sr1lib.protocol import build_prompt

    tok = load_tokenizer(model)
    prompts = [build_prompt(QUESTIONS[i % len(QUESTIONS)] + f" ({i})", tok, mode="no_search")
               for i in range(args.questions)]
    n = args.questions * args.group
    steps = args.warmup + args.steps
    cuda = device.startswith("cuda")
    cfg = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="sr1-bench-trl-"), per_device_train_batch_size=n,
        gradient_accumulation_steps=1, num_generations=args.group, max_completion_length=args.max_new_tokens,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        beta=args.kl, loss_type="dapo", scale_rewards="group", temperature=1.0, top_p=1.0, top_k=0,
        max_steps=steps, num_iterations=1, logging_steps=1, save_strategy="no", report_to=[],
        disable_tqdm=True, use_cpu=not cuda, bf16=cuda, seed=0, dataloader_num_workers=0, log_completions=False,
    )
    data = Dataset.from_list([{"prompt": prompts[i % len(prompts)]} for i in range(args.questions * steps)])

    def reward(prompts: list, completions: list, **kw: Any) -> list[float]:
        return [reward_text(c) for c in completions]

    policy = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32)
    trainer = GRPOTrainer(model=policy, reward_funcs=reward, args=cfg, train_dataset=data, processing_class=tok)
    phases = {"generate_s": 0.0, "logprobs_s": 0.0, "completion_tokens": 0.0}
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)

    def timed(fn: Any, key: str, only_no_grad: bool = False) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            if only_no_grad and torch.is_grad_enabled():
                return fn(*a, **kw)
            sync()
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            sync()
            phases[key] += time.perf_counter() - t0
            if key == "generate_s":
                phases["completion_tokens"] += sum(len(c) for c in out[0]) / n
            return out
        return wrapper

    trainer._generate_single_turn = timed(trainer._generate_single_turn, "generate_s")
    trainer._get_per_token_logps_and_entropies = timed(trainer._get_per_token_logps_and_entropies, "logprobs_s",
                                                       only_no_grad=True)
    rows: list[dict[str, float]] = []
    ours: list[dict[str, float]] = []
    sr1_step = sr1_stepper(model, args, device)

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a: Any, **kw: Any) -> None:
            sync()
            phases.update(generate_s=0.0, logprobs_s=0.0, completion_tokens=0.0)
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **kw: Any) -> None:
            sync()
            dt = time.perf_counter() - self.t0
            rows.append({"step_s": dt, **phases, "update_s": dt - phases["generate_s"] - phases["logprobs_s"]})
            ours.append(sr1_step())

    trainer.add_callback(StepTimer())
    trainer.train()
    return _median_phases(ours[args.warmup:]), _median_phases(rows[args.warmup:]), sr1_step.trainer


def hardware_figures(ours: dict[str, float], trainer: Any, device: str, peak_tflops: float | None) -> dict[str, Any]:
    """Update tokens/s and MFU, generation tokens/s, peak memory of the sr1lib side.

    MFU counts 6 x parameters FLOPs per token the update's forward pass runs (each distinct prompt
    once, every response token; attention's quadratic term left out), over the policy update's own
    time, against the accelerator's dense bf16 peak."""
    import torch

    n_params = sum(p.numel() for p in trainer.models.policy.parameters())
    n_traj = trainer.cfg.train.batch_size * trainer.cfg.rollout.group_size
    out: dict[str, Any] = {
        "params": n_params,
        "update_tokens_per_s": round(ours["forward_tokens"] / ours["update_only_s"], 1),
        "generate_tokens_per_s": round(ours["completion_tokens"] * n_traj / ours["generate_s"], 1),
    }
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(0)
        peak_tflops = peak_tflops_for(name, peak_tflops)[0]
        out["gpu"] = name
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if peak_tflops:
        flops = 6 * n_params * ours["forward_tokens"] / ours["update_only_s"]
        out["update_mfu"] = round(flops / (peak_tflops * 1e12), 4)
        out["peak_tflops"] = peak_tflops
    return out


def run(args: Any) -> int:
    import torch

    from sr1lib.errors import Sr1Error
    from sr1lib.models import pick_device

    trl_version = None
    if not args.sr1_only:
        try:
            import trl
        except ImportError:
            raise Sr1Error("sr1 bench train needs TRL: pip install -e '.[bench]' (or pass --sr1-only)") from None
        trl_version = trl.__version__
        if int(trl_version.split(".")[0]) < 1:  # phases are read from TRL 1.x's GRPOTrainer methods
            raise Sr1Error(f"sr1 bench train needs TRL >= 1.0, found {trl_version}; upgrade it or pass --sr1-only")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(pick_device(args.device))
    with tempfile.TemporaryDirectory(prefix="sr1-bench-train-") as tmp:
        model = Path(args.model) if args.model else build_model(Path(tmp) / "model", args.hidden, args.layers,
                                                                 args.shape, device)
        if args.sr1_only:
            step = sr1_stepper(model, args, device)
            ours = _median_phases([step() for _ in range(args.warmup + args.steps)][args.warmup:])
            theirs, trainer = None, step.trainer
        else:
            ours, theirs, trainer = bench_both(model, args, device)
        hardware = hardware_figures(ours, trainer, device, args.peak_tflops)
    result: dict[str, Any] = {"sr1lib_step_s": round(ours["step_s"], 4)}
    if theirs is not None:
        result.update({
            "trl_step_s": round(theirs["step_s"], 4), "speedup": round(theirs["step_s"] / ours["step_s"], 3),
            # per completion token, in case the two sides' samples differ in length
            "speedup_per_token": round((theirs["step_s"] / theirs["completion_tokens"])
                                       / (ours["step_s"] / ours["completion_tokens"]), 3)})
    result["phases"] = {"sr1lib": {k: round(v, 4) for k, v in ours.items()}}
    if theirs is not None:
        result["phases"]["trl"] = {k: round(v, 4) for k, v in theirs.items()}
    shape = args.shape if args.shape != "tiny" else f"tiny qwen2 hidden {args.hidden} x {args.layers} layers"
    result["hardware"] = hardware
    result["settings"] = {
        "model": str(args.model or shape), "questions": args.questions, "group": args.group,
        "max_new_tokens": args.max_new_tokens, "kl": args.kl, "steps": args.steps, "warmup": args.warmup,
        "device": device, "threads": torch.get_num_threads(), "trl": trl_version, "torch": torch.__version__,
        "machine": platform.machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    print(json.dumps(result))
    if args.out:
        from sr1lib.fsutil import write_text_atomic

        write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    return 0
