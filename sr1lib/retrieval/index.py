"""Building index folders and opening any retriever from a path or URL.

`build_index` reads the corpus once into the passage store, lets the backend build its files
beside it, and writes the manifest last, all inside a temporary sibling folder that is renamed
into place at the end: a killed build leaves a `.NAME.building-*` folder that nothing opens,
never a half index at NAME.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sr1lib.choices import BUILDABLE_BACKENDS
from sr1lib.errors import Sr1Error
from sr1lib.fsutil import sha256_file, write_json_atomic
from sr1lib.retrieval.base import Retriever, sr1_version
from sr1lib.retrieval.corpus import count_lines, iter_contents
from sr1lib.retrieval.docstore import DOCS, write_docstore
from sr1lib.retrieval.manifest import FORMAT, MANIFEST, is_lucene_index, read_manifest
from sr1lib.retrieval.registry import backend_class


def build_index(corpus: str | Path, out: str | Path, backend: str, *, encoder: str | None = None,
                threads: int | None = None, progress: bool = True, overwrite: bool = False,
                **options: Any) -> dict[str, Any]:
    """Index the JSONL `corpus` into the folder `out` with `backend`; returns the manifest.

    `options` go to the backend's builder (e.g. `index_type="hnsw"` for dense, `analyzer=` for
    bm25s). An existing index at `out` is replaced only with `overwrite=True`.
    """
    cls = backend_class(backend, buildable=True)
    corpus, out = Path(corpus), Path(out)
    if not corpus.is_file():
        raise Sr1Error(f"corpus file not found: {corpus}")
    if out.exists() and not overwrite:
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            raise Sr1Error(f"{out} already exists; choose another --out or pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    try:
        tmp.mkdir()
        store = write_docstore(iter_contents(corpus), tmp, total=count_lines(corpus) if progress else None,
                               progress=progress)
        params = cls.build_files(tmp, encoder=encoder, threads=threads, progress=progress, **options)
        if not getattr(cls, "keeps_corpus_jsonl", False):  # Lucene keeps the raw lines; bm25s needs none
            shutil.rmtree(tmp / Path(DOCS).parent)
        manifest = {
            "format": FORMAT,
            "backend": backend,
            "corpus": {"path": str(corpus.resolve()), "sha256": sha256_file(corpus)},
            "doc_count": store["count"],
            "docids_are_rows": store["docids_are_rows"],
            "encoder": params.pop("encoder", None),
            "params": params,
            "build_seconds": round(time.perf_counter() - t0, 3),
            "sr1lib_version": sr1_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_id": uuid.uuid4().hex,  # tells two builds apart (caches key on it)
        }
        write_json_atomic(tmp / MANIFEST, manifest)  # last: a folder without it never opens
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def open_retriever(path_or_url: str | Path, *, cache: bool = True, cache_size: int = 100_000,
                   cache_path: str | Path | None = None, **kw: Any) -> Retriever:
    """Open an sr1 index folder (by its manifest), a Lucene index built by pyserini's own CLI, or a
    `http(s)://` retrieval server. With `cache`, repeated (query, k) pairs are answered from memory
    (and from `cache_path`, an SQLite file, when given)."""
    target = str(path_or_url)
    if target.startswith(("http://", "https://")):
        retriever: Retriever = backend_class("http")(target, **kw)
    else:
        folder = Path(target)
        if not folder.is_dir():
            raise Sr1Error(f"index not found: {folder} (expected an index folder from `sr1 index build` "
                           "or an http(s):// server URL)")
        manifest = read_manifest(folder)
        if manifest is not None:
            backend = manifest["backend"]
            if backend not in BUILDABLE_BACKENDS:
                raise Sr1Error(f"{folder}/{MANIFEST}: unknown backend {backend!r}; valid backends are "
                               f"{list(BUILDABLE_BACKENDS)}")
            retriever = backend_class(backend)(folder, **kw)
        elif is_lucene_index(folder):
            retriever = backend_class("pyserini")(folder, **kw)
        else:
            raise Sr1Error(f"{folder} is not an index: it has no {MANIFEST} and no Lucene segments_N file; "
                           "build one with `sr1 index build --corpus FILE.jsonl --out DIR --backend bm25s`")
    if cache:
        from sr1lib.retrieval.cache import CachedRetriever

        retriever = CachedRetriever(retriever, max_entries=cache_size, path=cache_path)
    return retriever


def retriever_from_config(cfg: Any) -> Retriever:
    """A retriever from a `RetrievalConfig` (backend, index or URL, cache, timeout, threads)."""
    if not cfg.index:
        raise Sr1Error("retrieval.index is empty: set it to an index folder or a server URL")
    if cfg.backend == "http":
        return open_retriever(cfg.index, cache=cfg.cache, timeout_s=cfg.timeout_s)
    r = open_retriever(cfg.index, cache=cfg.cache, threads=cfg.threads)
    got = r.describe().get("backend")
    if got != cfg.backend:
        r.close()
        raise Sr1Error(f"retrieval.backend is {cfg.backend!r} but {cfg.index} is a {got!r} index")
    return r
