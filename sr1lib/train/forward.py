"""Plain forward passes of the trainer: per-token log-probs, entropies and values of one batch.

Glossary: B rows, T padded length, V vocabulary. Token alignment: every per-token tensor the trainer
handles is [B, T-1] and describes the TARGET tokens `input_ids[:, 1:]`; entry t is scored from the
logits (or hidden state) at position t, as in `sr1lib.masking`. Position 0 is always a prompt token,
so nothing trained is lost by the shift.

- log-probs are those of softmax(logits / temperature), the distribution the rollout sampled from
  (verl divides logits by the temperature too);
- only logits at positions >= (shortest prompt - 1) are computed (`logits_to_keep`): prompt logits
  are never needed, and an LM head over a long prompt is the largest single cost of a forward pass.
"""

from __future__ import annotations

from typing import Any

import torch

from sr1lib.algos import compute_entropy_from_logits

Tensor = torch.Tensor


def entropy_of(logits: Tensor, grad: bool) -> Tensor:
    """Entropy per position; without `grad` no autograd graph is kept (a metric only: the softmax
    over the vocabulary would otherwise be stored for backward)."""
    if grad:
        return compute_entropy_from_logits(logits)
    with torch.no_grad():
        return compute_entropy_from_logits(logits.detach())


def forward_logprobs(model: Any, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, *,
                     first_target: int = 1, temperature: float = 1.0,
                     with_entropy: bool = False, entropy_grad: bool = True) -> tuple[Tensor, Tensor | None]:
    """Log-probs (and entropies) of the target tokens under `model`, with grad if enabled.

    input_ids, attention_mask, position_ids: [B, T] -> (logprob [B, T-1], entropy [B, T-1] | None),
    entry t scoring input_ids[:, t + 1]. Targets before `first_target` (prompt tokens, when it is
    the shortest prompt length) and padding targets get 0; the former never have logits computed.
    """
    t_len = input_ids.shape[1]
    first_target = max(1, min(first_target, t_len - 1))
    keep = t_len - first_target + 1  # logits at positions first_target - 1 .. T - 1
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=False, logits_to_keep=keep)
    logits = out.logits[:, :-1].float()  # [B, T - first_target, V], the last position has no target
    if temperature != 1.0:
        logits = logits / temperature
    targets = input_ids[:, first_target:]
    real = attention_mask[:, first_target:].to(logits.dtype)  # padding targets come back as 0
    logp = (logits.gather(-1, targets[..., None])[..., 0] - torch.logsumexp(logits, dim=-1)) * real
    pad = logp.new_zeros(logp.shape[0], first_target - 1)
    entropy = None
    if with_entropy:
        entropy = torch.cat([pad, entropy_of(logits, entropy_grad) * real], dim=1)
    return torch.cat([pad, logp], dim=1), entropy


def forward_values(critic: Any, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor) -> Tensor:
    """Values of the state before each target token: [B, T] inputs -> [B, T-1] (float32)."""
    out = critic(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return out.logits[:, :-1, 0].float()
