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

from sr1lib.algos.advantages import (ADVANTAGE_ESTIMATORS, REINFORCE_BASELINES, AdvantageInputs, GroupIds,
                                     compute_advantages, compute_gae_advantages, compute_grpo_advantages,
                                     compute_reinforce_advantages, compute_rloo_advantages,
                                     get_advantage_estimator, group_index)
from sr1lib.algos.core import (KL_ESTIMATORS, LOG_RATIO_CLAMP, LOSS_AGG_MODES, LOW_VAR_KL_CLAMP, aggregate_loss,
                               apply_kl_penalty, compute_entropy_from_logits, compute_kl, compute_policy_loss,
                               compute_token_level_scores, compute_value_loss, masked_mean, masked_sum,
                               masked_whiten, trained_row_count)

__all__ = ["ADVANTAGE_ESTIMATORS", "AdvantageInputs", "GroupIds", "KL_ESTIMATORS", "LOG_RATIO_CLAMP", "LOSS_AGG_MODES",
           "LOW_VAR_KL_CLAMP", "REINFORCE_BASELINES", "aggregate_loss", "apply_kl_penalty", "compute_advantages",
           "compute_entropy_from_logits", "compute_gae_advantages", "compute_grpo_advantages", "compute_kl",
           "compute_policy_loss", "compute_reinforce_advantages", "compute_rloo_advantages",
           "compute_token_level_scores", "compute_value_loss", "get_advantage_estimator", "group_index",
           "masked_mean", "masked_sum", "masked_whiten", "trained_row_count"]
