"""Evaluation datasets by name or by file.

Names:
- the paper's seven (`nq`, `triviaqa`, `popqa`, `hotpotqa`, `2wikimultihopqa`, `musique`,
  `bamboogle`): the files `data/download.py` writes (see `sr1lib.data.names.resolve`, which says how
  to download one that is missing); their corpus is wiki-18, behind whatever retriever is given;
- `hotpotqa-100`: the first 100 HotpotQA dev (distractor) questions from the shared data folder, with
  their own corpus of ~1,000 passages (every context paragraph, de-duplicated by title);
- `toy` (or `toy:PROFILE[:SEED]`): the test split of the toy world (`sr1lib.toyworld.ensure_world`,
  profile quick and seed 0 by default), with the toy corpus.

Anything with a file extension is read as a data file (`sr1lib.data.load_records`); its name in the
report is the records' `data_source` (so `nq_test_17.jsonl` reports as `nq`; the provenance names the
file and its size). A dataset with a corpus of its own carries a function that builds the corpus
file, called only when `evaluate` must index it because no retriever was given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sr1lib.errors import Sr1Error
from sr1lib.types import QARecord

HOTPOTQA_100 = "hotpotqa-100"
HOTPOTQA_100_FILE = "hotpotqa_dev_distractor_100.json"
TOY = "toy"
SPECIAL = (HOTPOTQA_100, TOY)


@dataclass(frozen=True)
class EvalDataset:
    name: str  # the key in the report (`results[name]`)
    records: list[QARecord]
    source: str  # the file the questions came from, or a description
    # Builds (once, cached) and returns the corpus that belongs to this dataset; None: there is none
    # and a retriever must be given. Called only when no retriever is given.
    corpus: Callable[[], Path] | None = None


def cache_root() -> Path:
    """`$SR1_CACHE`, else `.sr1-cache` in the working directory (ignored by git)."""
    return Path(os.environ.get("SR1_CACHE") or ".sr1-cache")


def valid_names() -> list[str]:
    from sr1lib.data.names import DATASETS

    return [*DATASETS, *SPECIAL]


def shared_data_dir() -> Path:
    """`$SR1_SHARED_DATA`, else `shared/data` beside the checkout (as the test suite looks for it)."""
    env = os.environ.get("SR1_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _hotpotqa_100(limit: int | None) -> EvalDataset:
    from sr1lib.data import load_records

    path = shared_data_dir() / HOTPOTQA_100_FILE
    if not path.exists():
        raise Sr1Error(f"{HOTPOTQA_100}: {path} not found; set SR1_SHARED_DATA to the folder holding "
                       f"{HOTPOTQA_100_FILE} (see the README's 'Shared real data')")
    records = load_records(path, data_source=HOTPOTQA_100, split="dev", limit=limit)
    return EvalDataset(HOTPOTQA_100, records, str(path), lambda: hotpotqa_100_corpus(path))


def hotpotqa_100_corpus(questions: Path, cache: Path | None = None) -> Path:
    """The passage corpus of the HotpotQA-100 questions, built once into the cache folder."""
    from sr1lib.fsutil import sha256_file
    from sr1lib.retrieval.corpus import write_hotpotqa_corpus

    # Keyed by the questions file's hash, so a changed file never reuses a stale corpus.
    out = ((cache or cache_root()) / "corpora" / f"hotpotqa-100-{sha256_file(questions)[:12]}.jsonl").resolve()
    if not out.exists():
        write_hotpotqa_corpus(questions, out)  # atomic: a killed build leaves no half corpus
    return out


def _toy(spec: str, limit: int | None) -> EvalDataset:
    """`toy`, `toy:PROFILE` or `toy:PROFILE:SEED` (default profile quick, seed 0): the test split of
    the cached toy world (built on first use, in seconds) and its own corpus."""
    from sr1lib.data import load_records
    from sr1lib.toyworld.spec import toy_world

    folder = toy_world(spec)
    records = load_records(folder / "test.parquet", data_source=TOY, split="test", limit=limit)
    return EvalDataset(spec, records, str((folder / "test.parquet").resolve()), lambda: folder / "corpus.jsonl")


def resolve_dataset(spec: str, *, limit: int | None = None, data_root: str | Path = "data/downloads") -> EvalDataset:
    """The dataset named or pointed to by `spec` (see the module docstring); at most `limit` questions."""
    from sr1lib.data import load_records
    from sr1lib.data.names import DATASETS, resolve

    if limit is not None and limit < 1:
        raise Sr1Error(f"limit must be >= 1, got {limit}")
    if spec == HOTPOTQA_100:
        return _hotpotqa_100(limit)
    if spec == TOY or spec.startswith(TOY + ":"):
        return _toy(spec, limit)
    path = Path(spec)
    if path.suffix:
        records = load_records(path, limit=limit)
        sources = {r.data_source for r in records}
        name = sources.pop() if len(sources) == 1 else path.name.split(".")[0]
        return EvalDataset(name, records, str(path))
    if spec not in DATASETS:
        raise Sr1Error(f"unknown dataset {spec!r}; valid names are {valid_names()}, "
                       "or give a data file (.parquet, .jsonl, .json)")
    path = resolve(spec, root=data_root)
    return EvalDataset(spec, load_records(path, data_source=spec, limit=limit), str(path))
