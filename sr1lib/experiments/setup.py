"""What a notebook runs against: a world (data + corpus), a policy model and an index.

By default everything comes from the toy world of (profile, seed), built and cached on first use
(`sr1lib.toyworld.cache`: the world, its base model) plus a bm25s index of its corpus cached here.
Any of the three can be pointed elsewhere (a data file, a model folder, an index folder or server
URL), which is how the same notebooks run on real data, real models and a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr1lib.errors import Sr1Error


@dataclass(frozen=True)
class Setup:
    """Resolved inputs of a notebook job. `world` is None when the data is not the toy world's."""

    profile: str
    seed: int
    world: Path | None
    corpus: Path | None
    train: str  # questions for training (a data file)
    validation: str
    test: str
    model: str  # policy folder
    index: str  # index folder or http(s) URL

    @property
    def is_toy(self) -> bool:
        return self.world is not None

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def cache_dir() -> Path:
    """`$SR1_CACHE` or `.sr1-cache` (the same root the toy world uses)."""
    return Path(os.environ.get("SR1_CACHE") or ".sr1-cache")


def index_for(corpus: str | Path, backend: str = "bm25s", *, encoder: str | None = None,
              progress: bool = False) -> Path:
    """An index of `corpus` built once into the cache, keyed by the corpus's content hash, the
    backend and the encoder (so two worlds' `corpus.jsonl` never share an index)."""
    from sr1lib.fsutil import sha256_file
    from sr1lib.retrieval import build_index
    from sr1lib.retrieval.manifest import is_current

    corpus = Path(corpus)
    if not corpus.is_file():
        raise Sr1Error(f"corpus not found: {corpus}")
    tag = backend if not encoder else f"{backend}-{Path(encoder).name}"
    out = (cache_dir() / "indexes" / f"{corpus.stem}-{sha256_file(corpus)[:12]}-{tag}").resolve()
    if not is_current(out):  # missing, or built by an sr1 that stored passages differently
        kw = {"encoder": encoder} if encoder else {}
        build_index(corpus, out, backend, progress=progress, overwrite=True, **kw)
    return out


def toy_world(profile: str, seed: int) -> Path:
    try:
        from sr1lib.toyworld.cache import ensure_world
    except ImportError:
        raise Sr1Error("the toy world (sr1lib.toyworld) is not part of this install; give data=, model= and "
                       "index= explicitly") from None
    return Path(ensure_world(profile, seed)).resolve()


def toy_model(profile: str, seed: int, progress: bool = True) -> Path:
    from sr1lib.toyworld.cache import ensure_base_model

    return Path(ensure_base_model(profile, seed, progress=progress)).resolve()


def resolve_setup(profile: str = "quick", seed: int = 0, *, model: str = "", data: str = "", val_data: str = "",
                  test_data: str = "", index: str = "", corpus: str = "", progress: bool = True) -> Setup:
    """Fill every empty field from the toy world of (profile, seed).

    data / val_data / test_data: question files (empty: the toy world's train / validation / test
    splits; a non-toy `data` without `val_data` validates on `data`); model: a policy folder
    (empty: the toy base model, pretrained on first use); index: an index folder or URL (empty: a
    bm25s index of `corpus`, itself defaulting to the toy corpus).
    """
    from sr1lib.experiments.profiles import check_profile

    check_profile(profile)
    # the toy world fills whatever was left empty
    world = toy_world(profile, seed) if not (data and model and (index or corpus)) else None
    if data:
        for p in (data, val_data, test_data):
            if p and not Path(p).exists():
                raise Sr1Error(f"data file not found: {p}")
        train, val, test = data, val_data or data, test_data or val_data or data
    else:
        assert world is not None
        train, val, test = (str(world / f"{s}.parquet") for s in ("train", "validation", "test"))
    corpus_path = Path(corpus) if corpus else (world / "corpus.jsonl" if world is not None else None)
    if not index:
        if corpus_path is None:
            raise Sr1Error("no index: give index= (an index folder or server URL) or corpus= (a JSONL corpus to index)")
        index = str(index_for(corpus_path, "bm25s", progress=progress))
    elif not index.startswith(("http://", "https://")) and not Path(index).is_dir():
        raise Sr1Error(f"index not found: {index} (an index folder from `sr1 index build` or an http(s):// URL)")
    if not model:
        model = str(toy_model(profile, seed, progress))
    elif not Path(model).is_dir():
        raise Sr1Error(f"model folder not found: {model}")
    return Setup(profile, seed, None if data else world, corpus_path, train, val, test, model, index)


def load_questions(path: str, limit: int | None = None, split: str = "") -> list[Any]:
    from sr1lib.data import load_records

    records = load_records(path, split=split, limit=limit or None)
    if not records:
        raise Sr1Error(f"{path}: no questions")
    return records
