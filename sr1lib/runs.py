"""Run folders: the one place a run's config, environment, metrics, rollouts and checkpoints live.

Layout (notebooks and plots read runs only through this):

    RUN/config.json      the full RunConfig
    RUN/env.json         git commit, package versions, python, device
    RUN/metrics.jsonl    one object per step (`step` key; step 0: the starting policy's validation), appended
    RUN/rollouts.jsonl   sampled trajectories (`step` key + Trajectory.to_json()), appended
    RUN/checkpoints/     step_N/ folders, written to a temporary name then renamed

Every write is atomic (see `fsutil`), so a killed run leaves a readable folder that resumes.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from sr1lib import config as cfgmod
from sr1lib.errors import Sr1Error
from sr1lib.fsutil import append_jsonl, read_jsonl, write_json_atomic
from sr1lib.types import Trajectory


class RunNotFoundError(Sr1Error, FileNotFoundError):
    """A path given as a run folder holds no run (the CLI prints it as a one-line error)."""

PACKAGES = ("sr1", "torch", "transformers", "numpy", "pyserini", "bm25s", "faiss-cpu",
            "sentence-transformers", "peft", "accelerate", "vllm", "trl", "papermill")


def git_commit(repo: str | Path | None = None) -> str | None:
    """The commit of the sr1lib checkout (with `+dirty` when it has uncommitted changes)."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if "torch" in sys.modules:  # only describe the device if torch is already in use
        import torch

        env["cuda"] = torch.cuda.is_available()
        env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        env["threads"] = torch.get_num_threads()
    return env


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def create(cls, cfg: cfgmod.RunConfig, path: str | Path | None = None) -> "RunDir":
        run = cls(Path(path) if path else cfg.run_dir)
        run.path.mkdir(parents=True, exist_ok=True)
        run.checkpoints.mkdir(exist_ok=True)
        cfgmod.save(cfg, run.path / "config.json")
        write_json_atomic(run.path / "env.json", environment())
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        path = Path(path)
        if not (path / "config.json").exists():
            raise RunNotFoundError(f"{path}: not a run folder (no config.json)")
        return cls(path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def config(self) -> cfgmod.RunConfig:
        return cfgmod.load(self.path / "config.json")

    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        append_jsonl(self.path / "metrics.jsonl", {"step": step, **metrics})

    def log_rollouts(self, step: int, trajectories: list[Trajectory]) -> None:
        append_jsonl(self.path / "rollouts.jsonl", [{"step": step, **t.to_json()} for t in trajectories])

    def metrics(self) -> list[dict[str, Any]]:
        p = self.path / "metrics.jsonl"
        return list(read_jsonl(p)) if p.exists() else []

    def rollouts(self, step: int | None = None) -> Iterator[tuple[int, Trajectory]]:
        p = self.path / "rollouts.jsonl"
        if not p.exists():
            return
        for row in read_jsonl(p):
            if step is None or row["step"] == step:
                yield row["step"], Trajectory.from_json(row)

    def checkpoint_steps(self) -> list[int]:
        steps = []
        for p in self.checkpoints.glob("step_*"):
            if p.is_dir() and (p / "COMPLETE").exists():
                steps.append(int(p.name.split("_", 1)[1]))
        return sorted(steps)

    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints / f"step_{step}"

    def truncate_logs_after(self, step: int) -> None:
        """On resume, drop metric/rollout rows from steps after the checkpoint being resumed."""
        from sr1lib.fsutil import write_text_atomic
        import json

        for name in ("metrics.jsonl", "rollouts.jsonl"):
            p = self.path / name
            if p.exists():
                keep = [r for r in read_jsonl(p) if r.get("step", 0) <= step]
                write_text_atomic(p, "".join(json.dumps(r, default=str) + "\n" for r in keep))


def find_runs(roots: str | Path | Iterable[str | Path], max_depth: int = 3) -> list[Path]:
    """Run folders (holding config.json) at or below each root, sorted; a root that is itself a run
    counts. Depth-limited so pointing at a big folder stays fast."""
    if isinstance(roots, (str, Path)):
        roots = [roots]
    found: set[Path] = set()
    for root in map(Path, roots):
        if not root.exists():
            raise Sr1Error(f"{root}: no such folder (expected a run folder or a folder of runs)")
        frontier = [root]
        for _ in range(max_depth + 1):
            nxt = []
            for d in frontier:
                if (d / "config.json").is_file():
                    found.add(d)
                    continue  # checkpoints inside a run are not runs
                nxt += [c for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".")]
            frontier = nxt
    return sorted(found)
