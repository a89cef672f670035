"""sr1lib.algos' advantage estimators: GAE, GRPO, RLOO and REINFORCE against slow loop twins written
from the papers' definitions, on random inputs and masks, and small hand-computed cases."""

from __future__ import annotations

import math
import random

import pytest
import torch

from sr1lib import algos as A

# ----------------------------------------------------------------------------- slow reference twins
# Plain Python floats, one element at a time, written from the papers' definitions.


def gae_reference(rewards, values, response_mask, gamma, lam, obs_mask=None, whiten=True):
    """GAE by its definition A_k = sum_l (gamma lam)^l delta_{k+l} (arXiv 1506.02438 eq. 16) over the
    visited positions of each row; a skipped response position copies the next visited one."""
    B, T = len(rewards), len(rewards[0])
    adv = [[0.0] * T for _ in range(B)]
    ret = [[0.0] * T for _ in range(B)]
    visited_all = []
    for b in range(B):
        vis = [t for t in range(T) if response_mask[b][t] and not (obs_mask and obs_mask[b][t])]
        n = len(vis)
        v = [values[b][t] for t in vis] + [0.0]
        delta = [rewards[b][vis[k]] + gamma * v[k + 1] - v[k] for k in range(n)]
        a = [sum((gamma * lam) ** l * delta[k + l] for l in range(n - k)) for k in range(n)]
        for t in range(T):
            if not response_mask[b][t]:
                continue
            nxt = next((k for k in range(n) if vis[k] >= t), None)
            if nxt is not None:
                adv[b][t], ret[b][t] = a[nxt], a[nxt] + v[nxt]
        visited_all += [(b, t) for t in vis]
    if whiten:
        xs = [adv[b][t] for b, t in visited_all]
        mean = sum(xs) / max(len(xs), 1)
        var = sum((x - mean) ** 2 for x in xs) / max(len(xs) - 1, 1)
        for b in range(B):
            for t in range(T):
                if response_mask[b][t]:
                    adv[b][t] = (adv[b][t] - mean) / math.sqrt(var + 1e-8)
    return adv, ret


def grpo_reference(scores, ids, norm_by_std=True, eps=1e-6):
    out = []
    for i, s in enumerate(scores):
        group = [scores[j] for j in range(len(scores)) if ids[j] == ids[i]]
        if len(set(group)) == 1:  # singleton or all-equal group
            out.append(0.0)
            continue
        mean = sum(group) / len(group)
        std = math.sqrt(sum((g - mean) ** 2 for g in group) / (len(group) - 1))
        out.append((s - mean) / (std + eps) if norm_by_std else s - mean)
    return out


def rloo_reference(scores, ids):
    out = []
    for i, s in enumerate(scores):
        others = [scores[j] for j in range(len(scores)) if ids[j] == ids[i] and j != i]
        same = all(o == s for o in others)
        out.append(0.0 if not others or same else s - sum(others) / len(others))
    return out


# ----------------------------------------------------------------------------- random inputs

L = lambda x: x.tolist()  # noqa: E731


def random_masks(g: torch.Generator, B: int, T: int):
    """Right-padded response masks with random lengths (some rows empty) and random obs spans."""
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    resp = (torch.arange(T)[None] < lengths[:, None]).double()
    obs = (torch.rand(B, T, generator=g, dtype=torch.float64) < 0.3).double() * resp
    return resp, obs


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("use_obs", [False, True])
def test_gae_matches_definition_on_random_inputs(seed, use_obs):
    g = torch.Generator().manual_seed(seed)
    B, T = 4, 9
    resp, obs = random_masks(g, B, T)
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    gamma, lam = float(torch.rand(1, generator=g)), float(torch.rand(1, generator=g))
    for whiten in (False, True):
        adv, ret = A.compute_gae_advantages(rewards, values, resp, gamma, lam,
                                            obs_mask=obs if use_obs else None, whiten=whiten)
        ra, rr = gae_reference(L(rewards), L(values), L(resp), gamma, lam, L(obs) if use_obs else None, whiten)
        torch.testing.assert_close(adv, torch.tensor(ra, dtype=torch.float64))
        torch.testing.assert_close(ret, torch.tensor(rr, dtype=torch.float64))


def test_gae_hand_cases():
    one = torch.ones(1, 3, dtype=torch.float64)
    # gamma = lam = 1, zero values: every advantage is the reward-to-go.
    adv, ret = A.compute_gae_advantages(torch.tensor([[0.0, 0, 1]]).double(), 0 * one, one, 1.0, 1.0, whiten=False)
    assert adv.tolist() == [[1.0, 1.0, 1.0]] and ret.tolist() == [[1.0, 1.0, 1.0]]
    # values [.5, .5, .5], reward 1 at the end, lam = 0: one-step TD errors [0, 0, .5].
    adv, ret = A.compute_gae_advantages(torch.tensor([[0.0, 0, 1]]).double(), 0.5 * one, one, 1.0, 0.0, whiten=False)
    assert adv.tolist() == [[0.0, 0.0, 0.5]] and ret.tolist() == [[0.5, 0.5, 1.0]]
    # gamma = .5 with the middle token an observation: the skip does not discount (A_0 = .5 * 1).
    obs = torch.tensor([[0.0, 1, 0]]).double()
    adv, _ = A.compute_gae_advantages(torch.tensor([[0.0, 0, 1]]).double(), 0 * one, one, 0.5, 1.0,
                                      obs_mask=obs, whiten=False)
    assert adv.tolist() == [[0.5, 1.0, 1.0]]
    # the observation's own reward and (NaN) value are ignored.
    adv, _ = A.compute_gae_advantages(torch.tensor([[0.0, 7, 1]]).double(), torch.tensor([[0, math.nan, 0]]).double(),
                                      one, 0.5, 1.0, obs_mask=obs, whiten=False)
    assert adv.tolist() == [[0.5, 1.0, 1.0]]


def test_gae_whitening_zero_on_padding_and_unit_scale():
    g = torch.Generator().manual_seed(3)
    resp = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0]])
    adv, _ = A.compute_gae_advantages(torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g), resp, 1.0, 0.95)
    assert adv[resp == 0].abs().max() == 0
    sel = adv[resp == 1]
    assert abs(float(sel.mean())) < 1e-6 and abs(float(sel.std()) - 1) < 1e-4


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("norm_by_std", [True, False])
def test_grpo_and_rloo_match_loops_on_random_groups(seed, norm_by_std):
    rng = random.Random(seed)
    B = rng.randint(1, 12)
    ids = [f"q{rng.randint(0, 3)}" for _ in range(B)]
    scores = [float(rng.choice([0, 1, 0.5, rng.random()])) for _ in range(B)]
    mask = torch.tensor([[float(rng.random() < 0.7) for _ in range(5)] for _ in range(B)], dtype=torch.float64)
    s = torch.tensor(scores, dtype=torch.float64)
    adv, ret = A.compute_grpo_advantages(s, ids, mask, norm_by_std=norm_by_std)
    want = torch.tensor(grpo_reference(scores, ids, norm_by_std), dtype=torch.float64)[:, None] * mask
    torch.testing.assert_close(adv, want)
    assert adv is ret or torch.equal(adv, ret)
    # tensor ids (numbered differently) give the same answer
    tid = torch.tensor([int(i[1:]) * 7 for i in ids])
    torch.testing.assert_close(A.compute_grpo_advantages(s, tid, mask, norm_by_std=norm_by_std)[0], want)
    rl, _ = A.compute_rloo_advantages(s, ids, mask)
    torch.testing.assert_close(rl, torch.tensor(rloo_reference(scores, ids), dtype=torch.float64)[:, None] * mask)


def test_grpo_hand_cases():
    m = torch.ones(5, 2)
    # group a = [1, 0]: mean .5, unbiased std .7071 -> +-0.7071; group b all 1 -> 0; c singleton -> 0.
    adv, _ = A.compute_grpo_advantages(torch.tensor([1.0, 0, 1, 1, 1]), ["a", "a", "b", "b", "c"], m)
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.7071, -0.7071, 0, 0, 0]), atol=1e-4, rtol=0)
    # identical non-representable rewards (0.1) give exactly zero, not rounding noise / eps.
    adv, _ = A.compute_grpo_advantages(torch.full((5,), 0.1), ["g"] * 5, m, eps=0.0)
    assert adv.abs().max() == 0
    # ids are compared as given: the same local index from two datasets is two groups.
    adv, _ = A.compute_grpo_advantages(torch.tensor([1.0, 0.0]), ["nq/7", "hotpotqa/7"], m[:2])
    assert adv.abs().max() == 0
    with pytest.raises(ValueError, match="3 group ids for 2 scores"):
        A.compute_grpo_advantages(torch.tensor([1.0, 0.0]), ["a", "a", "b"], m[:2])


def test_rloo_and_reinforce_hand_cases():
    m = torch.ones(3, 1)
    # RLOO, one group [1, 0, 0]: 1 - 0 = 1, 0 - .5 = -.5 twice.
    adv, _ = A.compute_rloo_advantages(torch.tensor([1.0, 0, 0]), ["g"] * 3, m)
    assert adv[:, 0].tolist() == [1.0, -0.5, -0.5]
    # REINFORCE with the batch mean (1/3) as baseline, and without a baseline.
    adv, _ = A.compute_reinforce_advantages(torch.tensor([1.0, 0, 0]), None, m)
    torch.testing.assert_close(adv[:, 0], torch.tensor([2 / 3, -1 / 3, -1 / 3]))
    adv, _ = A.compute_reinforce_advantages(torch.tensor([1.0, 0, 0]), None, m, baseline="none")
    assert adv[:, 0].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"valid baselines are \['mean', 'none'\]"):
        A.compute_reinforce_advantages(torch.tensor([1.0]), None, m[:1], baseline="ema")


def test_registries_list_valid_names():
    assert A.get_advantage_estimator("grpo") is A.compute_grpo_advantages
    with pytest.raises(ValueError, match=r"valid estimators are \['gae', 'grpo', 'reinforce', 'rloo'\]"):
        A.get_advantage_estimator("ppo2")
    with pytest.raises(ValueError, match=r"valid estimators are \['abs', 'kl', 'low_var_kl', 'mse'\]"):
        A.compute_kl(torch.zeros(1), torch.zeros(1), "k9")
    with pytest.raises(ValueError, match="valid modes are"):
        A.aggregate_loss(torch.zeros(1, 1), torch.ones(1, 1), "sum")
