"""`train(cfg)`: a whole run, recorded in its run folder, resumable, with validation, alarms and a
progress bar. The CLI (`sr1 train`) and notebooks call this.

Per step (1-based) it appends one row to metrics.jsonl (the keys of `Trainer.step`, `val_*` on
validation steps, and `alarms`), `train.log_rollouts` trajectories to rollouts.jsonl, and a log line
to RUN/train.log; every `train.save_every` steps and after the last one it writes a checkpoint. With
validation on, a step-0 row holds the starting policy's `val_*` alone, so validation curves start at
the base model.

Resume (`resume=True`): the run folder must exist; its config may differ from `cfg` only in fields
that do not change the computation (RESUMABLE_CHANGES, e.g. `train.steps` to extend a run). The
latest complete checkpoint is loaded (weights, optimizers, schedulers, RNG states, alarm history),
metrics/rollouts rows after it are dropped, and training continues at the next step: on CPU the
metrics then match an uninterrupted run exactly (timings aside). Without a checkpoint it restarts.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Sequence

import numpy as np
import torch

from sr1lib import config as cfgmod
from sr1lib.config import ConfigError, RunConfig
from sr1lib.errors import Sr1Error
from sr1lib.runs import RunDir
from sr1lib.train.alarms import AlarmMonitor
from sr1lib.train.checkpoint import checkpoint_paths, load_trainer_state, save_checkpoint, set_rng_state
from sr1lib.train.data import batch_for_step, data_position, load_split, toy_index
from sr1lib.train.step import Trainer

log = logging.getLogger("sr1lib.train")
RESUMABLE_CHANGES = {"train.steps", "train.save_every", "train.val_every", "train.log_rollouts",
                     "data.val", "data.val_limit", "retrieval.index", "retrieval.timeout_s", "retrieval.threads"}
TIMING_KEYS = ("rollout_s", "generate_s", "retrieve_s", "logprob_s", "update_s", "critic_s", "step_s",
               "tokens_per_s", "retrieval_s_mean", "retrieval_latency_s")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _open_run(cfg: RunConfig, resume: bool) -> RunDir:
    path = cfg.run_dir
    if resume:
        run = RunDir.open(path)
        old, new = _flat(cfgmod.to_dict(run.config())), _flat(cfgmod.to_dict(cfg))
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        bad = [k for k in changed if k not in RESUMABLE_CHANGES]
        if bad:
            raise ConfigError(f"{path}: cannot resume with a different {', '.join(bad)} "
                              f"({'; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in bad)}); only "
                              f"{sorted(RESUMABLE_CHANGES)} may change on resume")
        cfgmod.save(cfg, run.path / "config.json")
        return run
    _refuse_existing(cfg)
    return RunDir.create(cfg)


def _refuse_existing(cfg: RunConfig) -> None:
    path = cfg.run_dir
    if (path / "metrics.jsonl").exists() or any(path.glob("checkpoints/step_*")):
        raise Sr1Error(f"{path}: a run already exists here; pass --resume to continue it, or choose another "
                       "name (--set name=...) or out_dir")


def _with_toy_index(cfg: RunConfig) -> RunConfig:
    """`cfg` searching its toy world's corpus when it trains on a toy world and names no index."""
    from dataclasses import replace

    if cfg.retrieval.index or cfg.retrieval.backend == "http":
        return cfg
    index = toy_index([*cfg.data.train, *cfg.data.val], cfg.retrieval.backend)
    return cfg if index is None else replace(cfg, retrieval=replace(cfg.retrieval, index=str(index)))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _file_logger(run: RunDir) -> logging.Handler:
    handler = logging.FileHandler(run.path / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def _summary(m: dict[str, Any]) -> str:
    parts = [f"reward {m['reward_mean']:.3f}", f"em {m['em']:.3f}", f"len {m['response_tokens_mean']:.0f}",
             f"entropy {m['entropy']:.3f}"]
    if "kl" in m:
        parts.append(f"kl {m['kl']:.4f}")
    if "val_em" in m:
        parts.append(f"val_em {m['val_em']:.3f}")
    parts.append(f"{m['step_s']:.2f}s")
    return ", ".join(parts)


def train(cfg: RunConfig, *, resume: bool = False, progress: bool = True,
          reward_fn: Callable[[str, Sequence[str]], float] | None = None, retriever: Any = None,
) -> RunDir:
    """Run (or resume) `cfg` and return its run folder.

    reward_fn: overrides `algorithm.reward` (a `(response, golden_answers) -> float` function);
    retriever: an object with `search(queries, k)`, overriding `retrieval.*` (for notebooks and tests);
    """
    from tqdm.auto import tqdm

    from sr1lib.rewards import get_reward_fn

    t = cfg.train
    if not t.model:
        raise ConfigError("train.model: empty; set it to a policy model folder (save_pretrained layout)")
    if retriever is None and cfg.rollout.prompt_mode != "no_search":
        cfg = _with_toy_index(cfg)
    if not resume:
        _refuse_existing(cfg)  # before the slow set-up
    records = load_split(cfg.data.train, "train")
    val = load_split(cfg.data.val, "val") if cfg.data.val else []
    val = val[: cfg.data.val_limit] if cfg.data.val_limit else val
    batch_for_step(records, 1, t.batch_size, seed=cfg.seed, shuffle=cfg.data.shuffle)  # fail early on size
    if retriever is None and cfg.rollout.prompt_mode != "no_search":
        from sr1lib.retrieval.index import retriever_from_config

        retriever = retriever_from_config(cfg.retrieval)
    reward_fn = reward_fn or get_reward_fn(cfg.algorithm.reward)

    run = _open_run(cfg, resume)
    handler = _file_logger(run)
    monitor = AlarmMonitor()
    start = 0
    try:
        done = run.checkpoint_steps() if resume else []
        if done:
            start = done[-1]
            ckpt = run.checkpoint_dir(start)
            state = load_trainer_state(ckpt)
            trainer = Trainer(cfg, retriever=retriever, reward_fn=reward_fn, **checkpoint_paths(ckpt))
            trainer.load_optim_state(state["optim"])
            monitor.load_state_dict(state["alarms"])
            set_rng_state(state["rng"])
            log.info("resumed %s from %s", run.path, ckpt)
        else:
            _seed_everything(cfg.seed)
            trainer = Trainer(cfg, retriever=retriever, reward_fn=reward_fn)
            log.info("started %s: %s on %s, %d training questions", run.path, cfg.algorithm.name,
                     trainer.device, len(records))
        run.truncate_logs_after(start if start else -1)  # a fresh start also redoes step 0's validation
        _loop(cfg, run, trainer, monitor, records, val, start, progress, tqdm)
    except Exception as e:
        log.error("stopped: %s: %s", type(e).__name__, e)
        raise
    finally:
        log.removeHandler(handler)
        handler.close()
    return run


def _loop(cfg: RunConfig, run: RunDir, trainer: Trainer, monitor: AlarmMonitor, records: list, val: list,
          start: int, progress: bool, tqdm: Any) -> None:
    t = cfg.train
    bar = tqdm(total=t.steps, initial=start, desc=f"{cfg.algorithm.name} {cfg.name}", unit="step",
               disable=not progress, dynamic_ncols=True)
    try:
        if val and t.val_every and start == 0:
            # the starting policy's validation EM, logged as step 0, so every curve starts from it
            run.log_metrics(0, {**trainer.validate(val, 0), "alarms": []})
        for step in range(start + 1, t.steps + 1):
            batch = batch_for_step(records, step, t.batch_size, seed=cfg.seed, shuffle=cfg.data.shuffle)
            metrics, trajs = trainer.step(step, batch)
            if val and t.val_every and (step % t.val_every == 0 or step == t.steps):
                metrics.update(trainer.validate(val, step))
            names, lines = monitor.check(metrics)
            metrics["alarms"] = names
            run.log_metrics(step, metrics)
            if t.log_rollouts:
                run.log_rollouts(step, trajs[: t.log_rollouts])
            log.info("step %d: %s", step, _summary(metrics))
            for line in lines:
                log.warning("step %d: alarm: %s", step, line)
                if progress:
                    tqdm.write(f"[sr1 train] step {step}: alarm: {line}")
            bar.set_postfix(reward=f"{metrics['reward_mean']:.3f}", em=f"{metrics['em']:.3f}",
                            len=f"{metrics['response_tokens_mean']:.0f}", refresh=False)
            bar.update(1)
            if (t.save_every and step % t.save_every == 0) or step == t.steps:
                pos = data_position(step, len(records), t.batch_size)
                path = save_checkpoint(run, step, trainer, data_position=pos,
                                       extra_state={"alarms": monitor.state_dict()}, metrics=metrics)
                log.info("step %d: checkpoint %s", step, path)
    finally:
        bar.close()
