"""`sr1 import verl` on files written by verl 0.9.1's own writers: its Tracking file and console loggers
and its trainer's rollout/validation dump writer (`PPOTrainer._write_generations`), fed with what
sr1's agent loop hands verl. Runs in .venv-verl (`make test` builds it); skips elsewhere."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("verl", reason="verl is not installed here; `make test` runs this in .venv-verl")

from sr1lib.config import RolloutConfig, RunConfig, save  # noqa: E402
from sr1lib.engines import verl_import as vi  # noqa: E402
from sr1lib.engines.verl import output_fields  # noqa: E402
from sr1lib.generators import make_generator  # noqa: E402
from sr1lib.models import load_tokenizer  # noqa: E402
from sr1lib.rollout import rollout  # noqa: E402
from sr1lib.runs import RunDir  # noqa: E402
from sr1lib.types import FEEDBACK, MODEL, PROMPT, RETRIEVED  # noqa: E402
from tests.test_rollout_support import RECORDS, bm25_dir, corpus_file, retriever  # noqa: E402,F401

CFG = RolloutConfig(max_turns=1, max_new_tokens=64, max_response_tokens=400, max_obs_tokens=120,
                    max_prompt_tokens=600, group_size=1)
# Metric names as verl 0.9.1's trainer logs them (trainer/ppo/metric_utils.py, v1/trainer_base.py).
STEP_METRICS = {"critic/score/mean": 0.5, "response_length/mean": 61.0, "actor/entropy": 1.25,
                "actor/kl_loss": 0.002, "actor/pg_loss": -0.1, "num_turns/mean": 4.0, "timing_s/gen": 3.5,
                "perf/throughput": 100.0}


def trajectories(tok, retriever):
    script = [["<search> capital of France </search>", "<think> hm", "<answer> Paris </answer>"],
              ["<answer> Paris </answer>", "<answer> Marlowe </answer>"]]
    gen = make_generator("scripted", tokenizer=tok, script=script, logprob=-1.0)
    return rollout(RECORDS, gen, retriever, CFG).trajectories


def write_verl_run(root, tok, trajs, capsys, monkeypatch):
    """A verl run folder as verl's own classes write it."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    from verl.utils.tracking import Tracking

    run = root / "verl_run"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(run / "metrics.jsonl"))
    run.mkdir(parents=True)
    capsys.readouterr()
    tracker = Tracking("sr1", "imported", default_backend=["file", "console"])
    tracker.log({"val-core/nq/reward/mean@1": 0.25, "val-aux/nq/n_searches/mean@1": 1.0}, step=0)
    for step in (1, 2):
        tracker.log({**STEP_METRICS, "critic/score/mean": 0.25 * step}, step=step)
    tracker.finish()
    (run / "console.log").write_text(capsys.readouterr().out)

    decoded = [(tok.decode(list(t.prompt_ids), skip_special_tokens=True),
                tok.decode([i for s in t.response_segments for i in s.token_ids], skip_special_tokens=True)) for t in trajs]
    inputs, outputs = [d[0] for d in decoded], [d[1] for d in decoded]
    gts = [{"target": list(t.record.golden_answers)} for t in trajs]
    scores = [t.reward for t in trajs]
    # training dumps: verl 0.9.1's v1 trainer passes only the uid on
    PPOTrainer._write_generations(inputs, outputs, gts, scores, {"uid": [f"s{i}_0_0" for i in range(3)]},
                                  str(run / "rollouts"), 1)
    # validation dumps: the reward_extra_info the sr1 loop returned, one list per key
    infos = [output_fields(t, mask_retrieved=True, with_logprobs=True)["extra_fields"]["reward_extra_info"] for t in trajs]
    extra = {k: [info[k] for info in infos] for k in infos[0]}
    PPOTrainer._write_generations(inputs, outputs, gts, scores, extra, str(run / "validation"), 2)
    return run


def test_import_maps_metrics_and_keeps_what_verl_did_not_log_missing(tmp_path, tiny_model_dir, retriever, capsys,
                                                                  monkeypatch):
    tok = load_tokenizer(tiny_model_dir)
    trajs = trajectories(tok, retriever)
    save(RunConfig(name="from-verl"), tmp_path / "sr1_config.yaml")
    write_verl_run(tmp_path, tok, trajs, capsys, monkeypatch)
    report = vi.import_verl(tmp_path, tmp_path / "run")
    run = RunDir.open(tmp_path / "run")
    assert run.config().name == "from-verl"
    rows = {m["step"]: m for m in run.metrics()}
    assert rows[0]["val_em"] == 0.25 and "reward_mean" not in rows[0]
    assert (rows[2]["reward_mean"], rows[2]["em"], rows[2]["entropy"], rows[2]["kl"]) == (0.5, 0.5, 1.25, 0.002)
    assert rows[2]["verl/perf/throughput"] == 100.0
    assert "searches_mean" not in rows[2] and "searches_mean" in report["missing_metrics"]
    assert "value_loss" in report["missing_metrics"]  # GRPO-style run: verl logged no critic loss

    got = list(run.rollouts())
    assert [s for s, _ in got] == [1, 1, 1, 2, 2, 2]
    train_t, val_t = got[0][1], got[3][1]
    # training dumps carry no facts: they are listed as missing, not guessed
    assert "n_searches" in train_t.extra["missing"] and train_t.n_searches == 0
    assert val_t.n_searches == trajs[0].n_searches == 1 and "n_searches" not in val_t.extra["missing"]
    assert val_t.queries == trajs[0].queries and val_t.extra["end"] == trajs[0].extra["end"]
    for (_, imp), ref in zip(got[3:], trajs):
        assert [s.source for s in imp.segments] == [s.source for s in ref.segments]
        assert imp.reward == ref.reward and imp.record.question.rstrip("?") == ref.record.question.rstrip("?")
        assert imp.record.golden_answers == ref.record.golden_answers
    assert {PROMPT, MODEL, RETRIEVED, FEEDBACK} <= {s.source for _, t in got for s in t.segments}
    assert json.loads((run.path / "env.json").read_text())["imported_from"] == "verl"


def test_console_log_alone_is_enough(tmp_path, tiny_model_dir, retriever, capsys, monkeypatch):
    tok = load_tokenizer(tiny_model_dir)
    run = write_verl_run(tmp_path, tok, trajectories(tok, retriever), capsys, monkeypatch)
    (run / "metrics.jsonl").unlink()
    vi.import_verl(run, tmp_path / "out")
    rows = {m["step"]: m for m in RunDir.open(tmp_path / "out").metrics()}
    assert rows[1]["reward_mean"] == 0.25 and rows[2]["response_tokens_mean"] == 61.0


def test_imported_run_works_in_the_plots_and_the_inspector(tmp_path, tiny_model_dir, retriever, capsys, monkeypatch):
    from sr1lib.experiments.frames import metrics_frame
    from sr1lib.views.trajectory import render_trajectory_html

    tok = load_tokenizer(tiny_model_dir)
    write_verl_run(tmp_path, tok, trajectories(tok, retriever), capsys, monkeypatch)
    vi.import_verl(tmp_path, tmp_path / "run")
    df = metrics_frame([tmp_path / "run"])
    assert list(df["reward_mean"].dropna()) == [0.25, 0.5]
    (_, t), *_ = RunDir.open(tmp_path / "run").rollouts(step=2)
    html = render_trajectory_html(t, step=2)
    assert "Paris" in html and "information" in html


def test_import_refuses_a_folder_without_verl_output(tmp_path):
    from sr1lib.errors import Sr1Error

    with pytest.raises(Sr1Error, match="no verl metrics log"):
        vi.import_verl(tmp_path, tmp_path / "run")


def test_cli_import(tmp_path, tiny_model_dir, retriever, capsys, monkeypatch):
    from sr1lib.cli import main

    tok = load_tokenizer(tiny_model_dir)
    write_verl_run(tmp_path, tok, trajectories(tok, retriever), capsys, monkeypatch)
    assert main(["import", "verl", "--from", str(tmp_path), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "6 trajectories" in out and "searches_mean" in out
    assert main(["import", "verl", "--from", str(tmp_path), "--out", str(tmp_path / "run")]) == 2  # never overwrites
