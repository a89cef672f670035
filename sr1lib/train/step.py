"""One RL step, top to bottom: rollout -> reference and old log-probs (and values) -> rewards (+ KL in
the reward) -> advantages (estimator by `algorithm.name`) -> policy update -> critic update -> metrics.

`Trainer` holds the models, optimizers, schedulers, generator and retriever of a run; `train()`
(`sr1lib.train.loop`) drives it step by step and owns the run folder.

Masks (all [B, T-1], over target tokens; see `sr1lib.masking` and `sr1lib.train.forward`):
- `model`: tokens the policy sampled; the outcome reward sits on each row's last one;
- `response`: every token after the prompt (model, retrieved, feedback);
- policy loss and KL: `model` when `algorithm.mask_retrieved` (Search-R1), else `response`
  (the paper's ablation: retrieved and feedback tokens are trained on as if sampled);
- critic and GAE: `response` when `algorithm.critic_sees_retrieved` (Search-R1's behaviour),
  else GAE skips non-model tokens (`obs_mask`) and the value loss ignores them.
KL placement: `algorithm.kl_in_reward` subtracts kl_coef * KL(old policy || ref) per token from the
reward (PPO in Search-R1); otherwise kl_coef * KL(policy || ref) is a loss term (GRPO in Search-R1).
Outcome estimators (grpo, rloo, reinforce) take each row's summed token rewards as its score.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Sequence

import torch

from sr1lib import algos
from sr1lib.config import RunConfig
from sr1lib.masking import build_padded
from sr1lib.rollout import rollout
from sr1lib.train.batched import TokenBatch, batched_logprobs, batched_values, micro_slices
from sr1lib.train.networks import Models, build_models
from sr1lib.train.update import (CriticBatch, NonFiniteLossError, PolicyBatch, PolicyLossConfig, update_critic,
                                 update_policy)
from sr1lib.types import QARecord, Trajectory

RewardFn = Callable[[str, Sequence[str]], float]
# algorithm.name -> advantage estimator of sr1lib.algos
ESTIMATOR = {"ppo": "gae", "grpo": "grpo", "rloo": "rloo", "reinforce": "reinforce"}


def token_masks(pb: Any, algo: Any) -> dict[str, torch.Tensor | None]:
    """The step's masks over target tokens ([B, T-1]) from a `masking.PaddedBatch` and an
    `AlgorithmConfig` (see the module docstring): model, response, policy, obs (None when the
    critic sees everything) and value."""
    model, response = pb.loss_mask[:, 1:], pb.response_mask[:, 1:]
    obs = None if algo.critic_sees_retrieved else response - model
    return {"model": model, "response": response, "policy": model if algo.mask_retrieved else response,
            "obs": obs, "value": response if obs is None else model}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warmup_schedule(warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor for training step s (0-based): (s + 1) / warmup until it reaches 1."""
    return lambda s: min(1.0, (s + 1) / warmup_steps) if warmup_steps > 0 else 1.0


class Trainer:
    """The state of one run and its `step()`. `policy_path` / `critic_path` / `adapter_path` point at a
    checkpoint when resuming (the reference is always `cfg.train.model`)."""

    def __init__(self, cfg: RunConfig, *, retriever: Any, reward_fn: RewardFn, prompt_mode: str = "search",
                 policy_path: str | None = None, critic_path: str | None = None,
                 adapter_path: str | None = None, device: torch.device | None = None) -> None:
        from sr1lib.generators import make_generator
        from sr1lib.models import pick_device

        self.cfg, self.retriever, self.reward_fn, self.prompt_mode = cfg, retriever, reward_fn, prompt_mode
        a, t = cfg.algorithm, cfg.train
        self.device = device or pick_device(t.device)
        self.need_ref = a.kl_coef > 0
        self.ppo = a.name == "ppo"
        self.models: Models = build_models(
            t.model, policy_path=policy_path, device=self.device, seed=cfg.seed,
            need_ref=self.need_ref, need_critic=self.ppo, lora_r=t.lora_r, bf16=t.bf16,
            ref_offload=t.ref_offload, gradient_checkpointing=t.gradient_checkpointing,
            critic_path=critic_path, adapter_path=adapter_path)
        self.pad_id = int(self.models.tokenizer.pad_token_id)
        # transformers drops the KV cache inside checkpointed layers, which prefix sharing needs
        self.share_prefix = t.prefix_sharing and not t.gradient_checkpointing
        fused = self.device.type == "cuda"  # one kernel per step on GPU; CPU keeps the default
        params = [p for p in self.models.policy.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, fused=fused or None)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, warmup_schedule(t.warmup_steps))
        self.critic_opt = self.critic_sched = None
        if self.ppo:
            self.critic_opt = torch.optim.AdamW(self.models.critic.parameters(), lr=t.critic_lr,
                                                weight_decay=t.weight_decay, fused=fused or None)
            self.critic_sched = torch.optim.lr_scheduler.LambdaLR(self.critic_opt, warmup_schedule(t.warmup_steps))
        if cfg.rollout.generator == "hf":
            self.generator = make_generator("hf", model=self.models.policy, tokenizer=self.models.tokenizer)
        else:
            self.generator = make_generator(cfg.rollout.generator, model_path=policy_path or t.model, seed=cfg.seed)
        self.loss_cfg = PolicyLossConfig(
            clip_ratio=a.clip_ratio, dual_clip=a.dual_clip or None, loss_agg_mode=a.loss_agg_mode,
            kl_coef=0.0 if a.kl_in_reward else a.kl_coef, kl_type=a.kl_type, entropy_coef=a.entropy_coef,
            temperature=cfg.rollout.temperature, share_prefix=self.share_prefix)

    # ------------------------------------------------------------------ state for checkpoints

    def optim_state(self) -> dict[str, Any]:
        out = {"opt": self.opt.state_dict(), "sched": self.sched.state_dict()}
        if self.ppo:
            out.update(critic_opt=self.critic_opt.state_dict(), critic_sched=self.critic_sched.state_dict())
        return out

    def load_optim_state(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        if self.ppo:
            self.critic_opt.load_state_dict(state["critic_opt"])
            self.critic_sched.load_state_dict(state["critic_sched"])

    # ------------------------------------------------------------------ one step

    def rollout(self, records: Sequence[QARecord], step: int, *, greedy: bool = False) -> Any:
        rcfg = replace(self.cfg.rollout, greedy=True) if greedy else self.cfg.rollout
        with torch.no_grad(), self.models.autocast():
            return rollout(records, self.generator, self.retriever, rcfg, topk=self.cfg.retrieval.topk,
                           reward_fn=self.reward_fn, group_size=1 if greedy else rcfg.group_size, step=step,
                           prompt_mode=self.prompt_mode, seed=None if greedy else self.cfg.seed)

    def step(self, step: int, records: Sequence[QARecord]) -> tuple[dict[str, Any], list[Trajectory]]:
        cfg, a, t, m, dev = self.cfg, self.cfg.algorithm, self.cfg.train, self.models, self.device
        t0 = time.perf_counter()
        res = self.rollout(records, step)
        trajs = res.trajectories
        t_roll = time.perf_counter()

        bad = [(tr.uid, tr.reward) for tr in trajs if not torch.isfinite(torch.tensor(tr.reward))]
        if bad:
            raise NonFiniteLossError(f"step {step}: the reward function returned {bad[0][1]} for trajectory "
                                     f"{bad[0][0]} ({len(bad)} non-finite rewards); nothing was updated")
        pb = build_padded(trajs, self.pad_id).to(dev)
        masks = token_masks(pb, a)
        model_mask, resp_mask, pg_mask = masks["model"], masks["response"], masks["policy"]
        obs_mask, value_mask = masks["obs"], masks["value"]
        scores = torch.tensor([tr.reward for tr in trajs], dtype=torch.float32, device=dev)
        tokens = TokenBatch.of(pb)

        mini = t.mini_batch_size or len(trajs)
        need_old = t.ppo_epochs > 1 or len(micro_slices(len(trajs), mini)) > 1 or (a.kl_in_reward and self.need_ref)
        lp_kw = dict(micro_batch_size=t.micro_batch_size, temperature=cfg.rollout.temperature,
                     autocast_ctx=m.autocast, share_prefix=self.share_prefix)
        old = batched_logprobs(m.policy, tokens, **lp_kw) if need_old else None
        ref = None
        if self.need_ref:
            with m.reference() as ref_model:
                ref = batched_logprobs(ref_model, tokens, **lp_kw)
        values = None
        if self.ppo:
            values = batched_values(m.critic, tokens, micro_batch_size=t.micro_batch_size,
                                    autocast_ctx=m.autocast, share_prefix=self.share_prefix)
        _sync(dev)
        t_lp = time.perf_counter()

        rewards = algos.compute_token_level_scores(scores, model_mask)
        metrics: dict[str, Any] = {}
        if a.kl_in_reward and self.need_ref:
            rewards, kl = algos.apply_kl_penalty(rewards, old, ref, pg_mask, kl_coef=a.kl_coef, kind=a.kl_type)
            metrics["kl"] = float(algos.masked_mean(kl, model_mask))
        if self.ppo:
            adv, returns = algos.compute_gae_advantages(rewards, values, resp_mask, a.gamma, a.lam, obs_mask=obs_mask)
        else:
            opts = {"norm_by_std": a.norm_adv_by_std} if a.name == "grpo" else {}
            adv, returns = algos.get_advantage_estimator(ESTIMATOR[a.name])(
                rewards.sum(-1), [tr.group_id for tr in trajs], pg_mask, **opts)

        lr = self.sched.get_last_lr()[0]
        pol = update_policy(
            m.policy, self.opt,
            PolicyBatch(tokens, pg_mask, adv, old,
                        ref if self.loss_cfg.kl_coef else None, sampled=model_mask),
            self.loss_cfg, ppo_epochs=t.ppo_epochs, mini_batch_size=mini, micro_batch_size=t.micro_batch_size,
            grad_clip=t.grad_clip, autocast_ctx=m.autocast, where=f"step {step}: policy update")
        _sync(dev)
        t_upd = time.perf_counter()
        crit: dict[str, float] = {}
        if self.ppo:
            crit = update_critic(m.critic, self.critic_opt,
                                 CriticBatch(tokens, value_mask, returns, values),
                                 clip_range=a.value_clip, loss_agg_mode=a.loss_agg_mode, ppo_epochs=t.ppo_epochs,
                                 mini_batch_size=mini, micro_batch_size=t.micro_batch_size, grad_clip=t.grad_clip,
                                 autocast_ctx=m.autocast, share_prefix=self.share_prefix)
            self.critic_sched.step()
        self.sched.step()
        self.generator.update_weights(m.policy)
        _sync(dev)
        t_end = time.perf_counter()

        if not (a.kl_in_reward and self.need_ref) and self.loss_cfg.kl_coef:
            metrics["kl"] = pol["kl_loss_term"]
        n_tokens = int(pb.lengths.sum())
        metrics.update(res.metrics)
        metrics.update({
            "format_failure": 1.0 - res.metrics["finish_ratio"],
            "mask_coverage": float(pg_mask.sum() / resp_mask.sum().clamp(min=1)),
            # over sampled tokens, comparable between variants that train on retrieved tokens and not
            "advantage_mean": float(algos.masked_mean(adv, model_mask)),
            "advantage_abs_mean": float(algos.masked_mean(adv.abs(), model_mask)),
            **{k: v for k, v in pol.items() if k != "kl_loss_term"}, **crit,
            "lr": lr,
            "tokens": n_tokens,
            "rollout_s": t_roll - t0, "generate_s": res.timings["generate_s"],
            "retrieve_s": res.timings["retrieve_s"], "logprob_s": t_lp - t_roll,
            "update_s": t_upd - t_lp, "critic_s": t_end - t_upd, "step_s": t_end - t0,
            "tokens_per_s": n_tokens / max(t_end - t0, 1e-9),
        })
        if self.ppo:
            metrics["value_mean"] = float(algos.masked_mean(values, value_mask))
            metrics["return_mean"] = float(algos.masked_mean(returns, value_mask))
            metrics["critic_lr"] = self.critic_sched.get_last_lr()[0]
        return metrics, trajs

    def validate(self, records: Sequence[QARecord], step: int) -> dict[str, float]:
        """Greedy rollouts, one per question: val_em, val_reward_mean, val_searches_mean, ..."""
        res = self.rollout(records, step, greedy=True)
        keys = ("em", "reward_mean", "searches_mean", "finish_ratio", "response_tokens_mean")
        return {f"val_{k}": res.metrics[k] for k in keys}
