"""Masked statistics, loss aggregation, per-token rewards, KL estimators, policy and value losses and
entropy: the pure tensor math of `sr1lib.algos` other than advantages (its docstring has the
glossary and where this departs from verl).
"""

from __future__ import annotations

from typing import Callable

import torch

Tensor = torch.Tensor

# The log-ratio is clamped before exp() so one wild token cannot overflow the ratio (verl does too).
LOG_RATIO_CLAMP = 20.0
# k3's output is clamped to [-10, 10] as in verl / Search-R1's `kl_penalty("low_var_kl")`.
LOW_VAR_KL_CLAMP = 10.0


# ----------------------------------------------------------------------------- masked statistics


def as_float(scores: Tensor) -> Tensor:
    return scores if scores.dtype.is_floating_point else scores.float()


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of `x` where `mask` is 1. x, mask: same shape; dim=None sums everything."""
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` where `mask` is 1; 0 where nothing counts (as verl 0.9.1; Search-R1's fork gives NaN)."""
    n = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(x, mask, dim) / n.clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the masked entries; 0 outside the mask.

    x, mask: [B, T] -> [B, T]. The variance is unbiased (Bessel) as verl's `masked_whiten`,
    falling back to the biased one when a single entry counts instead of raising.
    """
    n = mask.sum()
    mean = masked_sum(x, mask) / n.clamp(min=1)
    var = masked_sum((x - mean) ** 2, mask) / (n - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(var + eps) * mask


# ----------------------------------------------------------------------------- loss aggregation


def _agg_token_mean(loss_mat: Tensor, mask: Tensor, num_tokens: Tensor | float | None,
                    num_seqs: Tensor | int | None) -> Tensor:
    denom = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
    return masked_sum(loss_mat, mask) / denom


def trained_row_count(mask: Tensor) -> Tensor:
    """Rows of `mask` [B, T] with at least one counted token, at least 1: the seq-mean denominator.

    verl 0.9.1's `agg_loss` leaves fully masked rows out of the mean (a trajectory truncated before
    its first sampled token must not dilute the others); the floor of 1 keeps an empty batch at 0.
    """
    return (mask.sum(-1) > 0).sum().clamp(min=1)


def _agg_seq_mean_token_sum(loss_mat: Tensor, mask: Tensor, num_tokens: Tensor | float | None,
                            num_seqs: Tensor | int | None) -> Tensor:
    per_seq = masked_sum(loss_mat, mask, dim=-1)
    return per_seq.sum() / (trained_row_count(mask) if num_seqs is None else num_seqs)


def _agg_seq_mean_token_mean(loss_mat: Tensor, mask: Tensor, num_tokens: Tensor | float | None,
                             num_seqs: Tensor | int | None) -> Tensor:
    per_seq = masked_mean(loss_mat, mask, dim=-1)  # a row with no counted token adds 0 and is not counted
    return per_seq.sum() / (trained_row_count(mask) if num_seqs is None else num_seqs)


LOSS_AGG_MODES: dict[str, Callable[..., Tensor]] = {
    "token-mean": _agg_token_mean,
    "seq-mean-token-sum": _agg_seq_mean_token_sum,
    "seq-mean-token-mean": _agg_seq_mean_token_mean,
}


def aggregate_loss(loss_mat: Tensor, mask: Tensor, mode: str = "token-mean", *,
                   num_tokens: Tensor | float | None = None, num_seqs: Tensor | int | None = None) -> Tensor:
    """Reduce a per-token loss to a scalar (verl 0.9.1 `agg_loss`).

    loss_mat, mask: [B, T] -> scalar.
    - token-mean:          sum(loss * mask) / number of counted tokens (DAPO, arXiv 2503.14476);
    - seq-mean-token-sum:  mean of the per-row masked sums over rows with a counted token;
    - seq-mean-token-mean: mean of the per-row masked means over rows with a counted token (GRPO
      paper, arXiv 2402.03300).

    >>> loss, mask = torch.ones(2, 3), torch.tensor([[1.0, 1, 1], [0, 0, 0]])
    >>> [float(aggregate_loss(loss, mask, m)) for m in ("seq-mean-token-mean", "seq-mean-token-sum")]
    [1.0, 3.0]

    Micro-batching: pass the WHOLE mini-batch's counted tokens as `num_tokens` (token-mean) or its
    `trained_row_count` as `num_seqs` (seq-mean-*); the sum of the micro-batch losses then equals
    the mini-batch loss exactly (OpenRLHF's argument; tests/test_algos.py proves it).
    """
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {mode!r}; valid modes are {sorted(LOSS_AGG_MODES)}")
    return LOSS_AGG_MODES[mode](loss_mat, mask, num_tokens, num_seqs)


# ----------------------------------------------------------------------------- rewards per token


def compute_token_level_scores(scores: Tensor, mask: Tensor) -> Tensor:
    """Put each row's outcome score on its LAST masked position (verl puts it on the last response
    token; pass the model-token mask to put it on the last token the model sampled).

    scores: [B]; mask: [B, T] -> [B, T], zero elsewhere. A row with no masked position gets nothing.
    """
    t_len = mask.shape[-1]
    has = mask.sum(-1) > 0
    last = t_len - 1 - torch.argmax(mask.flip(-1).gt(0).to(torch.int8), dim=-1)
    out = torch.zeros(mask.shape, dtype=as_float(scores).dtype, device=mask.device)
    return out.scatter(1, last[:, None], torch.where(has, scores.to(out.dtype), 0.0)[:, None])


def apply_kl_penalty(token_level_scores: Tensor, logprob: Tensor, ref_logprob: Tensor, mask: Tensor, *,
                     kl_coef: float, kind: str = "kl") -> tuple[Tensor, Tensor]:
    """KL in the reward, as PPO in Search-R1 / verl `apply_kl_penalty` (InstructGPT, arXiv 2203.02155).

    token_level_scores, logprob, ref_logprob, mask: [B, T] -> (token_level_rewards, kl) [B, T]:
    rewards = scores - kl_coef * KL_t on masked tokens, KL_t = compute_kl(logprob, ref_logprob, kind)
    (0 outside the mask). The trainer passes the trained-token mask, so a retrieved passage (not
    chosen by the policy) is not penalised for how unlikely the policy finds it.
    """
    kl = compute_kl(logprob, ref_logprob, kind) * mask
    return token_level_scores - kl_coef * kl, kl


# ----------------------------------------------------------------------------- KL estimators


def _kl_k1(logprob: Tensor, ref_logprob: Tensor) -> Tensor:
    return logprob - ref_logprob


def _kl_abs(logprob: Tensor, ref_logprob: Tensor) -> Tensor:
    return (logprob - ref_logprob).abs()


def _kl_mse(logprob: Tensor, ref_logprob: Tensor) -> Tensor:
    return 0.5 * (logprob - ref_logprob).square()


def _kl_k3(logprob: Tensor, ref_logprob: Tensor) -> Tensor:
    log_ratio = (ref_logprob - logprob).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    # expm1: exp(x) - 1 - x cancels to small negative numbers in float32 near x = 0; k3 is >= 0.
    return (torch.expm1(log_ratio) - log_ratio).clamp(-LOW_VAR_KL_CLAMP, LOW_VAR_KL_CLAMP)


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "kl": _kl_k1, "abs": _kl_abs, "mse": _kl_mse, "low_var_kl": _kl_k3,
}


def compute_kl(logprob: Tensor, ref_logprob: Tensor, kind: str = "low_var_kl") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from sampled-token log-probs (verl `kl_penalty`).

    logprob, ref_logprob: [B, T] -> [B, T]. With d = logprob - ref_logprob and tokens sampled from pi
    (Schulman, "Approximating KL divergence", 2020):
    - kl:         k1 = d (unbiased, high variance, can be negative);
    - abs:        |d|;
    - mse:        k2 = d^2 / 2 (biased, low variance);
    - low_var_kl: k3 = exp(-d) - 1 + d >= 0 (unbiased, low variance; GRPO's loss term), with -d
                  clamped to +-20 before exp and the result clamped to [-10, 10] as verl does.
    """
    if kind not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {kind!r}; valid estimators are {sorted(KL_ESTIMATORS)}")
    return KL_ESTIMATORS[kind](logprob, ref_logprob)


# ----------------------------------------------------------------------------- losses


def compute_policy_loss(old_logprob: Tensor, logprob: Tensor, advantages: Tensor, response_mask: Tensor, *,
                        clip_ratio: float = 0.2, clip_ratio_low: float | None = None,
                        clip_ratio_high: float | None = None, dual_clip: float | None = None,
                        loss_agg_mode: str = "token-mean", num_tokens: Tensor | float | None = None,
                        num_seqs: Tensor | int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """PPO clipped surrogate (arXiv 1707.06347 eq. 7), optional dual clip (arXiv 1912.09729)
    and asymmetric clip bounds (DAPO); verl `compute_policy_loss`.

    old_logprob, logprob, advantages, response_mask: [B, T] -> (loss, clip_fraction, approx_kl),
    all scalars. ratio = exp(clamp(logprob - old_logprob, +-20));
        L_t = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))
    and with dual clip c > 1, for A < 0 only: L_t = min(L_t, -c A), which bounds the loss when a
    token the old policy liked has become much more likely despite a negative advantage.
    clip_fraction: share of masked tokens where the clipped term is the larger one;
    approx_kl: masked mean of old_logprob - logprob (k1 of KL(old || new)).
    `num_tokens` / `num_seqs` go to `aggregate_loss` for micro-batching.
    """
    if dual_clip is not None and not dual_clip > 1.0:
        raise ValueError(f"dual_clip must be > 1 (or None for off), got {dual_clip}")
    low = clip_ratio if clip_ratio_low is None else clip_ratio_low
    high = clip_ratio if clip_ratio_high is None else clip_ratio_high
    log_ratio = (logprob - old_logprob).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    loss1 = -advantages * ratio
    loss2 = -advantages * ratio.clamp(1 - low, 1 + high)
    loss = torch.maximum(loss1, loss2)
    clip_fraction = masked_mean((loss2 > loss1).to(loss.dtype), response_mask)
    if dual_clip is not None:
        loss = torch.where(advantages < 0, torch.minimum(loss, -advantages * dual_clip), loss)
    approx_kl = masked_mean(-log_ratio, response_mask)
    pg_loss = aggregate_loss(loss, response_mask, loss_agg_mode, num_tokens=num_tokens, num_seqs=num_seqs)
    return pg_loss, clip_fraction, approx_kl


def compute_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, response_mask: Tensor, *,
                       clip_range: float, loss_agg_mode: str = "token-mean",
                       num_tokens: Tensor | float | None = None,
                       num_seqs: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
    """Clipped value loss (PPO2 baselines; verl `compute_value_loss`).

    values (new predictions), old_values (at rollout time), returns, response_mask: [B, T] ->
    (loss, clip_fraction), scalars. v_clip = old + clip(values - old, +-clip_range);
    loss = 0.5 * agg(max((values - R)^2, (v_clip - R)^2)); clip_fraction: share of masked tokens
    where the clipped error is the larger.
    """
    clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
    err1 = (values - returns) ** 2
    err2 = (clipped - returns) ** 2
    loss = 0.5 * aggregate_loss(torch.maximum(err1, err2), response_mask, loss_agg_mode,
                                num_tokens=num_tokens, num_seqs=num_seqs)
    return loss, masked_mean((err2 > err1).to(values.dtype), response_mask)


def compute_entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution given by `logits`: [..., V] -> [...].

    H = logsumexp(z) - sum(softmax(z) * z) (verl `entropy_from_logits`), computed in float32.
    """
    z = logits.float()
    return torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(-1)
