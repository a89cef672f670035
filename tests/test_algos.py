"""sr1lib.algos: every vectorised function against a slow loop twin written from the definition, on
random inputs and masks; small hand-computed cases; micro-batch == whole-batch aggregation."""

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


def policy_loss_reference(old, new, adv, mask, clip_low, clip_high, dual_clip, mode):
    mat, clipped, kl = [], [], []
    for b in range(len(old)):
        row = []
        for t in range(len(old[0])):
            lr = max(-20.0, min(20.0, new[b][t] - old[b][t]))
            r = math.exp(lr)
            a = adv[b][t]
            l1, l2 = -a * r, -a * min(max(r, 1 - clip_low), 1 + clip_high)
            loss = max(l1, l2)
            if dual_clip is not None and a < 0:
                loss = min(loss, -a * dual_clip)
            row.append(loss)
            if mask[b][t]:
                clipped.append(float(l2 > l1))
                kl.append(-lr)
        mat.append(row)
    mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
    return aggregate_reference(mat, mask, mode), mean(clipped), mean(kl)


def aggregate_reference(mat, mask, mode):
    if mode == "token-mean":
        xs = [mat[b][t] for b in range(len(mat)) for t in range(len(mat[0])) if mask[b][t]]
        return sum(xs) / max(len(xs), 1)
    rows = []
    for b in range(len(mat)):
        xs = [mat[b][t] for t in range(len(mat[0])) if mask[b][t]]
        if xs:  # verl 0.9.1: a row without a counted token is not one of the rows averaged over
            rows.append(sum(xs) if mode == "seq-mean-token-sum" else sum(xs) / len(xs))
    return sum(rows) / max(len(rows), 1)


def value_loss_reference(v, old, ret, mask, clip, mode):
    mat, frac = [], []
    for b in range(len(v)):
        row = []
        for t in range(len(v[0])):
            vc = old[b][t] + min(max(v[b][t] - old[b][t], -clip), clip)
            e1, e2 = (v[b][t] - ret[b][t]) ** 2, (vc - ret[b][t]) ** 2
            row.append(max(e1, e2))
            if mask[b][t]:
                frac.append(float(e2 > e1))
        mat.append(row)
    return 0.5 * aggregate_reference(mat, mask, mode), sum(frac) / max(len(frac), 1)


def kl_reference(lp, ref, kind):
    d = lp - ref
    if kind == "kl":
        return d
    if kind == "abs":
        return abs(d)
    if kind == "mse":
        return 0.5 * d * d
    x = max(-20.0, min(20.0, -d))
    return max(-10.0, min(10.0, math.exp(x) - x - 1))


def entropy_reference(logits_row):
    m = max(logits_row)
    z = sum(math.exp(x - m) for x in logits_row)
    ps = [math.exp(x - m) / z for x in logits_row]
    return -sum(p * math.log(p) for p in ps if p > 0)


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


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", sorted(A.LOSS_AGG_MODES))
def test_policy_and_value_losses_match_loops(seed, mode):
    g = torch.Generator().manual_seed(seed)
    B, T = 5, 7
    resp, _ = random_masks(g, B, T)
    old = torch.randn(B, T, generator=g, dtype=torch.float64) - 2
    new = old + 0.4 * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    for low, high, dual in [(0.2, 0.2, None), (0.1, 0.28, 3.0)]:
        got = A.compute_policy_loss(old, new, adv, resp, clip_ratio_low=low, clip_ratio_high=high,
                                    dual_clip=dual, loss_agg_mode=mode)
        want = policy_loss_reference(L(old), L(new), L(adv), L(resp), low, high, dual, mode)
        for x, y in zip(got, want):
            assert abs(float(x) - y) < 1e-9
    values, ret = torch.randn(B, T, generator=g, dtype=torch.float64), torch.randn(B, T, generator=g, dtype=torch.float64)
    old_v = values + 0.5 * torch.randn(B, T, generator=g, dtype=torch.float64)
    got = A.compute_value_loss(values, old_v, ret, resp, clip_range=0.3, loss_agg_mode=mode)
    want = value_loss_reference(L(values), L(old_v), L(ret), L(resp), 0.3, mode)
    assert abs(float(got[0]) - want[0]) < 1e-9 and abs(float(got[1]) - want[1]) < 1e-9


def test_policy_loss_hand_cases():
    one = torch.ones(1, 1)
    lp = lambda r: torch.tensor([[math.log(r)]])  # noqa: E731
    # ratio 1.5, A = +1: clipped at 1.2 -> loss -1.2, clipped.
    loss, frac, _ = A.compute_policy_loss(lp(1.0), lp(1.5), one, one)
    assert abs(float(loss) + 1.2) < 1e-6 and float(frac) == 1.0
    # ratio 0.5, A = +1: the unclipped -0.5 is larger (pessimistic) -> -0.5, not clipped.
    loss, frac, _ = A.compute_policy_loss(lp(1.0), lp(0.5), one, one)
    assert abs(float(loss) + 0.5) < 1e-6 and float(frac) == 0.0
    # ratio 10, A = -1: plain PPO gives 10; dual clip c = 3 bounds it at 3.
    loss, _, _ = A.compute_policy_loss(lp(1.0), lp(10.0), -one, one)
    assert abs(float(loss) - 10) < 1e-5
    loss, _, _ = A.compute_policy_loss(lp(1.0), lp(10.0), -one, one, dual_clip=3.0)
    assert abs(float(loss) - 3) < 1e-6
    # dual clip never touches positive advantages: ratio 10, A = +1 stays at the clip -1.2.
    loss, _, _ = A.compute_policy_loss(lp(1.0), lp(10.0), one, one, dual_clip=3.0)
    assert abs(float(loss) + 1.2) < 1e-6
    # ...and passes the gradient of a negative-advantage token only while below c: zero beyond.
    new = lp(10.0).requires_grad_()
    A.compute_policy_loss(lp(1.0), new, -one, one, dual_clip=3.0)[0].backward()
    assert float(new.grad) == 0.0
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        A.compute_policy_loss(lp(1.0), lp(1.0), one, one, dual_clip=0.5)


def test_value_loss_hand_case():
    # old 0, new 1, return 1, clip .2: clipped prediction .2 has error .64 > 0 -> 0.5 * .64 = .32.
    one = torch.ones(1, 1)
    loss, frac = A.compute_value_loss(one, 0 * one, one, one, clip_range=0.2)
    assert abs(float(loss) - 0.32) < 1e-6 and float(frac) == 1.0


@pytest.mark.parametrize("kind", sorted(A.KL_ESTIMATORS))
def test_kl_estimators_match_formulas(kind):
    g = torch.Generator().manual_seed(0)
    lp = 3 * torch.randn(6, 5, generator=g, dtype=torch.float64)
    ref = 3 * torch.randn(6, 5, generator=g, dtype=torch.float64)
    lp[0, 0], ref[0, 0] = -40.0, 0.0  # a huge gap exercises the clamps
    got = A.compute_kl(lp, ref, kind)
    want = [[kl_reference(a, b, kind) for a, b in zip(ra, rb)] for ra, rb in zip(L(lp), L(ref))]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    assert float(A.compute_kl(lp, lp, kind).abs().max()) == 0  # identical policies: zero everywhere


def test_low_var_kl_is_clamped_and_nonnegative():
    # log-ratio 5: k3 = e^5 - 5 - 1 = 142.4 -> clamped to 10, as verl / Search-R1.
    assert float(A.compute_kl(torch.tensor([0.0]), torch.tensor([5.0]), "low_var_kl")) == 10.0
    x = torch.linspace(-3, 3, 61)
    assert float(A.compute_kl(x, torch.zeros_like(x), "low_var_kl").min()) >= 0


def test_entropy_matches_loop_and_hand_case():
    g = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(3, 4, 11, generator=g)
    got = A.compute_entropy_from_logits(logits)
    want = [[entropy_reference(r) for r in rows] for rows in L(logits.double())]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float32), atol=1e-5, rtol=1e-5)
    # uniform over 8 symbols: entropy ln 8.
    assert abs(float(A.compute_entropy_from_logits(torch.zeros(8))) - math.log(8)) < 1e-6


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mode", sorted(A.LOSS_AGG_MODES))
def test_aggregate_matches_loop(seed, mode):
    g = torch.Generator().manual_seed(seed)
    resp, _ = random_masks(g, 6, 8)
    mat = torch.randn(6, 8, generator=g, dtype=torch.float64)
    assert abs(float(A.aggregate_loss(mat, resp, mode)) - aggregate_reference(L(mat), L(resp), mode)) < 1e-12


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mode", sorted(A.LOSS_AGG_MODES))
def test_micro_batches_with_global_counts_equal_the_whole_batch(seed, mode):
    # OpenRLHF's argument: normalise each micro-batch by the WHOLE batch's token (or row) count and
    # the micro-batch losses sum to the whole-batch loss, for uneven splits and lengths too.
    g = torch.Generator().manual_seed(seed)
    B, T = 7, 6
    resp, _ = random_masks(g, B, T)
    mat = torch.randn(B, T, generator=g, dtype=torch.float64)
    whole = A.aggregate_loss(mat, resp, mode)
    cuts = sorted(random.Random(seed).sample(range(1, B), 2))
    parts = [slice(0, cuts[0]), slice(cuts[0], cuts[1]), slice(cuts[1], B)]
    summed = sum(A.aggregate_loss(mat[p], resp[p], mode, num_tokens=resp.sum().clamp(min=1),
                                  num_seqs=A.trained_row_count(resp)) for p in parts)
    torch.testing.assert_close(summed, whole)
    # without the global counts, token-mean over micro-batches is a different (wrong) number
    naive = sum(A.aggregate_loss(mat[p], resp[p], mode) * (p.stop - p.start) / B for p in parts)
    if mode == "token-mean" and len({float(resp[p].sum()) for p in parts}) > 1:
        assert not torch.isclose(naive, whole)


def test_seq_mean_modes_skip_rows_without_trained_tokens():
    # verl 0.9.1's agg_loss: a fully masked row is neither a loss term nor a row of the mean
    loss, mask = torch.ones(2, 3), torch.tensor([[1.0, 1, 1], [0, 0, 0]])
    assert float(A.aggregate_loss(loss, mask, "seq-mean-token-mean")) == 1.0
    assert float(A.aggregate_loss(loss, mask, "seq-mean-token-sum")) == 3.0
    assert float(A.aggregate_loss(loss, mask, "token-mean")) == 1.0
    assert int(A.trained_row_count(mask)) == 1 and int(A.trained_row_count(torch.zeros(2, 3))) == 1


def test_what_the_docstring_says_verl_and_search_r1_give_for_an_empty_masked_mean():
    # verl 0.9.1 verl/utils/torch_functional.masked_mean: sum / (n + 1e-8); Search-R1's fork: sum / n
    x, empty = torch.randn(4), torch.zeros(4)
    assert float((x * empty).sum() / (empty.sum() + 1e-8)) == 0.0 == float(A.masked_mean(x, empty))
    assert math.isnan(float((x * empty).sum() / empty.sum()))
    doc = " ".join(A.__doc__.split())
    assert "as in verl 0.9.1" in doc and "the NaN there is Search-R1's fork" in doc


def test_empty_masks_give_zero_not_nan():
    z = torch.zeros(2, 3)
    for mode in A.LOSS_AGG_MODES:
        assert float(A.aggregate_loss(torch.randn(2, 3), z, mode)) == 0.0
    adv, ret = A.compute_gae_advantages(torch.randn(2, 3), torch.randn(2, 3), z, 1.0, 1.0)
    assert torch.equal(adv, z) and torch.equal(ret, z)
    loss, frac, kl = A.compute_policy_loss(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3), z)
    assert [float(loss), float(frac), float(kl)] == [0.0, 0.0, 0.0]


def test_token_level_scores_and_kl_penalty():
    # score on the last masked position of each row; a row with no mask gets nothing.
    mask = torch.tensor([[1.0, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0]])
    tls = A.compute_token_level_scores(torch.tensor([2.0, 3.0, 4.0]), mask)
    assert tls.tolist() == [[0, 2, 0, 0], [0, 0, 0, 3], [0, 0, 0, 0]]
    # k1 KL of .5 on masked tokens with beta .1: rewards drop by .05 there, nowhere else.
    lp = torch.full((3, 4), -1.0)
    rewards, kl = A.apply_kl_penalty(tls, lp, lp - 0.5, mask, kl_coef=0.1, kind="kl")
    torch.testing.assert_close(rewards, tls - 0.05 * mask)
    torch.testing.assert_close(kl, 0.5 * mask)
