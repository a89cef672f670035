"""The index manifest `DIR/sr1-index.json`: what an index folder holds and where it came from.

Fields: `format`, `backend`, `corpus` (`path`, `sha256`), `doc_count`, `encoder`, `params` (the
backend's own settings, e.g. BM25 k1/b or the FAISS index type), `build_seconds`, `sr1lib_version`,
`created` (UTC, ISO 8601), `build_id` (random, unique per build). Retrieval numbers are only comparable when corpus, backend and
parameters match, which is why every benchmark and run records this object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sr1lib.errors import Sr1Error

MANIFEST = "sr1-index.json"
# The layout of the folder's files. Format 2 stores each passage's `contents` as the corpus holds it
# (format 1 kept a title without its quotes, so it cannot give Search-R1's bytes back).
FORMAT = "sr1-index/2"


def read_manifest(folder: str | Path, *, check_format: bool = True) -> dict[str, Any] | None:
    """The manifest of an sr1 index folder, or None when the folder has none.

    An index of another format is an error that says how to rebuild it (`check_format=False`
    reads it anyway, e.g. to decide to rebuild).
    """
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise Sr1Error(f"{path}: not valid JSON ({e.msg}); rebuild the index with `sr1 index build`") from None
    if not isinstance(data, dict) or "backend" not in data:
        raise Sr1Error(f"{path}: not an sr1 index manifest (no 'backend' field)")
    if check_format and data.get("format") != FORMAT:
        raise Sr1Error(f"{folder}: index format {data.get('format')!r}; this sr1 reads {FORMAT!r}. Rebuild it with "
                       f"`sr1 index build --corpus {(data.get('corpus') or {}).get('path', 'FILE.jsonl')} "
                       f"--out {folder} --backend {data['backend']} --overwrite`")
    return data


def is_current(folder: str | Path) -> bool:
    """True when `folder` holds an sr1 index this code reads (caches rebuild the others)."""
    m = read_manifest(folder, check_format=False)
    return m is not None and m.get("format") == FORMAT


def require_manifest(folder: str | Path, backend: str) -> dict[str, Any]:
    m = read_manifest(folder)
    if m is None:
        raise Sr1Error(f"{folder}: no {MANIFEST}; build the index with "
                       f"`sr1 index build --corpus FILE.jsonl --out {folder} --backend {backend}`")
    if m["backend"] != backend:
        raise Sr1Error(f"{folder}: a {m['backend']!r} index, not a {backend!r} one; open it with "
                       f"open_retriever() or backend {m['backend']!r}")
    return m


def is_lucene_index(folder: str | Path) -> bool:
    """A plain Lucene index folder (e.g. built by pyserini's own CLI): it has a segments_N file."""
    return any(Path(folder).glob("segments_*"))
