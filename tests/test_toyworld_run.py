"""`sr1 toyworld run --profile smoke`: every stage end to end, the summary's contract, resuming,
and determinism (a second pipeline in a fresh folder reproduces the first's numbers exactly)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sr1lib.experiments.pipeline import METHODS, hop_means

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("world", "pretrain", "index", "ppo", "grpo", "ppo-nomask", "eval")


def sr1(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SR1_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "sr1lib", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("twrun")
    out = tmp / "a"
    proc = sr1(["toyworld", "run", "--profile", "smoke", "--out", str(out), "--quiet"], tmp, tmp / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, out, proc


@pytest.mark.slow
def test_summary_has_every_method_hop_and_stage(first):
    tmp, out, proc = first
    s = json.loads((out / "summary.json").read_text())
    assert set(s["em"]) == set(METHODS)
    for m in METHODS:
        assert set(s["em"][m]) == {"single", "two", "all"}
        assert all(0.0 <= s["em"][m][h] <= 1.0 for h in ("single", "two", "all"))
        assert s["searches_per_question"][m] >= 0.0
    n = s["test_questions"]
    assert n["single"] > 0 and n["two"] > 0
    # `all` is the question-weighted mean of the two hop types, as the evaluation files hold them
    for m in METHODS:
        e = s["em"][m]
        assert e["all"] == pytest.approx((e["single"] * n["single"] + e["two"] * n["two"]) / (n["single"] + n["two"]))
    assert set(STAGES) <= set(s["stage_seconds"]) and s["stage_seconds"]["total"] > 0
    assert all(s["peak_rss_mb"][st] > 0 for st in STAGES)
    # the table is printed and names every method
    assert all(m in proc.stdout for m in METHODS) and "summary.json" in proc.stdout


@pytest.mark.slow
def test_run_folders_hold_checkpoints_metrics_and_evaluations(first):
    tmp, out, _ = first
    s = json.loads((out / "summary.json").read_text())
    for method in ("ppo", "grpo", "ppo-nomask"):
        run = Path(s["training"][method]["run"])
        assert run.parent == out / "runs"
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["algorithm"]["name"] == ("grpo" if method == "grpo" else "ppo")
        assert cfg["algorithm"]["mask_retrieved"] is (method != "ppo-nomask")
        assert list((run / "checkpoints").iterdir()), f"{run} saved no checkpoint"
    for name in ("base", "ppo", "grpo", "ppo-nomask"):
        report = json.loads((out / "eval" / f"{name}.json").read_text())
        assert set(report["results"]) == {"toy-1hop", "toy-2hop"}
    rows = (out / "training_metrics.csv").read_text().splitlines()
    assert len(rows) > 1 and "reward_mean" in rows[0]


@pytest.mark.slow
def test_rerun_resumes_and_a_fresh_folder_reproduces_the_numbers(first):
    tmp, out, _ = first
    again = sr1(["toyworld", "run", "--profile", "smoke", "--out", str(out), "--quiet"], tmp, tmp / "cache")
    assert again.returncode == 0, again.stderr[-3000:]
    s1 = json.loads((out / "summary.json").read_text())
    assert {m: r["status"] for m, r in s1["training"].items()} == dict.fromkeys(("ppo", "grpo", "ppo-nomask"),
                                                                                  "reused")
    # a second pipeline from the same cache into a new folder trains and evaluates again: same numbers
    other = tmp / "b"
    proc = sr1(["toyworld", "run", "--profile", "smoke", "--out", str(other), "--quiet"], tmp, tmp / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    s2 = json.loads((other / "summary.json").read_text())
    assert {m: r["status"] for m, r in s2["training"].items()} == dict.fromkeys(("ppo", "grpo", "ppo-nomask"),
                                                                                  "trained")
    assert s2["em"] == s1["em"] and s2["searches_per_question"] == s1["searches_per_question"]
    assert (other / "training_metrics.csv").read_text().count("\n") == (out / "training_metrics.csv").read_text().count("\n")
    assert [r["reward"] for r in s2["training"].values()] == [r["reward"] for r in s1["training"].values()]


def test_hop_means_weight_by_question_count():
    cells = {"single": {"em": 0.5, "n": 10}, "two": {"em": 0.2, "n": 30}}
    got = hop_means(cells, "em")
    assert got["single"] == 0.5 and got["two"] == 0.2 and got["all"] == pytest.approx((5 + 6) / 40)
    assert hop_means({"two": {"em": 0.25, "n": 4}}, "em") == {"single": None, "two": 0.25, "all": 0.25}


def test_unknown_profile_is_a_clear_error(tmp_path):
    proc = sr1(["toyworld", "run", "--profile", "huge", "--out", str(tmp_path / "x")], tmp_path, tmp_path / "c")
    assert proc.returncode != 0 and "huge" in proc.stderr and "quick" in proc.stderr
