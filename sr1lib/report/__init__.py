"""Reports: the notebooks executed with papermill into one folder, with HTML, figures and a summary.

    runner.py   one notebook: papermill in this interpreter's kernel, HTML export, PNG figures
    build.py    run_report(profile, out): every notebook in order; a failure is recorded, the rest run
    summary.py  index.html and README.md (status, time, links, headline tables)

papermill, nbformat and nbconvert are imported inside the functions that use them.
"""

from sr1lib.report.build import run_report
from sr1lib.experiments.execute import execute, notebook_path

__all__ = ["execute", "notebook_path", "run_report"]
