"""One RL step, top to bottom: rollout -> batch -> no-grad passes (old and reference log-probs, values) ->
advantages (the estimator `algorithm.name` names, with KL in the reward when asked) -> updates
(policy, then critic) -> metrics (`sr1lib.train.metrics`).

`Trainer` holds the models, optimizers, schedulers, generator and retriever of a run; `train()`
(`sr1lib.train.loop`) drives it step by step and owns the run folder.

Masks (all [B, T-1], over target tokens; see `sr1lib.masking` and `sr1lib.train.forward`):
- `sampled`: tokens the policy sampled (`masking`'s `sampled_mask`); the outcome reward sits on
  each row's last one;
- `response`: every token after the prompt (model, retrieved, feedback);
- `policy` (policy loss and KL): `sampled` when `algorithm.mask_retrieved` (Search-R1), else
  `response` (the paper's ablation: retrieved and feedback tokens are trained on as if sampled);
- `obs` and `value` (GAE and the critic): GAE sees `response` and the value loss too when
  `algorithm.critic_sees_retrieved` (Search-R1's behaviour, `obs` None), else GAE skips the
  non-sampled tokens (`obs`) and the value loss sees `sampled` only.
KL placement: `algorithm.kl_in_reward` subtracts kl_coef * KL(old policy || ref) per token from the
reward (PPO in Search-R1); otherwise kl_coef * KL(policy || ref) is a loss term (GRPO in Search-R1).
Outcome estimators (grpo, rloo, reinforce) take each row's summed token rewards as its score.
Every estimator is called the same way (`algos.compute_advantages`); which one, and whether a critic
is trained, follows from `sr1lib.choices.ALGORITHMS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch

from sr1lib import algos, choices
from sr1lib.config import RunConfig
from sr1lib.masking import build_padded
from sr1lib.rollout import rollout
from sr1lib.train.batched import TokenBatch, batched_logprobs, batched_values, micro_slices
from sr1lib.train.metrics import Stopwatch, step_metrics
from sr1lib.train.networks import Models, build_models
from sr1lib.train.update import (CriticBatch, NonFiniteLossError, PolicyBatch, PolicyLossConfig, update_critic,
                                 update_policy)
from sr1lib.types import QARecord, Trajectory

RewardFn = Callable[[str, Sequence[str]], float]


def token_masks(pb: Any, algo: Any) -> dict[str, torch.Tensor | None]:
    """The step's masks over target tokens ([B, T-1]) from a `masking.PaddedBatch` and an
    `AlgorithmConfig` (see the module docstring): sampled, response, policy, obs (None when the
    critic sees everything) and value."""
    sampled, response = pb.sampled_mask[:, 1:], pb.response_mask[:, 1:]
    obs = None if algo.critic_sees_retrieved else response - sampled
    return {"sampled": sampled, "response": response, "policy": sampled if algo.mask_retrieved else response,
            "obs": obs, "value": response if obs is None else sampled}


@dataclass(frozen=True)
class StepBatch:
    """One step's trajectories as tensors: model inputs, the masks by role (`token_masks`), each
    row's outcome score [B] and group id."""

    tokens: TokenBatch
    masks: dict[str, torch.Tensor | None]
    scores: torch.Tensor
    group_ids: list[str]


@dataclass(frozen=True)
class Passes:
    """The no-grad passes over a step's batch, all [B, T-1]: the old policy's log-probs (None when
    the update is on-policy), the reference's (None without KL) and the critic's values (None
    without a critic)."""

    old: torch.Tensor | None
    ref: torch.Tensor | None
    values: torch.Tensor | None


def warmup_schedule(warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor for training step s (0-based): (s + 1) / warmup until it reaches 1."""
    return lambda s: min(1.0, (s + 1) / warmup_steps) if warmup_steps > 0 else 1.0


class Trainer:
    """The state of one run and its `step()`. `policy_path` / `critic_path` / `adapter_path` point at a
    checkpoint when resuming (the reference is always `cfg.train.model`)."""

    def __init__(self, cfg: RunConfig, *, retriever: Any, reward_fn: RewardFn,
                 policy_path: str | None = None, critic_path: str | None = None,
                 adapter_path: str | None = None, device: torch.device | None = None) -> None:
        from sr1lib.generators import make_generator
        from sr1lib.models import pick_device

        self.cfg, self.retriever, self.reward_fn = cfg, retriever, reward_fn
        a, t = cfg.algorithm, cfg.train
        self.device = device or pick_device(t.device)
        self.need_ref = a.kl_coef > 0
        self.has_critic = choices.needs_critic(a.name)
        self.models: Models = build_models(
            t.model, policy_path=policy_path, device=self.device, seed=cfg.seed,
            need_ref=self.need_ref, need_critic=self.has_critic, lora_r=t.lora_r, bf16=t.bf16,
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
        if self.has_critic:
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
        if self.has_critic:
            out.update(critic_opt=self.critic_opt.state_dict(), critic_sched=self.critic_sched.state_dict())
        return out

    def load_optim_state(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        if self.has_critic:
            self.critic_opt.load_state_dict(state["critic_opt"])
            self.critic_sched.load_state_dict(state["critic_sched"])

    # ------------------------------------------------------------------ one step

    def rollout(self, records: Sequence[QARecord], step: int, *, greedy: bool = False) -> Any:
        rcfg = replace(self.cfg.rollout, greedy=True) if greedy else self.cfg.rollout
        with torch.no_grad(), self.models.autocast():
            return rollout(records, self.generator, self.retriever, rcfg, topk=self.cfg.retrieval.topk,
                           reward_fn=self.reward_fn, group_size=1 if greedy else rcfg.group_size, step=step,
                           prompt_mode=rcfg.prompt_mode, seed=None if greedy else self.cfg.seed)

    def step(self, step: int, records: Sequence[QARecord]) -> tuple[dict[str, Any], list[Trajectory]]:
        clock = Stopwatch(self.device)
        with clock("rollout_s"):
            res = self.rollout(records, step)
        with clock("logprob_s"):
            batch = self.batch(res.trajectories, step)
            passes = self.passes(batch)
        with clock("update_s"):
            rewards, kl_in_reward = self.token_rewards(batch, passes)
            adv, returns = self.advantages(batch, passes, rewards)
            lr = self.sched.get_last_lr()[0]
            pol = self.update_policy(batch, passes, adv, step)
        with clock("critic_s"):
            crit = self.update_critic(batch, passes, returns)
            self.sched.step()
            self.generator.update_weights(self.models.policy)
        kl = kl_in_reward if kl_in_reward is not None else (pol["kl_loss_term"] if self.loss_cfg.kl_coef else None)
        metrics = step_metrics(
            rollout=res, masks=batch.masks, lengths=batch.tokens.lengths, advantages=adv, policy=pol, critic=crit,
            kl=kl, lr=lr, values=passes.values, returns=returns,
            critic_lr=self.critic_sched.get_last_lr()[0] if self.has_critic else None,
            seconds=clock.seconds, step_s=clock.total())
        return metrics, res.trajectories

    def batch(self, trajs: Sequence[Trajectory], step: int) -> StepBatch:
        """The trajectories as tensors on the device; a non-finite reward stops the step here."""
        bad = [(tr.uid, tr.reward) for tr in trajs if not torch.isfinite(torch.tensor(tr.reward))]
        if bad:
            raise NonFiniteLossError(f"step {step}: the reward function returned {bad[0][1]} for trajectory "
                                     f"{bad[0][0]} ({len(bad)} non-finite rewards); nothing was updated")
        pb = build_padded(trajs, self.pad_id).to(self.device)
        scores = torch.tensor([tr.reward for tr in trajs], dtype=torch.float32, device=self.device)
        return StepBatch(TokenBatch.of(pb), token_masks(pb, self.cfg.algorithm), scores,
                         [tr.group_id for tr in trajs])

    def _mini_batch_size(self, batch: StepBatch) -> int:
        return self.cfg.train.mini_batch_size or batch.tokens.rows

    def passes(self, batch: StepBatch) -> Passes:
        """Old and reference log-probs and values, as the update and the advantages need them."""
        a, t, m = self.cfg.algorithm, self.cfg.train, self.models
        n_minis = len(micro_slices(batch.tokens.rows, self._mini_batch_size(batch)))
        need_old = t.ppo_epochs > 1 or n_minis > 1 or (a.kl_in_reward and self.need_ref)
        lp_kw = dict(micro_batch_size=t.micro_batch_size, temperature=self.cfg.rollout.temperature,
                     autocast_ctx=m.autocast, share_prefix=self.share_prefix)
        old = batched_logprobs(m.policy, batch.tokens, **lp_kw) if need_old else None
        ref = None
        if self.need_ref:
            with m.reference() as ref_model:
                ref = batched_logprobs(ref_model, batch.tokens, **lp_kw)
        values = None
        if self.has_critic:
            values = batched_values(m.critic, batch.tokens, micro_batch_size=t.micro_batch_size,
                                    autocast_ctx=m.autocast, share_prefix=self.share_prefix)
        return Passes(old, ref, values)

    def token_rewards(self, batch: StepBatch, passes: Passes) -> tuple[torch.Tensor, float | None]:
        """Per-token rewards [B, T-1], with the KL penalty when it is in the reward (then also its
        mean over sampled tokens, else None)."""
        a, masks = self.cfg.algorithm, batch.masks
        rewards = algos.compute_token_level_scores(batch.scores, masks["sampled"])
        if not (a.kl_in_reward and self.need_ref):
            return rewards, None
        rewards, kl = algos.apply_kl_penalty(rewards, passes.old, passes.ref, masks["policy"], kl_coef=a.kl_coef,
                                             kind=a.kl_type)
        return rewards, float(algos.masked_mean(kl, masks["sampled"]))

    def advantages(self, batch: StepBatch, passes: Passes, rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, masks = self.cfg.algorithm, batch.masks
        inputs = algos.AdvantageInputs(
            token_rewards=rewards, response_mask=masks["response"], policy_mask=masks["policy"],
            group_ids=batch.group_ids, values=passes.values, obs_mask=masks["obs"], gamma=a.gamma, lam=a.lam,
            norm_by_std=a.norm_adv_by_std)
        return algos.compute_advantages(choices.ALGORITHMS[a.name], inputs)

    def update_policy(self, batch: StepBatch, passes: Passes, adv: torch.Tensor, step: int) -> dict[str, float]:
        t, m = self.cfg.train, self.models
        pb = PolicyBatch(batch.tokens, batch.masks["policy"], adv, passes.old,
                         passes.ref if self.loss_cfg.kl_coef else None, sampled_mask=batch.masks["sampled"])
        return update_policy(m.policy, self.opt, pb, self.loss_cfg, ppo_epochs=t.ppo_epochs,
                             mini_batch_size=self._mini_batch_size(batch), micro_batch_size=t.micro_batch_size,
                             grad_clip=t.grad_clip, autocast_ctx=m.autocast, where=f"step {step}: policy update")

    def update_critic(self, batch: StepBatch, passes: Passes, returns: torch.Tensor) -> dict[str, float]:
        """The critic's update on the returns (nothing without a critic)."""
        if not self.has_critic:
            return {}
        a, t, m = self.cfg.algorithm, self.cfg.train, self.models
        out = update_critic(m.critic, self.critic_opt, CriticBatch(batch.tokens, batch.masks["value"], returns,
                                                                   passes.values),
                            clip_range=a.value_clip, loss_agg_mode=a.loss_agg_mode, ppo_epochs=t.ppo_epochs,
                            mini_batch_size=self._mini_batch_size(batch), micro_batch_size=t.micro_batch_size,
                            grad_clip=t.grad_clip, autocast_ctx=m.autocast, share_prefix=self.share_prefix)
        self.critic_sched.step()
        return out

    def validate(self, records: Sequence[QARecord], step: int) -> dict[str, float]:
        """Greedy rollouts, one per question: val_em, val_reward_mean, val_searches_mean, ..."""
        res = self.rollout(records, step, greedy=True)
        keys = ("em", "reward_mean", "searches_mean", "finish_ratio", "response_tokens_mean")
        return {f"val_{k}": res.metrics[k] for k in keys}
