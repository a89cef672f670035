"""Executing one notebook with papermill, in this interpreter's own kernel, and exporting it.

The kernel: papermill's default resolves `python3` through Jupyter's kernel-spec search path, where
a user-level spec (say, a system Python without sr1) can shadow the environment's own. The kernel
manager below ignores the search path and starts `sys.executable -m ipykernel_launcher`, so a
notebook always runs in the interpreter (venv) that runs `sr1 report` or the test suite.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

from sr1lib.errors import Sr1Error

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def notebook_path(name: str | Path) -> Path:
    """A notebook by name (`02_train`) from the repository's notebooks/ folder, or a path."""
    p = Path(name)
    if p.suffix == ".ipynb" and p.exists():
        return p
    cand = NOTEBOOK_DIR / f"{p.name.removesuffix('.ipynb')}.ipynb"
    if not cand.exists():
        have = sorted(x.stem for x in NOTEBOOK_DIR.glob("*.ipynb")) if NOTEBOOK_DIR.exists() else []
        raise Sr1Error(f"notebook {name!r} not found in {NOTEBOOK_DIR} (notebooks ship with the source "
                       f"checkout); available: {have}")
    return cand


def kernel_manager_class() -> type:
    """An AsyncKernelManager whose kernel is always this interpreter's ipykernel."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class Sr1KernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:  # type: ignore[override]
            # log_level ERROR: ipykernel warns on every start that loopback TCP is unencrypted (the
            # connection is still signed with the connection file's key)
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                                    "--IPKernelApp.log_level=ERROR"],
                              display_name=f"Python ({sys.executable})", language="python",
                              interrupt_mode="signal", metadata={})

    return Sr1KernelManager


def error_of(exc: BaseException) -> str:
    """One line: the exception raised inside the notebook (papermill's) or by papermill itself."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        return f"{ename}: {evalue}" + (f" (cell [{cell}])" if cell else "")
    return f"{type(exc).__name__}: {exc}"


# Lines a notebook prints that are progress worth echoing on the terminal running the report.
PROGRESS_TAGS = ("[ablation]", "[sr1 train]")


class _ProgressLines:
    """A file-like sink for the notebook's stdout that hands tagged progress lines to a callback."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self.on_line, self.buf = on_line, ""

    def write(self, text: str) -> int:
        self.buf += text
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            if line.startswith(PROGRESS_TAGS):
                self.on_line(line)
        return len(text)

    def flush(self) -> None:
        pass


def execute(notebook: str | Path, out: str | Path, parameters: dict[str, Any], *, cwd: str | Path | None = None,
            timeout_s: int | None = None, on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run `notebook` with `parameters` into `out` (written even when a cell fails).

    Returns {notebook, output, status: ok | failed, error (one line or None), seconds}. The
    notebook's working directory is `cwd` (default: the current one), so relative paths in its
    parameters mean the same as on the caller's command line. `on_progress` receives the
    notebook's tagged progress lines (PROGRESS_TAGS) as they are printed.
    """
    import papermill as pm

    src = notebook_path(notebook)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    status, error = "ok", None
    try:
        pm.execute_notebook(str(src), str(out), parameters=parameters, cwd=str(cwd or Path.cwd()),
                            kernel_name="python3", progress_bar=False, execution_timeout=timeout_s,
                            stdout_file=_ProgressLines(on_progress) if on_progress else None,
                            kernel_manager_class=kernel_manager_class())
    except Exception as e:  # noqa: BLE001 - a failing notebook is a result to report
        status, error = "failed", error_of(e)
    return {"notebook": src.stem, "output": str(out), "status": status, "error": error,
            "seconds": round(time.perf_counter() - t0, 2)}


def export_html(executed: str | Path, out: str | Path) -> Path:
    """The executed notebook as a standalone HTML page (nbconvert's lab template)."""
    import nbformat
    from nbconvert import HTMLExporter

    from sr1lib.fsutil import write_text_atomic

    nb = nbformat.read(str(executed), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    write_text_atomic(out, body)
    return Path(out)


def extract_figures(executed: str | Path, out_dir: str | Path, prefix: str) -> list[Path]:
    """Every PNG output of the executed notebook, written as `PREFIX_NN.png`."""
    import base64

    import nbformat

    from sr1lib.fsutil import write_bytes_atomic

    nb = nbformat.read(str(executed), as_version=4)
    paths = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                path = Path(out_dir) / f"{prefix}_{len(paths) + 1:02d}.png"
                write_bytes_atomic(path, base64.b64decode(data["image/png"]))
                paths.append(path)
    return paths
