"""Sizes per profile: what `sr1 report --profile P` and the test suite pass to each notebook.

A profile names a toy-world size (`sr1lib.toyworld.cache.PROFILES`: world, base model) plus the
sizes of the notebooks' jobs (rollouts, training steps, seeds, evaluation questions):

    smoke  seconds per notebook; structure only (the test suite runs every notebook with it)
    quick  the main job (`make demo`): the toy world's quick profile, short runs, one seed
    full   longer runs, three seeds for the ablation

`NOTEBOOK_PARAMS[profile][notebook]` are the papermill parameters; a notebook's own defaults are
the `quick` ones (a test holds the two together), so opening a notebook and running it gives the
main job's result.
"""

from __future__ import annotations

from typing import Any

from sr1lib.errors import Sr1Error

PROFILE_NAMES = ("smoke", "quick", "full")
NOTEBOOKS = ("00_quickstart", "01_retrieval", "02_train", "03_ablation_rl_methods", "04_response_length",
             "05_evaluate", "06_inspect")

# Training sizes shared by 02_train (one run) and 03_ablation (each of its runs), so the ablation's
# run of 02's configuration is the same run and is reused, not trained twice. micro_batch_size 10
# (two GRPO groups per forward pass, each trimmed to its longest row) gives the same gradient as
# one pass over the batch with less padding: quick's RL steps took 2.7 s instead of 3.5 (GRPO) and
# 3.5 instead of 4.6 (PPO) on 2 cores; 5 and 20 were slower than 10.
# quick runs 24 steps: its greedy validation EM is at its plateau by step 6-12 (docs/BENCHMARKS.md).
# A finished run continues to more steps with `sr1 train --config RUN/config.json --resume --set train.steps=N`.
TRAIN: dict[str, dict[str, Any]] = {
    "smoke": dict(steps=2, batch_size=2, group_size=2, lr=1e-4, kl_coef=0.001, max_turns=1, max_new_tokens=24,
                  max_response_tokens=96, topk=2, val_every=2, val_limit=2, log_rollouts=4, micro_batch_size=0),
    "quick": dict(steps=24, batch_size=8, group_size=5, lr=2e-4, kl_coef=0.001, max_turns=3, max_new_tokens=48,
                  max_response_tokens=320, topk=3, val_every=6, val_limit=20, log_rollouts=8, micro_batch_size=10),
    "full": dict(steps=80, batch_size=8, group_size=5, lr=2e-4, kl_coef=0.001, max_turns=3, max_new_tokens=48,
                 max_response_tokens=320, topk=3, val_every=5, val_limit=60, log_rollouts=8, micro_batch_size=10),
}

_ROLLOUT_KEYS = ("max_turns", "max_new_tokens", "max_response_tokens", "topk")


def _nb(profile: str) -> dict[str, dict[str, Any]]:
    t = TRAIN[profile]
    rollout = {k: t[k] for k in _ROLLOUT_KEYS}
    train = {k: t[k] for k in ("steps", "batch_size", "group_size", "lr", "kl_coef", "val_every", "val_limit",
                               "log_rollouts", "micro_batch_size")}
    return {
        "00_quickstart": dict(profile=profile, seed=0, n_questions=2 if profile == "smoke" else 4, group_size=2,
                              **rollout),
        "01_retrieval": dict(profile=profile, seed=0,
                             backends=["bm25s", "pyserini", "dense"] if profile != "smoke" else ["bm25s"],
                             ks=[1, 2, 3, 5, 10], n_questions={"smoke": 10, "quick": 100, "full": 200}[profile]),
        "02_train": dict(profile=profile, seed=0, algorithm="grpo", mask_retrieved=True, **train, **rollout),
        "03_ablation_rl_methods": dict(profile=profile, seeds=[0, 1, 2] if profile == "full" else [0],
                                       variants=["ppo", "grpo", "reinforce", "ppo-nomask"] if profile != "smoke"
                                       else ["grpo", "reinforce"], **train, **rollout),
        "04_response_length": dict(),
        "05_evaluate": dict(profile=profile, seed=0, methods=["direct", "rag", "search-r1"],
                            limit={"smoke": 2, "quick": 20, "full": 0}[profile], **rollout),
        "06_inspect": dict(n_examples=2),
    }


NOTEBOOK_PARAMS: dict[str, dict[str, dict[str, Any]]] = {p: _nb(p) for p in PROFILE_NAMES}


def check_profile(profile: str) -> str:
    if profile not in PROFILE_NAMES:
        raise Sr1Error(f"unknown profile {profile!r}; valid profiles are {list(PROFILE_NAMES)}")
    return profile


def notebook_params(profile: str, notebook: str) -> dict[str, Any]:
    """A copy of the parameters `notebook` gets under `profile`."""
    check_profile(profile)
    if notebook not in NOTEBOOK_PARAMS[profile]:
        raise Sr1Error(f"unknown notebook {notebook!r}; valid notebooks are {list(NOTEBOOKS)}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in NOTEBOOK_PARAMS[profile][notebook].items()}


def train_sizes(profile: str) -> dict[str, Any]:
    return dict(TRAIN[check_profile(profile)])
