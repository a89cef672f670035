"""`sr1 report` mechanics on small notebooks written here: order, a failure recorded while the rest
still run, HTML exports, PNG figures, the summary pages (escaped), the kernel being this
interpreter even when another `python3` kernel spec shadows it, and the CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("papermill")
import nbformat  # noqa: E402

import sr1lib.report.build as build  # noqa: E402
import sr1lib.experiments.execute as execute_mod  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def write_nb(folder: Path, name: str, params: str, *cells: str, title: str = "# Does it work?") -> None:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(title), p, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(folder / f"{name}.ipynb"))


@pytest.fixture()
def notebooks(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_nb(folder, "a_plot", 'x: int = 1  # a number\nartifacts: str = ""  # where to publish',
             "import sys\nprint('kernel', sys.executable, 'x', x)\nprint('[ablation] (1/2) grpo seed 0 ...')",
             "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n%matplotlib inline\n"
             "fig, ax = plt.subplots()\nax.plot([1, 2], [3, 4])\nplt.show()",
             "from sr1lib.experiments.artifacts import publish\n"
             "publish(artifacts, {'x': x}, 'Headline with <b>markup</b>: x is ' + str(x))",
             title="# Can it plot <b>?")
    write_nb(folder, "b_fail", 'x: int = 1  # a number', "raise ValueError('boom <script>alert(1)</script>')")
    write_nb(folder, "c_after", 'x: int = 1  # a number', "print('still ran', x)")
    monkeypatch.setattr(execute_mod, "NOTEBOOK_DIR", folder)
    monkeypatch.setattr(build, "NOTEBOOKS", ("a_plot", "b_fail", "c_after"))
    monkeypatch.setattr(build, "notebook_params", lambda profile, name: {"x": 7})
    return folder


def outputs(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_a_failing_notebook_is_reported_and_the_rest_still_run(notebooks, tmp_path, monkeypatch):
    # A user-level `python3` kernel spec that cannot start must not be picked up.
    bogus = tmp_path / "jupyter" / "kernels" / "python3"
    bogus.mkdir(parents=True)
    (bogus / "kernel.json").write_text(json.dumps({"argv": ["/bin/false", "{connection_file}"],
                                                   "display_name": "broken", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    lines: list[str] = []
    out = tmp_path / "rep"
    summary = build.run_report("smoke", out, echo=lines.append, prepare=False)

    assert [e["notebook"] for e in summary["notebooks"]] == ["a_plot", "b_fail", "c_after"]
    assert summary["failed"] == ["b_fail"]
    fail = summary["notebooks"][1]
    assert fail["error"].startswith("ValueError: boom")
    assert "still ran 7" in outputs(out / "notebooks" / "c_after.ipynb")
    assert f"kernel {sys.executable} x 7" in outputs(out / "notebooks" / "a_plot.ipynb")
    # papermill kept the injected parameters and only those the notebook declares
    a = summary["notebooks"][0]
    assert a["parameters"] == {"x": 7, "artifacts": str((out / "artifacts" / "a_plot").resolve())}
    assert [Path(f).name for f in a["figures"]] == ["a_plot_01.png"]
    assert Path(a["figures"][0]).read_bytes()[:4] == b"\x89PNG"
    assert all((out / "html" / f"{n}.html").exists() for n in ("a_plot", "b_fail", "c_after"))
    index = (out / "index.html").read_text()
    assert "<script>alert" not in index and "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "Can it plot &lt;b&gt;?" in index and "Headline with &lt;b&gt;markup&lt;/b&gt;: x is 7" in index
    assert 'href="notebooks/b_fail.ipynb"' in index and 'src="figures/a_plot_01.png"' in index
    readme = (out / "README.md").read_text()
    assert "| b_fail |" in readme and "**failed**: `ValueError: boom" in readme and "x is 7" in readme
    assert json.loads((out / "summary.json").read_text())["failed"] == ["b_fail"]
    assert lines[-1].startswith("done in") and any("b_fail: FAILED: ValueError: boom" in ln for ln in lines)
    # tagged progress lines printed inside a notebook reach the terminal as they happen, others do not
    assert "    [ablation] (1/2) grpo seed 0 ..." in lines and not any("kernel" in ln for ln in lines)


def test_unknown_notebooks_and_profiles_are_refused_before_running(notebooks, tmp_path):
    from sr1lib.errors import Sr1Error

    with pytest.raises(Sr1Error, match=r"unknown notebooks \['nope'\]; valid notebooks are \['a_plot'"):
        build.run_report("smoke", tmp_path / "r", notebooks=["nope"])
    with pytest.raises(Sr1Error, match="valid profiles are"):
        build.run_report("huge", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_cli_errors_are_one_line_and_demo_is_the_quick_report():
    r = subprocess.run([sys.executable, "-m", "sr1lib", "report", "--profile", "smoke", "--notebooks", "99_nope"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("sr1 report: error: unknown notebooks ['99_nope']")
    r = subprocess.run([sys.executable, "-m", "sr1lib", "demo", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "sr1 report --profile quick" in r.stdout
