"""Segments -> training tensors: a right-padded batch with masks taken from segment sources.

Glossary: B trajectories, T padded length (longest trajectory), N total tokens of the batch.

Every per-token tensor is aligned with `input_ids`: `sampled_mask[b, t] == 1` says token t of row b
was sampled by the policy. The trainer scores token t with the logits at position t-1:

    logp = log_softmax(logits[:, :-1]).gather(-1, input_ids[:, 1:, None])[..., 0]   # (B, T-1)
    mask = sampled_mask[:, 1:]

Position 0 is always a prompt token, so nothing trained is lost by the shift.

Padding is on the RIGHT: every row starts at position 0, so `position_ids` are plain 0..len-1 and
a token's index is the same in the padded row and in its trajectory (generation pads on the left;
training does not need to). Pads carry `pad_id`, attention 0 and every mask 0; masks never depend
on token values (the reference implementation finds retrieved tokens by pad-id sentinels).

Masks, from segment sources alone:
- `response_mask`: 1 on every non-prompt token (model, retrieved, feedback): what the critic and
  GAE see when retrieved tokens are not hidden from them;
- `sampled_mask`: 1 exactly on `model` tokens (Search-R1's retrieved-token masking).

The trainer recomputes every log-prob it needs, so the sampler's log-probs stay on the segments.
`build_padded` has a slow per-token twin (`build_padded_slow`) that a randomised test compares it
with.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch

from sr1lib.types import MODEL, PROMPT, Trajectory


@dataclass(frozen=True)
class PaddedBatch:
    """Right-padded tensors, all (B, T) except `lengths` and `prompt_lengths` (B,)."""

    input_ids: torch.Tensor  # long
    attention_mask: torch.Tensor  # long, 1 on real tokens
    position_ids: torch.Tensor  # long, 0..len-1 then 0 on pads
    response_mask: torch.Tensor  # float32, 1 on non-prompt tokens
    sampled_mask: torch.Tensor  # float32, 1 on model-sampled tokens
    lengths: torch.Tensor  # long
    prompt_lengths: torch.Tensor  # long

    def to(self, device: torch.device | str) -> "PaddedBatch":
        return type(self)(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


@dataclass(frozen=True)
class _Flat:
    """Every token of every trajectory in order, with its row, position and flags (all (N,))."""

    ids: np.ndarray
    row: np.ndarray
    pos: np.ndarray
    response: np.ndarray
    model: np.ndarray
    lengths: np.ndarray
    prompt_lengths: np.ndarray


def _flatten(trajectories: Sequence[Trajectory]) -> _Flat:
    """Per-segment arrays expanded to per-token arrays with np.repeat (no per-token Python)."""
    segs = [(b, s) for b, tr in enumerate(trajectories) for s in tr.segments]
    seg_len = np.array([len(s.token_ids) for _, s in segs], dtype=np.int64)
    seg_row = np.array([b for b, _ in segs], dtype=np.int64)
    seg_src_model = np.array([s.source == MODEL for _, s in segs], dtype=bool)
    seg_src_prompt = np.array([s.source == PROMPT for _, s in segs], dtype=bool)
    n = int(seg_len.sum())
    ids = np.fromiter((t for _, s in segs for t in s.token_ids), dtype=np.int64, count=n)
    row = np.repeat(seg_row, seg_len)
    lengths = np.bincount(row, minlength=len(trajectories)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(n, dtype=np.int64) - starts[row]
    prompt_lengths = np.bincount(seg_row, weights=seg_len * seg_src_prompt, minlength=len(trajectories))
    return _Flat(ids=ids, row=row, pos=pos, response=np.repeat(~seg_src_prompt, seg_len),
                 model=np.repeat(seg_src_model, seg_len), lengths=lengths,
                 prompt_lengths=prompt_lengths.astype(np.int64))


def build_padded(trajectories: Sequence[Trajectory], pad_id: int, *, pad_to_multiple_of: int = 1) -> PaddedBatch:
    """Right-padded batch of `trajectories` (see the module docstring for every tensor)."""
    if not trajectories:
        raise ValueError("build_padded: no trajectories")
    f = _flatten(trajectories)
    b = len(trajectories)
    t = int(f.lengths.max()) if b else 0
    t = -(-t // pad_to_multiple_of) * pad_to_multiple_of

    def scatter(values: np.ndarray, fill: float, dtype: torch.dtype) -> torch.Tensor:
        out = np.full((b, t), fill, dtype=values.dtype)
        out[f.row, f.pos] = values
        return torch.from_numpy(out).to(dtype)

    return PaddedBatch(
        input_ids=scatter(f.ids, pad_id, torch.long),
        attention_mask=scatter(np.ones_like(f.ids), 0, torch.long),
        position_ids=scatter(f.pos, 0, torch.long),
        response_mask=scatter(f.response.astype(np.float32), 0, torch.float32),
        sampled_mask=scatter(f.model.astype(np.float32), 0, torch.float32),
        lengths=torch.from_numpy(f.lengths),
        prompt_lengths=torch.from_numpy(f.prompt_lengths),
    )


# ------------------------------------------------------------------ slow, obviously-correct twins


def build_padded_slow(trajectories: Sequence[Trajectory], pad_id: int) -> PaddedBatch:
    """Token by token, row by row: the reference `build_padded` is tested against."""
    rows = [_token_rows(tr) for tr in trajectories]
    t = max(len(r) for r in rows)
    cols: dict[str, list[list[float]]] = {k: [] for k in ("ids", "att", "pos", "resp", "sampled")}
    for r in rows:
        pad = t - len(r)
        cols["ids"].append([x[0] for x in r] + [pad_id] * pad)
        cols["att"].append([1] * len(r) + [0] * pad)
        cols["pos"].append(list(range(len(r))) + [0] * pad)
        cols["resp"].append([float(x[1] != PROMPT) for x in r] + [0.0] * pad)
        cols["sampled"].append([float(x[1] == MODEL) for x in r] + [0.0] * pad)
    return PaddedBatch(
        input_ids=torch.tensor(cols["ids"], dtype=torch.long),
        attention_mask=torch.tensor(cols["att"], dtype=torch.long),
        position_ids=torch.tensor(cols["pos"], dtype=torch.long),
        response_mask=torch.tensor(cols["resp"], dtype=torch.float32),
        sampled_mask=torch.tensor(cols["sampled"], dtype=torch.float32),
        lengths=torch.tensor([len(r) for r in rows], dtype=torch.long),
        prompt_lengths=torch.tensor([sum(1 for x in r if x[1] == PROMPT) for r in rows], dtype=torch.long),
    )


def _token_rows(tr: Trajectory) -> list[tuple[int, str]]:
    """(token id, source) for every token of one trajectory, in order."""
    return [(tok, seg.source) for seg in tr.segments for tok in seg.token_ids]
