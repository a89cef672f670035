"""Retriever backends by name. An unknown name fails with the list of valid ones."""

from __future__ import annotations

from typing import Any

from sr1lib.choices import BUILDABLE_BACKENDS
from sr1lib.errors import Sr1Error
from sr1lib.retrieval.base import Retriever
from sr1lib.retrieval.bm25 import Bm25sRetriever
from sr1lib.retrieval.client import HttpRetriever
from sr1lib.retrieval.dense import DenseRetriever
from sr1lib.retrieval.lucene import LuceneRetriever

BACKENDS: dict[str, type[Retriever]] = {
    "pyserini": LuceneRetriever,
    "bm25s": Bm25sRetriever,
    "dense": DenseRetriever,
    "http": HttpRetriever,
}


def backend_class(name: str, *, buildable: bool = False) -> type[Retriever]:
    valid = BUILDABLE_BACKENDS if buildable else tuple(BACKENDS)
    if name not in valid:
        raise Sr1Error(f"unknown retriever backend {name!r}; valid backends are {list(valid)}")
    return BACKENDS[name]


def make_retriever(backend: str, **kwargs: Any) -> Retriever:
    """A retriever by backend name: `make_retriever("bm25s", index="DIR")`,
    `make_retriever("http", url="http://127.0.0.1:8000")`."""
    import inspect

    cls = backend_class(backend)
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [n for n in params if n != "self"]
        raise Sr1Error(f"backend {backend!r}: unknown option(s) {unknown}; valid options are {valid}")
    return cls(**kwargs)
