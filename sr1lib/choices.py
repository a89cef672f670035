"""Every list of interchangeable methods, declared once: config validation, the registries that
implement the methods, the CLI's `choices=` and the experiment functions all read these names.

tests/test_choices.py holds each registry's keys equal to its list here, so adding a method means
adding its name here and its implementation in the registry; either alone fails the suite.
"""

from __future__ import annotations

# algorithm.name -> the advantage estimator it uses (registry: sr1lib.algos.ADVANTAGE_ESTIMATORS).
# PPO is GAE over a learned critic (Search-R1's PPO); the others are critic-free outcome estimators.
ALGORITHMS: dict[str, str] = {"ppo": "gae", "grpo": "grpo", "reinforce": "reinforce", "rloo": "rloo"}
ADVANTAGE_ESTIMATORS = ("gae", "grpo", "rloo", "reinforce")
CRITIC_ESTIMATORS = ("gae",)  # estimators that read a critic's values: the run trains one

# sr1lib.algos.KL_ESTIMATORS and .LOSS_AGG_MODES
KL_ESTIMATORS = ("kl", "abs", "mse", "low_var_kl")
LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")

REWARDS = ("em", "format")  # sr1lib.rewards.REWARD_FNS

RETRIEVER_BACKENDS = ("pyserini", "bm25s", "dense", "http")  # sr1lib.retrieval.registry.BACKENDS
BUILDABLE_BACKENDS = ("pyserini", "bm25s", "dense")  # those `sr1 index build` makes (http is a server's)

GENERATORS = ("hf", "vllm", "scripted")  # sr1lib.generators.GENERATORS
ROLLOUT_GENERATORS = ("hf", "vllm")  # what rollout.generator may name (scripted replays fixed texts)

PROMPT_MODES = ("search", "no_search", "rag")  # sr1lib.protocol.build_prompt's modes
ON_RETRIEVER_ERROR = ("observe", "raise")


def needs_critic(algorithm: str) -> bool:
    """Whether `algorithm` (an algorithm.name) trains a critic."""
    return ALGORITHMS[algorithm] in CRITIC_ESTIMATORS
