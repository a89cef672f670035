"""`sr1 train --set train.model=DIR` with the default `data.train: [toy]`: the toy world's questions,
and an index of its corpus when no `retrieval.index` is given, through the CLI on a tiny model."""

from __future__ import annotations

import json

import pytest

from sr1lib import config as C
from sr1lib.cli import main as cli_main
from sr1lib.errors import Sr1Error
from sr1lib.train.data import load_split, toy_index
from test_train_support import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SR1_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_default_training_data_trains_through_the_cli(tiny_model_dir, cache, tmp_path, capsys):
    assert C.RunConfig().data.train == ["toy"] and C.RunConfig().retrieval.index == ""
    out = tmp_path / "runs"
    assert cli_main(["train", "--quiet", "--set", f"train.model={tiny_model_dir}", "--set", f"out_dir={out}",
                     "--set", "train.steps=1", "--set", "train.batch_size=2", "--set", "rollout.group_size=2",
                     "--set", "rollout.max_new_tokens=6", "--set", "rollout.max_response_tokens=16",
                     "--set", "rollout.max_turns=1"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["step"] == 1 and report["reward_mean"] is not None
    # the run searched the toy world's own corpus, and its config says so
    config = json.loads((out / C.RunConfig().name / "config.json").read_text())
    index = config["retrieval"]["index"]
    assert index.startswith(str(cache.resolve())) and (cache / "toyworld").is_dir()


def test_toy_world_names_in_training_data(cache):
    smoke = load_split(["toy:smoke"], "train")
    assert smoke and all(r.data_source == "toy" and r.split == "train" for r in smoke)
    val = load_split(["toy:smoke:0"], "val")
    assert val and {r.id for r in val}.isdisjoint({r.id for r in smoke})
    assert toy_index(["toy:smoke"], "bm25s") == toy_index(["toy:smoke", "toy:smoke:0"], "bm25s")
    assert toy_index(["toy:smoke", "data.jsonl"], "bm25s") is None  # other data: no default index
    with pytest.raises(Sr1Error, match="2 toy worlds"):
        toy_index(["toy:smoke", "toy:smoke:1"], "bm25s")
    with pytest.raises(Sr1Error, match="PROFILE one of"):
        load_split(["toy:huge"], "train")
