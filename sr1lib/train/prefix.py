"""Prefix-shared forward passes: every distinct prompt of a micro-batch is encoded once.

GRPO samples G responses per question, so a training batch holds each prompt G times; a plain
forward pass (what TRL and verl do) encodes it G times, with gradients. Here the distinct prompts
run once (left-padded, filling a KV cache), the cache rows are gathered for each trajectory, and only
the response tokens run on top of it. Attention sees exactly the same keys and values, so the
results equal the plain pass up to float rounding (tests/test_train_update.py compares log-probs,
values and gradients), while (G-1)/G of the prompt compute, forward and backward, is saved.

Outputs use the trainer's layout: [B, T-1] over the targets `input_ids[:, 1:]`; entry P_b - 1 + j is
response token j of row b (P_b its prompt length). Prompt targets come back as 0 (masks never select
them). Not used with gradient checkpointing (transformers drops the cache inside checkpointed
layers): the trainer then takes the plain path.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from sr1lib.train.forward import entropy_of

Tensor = torch.Tensor


def prompt_index(input_ids: Tensor, prompt_lengths: Tensor) -> tuple[Tensor, list[int]]:
    """(row -> distinct prompt number [B], first row of each distinct prompt). Prompts are compared
    by their token ids, so rows share a prefix only when it is truly identical."""
    seen: dict[tuple[int, ...], int] = {}
    firsts: list[int] = []
    idx = []
    for b, (row, p) in enumerate(zip(input_ids.tolist(), prompt_lengths.tolist())):
        key = tuple(row[:p])
        if key not in seen:
            seen[key] = len(firsts)
            firsts.append(b)
        idx.append(seen[key])
    return torch.tensor(idx, device=input_ids.device), firsts


def worth_sharing(input_ids: Tensor, prompt_lengths: Tensor) -> bool:
    """True when at least two rows of the (micro-)batch share their prompt."""
    return len(prompt_index(input_ids, prompt_lengths)[1]) < input_ids.shape[0]


def _new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # older transformers
        return DynamicCache()


def _cache_kw(cache: Any) -> dict[str, Any]:
    """The keyword that passes a KV cache to a model's forward: transformers 5.24 renamed
    `past_key_values` to `cache` (the old name warns and goes away in 5.40); earlier releases only
    know the old one. Asked of the library, not the model, so wrappers that pass **kwargs on work."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    renamed = "cache" in getattr(CausalLMOutputWithPast, "__dataclass_fields__", {})
    return {"cache": cache} if renamed else {"past_key_values": cache}


def _shared_forward(model: Any, input_ids: Tensor, attention_mask: Tensor, lengths: Tensor,
                    prompt_lengths: Tensor, head: Callable[[Any], Tensor], prompt_kw: dict[str, Any]
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run prompts once and responses on the shared cache.

    Returns (out [B, R, ...]: `head` output predicting response token j at index j, resp_ids [B, R],
    resp_mask [B, R], scatter index [B, R] into the [B, T-1] layout)."""
    dev = input_ids.device
    idx, firsts = prompt_index(input_ids, prompt_lengths)
    first = torch.tensor(firsts, device=dev)
    p_len = prompt_lengths.to(dev)
    p_max = int(p_len[first].max())
    # distinct prompts, left-padded so that every one ends at column p_max - 1
    cols = torch.arange(p_max, device=dev)
    src = cols[None, :] - (p_max - p_len[first])[:, None]
    p_mask = (src >= 0).long()
    p_ids = torch.where(p_mask > 0, input_ids[first].gather(1, src.clamp(min=0)), 0)
    p_pos = (p_mask.cumsum(1) - 1).clamp(min=0)
    cache = _new_cache(model)
    p_out = model(input_ids=p_ids, attention_mask=p_mask, position_ids=p_pos, use_cache=True,
                  **_cache_kw(cache), **prompt_kw)
    last = head(p_out)[:, -1]  # predicts each prompt's first response token
    cache.batch_select_indices(idx)
    # responses, right-padded, continuing each row's positions after its own prompt
    n_resp = (lengths.to(dev) - p_len)
    r_max = int(n_resp.max())
    r_cols = torch.arange(r_max, device=dev)
    r_mask = (r_cols[None, :] < n_resp[:, None]).long()
    r_src = (p_len[:, None] + r_cols[None, :]).clamp(max=input_ids.shape[1] - 1)
    r_ids = torch.where(r_mask > 0, input_ids.gather(1, r_src), 0)
    r_pos = p_len[:, None] + r_cols[None, :]
    r_out = model(input_ids=r_ids, attention_mask=torch.cat([p_mask[idx], r_mask], 1), position_ids=r_pos,
                  use_cache=True, **_cache_kw(cache))
    out = torch.cat([last[idx][:, None], head(r_out)[:, :-1]], 1)
    return out, r_ids, r_mask, p_len[:, None] - 1 + r_cols[None, :]


def _to_layout(values: Tensor, scatter_idx: Tensor, mask: Tensor, t_targets: int) -> Tensor:
    """[B, R] response values -> [B, T-1] target layout (zeros elsewhere); differentiable."""
    b, r = values.shape
    out = values.new_zeros(b, t_targets + r)  # room for pad columns past the end: no index collides
    return out.scatter(1, scatter_idx, values * mask)[:, :t_targets]


def shared_logprobs(model: Any, input_ids: Tensor, attention_mask: Tensor, lengths: Tensor,
                    prompt_lengths: Tensor, *, temperature: float = 1.0,
                    with_entropy: bool = False, entropy_grad: bool = True) -> tuple[Tensor, Tensor | None]:
    """Like `forward.forward_logprobs` ([B, T] -> [B, T-1]) with each distinct prompt encoded once."""
    logits, r_ids, r_mask, sidx = _shared_forward(model, input_ids, attention_mask, lengths, prompt_lengths,
                                                  lambda o: o.logits, {"logits_to_keep": 1})
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp = logits.gather(-1, r_ids[..., None])[..., 0] - torch.logsumexp(logits, dim=-1)
    t_targets = input_ids.shape[1] - 1
    mask = r_mask.to(logp.dtype)
    entropy = None
    if with_entropy:
        entropy = _to_layout(entropy_of(logits, entropy_grad), sidx, mask, t_targets)
    return _to_layout(logp, sidx, mask, t_targets), entropy


def shared_values(critic: Any, input_ids: Tensor, attention_mask: Tensor, lengths: Tensor,
                  prompt_lengths: Tensor) -> Tensor:
    """Like `forward.forward_values` ([B, T] -> [B, T-1], float32) with each distinct prompt encoded once."""
    values, _, r_mask, sidx = _shared_forward(critic, input_ids, attention_mask, lengths, prompt_lengths,
                                              lambda o: o.logits[..., 0], {})
    return _to_layout(values.float(), sidx, r_mask.float(), input_ids.shape[1] - 1)
