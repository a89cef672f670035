"""`sr1 import verl`: a verl run's metrics log and rollout dumps -> an sr1 run folder.

Read (any of them may be absent; what is found is reported):
- metrics: verl's `file` logger output (`{"step": N, "data": {...}}` per line, orjson), or its console
  logger output (`step:N - key:value - ...` lines) saved to a `.log`/`.txt` file;
- rollouts: `trainer.rollout_data_dir` and `trainer.validation_data_dir` dumps, `{step}.jsonl` with
  `input`, `output`, `gts`, `score`, `step` and, when the trainer passes them on, the sr1 facts the
  agent loop put in `reward_extra_info` (validation dumps carry them; verl 0.9.1's training dumps
  carry only `uid`);
- `sr1_config.yaml` (written by `sr1 export verl`) beside the run, for the run's config.

Written: config.json, env.json (`imported_from: verl`), metrics.jsonl with sr1 metric names where a
verl metric means the same thing (`METRIC_MAP`) and every verl metric kept under `verl/<name>`,
rollouts.jsonl, and import.json listing what verl did not log. Nothing is invented: a trajectory's
segments are split from the decoded text (verl dumps no token ids, so `token_ids` are empty and
`extra["missing"]` says so), and facts verl did not dump stay at their defaults and are listed as
missing, never guessed from text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from sr1lib import config as cfgmod
from sr1lib import protocol
from sr1lib.errors import Sr1Error
from sr1lib.rewards import extract_answer
from sr1lib.turns import OBS_CLOSE, OBS_OPEN
from sr1lib.types import FEEDBACK, MODEL, PROMPT, RETRIEVED, QARecord, Segment, Trajectory

# verl metric -> sr1 metric, where both measure the same quantity (first present wins)
METRIC_MAP: dict[str, tuple[str, ...]] = {
    "reward_mean": ("critic/score/mean",),
    "response_tokens_mean": ("response_length/mean",),
    "entropy": ("actor/entropy",),
    "kl": ("actor/kl_loss", "actor/reward_kl_penalty"),
    "policy_loss": ("actor/pg_loss",),
    "clip_frac": ("actor/pg_clipfrac",),
    "grad_norm": ("actor/grad_norm",),
    "value_loss": ("critic/vf_loss",),
    "turns_mean": ("num_turns/mean",),
    "rollout_s": ("timing_s/gen",),
    "step_s": ("timing_s/step",),
}
# sr1 curves verl does not log under any name (reported as missing on every import)
NOT_LOGGED = ("searches_mean", "valid_search_ratio", "finish_ratio", "truncation_ratio")
FACT_FIELDS = ("n_searches", "n_valid_searches", "n_invalid", "n_turns", "finished", "truncated")
CONSOLE_RE = re.compile(r"step:(\d+)\s+-\s+(.*)")


# ----------------------------------------------------------------------------- metrics


def read_metric_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(step, metrics) from a file or console logger output; other lines are skipped."""
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a cut-short last line of a killed run
            if isinstance(row, dict) and "step" in row and isinstance(row.get("data"), dict):
                yield int(row["step"]), row["data"]
        elif (m := CONSOLE_RE.search(line)) is not None:
            yield int(m.group(1)), dict(_console_pairs(m.group(2)))


def _console_pairs(text: str) -> Iterator[tuple[str, float]]:
    for part in text.split(" - "):
        key, sep, value = part.rpartition(":")
        try:
            yield key.strip(), float(value)
        except ValueError:
            continue


def sr1_metrics(verl: dict[str, Any], reward: str) -> dict[str, Any]:
    """One step's sr1 metrics: mapped names, validation reward, and every verl metric as `verl/<name>`."""
    out: dict[str, Any] = {}
    for name, keys in METRIC_MAP.items():
        found = next((verl[k] for k in keys if k in verl), None)
        if found is not None:
            out[name] = found
    val = [v for k, v in verl.items() if k.startswith("val-core/") and "/reward/mean@" in k]
    if val:  # the loop's reward_score is sr1's reward; with reward `em` it is exact match
        out["val_em" if reward == "em" else "val_reward"] = sum(val) / len(val)
    if reward == "em" and "reward_mean" in out:
        out["em"] = out["reward_mean"]
    out.update({f"verl/{k}": v for k, v in verl.items()})
    return out


def merge_steps(rows: Iterator[tuple[int, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    """verl logs validation and training of one step in separate calls: merge them per step."""
    steps: dict[int, dict[str, Any]] = {}
    for step, data in rows:
        steps.setdefault(step, {}).update(data)
    return steps


# ----------------------------------------------------------------------------- rollouts


def split_response(text: str) -> list[Segment]:
    """Model, retrieved and feedback segments of a decoded response, by sr1's own frame strings."""
    segs: list[Segment] = []
    feedback = (protocol.INVALID_ACTION_FEEDBACK, protocol.SEARCH_BUDGET_FEEDBACK)
    pattern = re.compile("(" + "|".join(re.escape(f) for f in feedback) + "|" + re.escape(OBS_OPEN)
                         + ".*?" + re.escape(OBS_CLOSE.rstrip("\n")) + r"\n{0,2})", re.DOTALL)
    pos = 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            segs.append(Segment(MODEL, (), text[pos:m.start()]))
        piece = m.group(0)
        segs.append(Segment(FEEDBACK if piece in feedback else RETRIEVED, (), piece))
        pos = m.end()
    if pos < len(text):
        segs.append(Segment(MODEL, (), text[pos:]))
    return segs


def _answers(gts: Any) -> tuple[str, ...]:
    target = gts.get("target", gts) if isinstance(gts, dict) else gts
    if target is None:
        return ()
    return (str(target),) if isinstance(target, str) else tuple(str(a) for a in target)


def _question(prompt: str) -> str:
    """The question in a decoded prompt: the first line after the last `Question:` (a chat template's
    trailing text, decoded without its special tokens, follows on later lines)."""
    _, marker, after = prompt.rpartition("Question:")
    lines = [ln.strip() for ln in (after if marker else prompt).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def trajectory_of(row: dict[str, Any], i: int, source: str) -> Trajectory:
    """An sr1 Trajectory from one dump row; what the row lacks is listed in extra['missing']."""
    step = int(row.get("step", 0))
    uid = str(row.get("uid") or f"{step}:{i}")
    prompt, output = str(row.get("input", "")), str(row.get("output", ""))
    question = str(row.get("question") or "") or _question(prompt)
    record = QARecord(id=uid.rsplit("_", 2)[0], question=str(question), golden_answers=_answers(row.get("gts")),
                      data_source=str(row.get("data_source", "verl")))
    facts = {k: row[k] for k in FACT_FIELDS if row.get(k) is not None}
    missing = ["token_ids", "logprobs"] + [k for k in FACT_FIELDS if k not in facts]
    missing += [k for k in ("queries", "end") if row.get(k) is None]
    extra = {"imported_from": f"verl {source}", "missing": missing, "end": row.get("end", "")}
    extra.update({k: row[k] for k in ("retriever_errors", "blocked_searches", "context_truncations") if k in row})
    return Trajectory(uid=uid, group_id=f"{step}:{record.id}", record=record,
                      segments=(Segment(PROMPT, (), prompt), *split_response(output)),
                      reward=float(row.get("score", 0.0)), answer=extract_answer(output),
                      queries=tuple(row.get("queries") or ()), extra=extra,
                      **{k: (bool(v) if k in ("finished", "truncated") else int(v)) for k, v in facts.items()})


def dump_files(folder: Path) -> list[tuple[int, Path]]:
    """verl's `{step}.jsonl` files in `folder`, by step."""
    return sorted((int(p.stem), p) for p in folder.glob("*.jsonl") if p.stem.isdigit())


# ----------------------------------------------------------------------------- the folder


def find_inputs(src: Path) -> dict[str, Any]:
    """Where the metrics log, the dumps and the sr1 config are, under `src` (an export folder or a verl run)."""
    candidates = [src, src / "verl_run"]
    metrics = [p for c in candidates if c.is_dir() for p in sorted(c.glob("*.jsonl")) + sorted(c.glob("*.log"))
               + sorted(c.glob("*.txt"))]
    metrics = [p for p in metrics if not p.stem.isdigit()]
    dumps = {kind: next((c / name for c in candidates if (c / name).is_dir()), None)
             for kind, name in (("train", "rollouts"), ("validation", "validation"))}
    config = next((c / "sr1_config.yaml" for c in [src, src.parent] if (c / "sr1_config.yaml").exists()), None)
    return {"metrics": metrics, "dumps": dumps, "config": config}


def import_verl(src: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the sr1 run folder `out` from the verl run under `src`; returns the import report."""
    from sr1lib.fsutil import write_json_atomic
    from sr1lib.runs import RunDir

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise Sr1Error(f"sr1 import verl: {src} is not a folder")
    found = find_inputs(src)
    if not found["metrics"] and not any(found["dumps"].values()):
        raise Sr1Error(f"sr1 import verl: {src} holds no verl metrics log (*.jsonl from the file logger, or a "
                       "console .log) and no rollouts/ or validation/ dump folder")
    if (out / "metrics.jsonl").exists() or (out / "rollouts.jsonl").exists():
        raise Sr1Error(f"sr1 import verl: {out} already holds a run; choose a new --out folder")
    cfg = cfgmod.load(found["config"]) if found["config"] else cfgmod.RunConfig(name=src.name)
    run = RunDir.create(cfg, out)
    steps = merge_steps(row for p in found["metrics"] for row in read_metric_lines(p))
    seen: set[str] = set()
    for step in sorted(steps):
        m = sr1_metrics(steps[step], cfg.algorithm.reward)
        seen.update(k for k in m if not k.startswith("verl/"))
        run.log_metrics(step, m)
    n_traj = 0
    for kind, folder in found["dumps"].items():
        for step, path in dump_files(folder) if folder else []:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            trajs = [trajectory_of(r, i, kind) for i, r in enumerate(rows)]
            run.log_rollouts(step, trajs)
            n_traj += len(trajs)
    report = {"source": str(src), "metrics_files": [str(p) for p in found["metrics"]], "steps": len(steps),
              "trajectories": n_traj, "dumps": {k: str(v) if v else None for k, v in found["dumps"].items()},
              "config": str(found["config"]) if found["config"] else None,
              "missing_metrics": sorted(set(METRIC_MAP) - seen) + list(NOT_LOGGED),
              "missing_per_trajectory": ["token_ids", "logprobs"]}
    env = json.loads((run.path / "env.json").read_text())
    write_json_atomic(run.path / "env.json", {**env, "imported_from": "verl"})
    write_json_atomic(run.path / "import.json", report)
    return report
