"""Forward passes over a training batch, micro-batch by micro-batch: the loop the trainer's no-grad
passes and its updates share.

Glossary: B rows, T padded length. A `TokenBatch` holds the model inputs of a right-padded batch;
`micro_forward` is the one micro-batch loop (slice the rows, trim them to their longest row, run a
forward pass under autocast); `policy_forward` / `critic_forward` pick the prompt-shared pass
(`sr1lib.train.prefix`) when asked for and useful, else the plain one (`sr1lib.train.forward`).
Per-token outputs are [B, T-1] over the target tokens, as in `sr1lib.train.forward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch

from sr1lib.train.forward import forward_logprobs, forward_values
from sr1lib.train.prefix import shared_logprobs, shared_values, worth_sharing

Tensor = torch.Tensor
Out = TypeVar("Out")


@dataclass(frozen=True)
class TokenBatch:
    """Model inputs of a right-padded batch: [B, T] ids, attention and positions, [B] lengths."""

    input_ids: Tensor  # long
    attention_mask: Tensor  # long, 1 on real tokens
    position_ids: Tensor  # long
    lengths: Tensor  # long, tokens per row
    prompt_lengths: Tensor  # long, prompt tokens per row

    @classmethod
    def of(cls, padded: Any) -> "TokenBatch":
        """The model inputs of a `sr1lib.masking.PaddedBatch`."""
        return cls(padded.input_ids, padded.attention_mask, padded.position_ids, padded.lengths,
                   padded.prompt_lengths)

    @property
    def rows(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, rows: slice | Tensor) -> "TokenBatch":
        """The same batch for `rows` only (a slice or an index tensor)."""
        return TokenBatch(*(getattr(self, k)[rows] for k in self.__dataclass_fields__))

    def trimmed(self) -> tuple["TokenBatch", int]:
        """(the batch cut to its longest row n, n): right padding makes the columns past n pads."""
        n = int(self.lengths.max())
        return TokenBatch(trim(self.input_ids, n), trim(self.attention_mask, n), trim(self.position_ids, n),
                          self.lengths, self.prompt_lengths), n


def trim(t: Tensor, length: int) -> Tensor:
    """The first `length` columns of a [B, T(, ...)] tensor (right padding makes the rest pads)."""
    return t[:, :length]


def micro_slices(n: int, size: int) -> list[slice]:
    """Row slices of at most `size` rows covering 0..n (size 0 = one slice)."""
    size = size or n
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def micro_forward(tokens: TokenBatch, micro_batch_size: int, forward: Callable[[TokenBatch], Out],
                  autocast_ctx: Callable[[], Any]) -> Iterator[tuple[slice, int, Out]]:
    """Run `forward` over `tokens` in micro-batches of at most `micro_batch_size` rows (0 = one), each
    trimmed to its longest row n and run under `autocast_ctx`. Yields (row slice, n, output); the
    caller reduces the outputs (per-token ones are [rows, n-1]) while the next micro-batch waits."""
    for sl in micro_slices(tokens.rows, micro_batch_size):
        mb, n = tokens[sl].trimmed()
        with autocast_ctx():
            out = forward(mb)
        yield sl, n, out


def policy_forward(model: Any, tokens: TokenBatch, *, temperature: float, with_entropy: bool = False,
                   entropy_grad: bool = True, share_prefix: bool = False) -> tuple[Tensor, Tensor | None]:
    """Per-target log-probs (and entropies) [B, T-1] of a (micro-)batch already trimmed to its longest
    row: prefix-shared when asked for and some rows share a prompt, else one plain pass from the
    shortest prompt on."""
    if share_prefix and worth_sharing(tokens.input_ids, tokens.prompt_lengths):
        return shared_logprobs(model, tokens.input_ids, tokens.attention_mask, tokens.lengths, tokens.prompt_lengths,
                               temperature=temperature, with_entropy=with_entropy, entropy_grad=entropy_grad)
    return forward_logprobs(model, tokens.input_ids, tokens.attention_mask, tokens.position_ids,
                            first_target=int(tokens.prompt_lengths.min()), temperature=temperature,
                            with_entropy=with_entropy, entropy_grad=entropy_grad)


def critic_forward(critic: Any, tokens: TokenBatch, *, share_prefix: bool = False) -> Tensor:
    """Values [B, T-1] of a trimmed (micro-)batch, prefix-shared when asked for and useful."""
    if share_prefix and worth_sharing(tokens.input_ids, tokens.prompt_lengths):
        return shared_values(critic, tokens.input_ids, tokens.attention_mask, tokens.lengths, tokens.prompt_lengths)
    return forward_values(critic, tokens.input_ids, tokens.attention_mask, tokens.position_ids)


def _gather(tokens: TokenBatch, parts: Iterator[tuple[slice, int, Tensor]]) -> Tensor:
    out = torch.zeros(tokens.rows, tokens.input_ids.shape[1] - 1, device=tokens.input_ids.device)
    for sl, n, values in parts:
        out[sl, : n - 1] = values
    return out


@torch.no_grad()
def batched_logprobs(model: Any, tokens: TokenBatch, *, micro_batch_size: int, temperature: float,
                     autocast_ctx: Callable[[], Any], share_prefix: bool = False) -> Tensor:
    """No-grad log-probs [B, T-1] (the reference and 'old policy' passes)."""
    def forward(mb: TokenBatch) -> Tensor:
        return policy_forward(model, mb, temperature=temperature, share_prefix=share_prefix)[0]

    return _gather(tokens, micro_forward(tokens, micro_batch_size, forward, autocast_ctx))


@torch.no_grad()
def batched_values(critic: Any, tokens: TokenBatch, *, micro_batch_size: int, autocast_ctx: Callable[[], Any],
                   share_prefix: bool = False) -> Tensor:
    """No-grad values [B, T-1]."""
    def forward(mb: TokenBatch) -> Tensor:
        return critic_forward(critic, mb, share_prefix=share_prefix)

    return _gather(tokens, micro_forward(tokens, micro_batch_size, forward, autocast_ctx))
