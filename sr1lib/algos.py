"""RL math as pure tensor functions: advantages, policy and value losses, KL estimators, entropy,
loss aggregation. Tensors in, tensors out: no config objects, no logging, no `.item()`, no
distributed calls (the trainer composes these; see `sr1lib.train`).

Dimension letters used in the shape docstrings:
    B  batch: trajectories in the (micro-)batch
    T  tokens: positions along a padded row (any layout; masks say which positions count)
    V  vocabulary
    G  groups: distinct group ids (the trajectories sampled for one question in one step)

Masks are float tensors of 0/1 with the shape of the values they select. Every function follows the
definitions of verl 0.9.1's `trainer/ppo/core_algos.py`, with the papers cited per function. A masked
mean over an empty mask is 0, as in verl 0.9.1 (its denominator is `n + 1e-8`; ours is clamped to
>= 1); the NaN there is Search-R1's fork of verl, which divides by `n` alone. The seq-mean loss
modes average over the rows with at least one counted token, as verl 0.9.1's `agg_loss` does.
Deliberate differences from verl, each tested:
- a batch without a single counted token aggregates to 0 in every mode (verl divides 0 by 0);
- whitening uses Bessel's correction only when at least two tokens count (verl raises otherwise);
  values outside the mask come back as 0 (verl leaves whitened garbage there);
- GRPO and RLOO give a group of size 1 advantage 0 (verl: GRPO gives it the raw score, RLOO the
  raw score too), so a question sampled once never pushes the policy with an unbaselined reward;
- GAE can skip observation tokens (`obs_mask`); a skipped position copies the advantage and
  return of the next position the recursion visits (see `compute_gae_advantages`);
- `aggregate_loss` takes optional global token / sequence counts so that micro-batches summed
  together give exactly the loss of the whole batch (OpenRLHF-style).
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

import torch

Tensor = torch.Tensor
GroupIds = Sequence[Hashable] | Tensor

# The log-ratio is clamped before exp() so one wild token cannot overflow the ratio (verl does too).
LOG_RATIO_CLAMP = 20.0
# k3's output is clamped to [-10, 10] as in verl / Search-R1's `kl_penalty("low_var_kl")`.
LOW_VAR_KL_CLAMP = 10.0


# ----------------------------------------------------------------------------- masked statistics


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


# ----------------------------------------------------------------------------- advantages


def compute_gae_advantages(token_level_rewards: Tensor, values: Tensor, response_mask: Tensor,
                           gamma: float, lam: float, *, obs_mask: Tensor | None = None,
                           whiten: bool = True) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (GAE, arXiv 1506.02438 eq. 16; verl
    `compute_gae_advantage_return`), optionally skipping observation tokens.

    token_level_rewards, values, response_mask, obs_mask: [B, T] -> (advantages, returns) [B, T].

    The recursion runs right to left over the VISITED positions, those with response_mask = 1 and
    (when given) obs_mask = 0. With v' the value of the next visited position (0 after the last):
        delta_t = r_t + gamma * v' - V_t;   A_t = delta_t + gamma * lam * A'   (A' likewise)
        R_t = A_t + V_t
    so retrieved passages neither discount the reward nor bootstrap the value (what newer verl does
    for multi-turn observations; Search-R1's verl fork visits every response token, obs_mask=None).
    A skipped position (obs or padding) does not enter the recursion: its reward and value are
    ignored, and it copies the (advantage, return) of the next visited position to its right, or
    (0, 0) when none follows. Padding (response_mask = 0) gets 0 for both.

    With `whiten`, advantages are whitened over the visited positions (verl `masked_whiten`) and
    the same affine map is applied to the skipped response positions; returns are never whitened.
    """
    visit = response_mask if obs_mask is None else response_mask * (1 - obs_mask)
    visit_b = visit > 0
    b, t_len = values.shape
    next_value = values.new_zeros(b)
    last_gae = values.new_zeros(b)
    adv = values.new_zeros(b, t_len)
    ret = values.new_zeros(b, t_len)
    for t in reversed(range(t_len)):
        m = visit_b[:, t]
        delta = token_level_rewards[:, t] + gamma * next_value - values[:, t]
        # torch.where, not m * x + (1 - m) * y: a NaN value at a skipped position must not leak.
        last_gae = torch.where(m, delta + gamma * lam * last_gae, last_gae)
        next_value = torch.where(m, values[:, t], next_value)
        adv[:, t] = last_gae
        ret[:, t] = last_gae + next_value
    if whiten:
        n = visit.sum()
        mean = masked_sum(adv, visit) / n.clamp(min=1)
        var = masked_sum((adv - mean) ** 2, visit) / (n - 1).clamp(min=1)
        adv = (adv - mean) * torch.rsqrt(var + 1e-8)
    return adv * response_mask, ret * response_mask


def group_index(group_ids: GroupIds, device: torch.device | None = None) -> tuple[Tensor, int]:
    """Group ids -> (LongTensor [B] of dense group numbers 0..G-1, G). Lists are numbered in order
    of first appearance, tensors in sorted order.

    Ids are compared as given, so they must be globally unique across datasets and steps (Search-R1
    keyed groups by a per-dataset row index, which merged rows of different datasets).
    """
    if isinstance(group_ids, Tensor):
        if group_ids.dtype.is_floating_point or group_ids.dim() != 1:
            raise ValueError(f"group_ids tensor must be 1-D integer, got {group_ids.dtype} {tuple(group_ids.shape)}")
        uniq, inv = torch.unique(group_ids, return_inverse=True)
        return inv.to(device or group_ids.device), uniq.numel()
    seen: dict[Hashable, int] = {}
    idx = [seen.setdefault(g, len(seen)) for g in group_ids]
    return torch.tensor(idx, dtype=torch.long, device=device), len(seen)


def _group_stats(scores: Tensor, group_ids: GroupIds) -> tuple[Tensor, int, Tensor, Tensor, Tensor]:
    """Per row [B]: (group index, size of its group, score sum of its group, whether its group's
    scores differ at all), plus G."""
    if len(group_ids) != scores.shape[0]:
        raise ValueError(f"{len(group_ids)} group ids for {scores.shape[0]} scores")
    idx, n_groups = group_index(group_ids, scores.device)
    count = scores.new_zeros(n_groups).index_add_(0, idx, torch.ones_like(scores))
    total = scores.new_zeros(n_groups).index_add_(0, idx, scores)
    hi = scores.new_full((n_groups,), -torch.inf).scatter_reduce(0, idx, scores, "amax")
    lo = scores.new_full((n_groups,), torch.inf).scatter_reduce(0, idx, scores, "amin")
    return idx, n_groups, count[idx], total[idx], (hi > lo)[idx]


def _as_float(scores: Tensor) -> Tensor:
    return scores if scores.dtype.is_floating_point else scores.float()


def compute_grpo_advantages(scores: Tensor, group_ids: GroupIds, response_mask: Tensor, *,
                            norm_by_std: bool = True, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """GRPO outcome advantages (arXiv 2402.03300 Sec. 4.1.2; verl `compute_grpo_outcome_advantage`).

    scores: [B] outcome reward per trajectory; group_ids: B hashable ids or a LongTensor [B];
    response_mask: [B, T] -> (advantages, returns), both [B, T] and equal, as in verl.

    A_i = (s_i - mean(group)) / (std(group) + eps) with the unbiased std (torch.std, as verl), or
    s_i - mean(group) when not `norm_by_std` (Dr. GRPO, arXiv 2503.20783), broadcast over the row's
    masked tokens. A group of one trajectory gets 0 (verl gives it the raw score). A group whose
    rewards are all equal gets exactly 0 (not the mean's rounding error divided by std + eps).
    """
    scores = _as_float(scores)
    idx, n_groups, n, total, varied = _group_stats(scores, group_ids)
    mean = total / n
    dev = scores - mean
    if norm_by_std:
        sq = scores.new_zeros(n_groups).index_add_(0, idx, dev * dev)[idx]
        std = torch.sqrt(sq / (n - 1).clamp(min=1))
        dev = dev / (std + eps)
    # `varied`: equal rewards give exactly 0, not rounding noise of the mean divided by eps.
    adv = torch.where(varied, dev, torch.zeros_like(dev))
    adv = adv[:, None] * response_mask
    return adv, adv


def compute_rloo_advantages(scores: Tensor, group_ids: GroupIds, response_mask: Tensor) -> tuple[Tensor, Tensor]:
    """REINFORCE leave-one-out (RLOO, arXiv 2402.14740; verl `compute_rloo_outcome_advantage`).

    scores: [B]; group_ids: B ids or LongTensor [B]; response_mask: [B, T] -> (adv, returns) [B, T].
    A_i = s_i - mean of the OTHER members of i's group = (n s_i - sum) / (n - 1). A group of one
    gets 0 (verl: the raw score); a group of equal rewards exactly 0.
    """
    scores = _as_float(scores)
    _, _, n, total, varied = _group_stats(scores, group_ids)
    adv = (n * scores - total) / (n - 1).clamp(min=1)
    adv = torch.where(varied, adv, torch.zeros_like(adv))[:, None] * response_mask
    return adv, adv


REINFORCE_BASELINES = ("mean", "none")


def compute_reinforce_advantages(scores: Tensor, group_ids: GroupIds | None, response_mask: Tensor, *,
                                 baseline: str = "mean") -> tuple[Tensor, Tensor]:
    """REINFORCE (Williams 1992) outcome advantages with a batch baseline.

    scores: [B]; response_mask: [B, T] -> (adv, returns) [B, T]. `baseline="mean"` subtracts the
    mean score of the whole batch (groups are ignored: `group_ids` is accepted only so every
    outcome estimator has the same signature); `"none"` uses the raw score. No whitening, no
    discount: every masked token of a row gets the row's advantage.
    """
    if baseline not in REINFORCE_BASELINES:
        raise ValueError(f"unknown REINFORCE baseline {baseline!r}; valid baselines are {list(REINFORCE_BASELINES)}")
    scores = _as_float(scores)
    adv = scores - scores.mean() if baseline == "mean" and scores.numel() else scores
    adv = adv[:, None] * response_mask
    return adv, adv


# "gae" needs a critic (values) and token-level rewards; the others take outcome scores:
#   fn(scores [B], group_ids, response_mask [B, T], **options) -> (advantages, returns)
ADVANTAGE_ESTIMATORS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "gae": compute_gae_advantages,
    "grpo": compute_grpo_advantages,
    "rloo": compute_rloo_advantages,
    "reinforce": compute_reinforce_advantages,
}


def get_advantage_estimator(name: str) -> Callable[..., tuple[Tensor, Tensor]]:
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {name!r}; valid estimators are {sorted(ADVANTAGE_ESTIMATORS)}")
    return ADVANTAGE_ESTIMATORS[name]


# ----------------------------------------------------------------------------- rewards per token


def compute_token_level_scores(scores: Tensor, mask: Tensor) -> Tensor:
    """Put each row's outcome score on its LAST masked position (verl puts it on the last response
    token; pass the model-token mask to put it on the last token the model sampled).

    scores: [B]; mask: [B, T] -> [B, T], zero elsewhere. A row with no masked position gets nothing.
    """
    t_len = mask.shape[-1]
    has = mask.sum(-1) > 0
    last = t_len - 1 - torch.argmax(mask.flip(-1).gt(0).to(torch.int8), dim=-1)
    out = torch.zeros(mask.shape, dtype=_as_float(scores).dtype, device=mask.device)
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
