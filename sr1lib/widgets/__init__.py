"""Looking inside trajectories: the inspector widget over the static views of `sr1lib.views`.

    inspector.py  TrajectoryInspector: ipywidgets controls over `views.select` (find runs, load and
                  filter their trajectories) and `views.trajectory` (escaped HTML); ipywidgets is
                  imported lazily
"""

from __future__ import annotations

from typing import Any

from sr1lib.runs import find_runs
from sr1lib.views.select import filter_trajectories, load_trajectories, same_question
from sr1lib.views.trajectory import render_comparison_html, render_trajectory_html


def TrajectoryInspector(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - reads as the class it builds
    """Build the inspector (see `sr1lib.widgets.inspector`); imports ipywidgets on first use."""
    from sr1lib.widgets.inspector import TrajectoryInspector as _Inspector

    return _Inspector(*args, **kwargs)


__all__ = ["TrajectoryInspector", "filter_trajectories", "find_runs", "load_trajectories", "render_comparison_html",
           "render_trajectory_html", "same_question"]
