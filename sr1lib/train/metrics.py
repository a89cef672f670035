"""What one training step reports, assembled apart from the math: `step_metrics` reads the results
of each stage of `Trainer.step`, and `Stopwatch` times the stages from the caller.

Entropy, KL and advantages are reported over the tokens the policy sampled, so a variant whose loss
also trains on retrieved tokens reports numbers comparable with one that does not.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

import torch

from sr1lib import algos


class Stopwatch:
    """Seconds per named stage. On CUDA a stage ends with a device sync, so the kernels it queued
    count in it and not in the next one."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, {}
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def total(self) -> float:
        return time.perf_counter() - self.start


def step_metrics(*, rollout: Any, masks: dict[str, Any], lengths: torch.Tensor, advantages: torch.Tensor,
                 policy: dict[str, float], critic: dict[str, float], kl: float | None, lr: float,
                 values: torch.Tensor | None, returns: torch.Tensor, critic_lr: float | None,
                 seconds: dict[str, float], step_s: float) -> dict[str, Any]:
    """One metrics.jsonl row: the rollout's metrics, the updates' and these step-level ones."""
    sampled, response = masks["sampled"], masks["response"]
    n_tokens = int(lengths.sum())
    out: dict[str, Any] = {} if kl is None else {"kl": kl}
    out.update(rollout.metrics)
    out.update({
        "format_failure": 1.0 - rollout.metrics["finish_ratio"],
        "mask_coverage": float(masks["policy"].sum() / response.sum().clamp(min=1)),
        "advantage_mean": float(algos.masked_mean(advantages, sampled)),
        "advantage_abs_mean": float(algos.masked_mean(advantages.abs(), sampled)),
        **{k: v for k, v in policy.items() if k != "kl_loss_term"}, **critic,
        "lr": lr,
        "tokens": n_tokens,
        "rollout_s": seconds["rollout_s"], "generate_s": rollout.timings["generate_s"],
        "retrieve_s": rollout.timings["retrieve_s"], "logprob_s": seconds["logprob_s"],
        "update_s": seconds["update_s"], "critic_s": seconds["critic_s"], "step_s": step_s,
        "tokens_per_s": n_tokens / max(step_s, 1e-9),
    })
    if values is not None:
        out["value_mean"] = float(algos.masked_mean(values, masks["value"]))
        out["return_mean"] = float(algos.masked_mean(returns, masks["value"]))
        out["critic_lr"] = critic_lr
    return out
