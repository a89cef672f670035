"""Install packages into the running interpreter's venv: with uv when it can be had, else with pip.

    .venv/bin/python tools/install_venv.py "torch==2.13.*" -e ".[test]"

Why uv: on the 2-core reference machine it installs the CPU stack in ~45 s against pip's ~80 s
(cold caches, the same versions), a third of the set-up that `make demo`'s 15-minute target counts.

uv ignores pip's configuration, and on machines like ours that configuration matters: a find-links
folder holds the CPU build of torch, extra indexes and a constraints file come from
/etc/pip.conf or PIP_* variables. So pip's effective settings (`pip config list`) are passed to uv
as flags, and uv picks the best version across all indexes as pip does (`unsafe-best-match`), so
both tools install the same versions. Any failure on the uv path (no uv wheel, no network, a
resolution error) falls back to pip with the same arguments. Standard library only: this runs
before anything else is installed.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

# pip setting -> uv flag (repeated per value; pip separates several values by spaces)
PIP_TO_UV = {"find-links": "--find-links", "index-url": "--index-url", "extra-index-url": "--extra-index-url",
             "constraint": "--constraint"}


def pip_settings(listing: str) -> dict[str, list[str]]:
    """Values of the settings uv needs, from `pip config list` output (`scope.key='value'` lines);
    environment variables (`:env:.key`) win over files, as they do for pip."""
    found: dict[str, tuple[int, list[str]]] = {}
    for line in listing.splitlines():
        name, sep, raw = line.partition("=")
        if not sep:
            continue
        scope, _, key = name.rpartition(".")
        if key not in PIP_TO_UV:
            continue
        rank = 1 if scope == ":env:" else 0
        if key not in found or rank >= found[key][0]:
            found[key] = (rank, shlex.split(raw.strip().strip("'\"")))
    return {key: values for key, (_, values) in found.items()}


def uv_flags(settings: dict[str, list[str]]) -> list[str]:
    flags = ["--index-strategy", "unsafe-best-match"]
    for key, values in settings.items():
        for value in values:
            flags += [PIP_TO_UV[key], value]
    return flags


def run(cmd: list[str]) -> bool:
    return subprocess.call(cmd) == 0


def main(args: list[str]) -> int:
    py = sys.executable
    pip = [py, "-m", "pip"]
    if run(pip + ["install", "-qq", "uv"]):
        listing = subprocess.run(pip + ["config", "list"], capture_output=True, text=True).stdout
        # --compile-bytecode: with PYTHONDONTWRITEBYTECODE set, a uv venv would otherwise import ~2x slower
        cmd = [py, "-m", "uv", "pip", "install", "-q", "--python", py, "--compile-bytecode",
               *uv_flags(pip_settings(listing)), *args]
        if run(cmd):
            return 0
        print("install_venv: uv failed; installing with pip instead", file=sys.stderr, flush=True)
    run(pip + ["install", "-qq", "--upgrade", "pip"])
    return 0 if run(pip + ["install", "-qq", *args]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
