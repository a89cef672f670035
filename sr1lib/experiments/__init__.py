"""What the notebooks (and `sr1 report`) call: one function per notebook job, returning plain data.

    quickstart(profile, seed, ...)         00: world, base model, a few rollouts
    retrieval_study(profile, seed, ...)    01: answer recall@k vs k, latency, build time per backend
    train_run(profile, seed, ...)          02: one training run (reused when already finished)
    ablation(profile, seeds, variants)     03: 02_train through papermill per variant x seed, compared
    response_length_study(runs, ...)       04: response length and searches over training
    evaluate_table(profile, seed, ...)     05: the EM table in the paper's Table-2 layout
    inspect_examples(run, ...)             06: static views of trajectories (the live one is a widget)

Defaults run the toy world (`sr1lib.toyworld`) on CPU; `model=`, `data=`, `index=` point a job
at real models, data and indexes. Every job takes `artifacts=` (a folder for `sr1 report`).
Modules: setup (what a job runs against), profiles (sizes per profile), frames (run folders into
tables), artifacts (what reports collect), execute (a notebook through papermill), and one module
per job.
"""

from __future__ import annotations

from sr1lib.experiments.ablation import ablation
from sr1lib.experiments.evaluation import evaluate_table
from sr1lib.experiments.inspection import inspect_examples
from sr1lib.experiments.profiles import NOTEBOOK_PARAMS, NOTEBOOKS, PROFILE_NAMES, notebook_params
from sr1lib.experiments.quickstart import quickstart
from sr1lib.experiments.retrieval_study import retrieval_study
from sr1lib.experiments.training import response_length_study, train_run


__all__ = ["NOTEBOOKS", "NOTEBOOK_PARAMS", "PROFILE_NAMES", "ablation", "evaluate_table", "inspect_examples",
           "notebook_params", "quickstart", "response_length_study", "retrieval_study", "train_run"]
