"""`sr1 rollout` and `sr1 bench rollout` end to end: a tiny local model, a bm25s index, a data file."""

from __future__ import annotations

import json

import pytest

from sr1lib.cli import main
from sr1lib.fsutil import read_jsonl
from sr1lib.types import Trajectory
from tests.test_rollout_support import RECORDS, bm25_dir, corpus_file, one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy_test.jsonl"
    path.write_text("".join(json.dumps({"id": r.id.split("/")[1], "question": r.question,
                                        "golden_answers": list(r.golden_answers)}) + "\n" for r in RECORDS))
    return path


def test_sr1_rollout_writes_one_line_per_trajectory(tiny_model_dir, bm25_dir, data_file, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    rc = main(["rollout", "--model", str(tiny_model_dir), "--retriever", str(bm25_dir), "--data", str(data_file),
               "--n", "2", "--group", "3", "--out", str(out), "--set", "rollout.max_new_tokens=16",
               "--set", "rollout.max_response_tokens=48", "--set", "retrieval.topk=2", "--step", "4"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["trajectories"] == 6 and "reward_mean" in printed["metrics"]
    assert printed["timings"]["total_s"] > 0
    rows = list(read_jsonl(out))
    trajs = [Trajectory.from_json(r) for r in rows]
    assert len(trajs) == 6 and len({t.group_id for t in trajs}) == 2
    assert trajs[0].group_id.startswith("4:") and trajs[0].record.question == RECORDS[0].question
    assert all(t.n_response_tokens <= 48 for t in trajs)
    assert rows[0]["segments"][0]["source"] == "prompt" and "token_ids" in rows[0]["segments"][0]


def test_sr1_rollout_errors(tiny_model_dir, bm25_dir, data_file, tmp_path, capsys):
    base = ["rollout", "--model", str(tiny_model_dir), "--data", str(data_file), "--out", str(tmp_path / "x.jsonl")]
    assert main(base) == 2
    assert "--retriever is required" in capsys.readouterr().err
    assert main(base + ["--retriever", str(bm25_dir), "--set", "rollout.max_turns=-1"]) == 2
    assert "rollout.max_turns" in capsys.readouterr().err
    assert main(base + ["--retriever", str(tmp_path / "nope")]) == 2
    assert "index not found" in capsys.readouterr().err
    assert main(["rollout", "--model", str(tmp_path), "--data", str(data_file), "--retriever", str(bm25_dir),
                 "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_sr1_rollout_no_search_needs_no_retriever(tiny_model_dir, data_file, tmp_path, capsys):
    out = tmp_path / "ns.jsonl"
    assert main(["rollout", "--model", str(tiny_model_dir), "--data", str(data_file), "--n", "1", "--group", "1",
                 "--prompt-mode", "no_search", "--set", "rollout.max_response_tokens=24", "--out", str(out)]) == 0
    (row,) = read_jsonl(out)
    assert row["extra"]["prompt_mode"] == "no_search"


def test_bench_rollout_prints_the_targets(tiny_model_dir, bm25_dir, capsys):
    rc = main(["bench", "rollout", "--model", str(tiny_model_dir), "--retriever", str(bm25_dir), "--n", "3",
               "--group", "2", "--rounds", "1", "--max-new-tokens", "40", "--max-response-tokens", "1000",
               "--no-memory"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("generate_s", "retrieve_s", "other_s", "overhead_fraction", "retriever_calls_per_turn"):
        assert key in report
    assert report["overhead_fraction"] == pytest.approx(report["other_s"] / report["total_s"], abs=1e-3)
    # the default policy searches on 3 of its 4 turns, so retrieval is in the figures: one batched
    # call per turn with searches, each turn's queries together
    assert report["policy"] == "searching" and report["search_turn_fraction"] == 0.75
    assert report["retriever_calls_per_turn"] == 0.75 and report["retriever_calls_per_search_turn"] == 1.0
    assert report["searches"] == 3 * 3 * 2 and report["retrieve_s"] > 0
    assert report["metrics_last_round"]["finish_ratio"] == 1.0  # every trajectory answered in time


@pytest.mark.slow
def test_bench_memory_measure_grows_with_the_widest_call(tiny_model_dir, bm25_dir):
    # The per-size measurement the bench runs in fresh processes, run here in-process (faster).
    from sr1lib.bench.rollout import memory_child

    spec = {"model": str(tiny_model_dir), "retriever": str(bm25_dir), "data": None, "device": "cpu",
            "max_turns": 1}
    small = memory_child({**spec, "batch": 2, "length": 8})
    large = memory_child({**spec, "batch": 4, "length": 16})
    assert large["widest_call_tokens"] > small["widest_call_tokens"]
    assert large["tensor_peak_mb"] > small["tensor_peak_mb"] > 0
    assert large["heap_peak_mb"] > 0 and large["tokens"] > small["tokens"]


def test_bench_prepare_model_builds_a_loadable_model(corpus_file, tmp_path, capsys):
    from sr1lib.bench.rollout import episode_text
    from sr1lib.models import load_policy

    text = episode_text("Paris", "Paris is the capital of France.")
    assert "<search> Paris </search>" in text and text.endswith("<answer> Paris </answer>")
    assert 'Doc 1(Title: "Paris") Paris is the capital of France.</information>' in text
    out = tmp_path / "m"
    assert main(["bench", "rollout", "--model", str(out), "--prepare-model", str(corpus_file),
                 "--prepare-steps", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    model, tok = load_policy(out, device="cpu")
    assert model.config.vocab_size == len(tok)
