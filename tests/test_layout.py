"""The README's file tree is true of a fresh clone: every path it names is tracked by git (so
`reports/`, whose generated content is ignored, holds a tracked README saying what goes there)."""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import ROOT


def tree_paths() -> list[str]:
    """Paths named in the README's `## File tree` block: top-level entries, and entries indented by
    two spaces under the folder above them (continuation lines are indented further)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## File tree", 1)[1].split("```", 2)[1]
    out, parent = [], ""
    for line in block.splitlines():
        m = re.match(r"^( {0,2})(\S+)(\s|$)", line)
        if not m:
            continue
        indent, name = len(m.group(1)), m.group(2)
        if indent == 0:
            parent = name if name.endswith("/") else ""
            out.append(name)
        elif parent:
            out.append(parent + name)
    return out


def tracked(path: str) -> list[str]:
    r = subprocess.run(["git", "ls-files", "--", path.rstrip("/")], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.split()


@pytest.fixture(scope="module")
def git_checkout():
    r = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0 or r.stdout.strip() != "true":
        pytest.skip(f"{ROOT} is not a git checkout; the file tree is checked against tracked files")


def test_every_path_in_the_readme_tree_is_in_a_fresh_clone(git_checkout):
    paths = tree_paths()
    assert {"sr1lib/", "tests/", "reports/", "sr1lib/types.py", "sr1lib/retrieval/"} <= set(paths)
    missing = [p for p in paths if not tracked(p)]
    assert missing == [], f"named in README.md's file tree but not tracked by git: {missing}"


def test_reports_holds_only_its_readme_in_git(git_checkout):
    assert tracked("reports/") == ["reports/README.md"]
    ignored = subprocess.run(["git", "check-ignore", "-q", "reports/2026-01-01-quick/index.html"], cwd=ROOT)
    assert ignored.returncode == 0  # generated report folders stay out of git
