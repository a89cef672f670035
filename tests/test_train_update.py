"""The trainer's tensor plumbing on a real tiny model: log-probs over padded batches, retrieved-token
masking of the gradient, one batch == micro-batches, and the stop on a non-finite loss."""

from __future__ import annotations

import copy

import pytest
import torch

from sr1lib.config import AlgorithmConfig
from sr1lib.masking import build_padded
from sr1lib.models import load_policy
from sr1lib.train.batched import TokenBatch, batched_logprobs, batched_values
from sr1lib.train.forward import forward_logprobs
from sr1lib.train.networks import load_critic
from sr1lib.train.step import token_masks
from sr1lib.train.update import (CriticBatch, NonFiniteLossError, PolicyBatch, PolicyLossConfig,
                                 accumulate_policy_grads, update_critic, update_policy)
from sr1lib.types import FEEDBACK, MODEL, PROMPT, RETRIEVED, QARecord, Segment, Trajectory

pytestmark = pytest.mark.usefixtures("one_thread")
from test_train_support import one_thread  # noqa: E402,F401  (fixture)

REC = QARecord("t/1", "q", ("a",), "t")
NOCTX = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_policy(tiny_model_dir, device="cpu")


def make_batch(vocab: int, seed: int = 0, shared: bool = False):
    """Trajectories of different lengths mixing model, retrieved and feedback segments; with
    `shared`, rows 0, 1, 3 share one prompt and rows 2, 4 another (GRPO groups)."""
    g = torch.Generator().manual_seed(seed)
    ids = lambda n: tuple(torch.randint(3, vocab, (n,), generator=g).tolist())  # noqa: E731
    shapes = [
        [(PROMPT, 5), (MODEL, 3), (RETRIEVED, 4), (MODEL, 2)],
        [(PROMPT, 3), (MODEL, 6)],
        [(PROMPT, 7), (MODEL, 2), (RETRIEVED, 3), (MODEL, 1), (FEEDBACK, 2), (MODEL, 3)],
        [(PROMPT, 4), (MODEL, 1), (RETRIEVED, 5)],
        [(PROMPT, 6), (MODEL, 4), (RETRIEVED, 2), (MODEL, 4)],
    ]
    prompts = {0: ids(5), 2: ids(7)}
    trajs = []
    for i, shape in enumerate(shapes):
        segs = [Segment(s, ids(n), "x") for s, n in shape]
        if shared:
            segs[0] = Segment(PROMPT, prompts[2 if i in (2, 4) else 0], "x")
        trajs.append(Trajectory(f"u{i}", f"g{i // 2}", REC, tuple(segs)))
    return build_padded(trajs, pad_id=0)


def policy_batch(pb, algo: AlgorithmConfig, seed: int = 1, **kw) -> PolicyBatch:
    g = torch.Generator().manual_seed(seed)
    adv = torch.randn(pb.input_ids.shape[0], pb.input_ids.shape[1] - 1, generator=g)
    return PolicyBatch(TokenBatch.of(pb),
                       token_masks(pb, algo)["policy"], adv, **kw)


@pytest.mark.parametrize("shared", [False, True])
def test_logprobs_match_a_row_by_row_full_forward(tiny, shared):
    # shared: each distinct prompt is encoded once (sr1lib.train.prefix), on micro-batches of 2 and 5
    model, tok = tiny
    pb = make_batch(len(tok), shared=shared)
    got = batched_logprobs(model, TokenBatch.of(pb), micro_batch_size=2 if not shared else 5, temperature=0.7,
                           autocast_ctx=NOCTX, share_prefix=shared)
    for b in range(pb.input_ids.shape[0]):
        n = int(pb.lengths[b])
        row = pb.input_ids[b, :n][None]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=row).logits[0, :-1] / 0.7, -1)
        want = logp.gather(-1, row[0, 1:, None])[:, 0]
        p = int(pb.prompt_lengths[b])  # prompt targets may be skipped (0): compare the response
        torch.testing.assert_close(got[b, p - 1: n - 1], want[p - 1:], atol=1e-5, rtol=1e-5)
        assert not got[b, n - 1:].any()  # padding targets are 0


def test_prefix_sharing_passes_the_cache_under_the_name_this_transformers_expects(tiny):
    # transformers 5.24 renamed forward's `past_key_values` to `cache`; the old name warns (and is
    # removed in 5.40), so the fast path must not use it where the new one exists
    import warnings

    model, tok = tiny
    pb = make_batch(len(tok), shared=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        batched_logprobs(model, TokenBatch.of(pb),
                         micro_batch_size=0, temperature=1.0, autocast_ctx=NOCTX, share_prefix=True)


def test_token_masks_follow_the_algorithm_switches():
    pb = make_batch(50)
    on = token_masks(pb, AlgorithmConfig(mask_retrieved=True))
    off = token_masks(pb, AlgorithmConfig(mask_retrieved=False, critic_sees_retrieved=False))
    assert torch.equal(on["policy"], pb.sampled_mask[:, 1:]) and on["obs"] is None
    assert torch.equal(off["policy"], pb.response_mask[:, 1:])
    assert torch.equal(off["obs"], pb.response_mask[:, 1:] - pb.sampled_mask[:, 1:])
    assert torch.equal(off["value"], pb.sampled_mask[:, 1:]) and torch.equal(on["value"], pb.response_mask[:, 1:])


class LogitsSpy(torch.nn.Module):
    """Passes calls to the policy and keeps the output logits with their gradient."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.logits = inner, []

    def forward(self, **kw):
        out = self.inner(**kw)
        out.logits.retain_grad()
        self.logits.append((out.logits, kw["input_ids"].shape[1]))
        return out


def logit_grads_by_target(model, pb, algo, mode):
    """d loss / d logits, summed over the vocabulary, per target token [B, T-1] (0 where not computed)."""
    spy = LogitsSpy(model)
    cfg = PolicyLossConfig(loss_agg_mode=mode)
    accumulate_policy_grads(spy, policy_batch(pb, algo), cfg, micro_batch_size=0, autocast_ctx=NOCTX)
    model.zero_grad(set_to_none=True)
    (logits, t_len), = spy.logits
    out = torch.zeros(pb.input_ids.shape[0], pb.input_ids.shape[1] - 1)
    keep = logits.shape[1]
    g = logits.grad.abs().sum(-1)[:, :-1]  # the last position has no target
    out[:, t_len - keep: t_len - 1] = g
    return out


@pytest.mark.parametrize("mode", ["seq-mean-token-sum", "token-mean"])
def test_masking_zeroes_the_gradient_of_retrieved_tokens_only(tiny, mode):
    model, tok = tiny
    pb = make_batch(len(tok))
    on = logit_grads_by_target(model, pb, AlgorithmConfig(mask_retrieved=True), mode)
    off = logit_grads_by_target(model, pb, AlgorithmConfig(mask_retrieved=False), mode)
    model_t, env_t = pb.sampled_mask[:, 1:] > 0, (pb.response_mask - pb.sampled_mask)[:, 1:] > 0
    # masking on: exactly zero gradient from every retrieved / feedback token, non-zero on model tokens
    assert on[env_t].abs().max() == 0 and (on[model_t] > 0).all()
    # masking off: retrieved and feedback tokens get a gradient too
    assert (off[env_t] > 0).all()
    if mode == "seq-mean-token-sum":  # the denominator does not depend on the mask: model tokens unchanged
        torch.testing.assert_close(on[model_t], off[model_t])
    else:  # token-mean divides by more tokens when retrieved ones count: model tokens scale down
        ratio = float(pb.sampled_mask[:, 1:].sum() / pb.response_mask[:, 1:].sum())
        torch.testing.assert_close(off[model_t], on[model_t] * ratio)


def sgd_delta(module, fn):
    """Parameter change of one plain SGD step (lr 1) taken inside `fn(optimizer)`: minus the gradient."""
    before = {k: v.detach().clone() for k, v in module.named_parameters()}
    opt = torch.optim.SGD(module.parameters(), lr=1.0)
    fn(opt)
    return {k: v.detach() - before[k] for k, v in module.named_parameters()}


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_one_batch_equals_micro_batches(tiny, mode):
    model, tok = tiny
    pb = make_batch(len(tok))
    g = torch.Generator().manual_seed(5)
    ref = batched_logprobs(model, TokenBatch.of(pb), micro_batch_size=0, temperature=1.0, autocast_ctx=NOCTX)
    old = ref + 0.1 * torch.randn(ref.shape, generator=g)  # ratios != 1, so clipping is exercised
    batch = policy_batch(pb, AlgorithmConfig(), old_logprob=old, ref_logprob=ref - 0.05)
    cfg = PolicyLossConfig(loss_agg_mode=mode, kl_coef=0.1, entropy_coef=0.01)
    deltas = []
    for micro in (0, 2, 1):
        m = copy.deepcopy(model)
        deltas.append(sgd_delta(m, lambda opt: update_policy(
            m, opt, batch, cfg, ppo_epochs=1, mini_batch_size=0, micro_batch_size=micro, grad_clip=0.0,
            autocast_ctx=NOCTX)))
    for d in deltas[1:]:
        for k in d:
            torch.testing.assert_close(d[k], deltas[0][k], atol=1e-6, rtol=1e-4)
    assert any(v.abs().max() > 0 for v in deltas[0].values())


@pytest.mark.parametrize("mode", ["seq-mean-token-sum", "seq-mean-token-mean"])
def test_a_row_without_trained_tokens_does_not_dilute_the_update(tiny, mode):
    # verl 0.9.1's seq-mean modes average over rows with a trained token, and the global row count
    # across micro-batches follows the same rule: zeroing row 1's mask equals leaving row 1 out.
    model, tok = tiny
    pb = make_batch(len(tok))
    ref = batched_logprobs(model, TokenBatch.of(pb), micro_batch_size=0, temperature=1.0, autocast_ctx=NOCTX)
    batch = policy_batch(pb, AlgorithmConfig(), old_logprob=ref + 0.1, ref_logprob=ref - 0.05)
    mask = batch.policy_mask.clone()
    mask[1] = 0
    masked = PolicyBatch(**{**vars(batch), "policy_mask": mask})
    keep = torch.tensor([0, 2, 3, 4])
    dropped = PolicyBatch(**{k: None if v is None else v[keep] for k, v in vars(batch).items()})
    cfg = PolicyLossConfig(loss_agg_mode=mode, kl_coef=0.1, entropy_coef=0.01)
    deltas = []
    for b in (masked, dropped):
        m = copy.deepcopy(model)
        deltas.append(sgd_delta(m, lambda opt: update_policy(
            m, opt, b, cfg, ppo_epochs=1, mini_batch_size=0, micro_batch_size=2, grad_clip=0.0,
            autocast_ctx=NOCTX)))
    for k in deltas[0]:
        torch.testing.assert_close(deltas[0][k], deltas[1][k], atol=1e-6, rtol=1e-4)


def test_critic_one_batch_equals_micro_batches(tiny_model_dir):
    critic = load_critic(tiny_model_dir, seed=0)
    pb = make_batch(critic.config.vocab_size)
    g = torch.Generator().manual_seed(2)
    shape = (pb.input_ids.shape[0], pb.input_ids.shape[1] - 1)
    batch = CriticBatch(TokenBatch.of(pb),
                        pb.response_mask[:, 1:], torch.randn(shape, generator=g), 0.1 * torch.randn(shape, generator=g))
    deltas = []
    for micro in (0, 2):
        c = copy.deepcopy(critic)
        deltas.append(sgd_delta(c, lambda opt: update_critic(
            c, opt, batch, clip_range=0.2, loss_agg_mode="token-mean", ppo_epochs=1, mini_batch_size=0,
            micro_batch_size=micro, grad_clip=0.0, autocast_ctx=NOCTX)))
    for k in deltas[0]:
        torch.testing.assert_close(deltas[1][k], deltas[0][k], atol=1e-6, rtol=1e-4)
    assert deltas[0]["score.weight"].abs().max() > 0


def test_non_finite_loss_stops_before_the_optimizer_step(tiny):
    model, tok = tiny
    m = copy.deepcopy(model)
    pb = make_batch(len(tok))
    batch = policy_batch(pb, AlgorithmConfig())
    bad = PolicyBatch(**{**vars(batch), "advantages": batch.advantages.clone().index_fill_(1, torch.tensor([6]), float("nan"))})
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    with pytest.raises(NonFiniteLossError, match=r"step 7: policy update .*non-finite loss=nan.*skipped"):
        update_policy(m, opt, bad, PolicyLossConfig(), ppo_epochs=1, mini_batch_size=0, micro_batch_size=0,
                      grad_clip=1.0, autocast_ctx=NOCTX, where="step 7: policy update")
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert not opt.state and all(p.grad is None for p in m.parameters())


def test_prefix_sharing_gives_the_plain_values_and_gradients(tiny, tiny_model_dir):
    # the fast path (distinct prompts encoded once, responses on a gathered KV cache) against the
    # plain full-sequence pass: same log-probs, entropies, values, and parameter gradients
    model, tok = tiny
    pb = make_batch(len(tok), shared=True)
    algo = AlgorithmConfig(mask_retrieved=False)
    cfg = dict(loss_agg_mode="token-mean", kl_coef=0.1, entropy_coef=0.01)
    ref = batched_logprobs(model, TokenBatch.of(pb),
                           micro_batch_size=0, temperature=1.0, autocast_ctx=NOCTX)
    grads, stats = [], []
    for share in (False, True):
        m = copy.deepcopy(model)
        acc = accumulate_policy_grads(m, policy_batch(pb, algo, ref_logprob=ref - 0.1),
                                      PolicyLossConfig(share_prefix=share, **cfg), micro_batch_size=0,
                                      autocast_ctx=NOCTX)
        grads.append({k: p.grad for k, p in m.named_parameters()})
        stats.append(acc)
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-6, rtol=1e-4)
    for k in ("loss", "entropy", "kl"):
        torch.testing.assert_close(stats[1][k], stats[0][k], atol=1e-5, rtol=1e-5)
    critic = load_critic(tiny_model_dir, seed=0)
    v = [batched_values(critic, TokenBatch.of(pb),
                        micro_batch_size=0, autocast_ctx=NOCTX, share_prefix=s) for s in (False, True)]
    resp = pb.response_mask[:, 1:]
    torch.testing.assert_close(v[1] * resp, v[0] * resp, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_and_lora_give_the_plain_gradient(tiny_model_dir):
    # build_models' options change memory, not math: the same gradient with activation
    # checkpointing, and LoRA's reference pass (adapters disabled) equals the base model
    from sr1lib.train.networks import build_models

    kw = dict(device=torch.device("cpu"), seed=0, need_ref=False, need_critic=False)
    plain = build_models(tiny_model_dir, **kw)
    ckpt = build_models(tiny_model_dir, gradient_checkpointing=True, **kw)
    on = lambda m: getattr(m, "is_activation_checkpointing", None) or m.is_gradient_checkpointing  # noqa: E731
    assert on(ckpt.policy) and not on(plain.policy)
    pb = make_batch(len(plain.tokenizer))
    batch = policy_batch(pb, AlgorithmConfig())
    grads = []
    for m in (plain.policy, ckpt.policy):
        m.train()
        accumulate_policy_grads(m, batch, PolicyLossConfig(), micro_batch_size=0, autocast_ctx=NOCTX)
        grads.append({k: p.grad for k, p in m.named_parameters()})
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-6, rtol=1e-5)
    lora = build_models(tiny_model_dir, lora_r=4, **{**kw, "need_ref": True})
    tokens = TokenBatch.of(pb)
    with lora.reference() as ref:
        got = batched_logprobs(ref, tokens, micro_batch_size=0, temperature=1.0, autocast_ctx=NOCTX)
    want = batched_logprobs(plain.policy.eval(), tokens, micro_batch_size=0, temperature=1.0, autocast_ctx=NOCTX)
    torch.testing.assert_close(got, want)
    assert sum(p.numel() for p in lora.policy.parameters() if p.requires_grad) < 0.2 * sum(
        p.numel() for p in plain.policy.parameters())


def test_entropy_is_reported_over_sampled_tokens_whatever_the_loss_trains_on(tiny):
    """Training on retrieved tokens (masking off) must not change the entropy the metrics report:
    it is the policy's entropy where it sampled; the loss mask's mean is a second metric."""
    from sr1lib.algos import masked_mean
    from sr1lib.train.batched import policy_forward

    model, tok = tiny
    pb = make_batch(len(tok))
    masks = token_masks(pb, AlgorithmConfig(mask_retrieved=False))
    with torch.no_grad():
        _, ent = policy_forward(model, TokenBatch.of(pb), temperature=1.0, with_entropy=True)
    got = {}
    for masked in (True, False):
        batch = policy_batch(pb, AlgorithmConfig(mask_retrieved=masked), sampled_mask=masks["sampled"])
        m = copy.deepcopy(model)
        got[masked] = update_policy(m, torch.optim.SGD(m.parameters(), lr=0.0), batch, PolicyLossConfig(),
                                    ppo_epochs=1, mini_batch_size=0, micro_batch_size=2, grad_clip=0.0,
                                    autocast_ctx=NOCTX)
    want, over_response = float(masked_mean(ent, masks["sampled"])), float(masked_mean(ent, masks["response"]))
    assert abs(want - over_response) > 1e-5 * want  # the two means differ, so the check can fail
    assert got[True]["entropy"] == pytest.approx(want, rel=1e-6)
    assert got[False]["entropy"] == pytest.approx(want, rel=1e-6)
    # over the loss mask, the variant that trains on retrieved tokens averages over more of them
    assert got[False]["entropy_loss_mask"] == pytest.approx(over_response, rel=1e-6)
