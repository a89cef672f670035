"""Segments -> tensors: the fast builder against its slow twin on random trajectories, the padded rows
against the trajectories' own tokens, and one hand-made case with every tensor spelled out."""

from __future__ import annotations

import random

import pytest
import torch

from sr1lib.masking import build_padded, build_padded_slow
from sr1lib.types import FEEDBACK, MODEL, PROMPT, RETRIEVED, QARecord, Segment, Trajectory

REC = QARecord("t/1", "q?", ("a",), "t")
PAD = 0


def traj(*segs: Segment, uid: str = "u") -> Trajectory:
    return Trajectory(uid=uid, group_id="0:t/1", record=REC, segments=tuple(segs))


def random_trajectory(rng: random.Random, i: int) -> Trajectory:
    segs = [Segment(PROMPT, tuple(rng.randrange(1, 50) for _ in range(rng.randint(1, 6))), "p")]
    for _ in range(rng.randint(0, 6)):
        src = rng.choice([MODEL, MODEL, RETRIEVED, FEEDBACK])
        ids = tuple(rng.randrange(0, 50) for _ in range(rng.randint(0, 5)))  # pad id 0 may be sampled too
        lps = tuple(-rng.random() * 5 for _ in ids) if src == MODEL and rng.random() < 0.8 else None
        segs.append(Segment(src, ids, "x", lps))
    return traj(*segs, uid=str(i))


def assert_same(a, b):
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y), name
        else:
            assert x == y, name


def test_hand_made_case():
    a = traj(Segment(PROMPT, (5, 6), "p"), Segment(MODEL, (7, 8), "m", (-0.1, -0.2)),
             Segment(RETRIEVED, (9,), "r"), Segment(MODEL, (10,), "m"))
    b = traj(Segment(PROMPT, (5,), "p"), Segment(FEEDBACK, (11,), "f"), Segment(MODEL, (12,), "m", (-0.3,)))
    batch = build_padded([a, b], pad_id=PAD)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9, 10], [5, 11, 12, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 0, 0]]
    assert batch.response_mask.tolist() == [[0, 0, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0]]
    assert batch.sampled_mask.tolist() == [[0, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 0]]
    assert batch.lengths.tolist() == [6, 3] and batch.prompt_lengths.tolist() == [2, 1]


@pytest.mark.parametrize("seed", range(20))
def test_fast_equals_slow_on_random_trajectories(seed):
    rng = random.Random(seed)
    trajs = [random_trajectory(rng, i) for i in range(rng.randint(1, 7))]
    assert_same(build_padded(trajs, PAD), build_padded_slow(trajs, PAD))


@pytest.mark.parametrize("seed", range(10))
def test_padded_rows_hold_the_trajectories_tokens(seed):
    rng = random.Random(100 + seed)
    trajs = [random_trajectory(rng, i) for i in range(rng.randint(1, 7))]
    padded = build_padded(trajs, PAD)
    for b, tr in enumerate(trajs):
        row = padded.input_ids[b, : padded.lengths[b]]
        assert row.tolist() == [t for s in tr.segments for t in s.token_ids]
        # sampled_mask picks out exactly the model-sampled ids, in order; pads never count.
        assert padded.input_ids[b][padded.sampled_mask[b] == 1].tolist() == list(tr.model_token_ids)
        assert int(padded.response_mask[b].sum()) == tr.n_response_tokens


def test_pad_to_multiple_and_device_move():
    rng = random.Random(5)
    trajs = [random_trajectory(rng, i) for i in range(3)]
    batch = build_padded(trajs, PAD, pad_to_multiple_of=8)
    assert batch.input_ids.shape[1] % 8 == 0
    assert int(batch.attention_mask.sum()) == sum(t.n_tokens for t in trajs)
    moved = batch.to("cpu")
    assert torch.equal(moved.sampled_mask, batch.sampled_mask)


def test_errors():
    with pytest.raises(ValueError, match="no trajectories"):
        build_padded([], PAD)
