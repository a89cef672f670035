"""`sr1 export verl`: every sr1 field accounted for, and the files a verl run reads load in verl itself.

The first tests need no verl. The `verl_` ones compose the exported Hydra overrides against verl's own
trainer config (and its validator), and load the exported parquet through verl's RLHFDataset; they
run in .venv-verl (`make test` builds it) and skip elsewhere."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sr1lib import config as cfgmod
from sr1lib.config import RunConfig
from sr1lib.data import load_records
from sr1lib.engines import verl_export as ve

QUESTIONS = [("q1", "What is the capital of France", ["Paris"]), ("q2", "Who wrote Hamlet?", ["Shakespeare"]),
             ("q3", "What is the longest river in the world?", ["Nile"]), ("q4", "Who landed on the Moon?", ["Armstrong"])]


def run_config(tmp_path: Path, **sections) -> RunConfig:
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"id": i, "question": q, "golden_answers": a}) + "\n" for i, q, a in QUESTIONS))
    base = {"name": "verl-test", "data": {"train": [str(data)], "val": [str(data)], "val_limit": 2},
            "retrieval": {"backend": "http", "index": "http://127.0.0.1:8000"},
            "rollout": {"group_size": 2, "max_response_tokens": 256, "max_prompt_tokens": 512},
            "train": {"model": "/models/tiny", "batch_size": 2, "steps": 3}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return cfgmod.from_dict(RunConfig, base)


@pytest.mark.parametrize("algo", [
    {"name": "grpo"},                                   # KL as a loss term, no critic
    {"name": "ppo", "kl_in_reward": True},              # KL in the reward, GAE with a critic
    {"name": "reinforce", "dual_clip": 3.0},            # the approximate estimator, dual clip on
])
def test_every_field_is_mapped_or_listed_with_a_reason(tmp_path, algo):
    cov = ve.coverage(run_config(tmp_path, algorithm=algo))
    assert set(cov) == {name for name, _, _ in cfgmod.describe(RunConfig)}
    assert not [k for k, v in cov.items() if "NOT ACCOUNTED FOR" in v], cov


def test_kl_placement_and_estimator(tmp_path):
    grpo = {o.key: o.value for o in ve.overrides(run_config(tmp_path))}
    assert grpo["algorithm.adv_estimator"] == "grpo" and grpo["actor_rollout_ref.actor.use_kl_loss"] is True
    assert grpo["algorithm.use_kl_in_reward"] is False
    ppo = {o.key: o.value for o in ve.overrides(run_config(tmp_path, algorithm={"name": "ppo", "kl_in_reward": True}))}
    assert ppo["algorithm.adv_estimator"] == "gae" and ppo["algorithm.use_kl_in_reward"] is True
    assert ppo["actor_rollout_ref.actor.use_kl_loss"] is False
    # mini-batches: sr1 counts trajectories, verl prompts (x rollout.n)
    assert grpo["actor_rollout_ref.actor.ppo_mini_batch_size"] == 2 and grpo["actor_rollout_ref.rollout.n"] == 2


def test_export_writes_a_runnable_folder(tmp_path):
    cfg = run_config(tmp_path)
    ex = ve.export_verl(cfg, tmp_path / "out")
    names = {p.relative_to(ex.out).as_posix() for p in ex.out.rglob("*") if p.is_file()}
    assert {"data/train.parquet", "data/val.parquet", "agent_loop.yaml", "reward.py", "launch.sh",
            "sr1_config.yaml", "mapping.json"} <= names
    assert (ex.n_train, ex.n_val) == (4, 2)
    # sr1's own reader gets the same questions back, and each row names the agent loop
    import pyarrow.parquet as pq

    assert [r.question for r in load_records(ex.out / "data" / "train.parquet")] == [q for _, q, _ in QUESTIONS]
    assert set(pq.read_table(ex.out / "data" / "train.parquet").column("agent_name").to_pylist()) == {"sr1_search"}
    script = (ex.out / "launch.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ex.out / "launch.sh")]).returncode == 0
    for field in ex.unmapped:
        assert f"#   {field}:" in script
    assert '"data.train_files=${HERE}/data/train.parquet"' in script
    assert cfgmod.load(ex.out / "sr1_config.yaml") == cfg


def test_reward_hook_scores_the_response_only(tmp_path):
    ex = ve.export_verl(run_config(tmp_path), tmp_path / "out")
    ns: dict = {}
    exec(compile((ex.out / "reward.py").read_text(), "reward.py", "exec"), ns)
    score = ns["compute_score"]
    assert score("nq", "<think>x</think><answer> Paris </answer>", {"target": ["Paris"]}) == 1.0
    assert score("nq", "<answer> Lyon </answer>", {"target": ["Paris"]}) == 0.0


# ----------------------------------------------------------------------------- against verl itself


def verl_config_dir() -> Path:
    verl = pytest.importorskip("verl", reason="verl is not installed here; `make test` runs this in .venv-verl")
    return Path(verl.__file__).parent / "trainer" / "config"


def compose(overrides: list[str]):
    config_dir = verl_config_dir()  # first: it skips without verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


@pytest.mark.parametrize("algo", [{"name": "grpo"}, {"name": "ppo", "kl_in_reward": True}])
def test_verl_overrides_compose_against_verls_trainer_config(tmp_path, tiny_model_dir, algo):
    # validate_config also builds verl's model config, which reads the model folder
    cfg = run_config(tmp_path, algorithm=algo, train={"model": str(tiny_model_dir)})
    ex = ve.export_verl(cfg, tmp_path / "out")
    ovs = ve.overrides(cfg, root=str(ex.out)) + [ve.Override("trainer.n_gpus_per_node", 1, ""),
                                                 ve.Override("trainer.nnodes", 1, "")]
    composed = compose([o.text() for o in ovs])
    for o in ovs:  # every key exists in verl's schema and holds the exported value
        got = composed
        for part in o.key.split("."):
            got = got[part]
        got = list(got) if o.key == "trainer.logger" else got
        assert got == o.value, o.key
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    assert need_critic(composed) == (algo["name"] == "ppo")
    validate_config(composed, use_reference_policy=need_reference_policy(composed), use_critic=need_critic(composed))


def test_verl_dataset_class_loads_the_exported_parquet(tmp_path, tiny_model_dir):
    verl_config_dir()
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from sr1lib.models import load_tokenizer

    ex = ve.export_verl(run_config(tmp_path), tmp_path / "out")
    tok = load_tokenizer(tiny_model_dir)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    data_cfg = OmegaConf.create({"max_prompt_length": 512, "filter_overlong_prompts": True,
                                 "return_raw_chat": True, "cache_dir": str(tmp_path / "cache")})
    ds = RLHFDataset(data_files=[str(ex.out / "data" / "train.parquet")], tokenizer=tok, config=data_cfg)
    assert len(ds) == 4
    row = ds[0]
    assert row["agent_name"] == "sr1_search" and row["question"] == QUESTIONS[0][1]
    assert row["raw_prompt"][0]["content"].endswith("Question: What is the capital of France?\n")


def test_cli_export_prints_the_overrides_and_the_unmapped_fields(tmp_path, capsys):
    from sr1lib.cli import main

    cfg_path = tmp_path / "run.yaml"
    cfgmod.save(run_config(tmp_path), cfg_path)
    rc = main(["export", "verl", "--config", str(cfg_path), "--set", "algorithm.name=ppo", "--out", str(tmp_path / "x")])
    out = capsys.readouterr().out
    assert rc == 0 and "algorithm.adv_estimator=gae" in out and "train.prefix_sharing:" in out
    assert cfgmod.load(tmp_path / "x" / "sr1_config.yaml").algorithm.name == "ppo"
    # a config whose mini-batch verl cannot express fails naming both fields
    rc = main(["export", "verl", "--config", str(cfg_path), "--set", "train.mini_batch_size=3", "--out", str(tmp_path / "y")])
    assert rc == 2 and "train.mini_batch_size=3" in capsys.readouterr().err


def test_verl_launch_script_passes_overrides_verl_accepts(tmp_path, tiny_model_dir):
    """launch.sh end to end up to verl's entry point: a stand-in `python3` records the arguments bash
    really passes (quoting, ${HERE}, N_GPUS, extra overrides), which then compose and validate."""
    import os
    import sys

    verl_config_dir()
    ex = ve.export_verl(run_config(tmp_path, train={"model": str(tiny_model_dir)}), tmp_path / "out")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!{sys.executable}\nimport json, sys\n"
                                     f"json.dump(sys.argv[1:], open({str(tmp_path / 'argv.json')!r}, 'w'))\n")
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "N_GPUS": "1"}
    subprocess.run(["bash", str(ex.out / "launch.sh"), "trainer.total_epochs=2"], env=env, check=True)
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    composed = compose(argv[2:])
    assert composed.data.train_files == str(ex.out / "data" / "train.parquet")
    assert (composed.trainer.n_gpus_per_node, composed.trainer.total_epochs) == (1, 2)
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(composed, use_reference_policy=need_reference_policy(composed), use_critic=need_critic(composed))
