"""Every run setting has one default, `sr1lib.config.RunConfig`'s: a profile is a list of overrides of
it, the notebook jobs and their notebooks take only what their question varies plus `overrides`, and
`sr1 eval` / `sr1lib.evaluate.evaluate` take their defaults from it. Each test fails when a second
place declares a setting (and so can disagree with the first)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from sr1lib import config as C
from sr1lib import experiments
from sr1lib.experiments import profiles

ROOT = Path(__file__).resolve().parent.parent
# names a job takes that are not run settings: where its inputs are (the toy world's by default)
WHERE = {"seed", "model", "index", "data", "out_dir"}
# run settings that are what a job's question varies: trajectories per question shown (00), and the
# masking ablation's switch (02)
QUESTION = {"quickstart": {"group_size"}, "00_quickstart": {"group_size"}, "train_run": {"mask_retrieved"},
            "02_train": {"mask_retrieved"}}


def leaf_fields(cls=C.RunConfig, prefix: str = "") -> dict[str, object]:
    """dotted name -> default of every RunConfig field."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else default):
            out.update(leaf_fields(type(default), f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = default
    return out


SETTINGS = {name.rsplit(".", 1)[-1] for name in leaf_fields()} - WHERE
JOBS = [experiments.quickstart, experiments.train_run, experiments.ablation, experiments.evaluate_table]


ALL_JOBS = [getattr(experiments, n) for n in experiments.__all__ if inspect.isfunction(getattr(experiments, n))]


@pytest.mark.parametrize("job", ALL_JOBS, ids=lambda f: f.__name__)
def test_notebook_jobs_take_no_setting_of_their_own(job):
    params = inspect.signature(job).parameters
    assert "overrides" in params or job not in JOBS  # the jobs that run a model take overrides
    redeclared = sorted(set(params) & SETTINGS - QUESTION.get(job.__name__, set()))
    assert not redeclared, f"{job.__name__} declares run settings {redeclared}; read them from the profile"


@pytest.mark.parametrize("name", ["00_quickstart", "02_train", "03_ablation_rl_methods", "05_evaluate"])
def test_notebook_parameters_hold_no_setting_of_their_own(name):
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    names = {n.target.id for n in ast.parse("".join(cell["source"])).body}
    assert "overrides" in names
    redeclared = sorted(names & SETTINGS - QUESTION.get(name, set()))
    assert not redeclared, f"{name} declares run settings {redeclared}; pass them through overrides"


@pytest.mark.parametrize("profile", profiles.PROFILE_NAMES)
def test_profiles_override_only_real_fields_and_only_to_change_them(profile):
    assert profiles.PURPOSE[profile]
    cfg = profiles.run_config(profile)  # every override names a real field (with_overrides validates)
    flat_base, flat = leaf_fields(), _flat(C.to_dict(cfg))
    for item in profiles.RUN_SETTINGS[profile]:
        key = item.split("=", 1)[0]
        assert flat[key] != flat_base[key], f"{profile}: {item} repeats RunConfig's default; leave it out"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def test_evaluation_defaults_are_the_run_configs():
    from sr1lib.cli.eval import register
    from sr1lib.evaluate import evaluate

    defaults = leaf_fields()
    want = {"topk": defaults["retrieval.topk"], "device": defaults["train.device"],
            **{k: defaults[f"rollout.{k}"] for k in ("max_turns", "max_new_tokens", "max_response_tokens",
                                                     "max_obs_tokens", "max_prompt_tokens")}}
    params = inspect.signature(evaluate).parameters
    assert {k: params[k].default for k in want} == want
    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    parser = sub.choices["eval"]
    cli = {a.dest: a.default for a in parser._actions if a.dest in want}
    assert cli == {k: v for k, v in want.items() if k in cli} and len(cli) >= 5
