"""`sr1 export verl`: an sr1 run config -> everything a verl 0.9.1 run of the same experiment needs.

    DIR/data/train.parquet, val.parquet   Search-R1's row layout plus `agent_name: sr1_search`
    DIR/agent_loop.yaml                   the sr1 agent loop and the settings it reads (`sr1:`)
    DIR/reward.py                         sr1's reward as verl's `compute_score` hook
    DIR/launch.sh                         `python -m verl.trainer.main_ppo` with the Hydra overrides
    DIR/sr1_config.yaml                   the sr1 config it was made from
    DIR/mapping.json                      every sr1 field: its Hydra key, the loop setting, or why none

Every sr1 config field is accounted for exactly once (a test checks it): mapped to a Hydra override
(`overrides`), carried by the agent-loop YAML (`LOOP_FIELDS`), or listed in `UNMAPPED` with the
reason, which the script's comments and stdout repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr1lib import config as cfgmod
from sr1lib.config import RunConfig
from sr1lib.engines.verl import AGENT_NAME, CLASS_PATH, LoopSettings
from sr1lib.errors import Sr1Error

ROOT = "${HERE}"  # the export folder, as the launch script resolves it
# sr1 advantage estimator -> verl algorithm.adv_estimator (and what differs)
ESTIMATORS = {
    "ppo": ("gae", ""),
    "grpo": ("grpo", "a group of one gets its raw score in verl, 0 in sr1; all-equal groups get 0 in both "
                     "with 0/1 rewards, rounding noise / 1e-6 in verl with other rewards"),
    "rloo": ("rloo", ""),
    "reinforce": ("reinforce_plus_plus", "approximate: verl whitens advantages over the batch; sr1's "
                                         "reinforce subtracts the batch mean only"),
}
# Fields the agent-loop YAML carries to the loop (read per sample, not by verl's trainer).
LOOP_FIELDS = {
    "rollout.max_turns": "sr1.rollout.max_turns", "rollout.max_new_tokens": "sr1.rollout.max_new_tokens",
    "rollout.max_obs_tokens": "sr1.rollout.max_obs_tokens",
    "rollout.max_prompt_tokens": "sr1.rollout.max_prompt_tokens (and data.max_prompt_length)",
    "rollout.on_retriever_error": "sr1.rollout.on_retriever_error",
    "retrieval.index": "sr1.retriever (env SR1_RETRIEVER overrides it per node)",
    "retrieval.backend": "sr1.retriever (an http URL or an index folder picks the backend)",
    "retrieval.topk": "sr1.topk", "retrieval.timeout_s": "sr1.retriever_timeout_s",
    "algorithm.reward": "sr1.reward (and reward.py)", "algorithm.mask_retrieved": "sr1.mask_retrieved",
}
UNMAPPED = {
    "out_dir": "the export folder holds the verl run's files instead",
    "data.val_limit": "applied by the export: val.parquet holds at most this many rows",
    "retrieval.cache": "a property of the `sr1 serve` process (pass --no-cache there)",
    "retrieval.threads": "a property of the `sr1 serve` process",
    "rollout.prompt_mode": "the agent loop always builds the search prompt; no_search and rag runs stay local",
    "rollout.generator": "verl samples with its own rollout servers (vLLM here; hf has no verl equivalent)",
    "algorithm.critic_sees_retrieved": "verl's critic and GAE always use response_mask, i.e. model tokens only",
    "train.device": "verl places workers on GPUs by trainer.n_gpus_per_node / trainer.nnodes",
    "train.bf16": "verl's FSDP engine chooses its own mixed precision",
    "train.prefix_sharing": "an sr1 trainer optimisation; verl has no equivalent",
    "train.log_rollouts": "verl dumps every trajectory of a step to trainer.rollout_data_dir",
}


@dataclass(frozen=True)
class Override:
    key: str  # verl Hydra key
    value: Any
    source: str  # the sr1 field it comes from ("" for fixed wiring)
    note: str = ""

    def text(self) -> str:
        return f"{self.key}={hydra_value(self.value)}"


def hydra_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    if v is None:
        return "null"
    return str(v)


def _kl(a: Any) -> list[Override]:
    """KL placement: a loss term (GRPO style, Search-R1's choice) or a penalty in the reward (PPO style)."""
    in_reward, on = a.kl_in_reward, a.kl_coef > 0
    return [
        Override("algorithm.use_kl_in_reward", on and in_reward, "algorithm.kl_in_reward"),
        Override("algorithm.kl_penalty", a.kl_type, "algorithm.kl_type"),
        Override("algorithm.kl_ctrl.kl_coef", a.kl_coef, "algorithm.kl_coef"),
        Override("actor_rollout_ref.actor.use_kl_loss", on and not in_reward, "algorithm.kl_in_reward"),
        Override("actor_rollout_ref.actor.kl_loss_coef", a.kl_coef, "algorithm.kl_coef"),
        Override("actor_rollout_ref.actor.kl_loss_type", a.kl_type, "algorithm.kl_type"),
    ]


def _algorithm(a: Any) -> list[Override]:
    est, note = ESTIMATORS[a.name]
    actor = "actor_rollout_ref.actor"
    # verl always applies dual-clip (clip_ratio_c); a huge constant is sr1's "off".
    dual = a.dual_clip if a.dual_clip > 1 else 1.0e9
    return [
        Override("algorithm.adv_estimator", est, "algorithm.name", note),
        Override("algorithm.gamma", a.gamma, "algorithm.gamma"),
        Override("algorithm.lam", a.lam, "algorithm.lam"),
        Override("algorithm.norm_adv_by_std_in_grpo", a.norm_adv_by_std, "algorithm.norm_adv_by_std"),
        *_kl(a),
        *[Override(f"{actor}.{k}", a.clip_ratio, "algorithm.clip_ratio")
          for k in ("clip_ratio", "clip_ratio_low", "clip_ratio_high")],
        Override(f"{actor}.clip_ratio_c", dual, "algorithm.dual_clip",
                 "" if a.dual_clip > 1 else "1e9: verl has no off switch"),
        Override(f"{actor}.loss_agg_mode", a.loss_agg_mode, "algorithm.loss_agg_mode"),
        Override(f"{actor}.entropy_coeff", a.entropy_coef, "algorithm.entropy_coef"),
        Override("critic.cliprange_value", a.value_clip, "algorithm.value_clip"),
    ]


def _train(cfg: RunConfig) -> list[Override]:
    t, g = cfg.train, cfg.rollout.group_size
    actor, ref = "actor_rollout_ref.actor", "actor_rollout_ref.ref"
    mini = t.mini_batch_size or t.batch_size * g  # trajectories per optimizer step
    if mini % g:
        raise Sr1Error(f"train.mini_batch_size={t.mini_batch_size} is not a multiple of rollout.group_size={g}: "
                       "verl counts mini-batches in prompts (x rollout.n)")
    micro = t.micro_batch_size or mini
    clip = t.grad_clip if t.grad_clip > 0 else 1.0e9  # verl would clip to 0 with 0
    out = [
        Override("actor_rollout_ref.model.path", t.model, "train.model"),
        Override("critic.model.path", t.model, "train.model", "the critic starts from the policy, as in sr1"),
        Override("trainer.total_training_steps", t.steps, "train.steps"),
        Override("data.train_batch_size", t.batch_size, "train.batch_size"),
        Override(f"{actor}.ppo_mini_batch_size", mini // g, "train.mini_batch_size", "in prompts (x rollout.n)"),
        Override(f"{actor}.ppo_micro_batch_size_per_gpu", micro, "train.micro_batch_size", "per GPU"),
        Override("critic.ppo_micro_batch_size_per_gpu", micro, "train.micro_batch_size", "per GPU"),
        *[Override(f"{k}.log_prob_micro_batch_size_per_gpu", micro, "train.micro_batch_size", "per GPU")
          for k in (ref, "actor_rollout_ref.rollout")],
        Override(f"{actor}.ppo_epochs", t.ppo_epochs, "train.ppo_epochs"),
        Override(f"{actor}.optim.lr", t.lr, "train.lr"),
        Override("critic.optim.lr", t.critic_lr, "train.critic_lr"),
        Override(f"{actor}.optim.lr_warmup_steps", t.warmup_steps, "train.warmup_steps"),
        Override("critic.optim.lr_warmup_steps", t.warmup_steps, "train.warmup_steps"),
        Override(f"{actor}.optim.clip_grad", clip, "train.grad_clip"),
        Override("critic.optim.clip_grad", clip, "train.grad_clip"),
        Override(f"{actor}.optim.weight_decay", t.weight_decay, "train.weight_decay"),
        Override("critic.optim.weight_decay", t.weight_decay, "train.weight_decay"),
        Override("actor_rollout_ref.model.enable_gradient_checkpointing", t.gradient_checkpointing,
                 "train.gradient_checkpointing"),
        Override("actor_rollout_ref.model.lora_rank", t.lora_r, "train.lora_r"),
        Override(f"{ref}.fsdp_config.param_offload", t.ref_offload, "train.ref_offload"),
        # sr1's 0 = "only at the end"; verl saves on the last step whenever save_freq > 0
        Override("trainer.save_freq", t.save_every or max(t.steps, 1), "train.save_every"),
        Override("trainer.test_freq", t.val_every or -1, "train.val_every"),
        Override("trainer.val_before_train", t.val_every > 0, "train.val_every"),
    ]
    return out


def _rollout(cfg: RunConfig) -> list[Override]:
    r, rr = cfg.rollout, "actor_rollout_ref.rollout"
    return [
        Override("data.max_prompt_length", r.max_prompt_tokens, "rollout.max_prompt_tokens",
                 "the context budget bounds every prompt"),
        Override("data.max_response_length", r.max_response_tokens, "rollout.max_response_tokens"),
        Override(f"{rr}.n", r.group_size, "rollout.group_size"),
        Override(f"{rr}.temperature", r.temperature, "rollout.temperature"),
        Override(f"{rr}.top_p", r.top_p, "rollout.top_p"),
        Override(f"{rr}.do_sample", not r.greedy, "rollout.greedy"),
    ]


def _wiring(cfg: RunConfig, root: str, has_val: bool) -> list[Override]:
    rr = "actor_rollout_ref.rollout"
    return [
        Override("data.train_files", f"{root}/data/train.parquet", "data.train"),
        Override("data.val_files", f"{root}/data/{'val' if has_val else 'train'}.parquet", "data.val",
                 "" if has_val else "no validation data: verl still opens a val file, so it gets train's"),
        Override("data.shuffle", cfg.data.shuffle, "data.shuffle"),
        Override("data.seed", cfg.seed, "seed"),
        Override("data.return_raw_chat", True, ""),
        # drops questions whose prompt alone exceeds the context budget (the loop would refuse them)
        Override("data.filter_overlong_prompts", True, ""),
        Override(f"{rr}.name", "vllm", ""),
        Override(f"{rr}.mode", "async", ""),
        Override(f"{rr}.calculate_log_probs", True, ""),
        Override(f"{rr}.agent.agent_loop_config_path", f"{root}/agent_loop.yaml", ""),
        Override(f"{rr}.agent.default_agent_loop", AGENT_NAME, ""),
        Override("reward.custom_reward_function.path", f"{root}/reward.py", "algorithm.reward"),
        Override("reward.custom_reward_function.name", "compute_score", ""),
        Override("trainer.project_name", "sr1", ""),
        Override("trainer.experiment_name", cfg.name, "name"),
        Override("trainer.logger", ["console", "file"], "", "the file logger writes what sr1 import verl reads"),
        Override("trainer.rollout_data_dir", f"{root}/verl_run/rollouts", ""),
        Override("trainer.validation_data_dir", f"{root}/verl_run/validation", ""),
        Override("trainer.default_local_dir", f"{root}/verl_run/checkpoints", ""),
    ]


def overrides(cfg: RunConfig, root: str = ROOT, has_val: bool = True) -> list[Override]:
    """Every Hydra override of the verl run, in the order the launch script writes them."""
    return _wiring(cfg, root, has_val) + _algorithm(cfg.algorithm) + _train(cfg) + _rollout(cfg)


def coverage(cfg: RunConfig) -> dict[str, str]:
    """sr1 field -> where it went (a Hydra key list, a loop setting, or 'none: why')."""
    hydra: dict[str, list[str]] = {}
    for o in overrides(cfg):
        if o.source:
            hydra.setdefault(o.source, []).append(o.key)
    out = {}
    for name, _, _ in cfgmod.describe(RunConfig):
        if name in hydra:
            out[name] = ", ".join(hydra[name])
        elif name in LOOP_FIELDS:
            out[name] = "agent loop: " + LOOP_FIELDS[name]
        else:
            out[name] = "none: " + UNMAPPED.get(name, "NOT ACCOUNTED FOR")
    return out


def loop_settings(cfg: RunConfig, retriever: str) -> LoopSettings:
    return LoopSettings(rollout=cfg.rollout, retriever=retriever, topk=cfg.retrieval.topk,
                        reward=cfg.algorithm.reward, mask_retrieved=cfg.algorithm.mask_retrieved,
                        retriever_timeout_s=cfg.retrieval.timeout_s)


def agent_loop_yaml(settings: LoopSettings) -> str:
    import yaml

    entry = {"name": AGENT_NAME, "_target_": CLASS_PATH, "sr1": settings.to_mapping()}
    return "# sr1's agent loop for verl, written by `sr1 export verl`\n" + yaml.safe_dump([entry], sort_keys=False)


def _dq(text: str) -> str:
    """`text` in bash double quotes, with only the export folder (`${HERE}`) left to expand."""
    for ch in ("\\", '"', "`", "$"):
        text = text.replace(ch, "\\" + ch)
    return '"' + text.replace("\\${HERE}", "${HERE}") + '"'


def launch_script(ovs: list[Override], unmapped: dict[str, str]) -> str:
    lines = ["#!/usr/bin/env bash", "# verl run of an sr1 experiment, written by `sr1 export verl`.",
             "# Start the retriever first (`sr1 serve --index DIR --port 8000` per node, or a shared one),",
             "# then: N_GPUS=8 NNODES=1 bash launch.sh [more Hydra overrides, which win]", "#",
             "# sr1 fields with no verl equivalent:"]
    lines += [f"#   {k}: {why}" for k, why in unmapped.items()]
    lines += ["set -euo pipefail", 'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
              'export VERL_FILE_LOGGER_PATH="${VERL_FILE_LOGGER_PATH:-$HERE/verl_run/metrics.jsonl}"',
              'mkdir -p "$HERE/verl_run"', "ARGS=("]
    for o in ovs:
        why = ": ".join(x for x in (o.source, o.note) if x)
        lines.append(f"  {_dq(o.text())}" + (f"  # {why}" if why else ""))
    lines += [")", 'python3 -m verl.trainer.main_ppo "${ARGS[@]}" \\',
              '  "trainer.n_gpus_per_node=${N_GPUS:-8}" "trainer.nnodes=${NNODES:-1}" \\',
              '  "actor_rollout_ref.rollout.tensor_model_parallel_size=${TP:-1}" "$@"', ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class Export:
    out: Path
    n_train: int
    n_val: int
    overrides: list[Override]
    unmapped: dict[str, str]


def data_rows(records: list[Any]) -> list[dict[str, Any]]:
    """Search-R1 parquet rows with the agent loop named per row (verl picks the loop by `agent_name`)."""
    from sr1lib.data.searchr1 import searchr1_row

    return [{**searchr1_row(r, i), "agent_name": AGENT_NAME} for i, r in enumerate(records)]


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sr1lib.fsutil import write_bytes_atomic

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    write_bytes_atomic(path, buf.getvalue())


def export_verl(cfg: RunConfig, out: str | Path, *, retriever: str | None = None) -> Export:
    """Write the verl run folder for `cfg` (see the module docstring); `retriever` overrides retrieval.index."""
    from sr1lib.fsutil import write_json_atomic, write_text_atomic
    from sr1lib.train.data import load_split

    out = Path(out)
    target = retriever or cfg.retrieval.index
    if not target:
        raise Sr1Error("sr1 export verl: no retriever: set retrieval.index to an `sr1 serve` URL "
                       "(or an index folder every node can read), or pass --retriever URL")
    train = load_split(cfg.data.train, "train")
    val = load_split(cfg.data.val, "val") if cfg.data.val else []
    val = val[: cfg.data.val_limit] if cfg.data.val_limit else val
    if not train:
        raise Sr1Error(f"sr1 export verl: data.train {cfg.data.train} holds no records")
    write_parquet(data_rows(train), out / "data" / "train.parquet")
    if val:
        write_parquet(data_rows(val), out / "data" / "val.parquet")
    ovs = overrides(cfg, has_val=bool(val))
    unmapped = {k: v[len("none: "):] for k, v in coverage(cfg).items() if v.startswith("none: ")}
    write_text_atomic(out / "agent_loop.yaml", agent_loop_yaml(loop_settings(cfg, target)))
    write_text_atomic(out / "reward.py", REWARD_HOOK.format(reward=cfg.algorithm.reward))
    script = out / "launch.sh"
    write_text_atomic(script, launch_script(ovs, unmapped))
    script.chmod(0o755)
    cfgmod.save(cfg, out / "sr1_config.yaml")
    write_json_atomic(out / "mapping.json", {"overrides": [o.text() for o in ovs], "fields": coverage(cfg)})
    return Export(out, len(train), len(val), ovs, unmapped)


REWARD_HOOK = '''"""verl reward hook: sr1's `{reward}` reward (written by `sr1 export verl`).

The sr1_search agent loop sets reward_score itself, so verl calls this only for rows of other agent
loops; it scores the response text only, as sr1 does."""

from sr1lib.rewards import get_reward_fn

_REWARD = get_reward_fn({reward!r})


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    target = ground_truth.get("target", ground_truth) if isinstance(ground_truth, dict) else ground_truth
    answers = [target] if isinstance(target, str) else list(target)
    return float(_REWARD(solution_str, answers))
'''
