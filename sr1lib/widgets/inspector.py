"""The trajectory inspector: ipywidgets controls over `select` (what to show) and `render` (how).

    from sr1lib.widgets import TrajectoryInspector
    TrajectoryInspector("runs/")          # a run folder or a folder of runs; displays itself

Pick a run, a step and a trajectory (filters: correct / incorrect, number of searches, data
source); the view shows the trajectory as the loss sees it and, below, the same question at every
logged step. Model tokens are decoded one by one for hover (log-prob, advantage) when "token
detail" is on; the run's tokenizer is then loaded once from its `train.model` folder.
ipywidgets is imported here only, when an inspector is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from sr1lib.errors import Sr1Error
from sr1lib.runs import find_runs
from sr1lib.views import select
from sr1lib.views.trajectory import render_comparison_html, render_trajectory_html

SEARCH_CHOICES = ("any", "0", "1", "2", "3+")
ALL = -1  # the step dropdown's "all" (ipywidgets shows a None value as an empty box)


class TrajectoryInspector:
    """Widgets to browse the trajectories runs logged (see the module docstring)."""

    def __init__(self, runs: str | Path | Iterable[str | Path] = "runs", *, run: str | Path | None = None) -> None:
        import ipywidgets as w

        self.runs = find_runs(runs)
        if not self.runs:
            raise Sr1Error(f"no run folders (with config.json) under {runs}; train one first (notebook 02)")
        self._items: list[select.Item] = []
        self._busy = False
        self._mask = True
        self._shown: list[select.Item] = []
        self._tokenizers: dict[str, Any] = {}
        lay = w.Layout(width="auto")
        self.run = w.Dropdown(options=[(str(p), str(p)) for p in self.runs], description="run",
                              layout=w.Layout(width="60%"))
        self.step = w.Dropdown(description="step", layout=lay)
        self.correct = w.ToggleButtons(options=list(select.CORRECT_CHOICES), value="all", description="answer")
        self.searches = w.Dropdown(options=list(SEARCH_CHOICES), value="any", description="searches", layout=lay)
        self.source = w.Dropdown(description="source", layout=lay)
        self.traj = w.Dropdown(description="trajectory", layout=w.Layout(width="90%"))
        self.prev = w.Button(description="◀ prev", layout=w.Layout(width="80px"))
        self.next = w.Button(description="next ▶", layout=w.Layout(width="80px"))
        self.colour = w.Dropdown(options=["logprob", "advantage", "none"], value="logprob", description="colour",
                                 layout=lay)
        self.tokens = w.Checkbox(value=False, description="token detail (hover)", indent=False)
        self.prompt = w.Checkbox(value=False, description="show prompt", indent=False)
        self.count = w.HTML()
        self.view = w.HTML()
        self.compare = w.HTML()
        self.widget = w.VBox([
            self.run,
            w.HBox([self.step, self.searches, self.source]),
            self.correct,
            w.HBox([self.traj, self.prev, self.next]),
            w.HBox([self.colour, self.tokens, self.prompt, self.count]),
            self.view,
            w.HTML("<h4 style='margin:10px 0 2px 0'>This question at every logged step (its group members "
                   "together)</h4>"),
            self.compare,
        ])
        self.run.observe(lambda _: self._load_run(), names="value")
        for c in (self.step, self.correct, self.searches, self.source):
            c.observe(lambda _: self._refilter(), names="value")
        for c in (self.traj, self.colour, self.tokens, self.prompt):
            c.observe(lambda _: self._render(), names="value")
        self.prev.on_click(lambda _: self._move(-1))
        self.next.on_click(lambda _: self._move(+1))
        if run is not None:
            self.run.value = str(Path(run))
        self._load_run()

    # ------------------------------------------------------------------ state changes

    def _load_run(self) -> None:
        self._items = select.load_trajectories(self.run.value)
        self._mask = select.run_masks_retrieved(self.run.value)
        self._busy = True  # setting options fires the observers; refilter once at the end instead
        try:
            self.step.options = [("all", ALL)] + [(str(s), s) for s in select.steps_of(self._items)]
            self.step.value = ALL
            self.source.options = ["all", *select.sources_of(self._items)]
            self.source.value = "all"
        finally:
            self._busy = False
        self._refilter()

    def _refilter(self) -> None:
        if self._busy:
            return
        step = None if self.step.value == ALL else self.step.value
        self._shown = select.filter_trajectories(self._items, step=step, correct=self.correct.value,
                                                 searches=self.searches.value, data_source=self.source.value)
        self.count.value = (f"<span style='margin-left:12px'>{len(self._shown)} of {len(self._items)} "
                            "logged trajectories match</span>")
        self._busy = True
        try:
            self.traj.options = [(select.describe_item(it), i) for i, it in enumerate(self._shown)]
            self.traj.value = 0 if self._shown else None
        finally:
            self._busy = False
        self._render()

    def _move(self, delta: int) -> None:
        if self._shown and self.traj.value is not None:
            self.traj.value = (self.traj.value + delta) % len(self._shown)

    def _tokenizer(self) -> Any:
        if not self.tokens.value:
            return None
        run = self.run.value
        if run not in self._tokenizers:
            self._tokenizers[run] = select.run_tokenizer(run)
        return self._tokenizers[run]

    def _render(self) -> None:
        if self._busy:
            return
        if self.traj.value is None or not self._shown:
            self.view.value = "<i>no trajectory matches these filters</i>"
            self.compare.value = ""
            return
        step, traj = self._shown[self.traj.value]
        self.view.value = render_trajectory_html(traj, step=step, tokenizer=self._tokenizer(),
                                                 mask_retrieved=self._mask,
                                                 colour_by=self.colour.value, show_prompt=self.prompt.value)
        self.compare.value = render_comparison_html(select.same_question(self._items, traj.record.id))

    # ------------------------------------------------------------------ display

    @property
    def current(self) -> select.Item | None:
        """The (step, trajectory) on screen, or None."""
        if self.traj.value is None or not self._shown:
            return None
        return self._shown[self.traj.value]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
