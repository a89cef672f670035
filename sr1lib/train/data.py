"""Training data: which records a run trains and validates on, and which records each step gets.

`data.train` / `data.val` entries are data files (.parquet, .jsonl, .json), registered dataset names
(`nq`, `hotpotqa`, ...: their train split, resp. their evaluation split, from `data/downloads`), or
a toy world (`toy`, `toy:PROFILE`, `toy:PROFILE:SEED`: its train/validation split, built on first
use). Records are de-duplicated by id (first wins). When every entry is a toy world and
`retrieval.index` is empty, the run searches an index of that world's corpus (`toy_index`).

Batch order is a pure function of (seed, step): epoch e is a permutation of the records seeded by
(seed, e) (identity when `data.shuffle` is off) cut into len(records) // batch_size batches; the
remainder of an epoch is dropped, so a batch never holds one question twice (GRPO groups are keyed
by question). A checkpoint records the position for people; resuming needs only the step.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from sr1lib.config import RunConfig
from sr1lib.errors import Sr1Error
from sr1lib.types import QARecord

TOY = "toy"


def _is_toy(entry: str) -> bool:
    return entry == TOY or entry.startswith(TOY + ":")


def _toy_world(spec: str) -> Path:
    try:
        from sr1lib.toyworld.spec import toy_world
    except ImportError:
        raise Sr1Error(f"data {spec!r}: the toy world is not available in this install; give data files "
                       "(.parquet/.jsonl/.json) or dataset names instead") from None
    return toy_world(spec)


def _toy_split(spec: str, split: str) -> list[QARecord]:
    from sr1lib.data import load_records

    return load_records(_toy_world(spec) / f"{split}.parquet", split=split)


def toy_index(entries: Sequence[str], backend: str) -> Path | None:
    """An index of the toy world's corpus when every entry names the same toy world, else None."""
    if not entries or not all(_is_toy(e) for e in entries):
        return None
    worlds = {_toy_world(e) for e in entries}
    if len(worlds) > 1:
        raise Sr1Error(f"data.train names {len(worlds)} toy worlds ({list(entries)}); each has its own corpus, "
                       "so set retrieval.index to the one to search")
    from sr1lib.evaluate.core import index_for

    return index_for(worlds.pop() / "corpus.jsonl", backend, progress=False)


def load_split(entries: Sequence[str], split: str) -> list[QARecord]:
    """Records of every entry (see the module docstring), de-duplicated by id, in order."""
    from sr1lib.data import load_records
    from sr1lib.data.names import DATASETS, resolve

    out: list[QARecord] = []
    seen: set[str] = set()
    for entry in entries:
        if _is_toy(entry):
            records = _toy_split(entry, "train" if split == "train" else "validation")
        elif Path(entry).suffix:
            records = load_records(entry, split=split)
        elif entry in DATASETS:
            records = load_records(resolve(entry, split="train" if split == "train" else None), data_source=entry)
        else:
            raise Sr1Error(f"data.{split}: {entry!r} is neither a data file (.parquet/.jsonl/.json) nor a "
                           f"dataset name; valid names are {sorted(DATASETS) + [TOY]}")
        for r in records:
            if r.id not in seen:
                seen.add(r.id)
                out.append(r)
    return out


def batches_per_epoch(n_records: int, batch_size: int) -> int:
    return n_records // batch_size


def data_position(step: int, n_records: int, batch_size: int) -> dict[str, int]:
    """Where 1-based training step `step` reads: {"epoch", "batch"} (both 0-based)."""
    per = batches_per_epoch(n_records, batch_size)
    return {"epoch": (step - 1) // per, "batch": (step - 1) % per}


def batch_for_step(records: Sequence[QARecord], step: int, batch_size: int, *, seed: int,
                   shuffle: bool) -> list[QARecord]:
    """The questions of 1-based training step `step`."""
    if len(records) < batch_size:
        raise Sr1Error(f"train.batch_size is {batch_size} but the training data has only {len(records)} "
                       "questions; lower train.batch_size or add data")
    pos = data_position(step, len(records), batch_size)
    order = list(range(len(records)))
    if shuffle:
        random.Random(seed * 1_000_003 + pos["epoch"]).shuffle(order)
    start = pos["batch"] * batch_size
    return [records[i] for i in order[start:start + batch_size]]
