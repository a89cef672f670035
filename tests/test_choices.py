"""Every list of choices is declared once (`sr1lib.choices`): config validation, the registries, the
CLI and the experiment functions read it, and each registry holds exactly the names declared."""

from __future__ import annotations

import dataclasses

import pytest

from sr1lib import algos, choices
from sr1lib import config as C
from sr1lib.generators import GENERATORS
from sr1lib.retrieval.registry import BACKENDS
from sr1lib.rewards import REWARD_FNS


@pytest.mark.parametrize("registry, declared", [
    (algos.ADVANTAGE_ESTIMATORS, choices.ADVANTAGE_ESTIMATORS),  # the estimators algos implements
    (algos.KL_ESTIMATORS, choices.KL_ESTIMATORS),  # KL estimators
    (algos.LOSS_AGG_MODES, choices.LOSS_AGG_MODES),  # loss aggregation modes
    (REWARD_FNS, choices.REWARDS),  # reward functions
    (BACKENDS, choices.RETRIEVER_BACKENDS),  # retriever backends
    (GENERATORS, choices.GENERATORS),  # generator backends
])
def test_each_registry_holds_exactly_the_declared_names(registry, declared):
    assert sorted(registry) == sorted(declared)


def test_every_algorithm_names_a_registered_estimator_and_the_subsets_are_subsets():
    assert set(choices.ALGORITHMS.values()) <= set(choices.ADVANTAGE_ESTIMATORS)
    assert set(choices.CRITIC_ESTIMATORS) <= set(choices.ADVANTAGE_ESTIMATORS)
    assert set(choices.BUILDABLE_BACKENDS) <= set(choices.RETRIEVER_BACKENDS)
    assert set(choices.ROLLOUT_GENERATORS) <= set(choices.GENERATORS)
    assert [a for a in choices.ALGORITHMS if choices.needs_critic(a)] == ["ppo"]


def test_the_rollout_loop_and_the_cli_accept_the_declared_prompt_modes():
    from sr1lib import rollout

    assert rollout.PROMPT_MODES == choices.PROMPT_MODES


@pytest.mark.parametrize("field, declared", [
    ("algorithm.name", tuple(choices.ALGORITHMS)),
    ("algorithm.reward", choices.REWARDS),
    ("algorithm.kl_type", choices.KL_ESTIMATORS),
    ("algorithm.loss_agg_mode", choices.LOSS_AGG_MODES),
    ("retrieval.backend", choices.RETRIEVER_BACKENDS),
    ("rollout.generator", choices.ROLLOUT_GENERATORS),
    ("rollout.on_retriever_error", choices.ON_RETRIEVER_ERROR),
])
def test_config_validation_accepts_exactly_the_declared_names(field, declared):
    for name in declared:
        C.with_overrides(C.RunConfig(), [f"{field}={name}"])
    with pytest.raises(C.ConfigError) as err:
        C.with_overrides(C.RunConfig(), [f"{field}=nope"])
    assert str(err.value) == f"{field}: 'nope' is not one of {list(declared)}"


def test_every_estimator_is_called_the_same_way():
    import torch

    mask = torch.ones(4, 3)
    rewards = torch.zeros(4, 3)
    rewards[:, -1] = torch.tensor([1.0, 0.0, 1.0, 1.0])
    x = algos.AdvantageInputs(token_rewards=rewards, response_mask=mask, policy_mask=mask,
                              group_ids=["a", "a", "b", "b"], values=torch.zeros(4, 3))
    for name in choices.ADVANTAGE_ESTIMATORS:
        adv, ret = algos.compute_advantages(name, x)
        assert adv.shape == ret.shape == (4, 3), name
    with pytest.raises(ValueError, match="valid estimators are"):
        algos.compute_advantages("ppo2", x)
    with pytest.raises(ValueError, match="needs the critic's values"):
        algos.compute_advantages("gae", dataclasses.replace(x, values=None))
