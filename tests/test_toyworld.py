"""The toy world's files: determinism, questions answerable from the corpus, bridges that chain,
fact-disjoint splits, Search-R1 parquet that sr1lib.data reads, and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sr1lib.errors import Sr1Error
from sr1lib.protocol import split_contents
from sr1lib.toyworld import SPLITS, build_world, get_profile
from sr1lib.toyworld.world import WorldConfig

SMOKE = get_profile("smoke").world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tw") / "world"
    build_world(out, 7, config=SMOKE)
    return out


def read_corpus(folder: Path) -> dict[str, tuple[str, str]]:
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    return {r["id"]: split_contents(r["contents"]) for r in rows}


def read_questions(folder: Path, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(folder / f"{split}.parquet").to_pylist()


def test_same_seed_same_bytes_other_seed_other_world(world, tmp_path):
    again = tmp_path / "again"
    build_world(again, 7, config=SMOKE)
    files = sorted(p.name for p in world.iterdir())
    assert files == sorted(p.name for p in again.iterdir())
    assert {"corpus.jsonl", "world.json", "kb.json", *(f"{s}.parquet" for s in SPLITS)} <= set(files)
    for name in files:
        assert (world / name).read_bytes() == (again / name).read_bytes(), name
    other = tmp_path / "other"
    build_world(other, 8, config=SMOKE)
    assert (other / "corpus.jsonl").read_bytes() != (world / "corpus.jsonl").read_bytes()


def test_manifest_describes_the_files(world):
    from sr1lib.fsutil import sha256_file

    m = json.loads((world / "world.json").read_text())
    assert m["seed"] == 7 and m["config_hash"] == SMOKE.hash()
    assert WorldConfig.from_json(m["config"]) == SMOKE
    for name, info in m["files"].items():
        assert sha256_file(world / name) == info["sha256"]
        assert (world / name).stat().st_size == info["bytes"]
    assert m["counts"]["passages"] == len(read_corpus(world))
    for split in SPLITS:
        qs = read_questions(world, split)
        assert sum(m["counts"]["questions"][split].values()) == len(qs) == SMOKE.questions[split]


def test_corpus_is_wiki18_shaped_with_distractors(world):
    lines = (world / "corpus.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == [str(i) for i in range(len(rows))]
    assert all(set(r) == {"id", "contents"} and r["contents"].startswith('"') and '"\n' in r["contents"] for r in rows)
    titles = [split_contents(r["contents"])[0] for r in rows]
    # Several passages share a title (an entity's distractor passage) and names share words.
    assert len(set(titles)) < len(titles)
    words = [w for t in titles for w in t.split()]
    assert len(set(words)) < len(words)


def test_answers_are_in_supporting_passages_and_bridges_chain(world):
    corpus = read_corpus(world)
    kb = json.loads((world / "kb.json").read_text())
    name = {e["id"]: e["name"] for e in kb["entities"]}
    fact = {(name[f["subject"]], f["relation"]): name[f["object"]] for f in kb["facts"]}
    hops = set()
    for split in SPLITS:
        for row in read_questions(world, split):
            info = row["extra_info"]
            chain, relations = info["chain"], info["relations"]
            hops.add(info["hop"])
            assert info["hop"] == ("single" if len(relations) == 1 else "two")
            assert row["reward_model"]["ground_truth"]["target"] == [chain[-1]] == row["golden_answers"]
            assert row["data_source"] == "toy" and row["question"] in row["prompt"][0]["content"]
            assert chain[0] in row["question"]
            for i, rel in enumerate(relations):
                # each hop is a fact of the knowledge base, stated in that hop's supporting passages
                assert fact[(chain[i], rel)] == chain[i + 1]
                docs = info["supporting_docids_per_hop"][i]
                assert docs and all(chain[i + 1] in corpus[d][1] for d in docs)
            if info["hop"] == "two":
                assert chain[1] not in row["question"]  # the bridge must be found, not read off
    assert hops == {"single", "two"}


def test_splits_share_no_fact_and_no_train_subject_is_evaluated(world):
    facts = {}
    subjects = {}
    for split in SPLITS:
        rows = read_questions(world, split)
        facts[split] = {(r["extra_info"]["chain"][i], rel) for r in rows
                        for i, rel in enumerate(r["extra_info"]["relations"])}
        subjects[split] = {r["extra_info"]["chain"][0] for r in rows}
    assert not facts["train"] & facts["test"] and not facts["train"] & facts["validation"]
    assert not facts["validation"] & facts["test"]
    assert not subjects["train"] & (subjects["test"] | subjects["validation"])


def test_parquet_loads_with_sr1lib_data(world):
    from sr1lib.data import load_records

    for split in SPLITS:
        recs = load_records(world / f"{split}.parquet")
        rows = read_questions(world, split)
        assert [r.question for r in recs] == [row["question"] for row in rows]
        assert all(r.data_source == "toy" and r.id.startswith(f"toy/{split}-") and r.split == split for r in recs)
        assert all(r.extra["extra_info"]["hop"] in ("single", "two") for r in recs)


def test_no_answer_leaks_through_the_question_text(world):
    for split in SPLITS:
        for row in read_questions(world, split):
            assert not re.search(rf"\b{re.escape(row['golden_answers'][0])}\b", row["question"])


def test_errors_name_what_to_change(world, tmp_path):
    with pytest.raises(Sr1Error, match="already exists"):
        build_world(world, 7, config=SMOKE)
    big = WorldConfig(kb=SMOKE.kb, train_kb=SMOKE.train_kb, questions={"train": 10, "validation": 5, "test": 500})
    with pytest.raises(Sr1Error, match=r"test questions for the 500 asked; make the eval region bigger \(WorldConfig\.kb\)"):
        build_world(tmp_path / "big", 0, config=big)
    assert not (tmp_path / "big").exists() and not list(tmp_path.glob(".big*"))
    with pytest.raises(Sr1Error, match="valid splits"):
        build_world(tmp_path / "x", 0, config=WorldConfig(questions={"dev": 3}))
    with pytest.raises(Sr1Error, match=r"valid profiles are \['smoke', 'quick', 'full'\]"):
        get_profile("huge")


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    import sr1lib.toyworld.world as world_mod

    def boom(*a, **k):
        raise KeyboardInterrupt  # as if the process were stopped while writing

    monkeypatch.setattr(world_mod, "write_questions_parquet", boom)
    with pytest.raises(KeyboardInterrupt):
        build_world(tmp_path / "w", 0, config=SMOKE)
    assert list(tmp_path.iterdir()) == []


def test_cli_build(tmp_path, capsys):
    from sr1lib.cli import main

    assert main(["toyworld", "build", "--out", str(tmp_path / "w"), "--profile", "smoke", "--seed", "3"]) == 0
    assert "questions" in capsys.readouterr().out
    assert json.loads((tmp_path / "w" / "world.json").read_text())["seed"] == 3
    assert main(["toyworld", "build", "--out", str(tmp_path / "w"), "--profile", "smoke"]) == 2
    assert "already exists" in capsys.readouterr().err
