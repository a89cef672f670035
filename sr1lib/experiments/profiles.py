"""Sizes per profile: what `sr1 report --profile P` and the test suite pass to each notebook.

A profile names a toy-world size (`sr1lib.toyworld.cache.PROFILES`: world, base model) plus the
run settings of the notebooks' jobs (`RUN_SETTINGS`: overrides of `RunConfig`, so each setting has
one default, RunConfig's, and a profile changes only what it names); `PURPOSE` says what each is for.

`NOTEBOOK_PARAMS[profile][notebook]` are the papermill parameters: what the notebook's question
varies (the profile, seeds, the algorithm, ...). A notebook's own defaults are the `quick` ones (a
test holds the two together), so opening a notebook and running it gives the main job's result;
anything else is changed through its `overrides` parameter (`sr1 train --set` strings).
"""

from __future__ import annotations

from typing import Any, Sequence

from sr1lib.config import RunConfig, with_overrides
from sr1lib.errors import Sr1Error

PROFILE_NAMES = ("smoke", "quick", "full")
NOTEBOOKS = ("00_quickstart", "01_retrieval", "02_train", "03_ablation_rl_methods", "04_response_length",
             "05_evaluate", "06_inspect")

# What each profile is for, in one line.
PURPOSE = {
    "smoke": "the smallest sizes, for structure only (the test suite runs every notebook with it)",
    "quick": "the main job (`make demo`): the toy world's quick profile, short runs, one seed",
    "full": "longer runs, three seeds for the ablation",
}

# A profile's run settings: `sr1 train --set` overrides of `sr1lib.config.RunConfig` (every setting
# not named here is RunConfig's default). Notebooks 02 and 03 train with them, so the ablation's run
# of 02's configuration is the same run and is reused, not trained twice; notebooks 00 and 05 and
# `sr1 toyworld run` roll out and evaluate with their rollout settings.
# micro_batch_size 10 (two GRPO groups per forward pass, each trimmed to its longest row) gives the
# same gradient as one pass over the batch with less padding; of 5, 10 and 20 it was the fastest on 2 cores.
# A finished run continues to more steps with `sr1 train --config RUN/config.json --resume --set train.steps=N`.
# Temperature 0.7: the sampled policy stays close to the greedy one RL improves while still searching
# on about half of the base model's first turns, so the training reward rises with validation EM
# (at 1.0 the sampled copies of names stayed noisy; docs/LOG.md, 2026-12-07).
_QUICK = ["train.steps=32", "rollout.temperature=0.7", "train.lr=2e-4", "train.critic_lr=1e-3", "rollout.max_turns=3",
          "rollout.max_new_tokens=48", "rollout.max_response_tokens=320", "train.val_every=8", "data.val_limit=20", "train.log_rollouts=8",
          "train.micro_batch_size=10"]
RUN_SETTINGS: dict[str, list[str]] = {
    "smoke": ["train.steps=2", "train.batch_size=2", "rollout.group_size=2", "train.lr=1e-4", "train.critic_lr=1e-3",
              "rollout.max_turns=1", "rollout.max_new_tokens=24", "rollout.max_response_tokens=96",
              "retrieval.topk=2", "train.val_every=2", "data.val_limit=2"],
    "quick": _QUICK,
    # full: longer RL from the same base model, more validation questions
    "full": [*_QUICK, "train.steps=80", "train.val_every=5", "data.val_limit=60"],
}


def run_config(profile: str, overrides: Sequence[str] = ()) -> RunConfig:
    """RunConfig's defaults with the profile's settings, then `overrides`, applied."""
    return with_overrides(RunConfig(), [*RUN_SETTINGS[check_profile(profile)], *overrides])


def train_sizes(profile: str) -> dict[str, Any]:
    """The profile's sizes by their short names (what `sr1 toyworld run` records in its summary)."""
    c = run_config(profile)
    t, r = c.train, c.rollout
    return dict(steps=t.steps, batch_size=t.batch_size, group_size=r.group_size, lr=t.lr,
                kl_coef=c.algorithm.kl_coef, max_turns=r.max_turns, max_new_tokens=r.max_new_tokens,
                max_response_tokens=r.max_response_tokens, topk=c.retrieval.topk, val_every=t.val_every,
                val_limit=c.data.val_limit, log_rollouts=t.log_rollouts, micro_batch_size=t.micro_batch_size)


# What each notebook's question varies, per profile; every other setting comes from the profile.
def _nb(profile: str) -> dict[str, dict[str, Any]]:
    return {
        "00_quickstart": dict(profile=profile, seed=0, n_questions=2 if profile == "smoke" else 4, group_size=2),
        "01_retrieval": dict(profile=profile, seed=0,
                             backends=["bm25s", "pyserini", "dense"] if profile != "smoke" else ["bm25s"],
                             ks=[1, 2, 3, 5, 10], n_questions={"smoke": 10, "quick": 100, "full": 200}[profile]),
        "02_train": dict(profile=profile, seed=0, algorithm="grpo", mask_retrieved=True),
        "03_ablation_rl_methods": dict(profile=profile, seeds=[0, 1, 2] if profile == "full" else [0],
                                       variants=["ppo", "grpo", "reinforce", "ppo-nomask"] if profile != "smoke"
                                       else ["grpo", "reinforce"]),
        "04_response_length": dict(),
        "05_evaluate": dict(profile=profile, seed=0, methods=["direct", "rag", "search-r1"],
                            limit={"smoke": 2, "quick": 20, "full": 0}[profile]),
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

