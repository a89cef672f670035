"""Advantage estimators: GAE over a critic's values, and the critic-free outcome estimators GRPO, RLOO
and REINFORCE; `compute_advantages` calls any of them by name with one `AdvantageInputs`.
Glossary and departures from verl: `sr1lib.algos`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import torch

from sr1lib.algos.core import as_float, masked_sum

Tensor = torch.Tensor
GroupIds = Sequence[Hashable] | Tensor


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
    scores = as_float(scores)
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
    scores = as_float(scores)
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
    scores = as_float(scores)
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


@dataclass(frozen=True)
class AdvantageInputs:
    """Everything an advantage estimator may read, so that every estimator is called the same way.

    token_rewards [B, T]: each row's outcome score on its last sampled token (minus the KL penalty
    when it is in the reward); the outcome estimators take its row sums as scores.
    response_mask [B, T]: the tokens GAE and the critic see; obs_mask [B, T] | None: those GAE skips.
    policy_mask [B, T]: the tokens the policy loss sees, where outcome advantages are broadcast.
    values [B, T] | None: the critic's values (GAE only); group_ids: B ids (GRPO and RLOO).
    """

    token_rewards: Tensor
    response_mask: Tensor
    policy_mask: Tensor
    group_ids: GroupIds
    values: Tensor | None = None
    obs_mask: Tensor | None = None
    gamma: float = 1.0  # GAE discount
    lam: float = 1.0  # GAE lambda
    norm_by_std: bool = True  # GRPO: divide by the group std (False: Dr. GRPO, arXiv 2503.20783)


def _gae(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    if x.values is None:
        raise ValueError("the gae estimator needs the critic's values (AdvantageInputs.values)")
    return compute_gae_advantages(x.token_rewards, x.values, x.response_mask, x.gamma, x.lam, obs_mask=x.obs_mask)


# estimator name -> fn(AdvantageInputs) -> (advantages, returns), both [B, T]
_FROM_INPUTS: dict[str, Callable[[AdvantageInputs], tuple[Tensor, Tensor]]] = {
    "gae": _gae,
    "grpo": lambda x: compute_grpo_advantages(x.token_rewards.sum(-1), x.group_ids, x.policy_mask,
                                              norm_by_std=x.norm_by_std),
    "rloo": lambda x: compute_rloo_advantages(x.token_rewards.sum(-1), x.group_ids, x.policy_mask),
    "reinforce": lambda x: compute_reinforce_advantages(x.token_rewards.sum(-1), x.group_ids, x.policy_mask),
}


def compute_advantages(estimator: str, inputs: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """(advantages, returns) [B, T] by the estimator registered as `estimator`, read from `inputs`."""
    get_advantage_estimator(estimator)  # an unknown name fails with the valid ones
    return _FROM_INPUTS[estimator](inputs)
