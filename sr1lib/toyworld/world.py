"""Build a toy world: knowledge base, wiki-18 corpus, Search-R1 parquet question sets and a manifest.

    DIR/corpus.jsonl        {"id", "contents": "\\"Title\\"\\ntext"} per passage (wiki-18 format)
    DIR/train.parquet       Search-R1 rows, data_source "toy"; extra_info adds hop ("single"/"two"),
    DIR/validation.parquet  relations, chain (entity names, subject first, answer last) and
    DIR/test.parquet        supporting_docids (flat and per hop)
    DIR/kb.json             entities and facts, for analysis and tests
    DIR/world.json          seed, config, config hash, counts, files with sha256 (written last)

Questions are split by region: the world holds two groups of entities that share the corpus but no
relation (`WorldConfig.train_kb` and `WorldConfig.kb`); train questions are about the first,
validation and test questions about the second (and fact-disjoint from each other), so RL on the
train split is never rewarded for a fact that a test question needs.

A seed gives byte-identical files: one `random.Random(seed)` drives everything in a fixed order and
nothing records a time or a path. Which worlds a model may see (the evaluation-vs-pretraining
scheme) is in `sr1lib.toyworld.cache`; here `forbidden` name words are simply never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sr1lib.errors import Sr1Error
from sr1lib.fsutil import sha256_file, write_bytes_atomic, write_json_atomic
from sr1lib.toyworld.corpus import Passage, build_corpus
from sr1lib.toyworld.kb import KB, KBSize, build_kb
from sr1lib.toyworld.names import NameMaker
from sr1lib.toyworld.questions import HOP_TYPES, Question, candidate_questions, split_questions
from sr1lib.types import QARecord

# Bump when generation changes what a seed produces: it is part of the config hash, so caches of
# worlds (and models pretrained on them) built by older code are never reused.
GENERATOR_VERSION = "toyworld-2"
DATA_SOURCE = "toy"
SPLITS = ("train", "validation", "test")
MANIFEST = "world.json"
CORPUS = "corpus.jsonl"


@dataclass(frozen=True)
class WorldConfig:
    """What a world contains; every field is part of the config hash."""

    kb: KBSize = field(default_factory=KBSize)  # the evaluation region (validation and test questions)
    train_kb: KBSize = field(default_factory=KBSize)  # the training region (train questions)
    extra_fraction: float = 0.3  # share of entities with a second, distractor passage
    events: int = 12  # event passages that mention entities and state no asked fact
    questions: dict[str, int] = field(default_factory=lambda: {"train": 200, "validation": 40, "test": 80})
    two_hop_fraction: float = 0.5

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "WorldConfig":
        return cls(**{**d, "kb": KBSize(**d["kb"]), "train_kb": KBSize(**d["train_kb"])})

    def hash(self) -> str:
        blob = json.dumps({"generator": GENERATOR_VERSION, **self.to_json()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class World:
    """A world in memory: what `build_world` writes, plus the name words it used."""

    seed: int
    config: WorldConfig
    kb: KB
    passages: list[Passage]
    splits: dict[str, list[Question]]
    candidates: list[Question]
    name_words: set[str]


def generate_world(seed: int, config: WorldConfig, *, forbidden: Iterable[str] = ()) -> World:
    """The world of `seed` in memory; no invented word is in `forbidden`."""
    for split in config.questions:
        if split not in SPLITS:
            raise Sr1Error(f"WorldConfig.questions: unknown split {split!r}; valid splits are {list(SPLITS)}")
    rng = random.Random(seed)
    names = NameMaker(rng, forbidden)
    try:
        kb = build_kb(rng, config.train_kb, names, region="train")
        build_kb(rng, config.kb, names, kb, region="eval")
        event_words = [names.word() for _ in range(config.events)]
    except (ValueError, RuntimeError) as e:
        raise Sr1Error(f"world seed {seed}: {e}") from None
    passages, support = build_corpus(kb, rng, extra_fraction=config.extra_fraction, events=config.events,
                                     event_words=event_words)
    cands = candidate_questions(kb, support, rng)
    splits: dict[str, list[Question]] = {}
    for region, names_ in (("eval", ("test", "validation")), ("train", ("train",))):
        pool = [q for q in cands if q.chain[0].attr("region") == region]
        order = {s: config.questions[s] for s in names_ if s in config.questions}
        splits.update(split_questions(pool, order, config.two_hop_fraction, rng))
        for split, n in order.items():
            if len(splits[split]) < n:
                raise Sr1Error(f"world seed {seed}: only {len(splits[split])} fact-disjoint {split} questions for "
                               f"the {n} asked; make the {region} region bigger (WorldConfig."
                               f"{'train_kb' if region == 'train' else 'kb'}) or ask for fewer")
    return World(seed, config, kb, passages, {s: splits[s] for s in SPLITS if s in splits}, cands, set(names.used))


def question_records(questions: list[Question], split: str) -> list[QARecord]:
    return [QARecord(f"{DATA_SOURCE}/{split}-{i:05d}", q.text, (q.answer.name,), DATA_SOURCE, split,
                     {"extra_info": q.extra_info()}) for i, q in enumerate(questions)]


def write_questions_parquet(records: list[QARecord], path: Path) -> None:
    """Search-R1 rows (sr1lib.data.searchr1_row) with our extra_info fields added.

    sr1lib.data's writer keeps only Search-R1's own extra_info fields, so the rows are built with
    its `searchr1_row` and written here.
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sr1lib.data import searchr1_row

    rows = []
    for i, r in enumerate(records):
        row = searchr1_row(r, i)
        row["extra_info"] = {**row["extra_info"], **r.extra["extra_info"]}
        rows.append(row)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    write_bytes_atomic(path, buf.getvalue())


def kb_json(kb: KB) -> dict[str, Any]:
    return {
        "entities": [{"id": e.id, "type": e.type, "name": e.name, **dict(e.attrs)} for e in kb.entities.values()],
        "facts": [{"subject": s, "relation": r, "object": o} for s, r, o in kb.facts()],
    }


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_world(world: World, out: Path) -> dict[str, Any]:
    """Write `world` into the (existing, empty) folder `out`; the manifest last."""
    corpus = "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in world.passages)
    write_bytes_atomic(out / CORPUS, corpus.encode())
    for split, qs in world.splits.items():
        write_questions_parquet(question_records(qs, split), out / f"{split}.parquet")
    write_bytes_atomic(out / "kb.json", _dumps(kb_json(world.kb)))
    files = [CORPUS, *(f"{s}.parquet" for s in world.splits), "kb.json"]
    manifest = {
        "format": "sr1-toyworld",
        "generator": GENERATOR_VERSION,
        "seed": world.seed,
        "config": world.config.to_json(),
        "config_hash": world.config.hash(),
        "counts": counts(world),
        "files": {f: {"sha256": sha256_file(out / f), "bytes": (out / f).stat().st_size} for f in files},
    }
    write_bytes_atomic(out / MANIFEST, _dumps(manifest))
    return manifest


def counts(world: World) -> dict[str, Any]:
    by_type: dict[str, int] = {}
    for e in world.kb.entities.values():
        by_type[e.type] = by_type.get(e.type, 0) + 1
    by_kind: dict[str, int] = {}
    for p in world.passages:
        by_kind[p.kind] = by_kind.get(p.kind, 0) + 1
    return {
        "entities": by_type,
        "facts": sum(1 for _ in world.kb.facts()),
        "passages": len(world.passages),
        "passages_by_kind": by_kind,
        "candidate_questions": len(world.candidates),
        "questions": {s: {h: sum(q.hop == h for q in qs) for h in HOP_TYPES} for s, qs in world.splits.items()},
    }


def build_world(out: str | Path, seed: int = 0, *, config: WorldConfig | None = None,
                forbidden: Iterable[str] = (), overwrite: bool = False) -> dict[str, Any]:
    """Generate the world of `seed` into the folder `out` and return its manifest.

    The folder is built under a temporary sibling name and renamed into place, so a killed build
    never leaves a half world at `out`. An existing world is replaced only with `overwrite=True`.
    """
    config = config or WorldConfig()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise Sr1Error(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    world = generate_world(seed, config, forbidden=forbidden)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        manifest = write_world(world, tmp)
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder `tmp` to `out`, replacing whatever was there."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise Sr1Error(f"{folder}: not a toy world (no {MANIFEST}); build one with `sr1 toyworld build`")
    return json.loads(path.read_text())


def load_passages(folder: str | Path) -> list[dict[str, str]]:
    from sr1lib.fsutil import read_jsonl

    read_manifest(folder)
    return list(read_jsonl(Path(folder) / CORPUS))
