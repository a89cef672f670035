"""`sr1 toyworld sweep --profile smoke`: the grid's cells, the summary's keys, determinism per
cell (the same cell in a fresh folder gives the same numbers) and an init jitter that perturbs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sr1lib.experiments.sweep import STATS, spread, summarise
from test_toyworld_run import sr1  # the CLI in a subprocess with its own cache

GRID = ["--seeds", "0", "--rl-seeds", "0,1", "--threads", "1,2"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    proc = sr1(["toyworld", "sweep", "--profile", "smoke", *GRID, "--out", str(tmp / "a"), "--quiet"], tmp,
               tmp / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, json.loads((tmp / "a" / "sweep.json").read_text()), proc


@pytest.mark.slow
def test_every_cell_of_the_grid_is_run_and_summarised(swept):
    tmp, result, proc = swept
    cells = {(c["seed"], c["rl_seed"], c["threads"]) for c in result["cells"]}
    assert cells == {(0, r, t) for r in (0, 1) for t in (1, 2)}
    assert result["cpu"]["model"] and isinstance(result["cpu"]["flags"], list)
    for c in result["cells"]:
        assert set(c["em"]) == {"direct", "rag", "base", "ppo", "grpo"}
        assert set(c["em"]["grpo"]) == {"single", "two", "all"}
        assert set(c["reward_rise"]) == {"ppo", "grpo"} and "rise" in c["reward_rise"]["grpo"]
        assert {"pretrain", "ppo", "grpo", "eval", "total"} <= set(c["stage_seconds"])
        assert set(c["searches_by_hop"]["ppo"]) == {"single", "two", "all"}
    for m in ("ppo", "grpo"):
        assert set(result["summary"][m]) == {k for k, _ in STATS} | {"mean_em"}
        assert result["summary"][m]["em_all"]["n"] == 4
    # the printed table has a row per method and min / median / max cells
    assert "| grpo |" in proc.stdout and " / " in proc.stdout
    assert all(f"| {c['cell']} |" in proc.stdout for c in result["cells"])  # and a row per cell
    # each thread count trains its own base model, both in the cache
    models = {Path(c["out"]).name: json.loads((Path(c["out"]) / "summary.json").read_text())["base_model"]
              for c in result["cells"]}
    assert models["w0-r0-t1"] == models["w0-r1-t1"] != models["w0-r0-t2"]


@pytest.mark.slow
def test_a_cell_is_deterministic_and_a_rerun_resumes(swept):
    tmp, result, _ = swept
    again = sr1(["toyworld", "sweep", "--profile", "smoke", *GRID, "--out", str(tmp / "a"), "--quiet"], tmp,
                tmp / "cache")
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads((tmp / "a" / "sweep.json").read_text())
    assert all(set(c["stage_status"].values()) <= {"cached", "reused"} for c in rerun["cells"])
    assert [c["em"] for c in rerun["cells"]] == [c["em"] for c in result["cells"]]
    # one cell trained afresh in a new folder reproduces its numbers exactly
    one = sr1(["toyworld", "sweep", "--profile", "smoke", "--seeds", "0", "--rl-seeds", "1", "--threads", "1",
               "--out", str(tmp / "b"), "--quiet"], tmp, tmp / "cache")
    assert one.returncode == 0, one.stderr[-3000:]
    fresh = json.loads((tmp / "b" / "sweep.json").read_text())["cells"][0]
    before = next(c for c in result["cells"] if c["cell"] == "w0-r1-t1")
    assert fresh["stage_status"]["grpo"] == "trained"
    assert fresh["em"] == before["em"] and fresh["reward_rise"] == before["reward_rise"]


def test_spread_and_summary_over_hand_made_cells():
    assert spread([0.3, None, 0.1, 0.2]) == {"min": 0.1, "median": 0.2, "max": 0.3, "n": 3}
    assert spread([None]) == {"min": None, "median": None, "max": None, "n": 0}
    hop = lambda s, t: {"single": s, "two": t, "all": (s + t) / 2}  # noqa: E731
    cells = [{"em": {"direct": hop(0, 0), "rag": hop(0.2, 0), "base": hop(0, 0), "grpo": hop(0.6, 0.2)},
              "reward_rise": {"grpo": {"rise": 0.3}}, "searches_by_hop": {"grpo": hop(1.0, 1.5)}},
             {"em": {"direct": hop(0, 0), "rag": hop(0.2, 0), "base": hop(0.1, 0.1), "grpo": hop(0.8, 0.4)},
              "reward_rise": {"grpo": {"rise": 0.5}}, "searches_by_hop": {"grpo": hop(1.0, 2.0)}}]
    s = summarise(cells, ["grpo"])["grpo"]
    assert s["gain"]["min"] == pytest.approx(0.4) and s["gain"]["max"] == pytest.approx(0.5)  # EM - base, per cell
    assert s["reward_rise"]["median"] == pytest.approx(0.4) and s["searches_two"]["max"] == 2.0
    assert s["mean_em"]["two"] == pytest.approx(0.3)


@pytest.mark.slow
def test_init_jitter_makes_another_base_model_and_the_table_says_which_are_identical(tmp_path):
    proc = sr1(["toyworld", "sweep", "--profile", "smoke", "--seeds", "0", "--threads", "1", "--perturb", "0,5",
                "--methods", "grpo", "--out", str(tmp_path / "p"), "--quiet"], tmp_path, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "p" / "sweep.json").read_text())
    by_name = {c["cell"]: c for c in result["cells"]}
    assert set(by_name) == {"w0-r0-t1", "w0-r0-t1-p5"} and by_name["w0-r0-t1-p5"]["perturb"] == 5
    assert by_name["w0-r0-t1"]["base_model_sha256"] != by_name["w0-r0-t1-p5"]["base_model_sha256"]
    assert result["identical_models"] == []


def test_bad_grids_are_clear_errors(tmp_path):
    proc = sr1(["toyworld", "sweep", "--profile", "smoke", "--seeds", "0,x"], tmp_path, tmp_path / "c")
    assert proc.returncode != 0 and "comma-separated integers" in proc.stderr
    proc = sr1(["toyworld", "sweep", "--profile", "smoke", "--threads", "0", "--out", str(tmp_path / "o")],
               tmp_path, tmp_path / "c")
    assert proc.returncode != 0 and "thread counts must be >= 1" in proc.stderr
    proc = sr1(["toyworld", "sweep", "--profile", "smoke", "--perturb", "-1", "--out", str(tmp_path / "o")],
               tmp_path, tmp_path / "c")
    assert proc.returncode != 0 and "jitter seeds must be >= 0" in proc.stderr
