"""Shared, process-wide retrieval fixtures: a corpus written here and real indexes built from it once
per test process (the JVM starts once; a Lucene build costs a few seconds)."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

# Passages with distinctive words, so tests can say which passage a query must find.
FACTS = [
    ("Ada Lovelace", "Ada Lovelace wrote the first published algorithm for Charles Babbage's Analytical Engine in 1843."),
    ("Analytical Engine", "The Analytical Engine was a proposed mechanical general-purpose computer designed by Charles Babbage."),
    ("Mount Kilimanjaro", "Mount Kilimanjaro is a dormant volcano in Tanzania and the highest mountain in Africa."),
    ("Danube", "The Danube flows through Vienna, Bratislava, Budapest and Belgrade before reaching the Black Sea."),
    ("Marie Curie", "Marie Curie won Nobel Prizes in physics and chemistry for her research on radioactivity."),
    ("Photosynthesis", "Photosynthesis converts light energy into chemical energy stored in glucose inside chloroplasts."),
    ("Great Barrier Reef", "The Great Barrier Reef off Queensland, Australia, is the largest coral reef system on Earth."),
    ("Johann Sebastian Bach", "Johann Sebastian Bach composed the Brandenburg Concertos and the Mass in B minor."),
    ("Saturn", "Saturn is the sixth planet from the Sun and is famous for its prominent ring system of ice."),
    ("Tokyo", "Tokyo is the capital of Japan; the Tokyo metropolitan area is the most populous in the world."),
    ("Penicillin", "Alexander Fleming discovered penicillin in 1928 when mould killed bacteria in a petri dish."),
    ("Rosetta Stone", "The Rosetta Stone carries one decree in hieroglyphic, Demotic and ancient Greek scripts."),
    ("Magna Carta", "King John of England sealed the Magna Carta at Runnymede in June 1215."),
    ("Giraffe", "The giraffe is the tallest living land animal; its long neck reaches leaves of acacia trees."),
    ("Python (programming language)", "Python is a programming language created by Guido van Rossum and first released in 1991."),
    ("Eiffel Tower", "The Eiffel Tower in Paris was designed by Gustave Eiffel's company for the 1889 World's Fair."),
    ("Amazon River", "The Amazon River in South America carries more water than any other river in the world."),
    ("Leonardo da Vinci", "Leonardo da Vinci painted the Mona Lisa and The Last Supper during the Italian Renaissance."),
    ("Honeybee", "Honeybees communicate the direction of flowers to the hive with a waggle dance."),
    ("Titanic", "RMS Titanic sank in the North Atlantic in April 1912 after striking an iceberg."),
    ("U.S. Constitution", "The U.S. Constitution was signed in Philadelphia in 1787 by delegates of the states."),
    ("Chess", "In chess, a pawn that reaches the far rank is promoted, usually to a queen."),
    ("Sahara", "The Sahara is the largest hot desert, covering much of North Africa with sand dunes and plateaus."),
    ("Insulin", "Frederick Banting and Charles Best isolated insulin in Toronto in 1921 to treat diabetes."),
]
FILLER_WORDS = ("river mountain city music science history painting planet animal desert ocean engine "
                "composer volcano kingdom empire treaty island forest bridge").split()


def corpus_rows(n_filler: int = 24) -> list[dict[str, str]]:
    rows = [{"id": str(i), "contents": f'"{t}"\n{x}'} for i, (t, x) in enumerate(FACTS)]
    for j in range(n_filler):  # background passages so BM25 statistics are not trivial
        words = [FILLER_WORDS[(j * 7 + i * 3) % len(FILLER_WORDS)] for i in range(12)]
        rows.append({"id": str(len(rows)), "contents": f'"Filler {j}"\nA note about {" ".join(words)}.'})
    return rows


_ROOT: list[Path] = []


def scratch() -> Path:
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="sr1-test-retrieval-")))
        atexit.register(shutil.rmtree, _ROOT[0], True)
    return _ROOT[0]


@lru_cache(maxsize=None)
def corpus_file() -> Path:
    path = scratch() / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus_rows()))
    return path


@lru_cache(maxsize=None)
def built_index(backend: str, **options) -> Path:
    """An index of `corpus_file()` built by sr1 once per process."""
    from sr1lib.retrieval import build_index

    name = backend + "".join(f"-{k}={v}" for k, v in sorted(options.items()))
    out = scratch() / name
    build_index(corpus_file(), out, backend, progress=False, **options)
    return out


@lru_cache(maxsize=None)
def pyserini_cli_index() -> Path:
    """A Lucene index built the way pyserini's documentation builds one (its CLI runs this same
    Anserini class), with no sr1 manifest or passage store."""
    import subprocess

    from sr1lib.retrieval.java import anserini_jar, java_binary

    src = scratch() / "pyserini-input"
    src.mkdir(exist_ok=True)
    shutil.copy(corpus_file(), src / "docs.jsonl")
    out = scratch() / "pyserini-cli-index"
    subprocess.run([str(java_binary()), "-cp", str(anserini_jar()), "io.anserini.index.IndexCollection",
                    "-collection", "JsonCollection", "-generator", "DefaultLuceneDocumentGenerator",
                    "-threads", "1", "-input", str(src), "-index", str(out),
                    "-storePositions", "-storeDocvectors", "-storeRaw"], check=True, capture_output=True)
    return out


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def sr1_serve(index: Path, *args: str, timeout_s: float = 60.0):
    """`sr1 serve --index INDEX ARGS` in a child process on a free loopback port; yields
    (base URL, process) once /health answers, and stops it afterwards."""
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sr1lib", "serve", "--index", str(index), "--port", str(port),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout_s
        while True:
            try:
                httpx.get(url + "/health", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
                time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)
