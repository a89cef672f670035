"""sr1lib.algos' losses, KL and aggregation: every vectorised function against a slow loop twin
written from the definition, on random inputs and masks; small hand-computed cases; micro-batch ==
whole-batch aggregation. The advantage estimators are tests/test_advantages.py."""

from __future__ import annotations

import math
import random

import pytest
import torch

from sr1lib import algos as A
from test_advantages import L, random_masks

# ----------------------------------------------------------------------------- slow reference twins
# Plain Python floats, one element at a time, written from the papers' definitions.


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
