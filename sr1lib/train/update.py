"""Policy and critic updates: PPO epochs over mini-batches, micro-batches with gradient accumulation,
gradient clipping, and the stop on a non-finite loss.

One optimizer step per mini-batch. Within it, every micro-batch's loss is aggregated with the WHOLE
mini-batch's token (or sequence) count (`sr1lib.algos.aggregate_loss`), so the accumulated gradient
equals that of one pass over the mini-batch (tests/test_train_update.py checks it on a real model).
Mini-batches keep the rollout's order (no shuffling), as verl's actor does by default.

On-policy shortcut: with one PPO epoch and one mini-batch the policy has not moved when its loss is
computed, so the "old" log-probs are the current ones detached (ratio exactly 1, the same gradient);
the trainer then skips the separate old-log-prob pass, as TRL's GRPOTrainer does.

A non-finite loss or gradient norm raises `NonFiniteLossError` BEFORE `optimizer.step()`, so the
weights never absorb it and no checkpoint of that step is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from sr1lib import algos
from sr1lib.errors import Sr1Error
from sr1lib.train.batched import TokenBatch, critic_forward, micro_forward, micro_slices, policy_forward, trim

Tensor = torch.Tensor


class NonFiniteLossError(Sr1Error, FloatingPointError):
    """A loss or gradient norm became NaN/inf; the update was stopped before the optimizer step."""


@dataclass(frozen=True)
class PolicyBatch:
    """Inputs of the policy update: the model inputs and per-token tensors [B, T-1] (targets).

    `old_logprob` None means on-policy (see the module docstring); `ref_logprob` None means no KL
    loss term.
    """

    tokens: TokenBatch
    policy_mask: Tensor  # tokens the policy loss sees
    advantages: Tensor
    old_logprob: Tensor | None = None
    ref_logprob: Tensor | None = None
    # tokens the policy sampled (None: `policy_mask`): entropy and KL are reported over them, so variants
    # whose loss also sees retrieved tokens report numbers comparable with those that do not
    sampled_mask: Tensor | None = None


@dataclass(frozen=True)
class PolicyLossConfig:
    clip_ratio: float = 0.2
    dual_clip: float | None = None
    loss_agg_mode: str = "token-mean"
    kl_coef: float = 0.0  # KL loss term weight (0 = none: KL in the reward, or no KL)
    kl_type: str = "low_var_kl"
    entropy_coef: float = 0.0
    temperature: float = 1.0
    share_prefix: bool = False  # sr1lib.train.prefix


@dataclass(frozen=True)
class CriticBatch:
    """Inputs of the critic update: the model inputs and per-token tensors [B, T-1] (targets)."""

    tokens: TokenBatch
    value_mask: Tensor  # tokens the value loss sees
    returns: Tensor
    old_values: Tensor


def _rows(batch: Any, sl: slice | Tensor) -> dict[str, Any]:
    """The fields of a Policy/CriticBatch for rows `sl` (None stays None)."""
    return {k: (None if v is None else v[sl]) for k, v in vars(batch).items()}


def _check_finite(values: dict[str, Tensor], where: str) -> None:
    bad = [k for k, v in values.items() if not math.isfinite(float(v))]
    if bad:
        raise NonFiniteLossError(
            f"{where}: non-finite {', '.join(f'{k}={float(values[k])}' for k in bad)}; the optimizer step "
            "was skipped and no checkpoint of this step is written. Usual causes: a reward function that "
            "returned NaN/inf, a learning rate too high (try train.lr / 10), or fp16 overflow; resume from "
            "the last checkpoint with --resume after fixing it")


def accumulate_policy_grads(policy: Any, mb: PolicyBatch, cfg: PolicyLossConfig, *, micro_batch_size: int,
                            autocast_ctx: Callable[[], Any]) -> dict[str, Tensor]:
    """Forward + backward over one mini-batch in micro-batches; gradients accumulate in `.grad`.

    Returns detached sums for the metrics without a device sync: `loss`, `pg_loss`; over the loss
    mask (`tokens`) `clip_fraction`, `approx_kl`, `entropy_loss_mask`; over the sampled tokens
    (`sampled_tokens`) `entropy` and `kl`.
    """
    n_tok = mb.policy_mask.sum().clamp(min=1)
    n_trained = algos.trained_row_count(mb.policy_mask)  # the seq-mean denominator of the whole mini-batch
    dev = mb.policy_mask.device
    keys = ("loss", "pg_loss", "clip_fraction", "approx_kl", "entropy", "entropy_loss_mask", "kl")
    acc = {k: torch.zeros((), device=dev) for k in keys}
    acc["tokens"] = mb.policy_mask.sum()
    acc["sampled_tokens"] = (mb.policy_mask if mb.sampled_mask is None else mb.sampled_mask).sum()

    def forward(tokens: TokenBatch) -> tuple[Tensor, Tensor | None]:
        return policy_forward(policy, tokens, temperature=cfg.temperature, with_entropy=True,
                              entropy_grad=bool(cfg.entropy_coef), share_prefix=cfg.share_prefix)

    for sl, n, (logp, ent) in micro_forward(mb.tokens, micro_batch_size, forward, autocast_ctx):
        r = _rows(mb, sl)
        mask, adv = trim(r["policy_mask"], n - 1), trim(r["advantages"], n - 1)
        sampled = mask if r["sampled_mask"] is None else trim(r["sampled_mask"], n - 1)
        old = logp.detach() if r["old_logprob"] is None else trim(r["old_logprob"], n - 1)
        pg_loss, clip_frac, approx_kl = algos.compute_policy_loss(
            old, logp, adv, mask, clip_ratio=cfg.clip_ratio, dual_clip=cfg.dual_clip,
            loss_agg_mode=cfg.loss_agg_mode, num_tokens=n_tok, num_seqs=n_trained)
        loss = pg_loss
        agg = lambda x: algos.aggregate_loss(x, mask, cfg.loss_agg_mode, num_tokens=n_tok, num_seqs=n_trained)  # noqa: E731
        if cfg.entropy_coef:
            loss = loss - cfg.entropy_coef * agg(ent)
        if r["ref_logprob"] is not None and cfg.kl_coef:
            kl = algos.compute_kl(logp, trim(r["ref_logprob"], n - 1), cfg.kl_type)
            loss = loss + cfg.kl_coef * agg(kl)
            acc["kl"] += algos.masked_sum(kl.detach(), sampled)
        loss.backward()
        micro_tok = mask.sum()
        acc["loss"] += loss.detach()
        acc["pg_loss"] += pg_loss.detach()
        acc["clip_fraction"] += clip_frac.detach() * micro_tok
        acc["approx_kl"] += approx_kl.detach() * micro_tok
        acc["entropy"] += algos.masked_sum(ent.detach(), sampled)
        acc["entropy_loss_mask"] += algos.masked_sum(ent.detach(), mask)
    return acc


def _clip(params: list[Tensor], max_norm: float) -> Tensor:
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else math.inf)


def update_policy(policy: Any, optimizer: torch.optim.Optimizer, batch: PolicyBatch, cfg: PolicyLossConfig, *,
                  ppo_epochs: int, mini_batch_size: int, micro_batch_size: int, grad_clip: float,
                  autocast_ctx: Callable[[], Any], where: str = "policy update") -> dict[str, float]:
    """PPO epochs x mini-batches of optimizer steps on `policy`; metrics averaged over them."""
    params = [p for p in policy.parameters() if p.requires_grad]
    b = batch.tokens.rows
    sums: dict[str, Tensor] = {}
    norms = []
    n_steps = 0
    policy.train()
    try:
        for epoch in range(ppo_epochs):
            for sl in micro_slices(b, mini_batch_size):
                optimizer.zero_grad(set_to_none=True)
                acc = accumulate_policy_grads(policy, PolicyBatch(**_rows(batch, sl)), cfg,
                                              micro_batch_size=micro_batch_size, autocast_ctx=autocast_ctx)
                norm = _clip(params, grad_clip)
                _check_finite({"loss": acc["loss"], "grad_norm": norm},
                              f"{where} (epoch {epoch + 1}, rows {sl.start}-{sl.stop - 1})")
                optimizer.step()
                norms.append(norm.detach())
                n_steps += 1
                for k, v in acc.items():
                    sums[k] = sums.get(k, 0) + v
    finally:
        optimizer.zero_grad(set_to_none=True)
        policy.eval()
    tok = float(sums["tokens"]) or 1.0
    sampled_tok = float(sums["sampled_tokens"]) or 1.0
    return {
        "policy_loss": float(sums["pg_loss"]) / n_steps,
        "loss": float(sums["loss"]) / n_steps,
        "clip_fraction": float(sums["clip_fraction"]) / tok,
        "approx_kl": float(sums["approx_kl"]) / tok,
        "entropy": float(sums["entropy"]) / sampled_tok,
        "entropy_loss_mask": float(sums["entropy_loss_mask"]) / tok,
        "kl_loss_term": float(sums["kl"]) / sampled_tok,
        "grad_norm": float(torch.stack(norms).mean()),
        "optimizer_steps": float(n_steps),
    }


def update_critic(critic: Any, optimizer: torch.optim.Optimizer, batch: CriticBatch, *, clip_range: float,
                  loss_agg_mode: str, ppo_epochs: int, mini_batch_size: int, micro_batch_size: int,
                  grad_clip: float, autocast_ctx: Callable[[], Any], share_prefix: bool = False) -> dict[str, float]:
    """Clipped value-loss regression of the critic on the GAE returns, same batching as the policy."""
    params = [p for p in critic.parameters() if p.requires_grad]
    b = batch.tokens.rows
    loss_sum, frac_sum, tok_sum, norms = torch.zeros(()), torch.zeros(()), torch.zeros(()), []

    def forward(tokens: TokenBatch) -> Tensor:
        return critic_forward(critic, tokens, share_prefix=share_prefix)

    critic.train()
    try:
        for epoch in range(ppo_epochs):
            for sl in micro_slices(b, mini_batch_size):
                optimizer.zero_grad(set_to_none=True)
                mb = CriticBatch(**_rows(batch, sl))
                n_tok = mb.value_mask.sum().clamp(min=1)
                n_trained = algos.trained_row_count(mb.value_mask)
                total = torch.zeros((), device=mb.value_mask.device)
                for msl, n, values in micro_forward(mb.tokens, micro_batch_size, forward, autocast_ctx):
                    r = _rows(mb, msl)
                    mask = trim(r["value_mask"], n - 1)
                    loss, frac = algos.compute_value_loss(values, trim(r["old_values"], n - 1),
                                                          trim(r["returns"], n - 1), mask, clip_range=clip_range,
                                                          loss_agg_mode=loss_agg_mode, num_tokens=n_tok,
                                                          num_seqs=n_trained)
                    loss.backward()
                    total += loss.detach()
                    frac_sum = frac_sum + (frac.detach() * mask.sum()).cpu()
                norm = _clip(params, grad_clip)
                _check_finite({"value_loss": total, "critic_grad_norm": norm},
                              f"critic update (epoch {epoch + 1}, rows {sl.start}-{sl.stop - 1})")
                optimizer.step()
                loss_sum = loss_sum + total.cpu()
                tok_sum = tok_sum + mb.value_mask.sum().cpu()
                norms.append(norm.detach().cpu())
    finally:
        optimizer.zero_grad(set_to_none=True)
        critic.eval()
    return {"value_loss": float(loss_sum) / max(len(norms), 1),
            "value_clip_fraction": float(frac_sum) / max(float(tok_sum), 1.0),
            "critic_grad_norm": float(torch.stack(norms).mean())}
