"""End to end on a real tiny model: PPO and GRPO raise the reward on a learnable task, runs are
recorded, --resume continues bit-for-bit, and a NaN stops a step without a corrupt checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from sr1lib import config as C
from sr1lib.cli import main as cli_main
from sr1lib.errors import Sr1Error
from sr1lib.models import load_policy
from sr1lib.runs import RunDir
from sr1lib.train import NonFiniteLossError, train
from sr1lib.train.loop import TIMING_KEYS
from test_train_support import answer_model, one_thread, p_gold, task_config, task_files  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

REQUIRED = ["reward_mean", "reward_std", "em", "response_tokens_mean", "searches_mean", "valid_search_ratio",
            "finish_ratio", "mask_coverage", "entropy", "clip_fraction", "grad_norm", "lr", "step_s",
            "tokens_per_s", "alarms"]


def deterministic(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_rl_raises_the_reward_and_records_the_run(answer_model, task_files, tmp_path, algo):
    steps = 6
    cfg = task_config(answer_model, task_files, tmp_path, f"name={algo}", f"algorithm.name={algo}",
                      f"train.steps={steps}", "train.lr=1e-3", "train.critic_lr=1e-3", "train.save_every=3",
                      "train.val_every=3", f"data.val={task_files['data']}", "data.val_limit=3")
    before = p_gold(*load_policy(answer_model, device="cpu"))
    run = train(cfg, progress=False)
    start, *rows = run.metrics()
    # step 0 is the starting policy's validation alone, so validation curves begin at the base model
    assert start["step"] == 0 and "val_em" in start and "reward_mean" not in start
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    for key in REQUIRED + (["value_loss", "value_mean"] if algo == "ppo" else []):
        assert all(key in r for r in rows), key
    assert "val_em" in rows[2] and "val_em" in rows[5] and "val_em" not in rows[0]
    # The model chooses "paris" (the gold answer) far more often after RL: measured exactly on the
    # final checkpoint, plus the sampled reward of later steps against the first step's.
    assert run.checkpoint_steps() == [3, 6]
    after = p_gold(*load_policy(run.checkpoint_dir(6) / "policy", device="cpu"))
    assert after > before + 0.15, (before, after)
    later = sum(r["reward_mean"] for r in rows[1:]) / (steps - 1)
    assert later > rows[0]["reward_mean"], [r["reward_mean"] for r in rows]
    # the run folder is self-describing
    assert RunDir.open(run.path).config() == cfg
    env = json.loads((run.path / "env.json").read_text())
    assert env["packages"]["torch"] and "device" in env
    logged = list(run.rollouts())
    assert len(logged) == 2 * steps and all(tr.record.golden_answers == ("paris",) for _, tr in logged)
    log = (run.path / "train.log").read_text()
    assert "step 6:" in log and "checkpoint" in log
    state = json.loads((run.checkpoint_dir(6) / "state.json").read_text())
    assert state["step"] == 6 and state["data_position"] == {"epoch": 1, "batch": 1}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["ppo_kl_in_reward", "grpo_lora_kl_loss"])
def test_resume_continues_bit_for_bit(answer_model, task_files, tmp_path, variant):
    extra = {
        # PPO with the critic, KL in the reward, two epochs of two mini-batches in micro-batches
        "ppo_kl_in_reward": ["algorithm.name=ppo", "algorithm.kl_coef=0.05", "algorithm.kl_in_reward=true",
                             "train.ppo_epochs=2", "train.mini_batch_size=6", "train.micro_batch_size=4",
                             "train.warmup_steps=3"],
        # GRPO on LoRA adapters with the k3 KL loss term against the adapter-free reference
        "grpo_lora_kl_loss": ["algorithm.name=grpo", "algorithm.kl_coef=0.05", "train.lora_r=4",
                              "train.lr=5e-3"],
    }[variant]
    common = ["train.lr=1e-3", "train.log_rollouts=1", "train.val_every=2", f"data.val={task_files['data']}",
              "data.val_limit=3"] + extra
    full = train(task_config(answer_model, task_files, tmp_path / "a", "train.steps=4", *common), progress=False)
    half_cfg = task_config(answer_model, task_files, tmp_path / "b", "train.steps=2", *common)
    config_file = tmp_path / "half.json"
    C.save(half_cfg, config_file)
    half = train(half_cfg, progress=False)
    assert half.checkpoint_steps() == [2]
    # the second half through the CLI, extending the run to 4 steps
    assert cli_main(["train", "--config", str(config_file), "--set", "train.steps=4", "--resume", "--quiet"]) == 0
    a, b = full.metrics(), half.metrics()
    assert [r["step"] for r in b] == [0, 1, 2, 3, 4]  # step 0's validation once, not again on resume
    assert deterministic(a) == deterministic(b)
    assert any(r["grad_norm"] > 0 for r in a[1:])
    pa = load_policy(full.checkpoint_dir(4) / "policy", device="cpu")[0].state_dict()
    pb = load_policy(half.checkpoint_dir(4) / "policy", device="cpu")[0].state_dict()
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    if variant == "grpo_lora_kl_loss":
        assert (half.checkpoint_dir(4) / "adapter").is_dir() and a[-1]["kl"] > 0


def test_zero_steps_with_validation_scores_the_starting_policy(answer_model, task_files, tmp_path, capsys):
    # train.steps=0 is allowed: the run is step 0's validation alone, and the CLI still reports it
    cfg = task_config(answer_model, task_files, tmp_path, "train.steps=0", "train.val_every=1",
                      f"data.val={task_files['data']}", "data.val_limit=3")
    config_file = tmp_path / "zero.json"
    C.save(cfg, config_file)
    assert cli_main(["train", "--config", str(config_file), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["step"] == 0 and report["reward_mean"] is None
    rows = RunDir.open(cfg.run_dir).metrics()
    assert [r["step"] for r in rows] == [0] and 0 <= rows[0]["val_em"] <= 1


@pytest.mark.slow
def test_non_finite_reward_stops_the_step_and_keeps_the_last_checkpoint(answer_model, task_files, tmp_path):
    calls = []

    def flaky_em(response, golds):  # a broken reward function: NaN from the second step on
        calls.append(1)
        return float("nan") if len(calls) > 12 else float("paris" in response)

    cfg = task_config(answer_model, task_files, tmp_path, "train.steps=3", "train.save_every=1")
    with pytest.raises(NonFiniteLossError, match=r"step 2: the reward function returned nan for trajectory 2:"):
        train(cfg, progress=False, reward_fn=flaky_em)
    run = RunDir.open(cfg.run_dir)
    assert run.checkpoint_steps() == [1] and [r["step"] for r in run.metrics()] == [1]
    assert not [p for p in run.checkpoints.iterdir() if p.name != "step_1"]  # no half-written folder
    assert "stopped: NonFiniteLossError" in (run.path / "train.log").read_text()
    # fixed, the run resumes from the intact checkpoint
    run = train(cfg, resume=True, progress=False)
    assert run.checkpoint_steps() == [1, 2, 3] and [r["step"] for r in run.metrics()] == [1, 2, 3]


def test_run_folder_rules(answer_model, task_files, tmp_path):
    cfg = task_config(answer_model, task_files, tmp_path, "train.steps=1")
    with pytest.raises(Sr1Error, match="train.model: empty"):
        train(C.with_overrides(cfg, ["train.model="]), progress=False)
    with pytest.raises(Sr1Error, match="train.batch_size is 50 but the training data has only 12 questions"):
        train(C.with_overrides(cfg, ["train.batch_size=50"]), progress=False)
    train(cfg, progress=False)
    with pytest.raises(Sr1Error, match="a run already exists here; pass --resume"):
        train(cfg, progress=False)
    with pytest.raises(Sr1Error, match=r"cannot resume with a different algorithm.clip_ratio"):
        train(C.with_overrides(cfg, ["algorithm.clip_ratio=0.3"]), resume=True, progress=False)


def test_prompt_mode_is_recorded_in_the_run_folder_and_kept_on_resume(answer_model, task_files, tmp_path):
    # a RAG run says so in its config.json; resuming from that config stays RAG, and a config that
    # would switch it back to search is refused instead of silently changing the protocol
    cfg = task_config(answer_model, task_files, tmp_path, "train.steps=1", "train.log_rollouts=1")
    config_file = tmp_path / "base.json"
    C.save(cfg, config_file)
    assert cli_main(["train", "--config", str(config_file), "--prompt-mode", "rag", "--quiet"]) == 0
    run = RunDir.open(cfg.run_dir)
    assert run.config().rollout.prompt_mode == "rag"
    assert cli_main(["train", "--config", str(run.path / "config.json"), "--set", "train.steps=2", "--resume",
                     "--quiet"]) == 0
    prompts = [t.segments[0].text for _, t in run.rollouts()]
    assert [s for s, _ in run.rollouts()] == [1, 2] and all("<information>" in p for p in prompts)
    with pytest.raises(Sr1Error, match=r"cannot resume with a different rollout.prompt_mode"):
        train(C.with_overrides(cfg, ["train.steps=3"]), resume=True, progress=False)
