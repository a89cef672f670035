"""Corpus files, HotpotQA conversion, the passage store and the index manifest / atomic build."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import shared_file
from retrieval_support import corpus_file, corpus_rows
from sr1lib.errors import Sr1Error
from sr1lib.fsutil import sha256_file
from sr1lib.retrieval import build_index, open_retriever, read_manifest
from sr1lib.retrieval.corpus import (hotpotqa_corpus, hotpotqa_questions, join_sentences, read_corpus,
                                     read_questions, write_hotpotqa_questions)
from sr1lib.retrieval.docstore import DocStore, make_hit, write_docstore
from sr1lib.types import Hit


def write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "c.jsonl"
    p.write_text("".join(line + "\n" for line in lines))
    return p


def test_reads_both_corpus_formats(tmp_path):
    p = write(tmp_path, [json.dumps({"id": "a", "contents": '"Paris"\nCapital of France.'}),
                         "",  # blank lines are skipped
                         json.dumps({"id": 7, "title": "Rome", "text": "Capital of Italy."})])
    assert list(read_corpus(p)) == [("a", "Paris", "Capital of France."), ("7", "Rome", "Capital of Italy.")]


BAD_LINES = [
    ("{not json", "not valid JSON"),                                            # malformed JSON
    ('["id", "contents"]', "expected a JSON object"),                           # not an object
    ('{"contents": "x"}', "missing field 'id'"),                                # no id
    ('{"id": "", "contents": "x"}', "field 'id' must be non-empty"),            # empty id
    ('{"id": 1.5, "contents": "x"}', "field 'id' must be a string or an integer"),
    ('{"id": "a"}', "missing field 'contents'"),                                # neither format
    ('{"id": "a", "title": "T"}', "missing ['text']"),                          # half of title/text
    ('{"id": "a", "contents": 3}', "field 'contents' must be a string"),
    ('{"id": "a", "contents": "  "}', "field 'contents' is empty"),
    ('{"id": "a", "title": "T", "text": 5}', "field 'text' must be a string"),
]


@pytest.mark.parametrize("line,message", BAD_LINES)
def test_bad_corpus_line_names_file_line_and_field(tmp_path, line, message):
    p = write(tmp_path, [json.dumps({"id": "ok", "contents": '"T"\nfine'}), line])
    with pytest.raises(Sr1Error) as e:
        list(read_corpus(p))
    assert str(e.value).startswith(f"{p}:2: ") and message in str(e.value)


def test_duplicate_ids_and_empty_corpus_are_errors(tmp_path):
    p = write(tmp_path, [json.dumps({"id": "x", "contents": "a"}), json.dumps({"id": "x", "contents": "b"})])
    with pytest.raises(Sr1Error, match=r"c.jsonl:2: duplicate id 'x' \(first seen on line 1\)"):
        list(read_corpus(p))
    with pytest.raises(Sr1Error, match="holds no passages"):
        list(read_corpus(write(tmp_path, [""])))
    with pytest.raises(Sr1Error, match="corpus file not found"):
        list(read_corpus(tmp_path / "missing.jsonl"))


def test_join_sentences_adds_a_space_only_where_missing():
    assert join_sentences(["A b.", " C d.", "E f."]) == "A b. C d. E f."


def test_hotpotqa_corpus_holds_every_gold_paragraph_once():
    path = shared_file("hotpotqa_dev_distractor_100.json")
    rows = hotpotqa_corpus(path)
    titles = [r["contents"].split("\n")[0].strip('"') for r in rows]
    assert len(titles) == len(set(titles)) and [r["id"] for r in rows] == [str(i) for i in range(len(rows))]
    data = json.loads(path.read_text())
    for q in data:
        for gold in q["supporting_facts"]["title"]:
            assert gold in set(titles), gold
    qs = hotpotqa_questions(path)
    assert len(qs) == len(data) and qs[0] == {"id": "dev_0", "question": data[0]["question"],
                                              "golden_answers": [data[0]["answer"]]}


def test_hotpotqa_questions_round_trip_through_flashrag_jsonl(tmp_path):
    path = shared_file("hotpotqa_dev_distractor_100.json")
    out = write_hotpotqa_questions(path, tmp_path / "q.jsonl")
    assert read_questions(out) == hotpotqa_questions(path)


def test_docstore_reads_back_what_was_written(tmp_path):
    docs = [("a", '"T1"\nfirst text'), ("b", 'T2 \nsecond — ünïcode\n'), ("c", "no title line")]
    info = write_docstore(docs, tmp_path, progress=False)
    assert info == {"count": 3, "docids_are_rows": False}
    for preload in (0, 1 << 20):  # the mmap path and the preloaded path give the same hits
        s = DocStore(tmp_path, preload_max_bytes=preload)
        assert [s.docid(i) for i in range(3)] == ["a", "b", "c"] and s.row_of("b") == 1 and s.row_of("z") is None
        # contents byte for byte: an unquoted title, its trailing space and the final newline stay
        assert s.doc("b") == Hit("b", 0.0, "T2 \nsecond — ünïcode\n") and s.doc("b").title == "T2"
        assert s.doc("c") == Hit("c", 0.0, "no title line") and s.doc("c").text == ""
        assert s.hits_by_docid(["c", "a"], [2.0, 1.0]) == [Hit("c", 2.0, "no title line"),
                                                           Hit("a", 1.0, '"T1"\nfirst text')]
        with pytest.raises(Sr1Error, match="lacks"):
            s.hits_by_docid(["nope"], [1.0])
        s.close()


def test_row_number_docids_need_no_id_table(tmp_path):
    info = write_docstore([("0", "x"), ("1", "y")], tmp_path, progress=False)
    s = DocStore(tmp_path)
    assert info["docids_are_rows"] and s.row_of("1") == 1 and s.row_of("01") is None and s.row_of("2") is None


def test_fast_hit_equals_constructed_hit():
    # make_hit skips the frozen dataclass __init__; the result must be an ordinary Hit.
    a, b = make_hit("d", 1.5, '"T"\nx'), Hit.from_title_text("d", 1.5, "T", "x")
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b) and type(a) is Hit and a.contents == '"T"\nx'
    with pytest.raises(Exception):
        a.score = 2.0  # still frozen


def test_manifest_records_corpus_hash_and_build(tmp_path):
    m = build_index(corpus_file(), tmp_path / "idx", "bm25s", progress=False)
    assert m == read_manifest(tmp_path / "idx")
    assert m["corpus"] == {"path": str(corpus_file().resolve()), "sha256": sha256_file(corpus_file())}
    assert m["doc_count"] == len(corpus_rows()) and m["backend"] == "bm25s" and m["encoder"] is None
    assert m["build_seconds"] > 0 and m["sr1lib_version"] and m["created"].endswith("+00:00")
    assert m["params"]["analyzer"] == "lucene"
    assert not (tmp_path / "idx" / "corpus").exists()  # bm25s does not keep the JSONL copy


def test_an_index_of_the_old_format_is_refused_and_caches_rebuild_it(tmp_path, monkeypatch):
    from sr1lib.evaluate.core import index_for
    from sr1lib.retrieval.manifest import FORMAT, MANIFEST, is_current

    corpus = write(tmp_path, [json.dumps({"id": "0", "contents": "Unquoted\nan unquoted title"})])
    monkeypatch.setenv("SR1_CACHE", str(tmp_path / "cache"))
    out = index_for(corpus, "bm25s", progress=False)
    assert FORMAT == "sr1-index/2" and is_current(out)
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "format": "sr1-index/1"}))  # titles stored unquoted
    with pytest.raises(Sr1Error, match=r"index format 'sr1-index/1'.*--overwrite"):
        open_retriever(out)
    assert not is_current(out) and index_for(corpus, "bm25s", progress=False) == out and is_current(out)
    with open_retriever(out) as r:
        assert r.doc("0").contents == "Unquoted\nan unquoted title"


def test_existing_index_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "idx"
    build_index(corpus_file(), out, "bm25s", progress=False)
    first = read_manifest(out)["created"], (out / "sr1-index.json").stat().st_mtime_ns
    with pytest.raises(Sr1Error, match="already exists"):
        build_index(corpus_file(), out, "bm25s", progress=False)
    build_index(corpus_file(), out, "bm25s", progress=False, overwrite=True)
    assert (out / "sr1-index.json").stat().st_mtime_ns != first[1]
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no temporary or old folders left


def test_failed_build_leaves_nothing_that_opens(tmp_path):
    bad = write(tmp_path, [json.dumps({"id": "a", "contents": "x"}), "{broken"])
    with pytest.raises(Sr1Error, match=r"c.jsonl:2: not valid JSON"):
        build_index(bad, tmp_path / "idx", "bm25s", progress=False)
    with pytest.raises(Sr1Error, match="valid analyzers"):
        build_index(corpus_file(), tmp_path / "idx", "bm25s", progress=False, analyzer="klingon")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]
    with pytest.raises(Sr1Error, match="index not found"):
        open_retriever(tmp_path / "idx")


def test_killed_build_folder_is_not_an_index(tmp_path):
    # What a SIGKILL mid-build leaves: a hidden .building folder with passages but no manifest.
    part = tmp_path / ".idx.building-123-abcd"
    write_docstore([("0", "x")], part, progress=False)
    with pytest.raises(Sr1Error, match="not an index"):
        open_retriever(part)
    assert not (tmp_path / "idx").exists()


def test_unknown_backend_lists_valid_ones(tmp_path):
    with pytest.raises(Sr1Error, match=r"valid backends are \['pyserini', 'bm25s', 'dense'\]"):
        build_index(corpus_file(), tmp_path / "x", "elastic", progress=False)


def test_bad_questions_file_names_the_line(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text('{"question": "ok"}\n{"question": 3}\n')
    with pytest.raises(Sr1Error, match="q.jsonl:2: expected an object with a string field 'question'"):
        read_questions(p)
    assert os.path.exists(p)
