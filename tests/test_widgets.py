"""The trajectory inspector: static HTML (escaping, masking marks, searches, per-token values), the
selection functions, and the ipywidgets inspector reacting to its controls. Run folders come from
real rollouts (`tests/viz_support.py`)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from sr1lib.rewards import exact_match
from sr1lib.types import MODEL, PROMPT, RETRIEVED
from sr1lib.widgets import filter_trajectories, load_trajectories, render_comparison_html, render_trajectory_html
from sr1lib.runs import find_runs
from sr1lib.views.select import same_question
from tests.test_rollout_support import bm25_dir, corpus_file  # noqa: F401  (fixtures)
from tests.viz_support import INJECTION, scripted_run


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_model_dir, bm25_dir):  # noqa: F811
    root = tmp_path_factory.mktemp("runs")
    scripted_run(root, tiny_model_dir, bm25_dir, name="masked")
    scripted_run(root, tiny_model_dir, bm25_dir, name="unmasked", mask_retrieved=False, algorithm="ppo")
    return root


@pytest.fixture(scope="module")
def items(runs_root):
    return load_trajectories(runs_root / "masked")


class Tags(HTMLParser):
    """Every start tag the browser would build from a fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict]]:
    p = Tags()
    p.feed(html)
    return p.tags


def test_model_output_and_questions_are_escaped(items):
    step, traj = next((s, t) for s, t in items if t.record.id == "hotpotqa/3" and s == 1)
    assert INJECTION in traj.response_text  # the rollout really carried the markup
    html = render_trajectory_html(traj, step=step)
    tags = {t for t, _ in tags_of(html)}
    assert "script" not in tags and "img" not in tags and "b" in tags  # our own <b>, never the model's
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert "&lt;b&gt;longest&lt;/b&gt;" in html  # the question's markup is text too
    assert not any(k.startswith("on") for _, attrs in tags_of(html) for k in attrs)


def test_every_segment_is_drawn_with_its_source_and_training_status(items):
    for step, traj in items:
        html = render_trajectory_html(traj, step=step)
        spans = [a for t, a in tags_of(html) if t == "span" and "seg" in a.get("class", "").split()]
        assert len(spans) == len(traj.segments)
        for seg, attrs in zip(traj.segments, spans):
            masked = "masked" in attrs["class"].split()
            assert masked == (seg.source != MODEL), (seg.source, attrs)
            assert f"{len(seg.token_ids)} tokens" in attrs["title"]
        assert "not trained" in html


def test_without_masking_retrieved_tokens_are_drawn_as_trained(runs_root):
    items = load_trajectories(runs_root / "unmasked")
    step, traj = next((s, t) for s, t in items if any(x.source == RETRIEVED for x in t.segments))
    html = render_trajectory_html(traj, step=step, mask_retrieved=False)
    spans = [a for t, a in tags_of(html) if t == "span" and "seg" in a.get("class", "").split()]
    for seg, attrs in zip(traj.segments, spans):
        assert ("masked" in attrs["class"].split()) == (seg.source == PROMPT)


def test_searches_show_queries_passages_and_where_the_gold_answer_is(items):
    step, traj = next((s, t) for s, t in items if t.record.id == "nq/1" and s == 1)
    assert traj.queries == ("capital of France",) and exact_match(traj.answer, ["Paris"]) == 1.0
    html = render_trajectory_html(traj, step=step)
    assert "search 1: <code>capital of France</code>" in html
    # the passages listed are the ones the real index returned, in order, gold answer marked
    retrieved = next(s.text for s in traj.segments if s.source == RETRIEVED)
    titles = re.findall(r'Doc \d+\(Title: "(.*?)"\)', retrieved)  # shown without the corpus's quotes
    assert titles and all(f"<b>{t}</b>" in html or f"<b><mark>{t}</mark></b>" in html for t in titles)
    assert "<mark>Paris</mark>" in html and "gold answer appears in the passages" in html
    assert 'class="b ok">correct<' in html


def test_per_token_view_has_one_hover_per_sampled_token(items, tiny_model_dir):
    from sr1lib.models import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    step, traj = items[0]
    with_tok = render_trajectory_html(traj, step=step, tokenizer=tok)
    toks = [a for t, a in tags_of(with_tok) if t == "span" and a.get("class") == "tok"]
    assert len(toks) == traj.n_model_tokens
    assert all("logprob -0.500" in a["title"] for a in toks)
    plain = render_trajectory_html(traj, step=step)
    cells = [a for t, a in tags_of(plain) if t == "span" and "logprob" in a.get("title", "") and "class" not in a]
    assert len(cells) == traj.n_model_tokens  # the heat strip, when no tokenizer is given


def test_advantages_colour_tokens_when_logged(items, tiny_model_dir):
    import dataclasses

    from sr1lib.models import load_tokenizer

    step, traj = items[0]
    n = traj.n_model_tokens
    advs = [(-1.0) ** i * (i + 1) / n for i in range(n)]
    t2 = dataclasses.replace(traj, extra={**traj.extra, "token_advantages": advs, "advantage": 0.25})
    html = render_trajectory_html(t2, tokenizer=load_tokenizer(tiny_model_dir), colour_by="advantage")
    toks = [a for t, a in tags_of(html) if t == "span" and a.get("class") == "tok"]
    assert [float(re.search(r"advantage ([-+]\d\.\d+)", a["title"]).group(1)) for a in toks] == \
        pytest.approx(advs, abs=1e-3)
    assert sum("rgba(22,163,74" in a["style"] for a in toks) == sum(a >= 0 for a in advs)
    assert "advantage +0.250" in html
    with pytest.raises(ValueError, match="colour_by"):
        render_trajectory_html(traj, colour_by="rainbow")


def test_filters_agree_with_the_trajectory_facts(items):
    assert len(items) == 9
    correct = filter_trajectories(items, correct="correct")
    assert {(s, t.uid) for s, t in correct} == {(s, t.uid) for s, t in items
                                                if exact_match(t.answer, t.record.golden_answers)}
    assert len(correct) + len(filter_trajectories(items, correct="incorrect")) == len(items)
    assert all(t.n_searches == 2 for _, t in filter_trajectories(items, searches=2))
    assert {t.n_searches for _, t in filter_trajectories(items, searches="1+")} <= {1, 2}
    assert len(filter_trajectories(items, searches="1+")) == sum(t.n_searches >= 1 for _, t in items)
    assert {t.record.data_source for _, t in filter_trajectories(items, data_source="hotpotqa")} == {"hotpotqa"}
    assert [s for s, _ in filter_trajectories(items, step=2)] == [2, 2, 2]
    with pytest.raises(Exception, match="valid choices"):
        filter_trajectories(items, correct="maybe")


def test_same_question_across_steps(items):
    rows = same_question(items, "nq/2")
    assert [s for s, _ in rows] == [1, 2, 3]
    html = render_comparison_html(rows)
    assert html.count("<tr>") == 4  # header + one row per step
    assert "Hamlet author" in html and "✗" in html and "✓" in html


def test_find_runs_skips_checkpoints_and_names_a_missing_folder(runs_root, tmp_path):
    found = find_runs(runs_root)
    assert [p.name for p in found] == ["masked", "unmasked"]
    assert find_runs(runs_root / "masked") == [runs_root / "masked"]
    with pytest.raises(Exception, match="no such folder"):
        find_runs(tmp_path / "nope")


def test_inspector_widget_reacts_to_its_controls(runs_root):
    pytest.importorskip("ipywidgets")
    from sr1lib.widgets import TrajectoryInspector

    ins = TrajectoryInspector(runs_root)
    assert ins.run.value.endswith("masked") and len(ins.traj.options) == 9
    first = ins.view.value
    assert "sr1-traj" in first and "every logged step" not in first
    ins.correct.value = "incorrect"
    shown = [ins._shown[i][1] for _, i in ins.traj.options]
    assert shown and all(not exact_match(t.answer, t.record.golden_answers) for t in shown)
    ins.correct.value = "all"
    ins.step.value = 3
    assert {s for s, _ in ins._shown} == {3}
    before = ins.current
    ins.next.click()
    assert ins.current != before and ins.view.value != first
    # the comparison lists the current question at every step it was logged
    assert ins.compare.value.count("<tr>") == 1 + len(same_question(ins._items, ins.current[1].record.id))
    ins.searches.value = "3+"
    assert ins.current is None and "no trajectory matches" in ins.view.value
    ins.searches.value = "any"
    ins.tokens.value = True  # per-token hover needs the run's tokenizer, loaded from train.model
    assert 'class="tok"' in ins.view.value
    ins.run.value = str(runs_root / "unmasked")  # PPO without masking: the loss saw retrieved tokens
    assert ins.step.value == -1 and len(ins._items) == 9  # "all" steps
    assert ins.current[1].n_searches and 'class="tag tr">retrieved<' in ins.view.value
