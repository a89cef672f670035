"""The passage store inside an index folder: every backend returns text from here, not from Lucene.

Layout (under the index folder):
- `docs.bin`: every passage's `contents` as UTF-8, exactly as the corpus stores it, back to back,
  so reading one is a slice of a memory-mapped file and a decode, no JSON parsing.
- `docs.offsets.npy`: byte offset of every passage plus the end (int64, N + 1).
- `corpus/docs.jsonl`: the passages as `{"id", "contents"}` lines with `contents` exactly as in the
  source file, in row order. The Anserini indexer reads it; the dense backend keeps it (row i is
  FAISS vector i, the layout Search-R1's own dense server expects); the others delete it.
- `docs.ids.txt`: docids one per line, only needed when they are not the row numbers "0".."N-1"
  (wiki-18's and our HotpotQA corpus's ids are row numbers, so no id table is held in memory).

Why not read passages back from Lucene's stored `raw` field: each fetch is several JNI calls
(~15-40 us per hit measured), which would cost a third of pyserini's batch throughput at top-10.
"""

from __future__ import annotations

import array
import json
import mmap
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from sr1lib.errors import Sr1Error
from sr1lib.types import Hit

DOCS = "corpus/docs.jsonl"
BLOB = "docs.bin"
OFFSETS = "docs.offsets.npy"
IDS = "docs.ids.txt"
# Stores up to this size are decoded into strings at open (~1 s per 200 MB): a hit then costs a list
# lookup instead of a slice and a decode. Larger ones are read from the mmap.
PRELOAD_MAX_BYTES = 256 << 20


def write_docstore(docs: Iterable[tuple[str, str]], folder: str | Path, *, total: int | None = None,
                   progress: bool = True) -> dict:
    """Write (docid, contents) pairs into `folder`; returns {"count", "docids_are_rows"}."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    (folder / DOCS).parent.mkdir(parents=True, exist_ok=True)
    offsets = [0]
    rows_ok = True
    with (folder / DOCS).open("w", encoding="utf-8") as jl, (folder / BLOB).open("wb") as blob, \
            (folder / IDS).open("w", encoding="utf-8") as ids:
        for row, (docid, contents) in enumerate(tqdm(docs, total=total, desc="reading corpus", unit="doc",
                                                     disable=not progress, leave=False)):
            jl.write(json.dumps({"id": docid, "contents": contents}, ensure_ascii=False) + "\n")
            data = contents.encode("utf-8")
            blob.write(data)
            offsets.append(offsets[-1] + len(data))
            ids.write(docid + "\n")
            rows_ok = rows_ok and docid == str(row)
    np.save(folder / OFFSETS, np.asarray(offsets, dtype=np.int64))
    if rows_ok:
        (folder / IDS).unlink()
    return {"count": len(offsets) - 1, "docids_are_rows": rows_ok}


def _hit_factory():
    """`make_hit(docid, score, contents)`: a Hit built without the frozen dataclass's __init__.

    That __init__ sets each field through object.__setattr__ (~1.8 us per Hit); filling __dict__
    directly costs ~0.8 us, a tenth of sr1's overhead over raw pyserini at top-10. The result is an
    ordinary Hit (equal, hashable, repr'd as usual; tests compare it with the slow twin). Falls back
    to the constructor if Hit ever gains __slots__ or a __post_init__.
    """
    if "__slots__" in Hit.__dict__ or hasattr(Hit, "__post_init__"):
        return Hit
    new = object.__new__

    def make_hit(docid: str, score: float, contents: str) -> Hit:
        h = new(Hit)
        d = h.__dict__
        d["docid"], d["score"], d["contents"] = docid, score, contents
        return h

    return make_hit


make_hit = _hit_factory()


class DocStore:
    """Read-only passages by row or docid, from a folder written by `write_docstore`."""

    def __init__(self, folder: str | Path, *, preload_max_bytes: int = PRELOAD_MAX_BYTES):
        self.folder = Path(folder)
        path = self.folder / BLOB
        if not path.exists() or not (self.folder / OFFSETS).exists():
            raise Sr1Error(f"{self.folder}: no passage store ({BLOB}, {OFFSETS}); rebuild the index with "
                           "`sr1 index build`")
        # array.array indexes to Python ints ~5x faster than a numpy array; 8 bytes per passage either way
        self._offsets = array.array("q", np.load(self.folder / OFFSETS).astype(np.int64).tobytes())
        self._file = path.open("rb")
        self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else b""
        self._rows: list[str] | None = None
        if 0 < path.stat().st_size <= preload_max_bytes:
            self._rows = [self._read(r) for r in range(len(self))]
        ids_path = self.folder / IDS
        self._ids: list[str] | None = None
        self._row_of: dict[str, int] | None = None
        if ids_path.exists():
            self._ids = ids_path.read_text(encoding="utf-8").split("\n")[:-1]
            self._row_of = {d: i for i, d in enumerate(self._ids)}
            if len(self._ids) != len(self):
                raise Sr1Error(f"{ids_path}: {len(self._ids)} ids for {len(self)} passages; rebuild the index")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def docid(self, row: int) -> str:
        return self._ids[row] if self._ids is not None else str(row)

    def row_of(self, docid: str) -> int | None:
        if self._row_of is not None:
            return self._row_of.get(docid)
        # ids are row numbers: accept only the canonical spelling ("7", not "07" or " 7")
        if docid.isdigit() and str(int(docid)) == docid and int(docid) < len(self):
            return int(docid)
        return None

    def _read(self, row: int) -> str:
        return self._mm[self._offsets[row]:self._offsets[row + 1]].decode("utf-8")

    def contents(self, row: int) -> str:
        """The passage as the corpus stores it: what is encoded, served and shown to the model."""
        return self._rows[row] if self._rows is not None else self._read(row)

    def hit(self, row: int, score: float) -> Hit:
        return Hit(self.docid(row), float(score), self.contents(row))

    def hits_by_docid(self, docids: Sequence[str], scores: Sequence[float]) -> list[Hit]:
        """Hits for docids the index itself returned (so in canonical form); the hot path of Lucene search."""
        n, new_hit, row_of, rows, read = len(self), make_hit, self._row_of, self._rows, self._read
        out = []
        for docid, score in zip(docids, scores):
            row = row_of.get(docid, -1) if row_of is not None else int(docid)
            if not 0 <= row < n:
                raise Sr1Error(f"{self.folder}: the index returned docid {docid!r} that the passage store lacks; "
                               "rebuild the index")
            out.append(new_hit(docid, float(score), rows[row] if rows is not None else read(row)))
        return out

    def hits(self, rows: Sequence[int], scores: Sequence[float]) -> list[Hit]:
        return [self.hit(int(r), s) for r, s in zip(rows, scores) if r >= 0]

    def doc(self, docid: str) -> Hit | None:
        row = self.row_of(docid)
        return None if row is None else self.hit(row, 0.0)

    def iter_contents(self) -> Iterable[str]:
        for row in range(len(self)):
            yield self.contents(row)

    def close(self) -> None:
        if isinstance(self._mm, mmap.mmap):
            self._mm.close()
        self._file.close()
