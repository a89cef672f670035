"""Choosing trajectories of run folders: the inspector's data side, as pure functions.

Runs are read only through their folders (`sr1lib.runs.RunDir`): `rollouts.jsonl` holds the
trajectories a run logged per step, `config.json` says whether retrieved tokens were masked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from sr1lib.errors import Sr1Error
from sr1lib.runs import RunDir
from sr1lib.types import Trajectory
from sr1lib.views.trajectory import is_correct

Item = tuple[int, Trajectory]  # (training step, trajectory)
CORRECT_CHOICES = ("all", "correct", "incorrect")


def load_trajectories(run: str | Path) -> list[Item]:
    """Every (step, trajectory) a run logged, in file order."""
    return list(RunDir.open(run).rollouts())


def run_masks_retrieved(run: str | Path) -> bool:
    """The run's `algorithm.mask_retrieved` (True when unknown)."""
    try:
        return bool(RunDir.open(run).config().algorithm.mask_retrieved)
    except Sr1Error:
        return True


def run_model_path(run: str | Path) -> str:
    try:
        return RunDir.open(run).config().train.model
    except Sr1Error:
        return ""


def run_tokenizer(run: str | Path) -> Any:
    """The tokenizer of the run's policy (`train.model`), or None when it cannot be loaded (the views
    then work without per-token text)."""
    model = run_model_path(run)
    if not model or not Path(model).is_dir():
        return None
    from sr1lib.models import load_tokenizer

    try:
        return load_tokenizer(model)
    except Exception:  # noqa: BLE001 - per-token text is optional
        return None


def _searches_ok(n: int, spec: Any) -> bool:
    if spec in (None, "any", ""):
        return True
    if isinstance(spec, str) and spec.endswith("+"):
        return n >= int(spec[:-1])
    return n == int(spec)


def filter_trajectories(items: Sequence[Item], *, step: int | None = None, correct: str = "all",
                        searches: int | str | None = None, data_source: str | None = None) -> list[Item]:
    """Items matching every filter. correct: all | correct | incorrect (exact match of the answer);
    searches: an exact count, `"N+"` for at least N, or None/"any"; data_source: None/"all" or a name."""
    if correct not in CORRECT_CHOICES:
        raise Sr1Error(f"correct={correct!r}: valid choices are {list(CORRECT_CHOICES)}")
    out = []
    for s, t in items:
        if step is not None and s != step:
            continue
        if correct != "all" and is_correct(t) != (correct == "correct"):
            continue
        if not _searches_ok(t.n_searches, searches):
            continue
        if data_source not in (None, "all", "") and t.record.data_source != data_source:
            continue
        out.append((s, t))
    return out


def steps_of(items: Sequence[Item]) -> list[int]:
    return sorted({s for s, _ in items})


def sources_of(items: Sequence[Item]) -> list[str]:
    return sorted({t.record.data_source for _, t in items})


def same_question(items: Sequence[Item], record_id: str) -> list[Item]:
    """Every logged trajectory of one question, across steps (step-to-step comparison)."""
    return sorted(((s, t) for s, t in items if t.record.id == record_id), key=lambda x: (x[0], x[1].uid))


def describe_item(item: Item, width: int = 60) -> str:
    """A one-line label: step, correct mark, searches, reward and the start of the question."""
    s, t = item
    q = t.record.question if len(t.record.question) <= width else t.record.question[: width - 1] + "…"
    member = t.uid.rsplit(":", 1)[-1]  # the trajectory's index in its group
    mark = "✓" if is_correct(t) else "✗"
    return f"step {s} #{member} · {mark} · {t.n_searches} search · r={t.reward:.2g} · {q}"
