"""Figures and tables from run folders: what is drawn is what the folders hold (means and bands
over seeds, alarms at their steps, Fig. 2 quantities), and the tables carry both the user's and
the paper's numbers. Run folders are written through RunDir with chosen metric values."""

from __future__ import annotations

import math

import pytest

from sr1lib import config as C
from sr1lib.experiments.frames import final_table, metrics_frame
from sr1lib.runs import RunDir

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")


def write_run(root, name, algorithm, seed, rewards, *, mask=True, alarms=None, lengths=None, val=None):
    cfg = C.RunConfig(name=name, out_dir=str(root), seed=seed,
                      algorithm=C.AlgorithmConfig(name=algorithm, mask_retrieved=mask))
    run = RunDir.create(cfg)
    for i, r in enumerate(rewards, 1):
        m = {"reward_mean": r, "em": r, "response_tokens_mean": (lengths or [100.0] * len(rewards))[i - 1],
             "searches_mean": 1.0 + i / 10, "valid_search_ratio": 0.5, "kl": 0.01 * i, "entropy": 2.0 - 0.1 * i,
             "alarms": (alarms or {}).get(i, [])}
        if val and i in val:
            m["val_em"] = val[i]
        run.log_metrics(i, m)
    return run.path


@pytest.fixture()
def runs(tmp_path):
    return [
        write_run(tmp_path, "grpo-s0", "grpo", 0, [0.1, 0.3, 0.5], val={2: 0.2, 3: 0.4}),
        write_run(tmp_path, "grpo-s1", "grpo", 1, [0.3, 0.5, 0.9], val={2: 0.4, 3: 0.6}, alarms={3: ["entropy_drop"]}),
        write_run(tmp_path, "ppo-s0", "ppo", 0, [0.2, 0.2, 0.3], val={3: 0.3}),
        write_run(tmp_path, "ppo-nomask-s0", "ppo", 0, [0.0, 0.1, 0.1], mask=False, lengths=[120.0, 80.0, 150.0]),
    ]


def lines_by_label(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_frame_labels_variants_and_derives_valid_searches(runs):
    df = metrics_frame(runs)
    assert set(df["variant"]) == {"grpo", "ppo", "ppo-nomask"}
    assert len(df) == 12
    row = df[(df["run"] == "grpo-s0") & (df["step"] == 2)].iloc[0]
    assert row["valid_searches_mean"] == pytest.approx(1.2 * 0.5)
    assert df[df["run"] == "grpo-s1"]["n_alarms"].tolist() == [0, 0, 1]


def test_ablation_figure_draws_the_seed_mean_a_band_and_alarms(runs):
    from sr1lib.viz import ablation_figure

    fig = ablation_figure(runs)
    reward_ax = next(a for a in fig.axes if a.get_title() == "training reward")
    grpo = next(ln for lab, ln in lines_by_label(reward_ax).items() if lab.startswith("grpo ("))
    assert "2 seeds" in grpo.get_label()
    assert list(grpo.get_ydata()) == pytest.approx([0.2, 0.4, 0.7])  # mean of the two seeds per step
    band = reward_ax.collections[0].get_paths()[0].vertices[:, 1]
    assert min(band) == pytest.approx(0.1) and max(band) == pytest.approx(0.9)  # min..max over seeds
    # collections: the grpo band, then the alarm crosses: one, grpo-s1's at step 3 on its own value
    offsets = [tuple(o) for c in reward_ax.collections[1:] for o in c.get_offsets()]
    assert offsets == [(3.0, 0.9)]
    assert reward_ax.get_xlabel() == "training step" and "0-1" in reward_ax.get_ylabel()
    assert any(t.get_text() == "collapse alarm" for t in fig.legends[0].get_texts())
    val_ax = next(a for a in fig.axes if a.get_title() == "validation EM (greedy)")
    ppo = next(ln for lab, ln in lines_by_label(val_ax).items() if lab.startswith("ppo (1"))
    assert list(ppo.get_xdata()) == [3] and list(ppo.get_ydata()) == [0.3]  # only logged steps


def test_training_curves_one_panel_per_logged_metric(runs):
    from sr1lib.viz import training_curves

    fig = training_curves(runs[:1])
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == ["training reward", "training EM (sampled)", "validation EM (greedy)", "response length",
                      "searches", "KL to the reference", "policy entropy"]
    kl_ax = fig.axes[titles.index("KL to the reference")]
    assert list(kl_ax.get_lines()[0].get_ydata()) == pytest.approx([0.01, 0.02, 0.03])
    assert kl_ax.get_ylabel() == "nats per token"


def test_response_length_figure_and_summary(runs):
    from sr1lib.experiments.training import response_length_study
    from sr1lib.viz import response_length_figure

    study = response_length_study(runs)
    fig = response_length_figure(study["frame"])
    a, b = fig.axes[0], fig.axes[1]
    nomask = lines_by_label(a)["ppo-nomask: response length"]
    assert list(nomask.get_ydata()) == [120.0, 80.0, 150.0]
    assert "valid searches" in b.get_ylabel()
    summary = study["summary"].set_index("variant")
    assert bool(summary.loc["ppo-nomask", "length_dips_then_rises"]) is True
    assert summary.loc["ppo-nomask", "length_min_step"] == 2
    assert bool(summary.loc["grpo", "length_dips_then_rises"]) is False  # flat at 100


def test_final_table_means_over_seeds_and_counts_alarm_steps(runs):
    final = final_table(metrics_frame(runs)).set_index("variant")
    assert final.loc["grpo", "seeds"] == 2
    assert final.loc["grpo", "val_em"] == pytest.approx(0.5)
    assert final.loc["grpo", "val_em_std"] == pytest.approx(math.sqrt(0.02))
    assert final.loc["grpo", "alarm_steps"] == 1 and final.loc["grpo", "alarms"] == "entropy_drop"
    assert not final.loc["grpo", "stable"] and final.loc["ppo", "stable"]
    assert math.isnan(final.loc["ppo-nomask", "val_em"])  # never validated: no number invented
    from sr1lib.viz import final_table_html

    html = final_table_html(final.reset_index())
    assert "entropy_drop" in html and "0.500" in html and 'class="best">0.500' in html


def test_table2_html_puts_the_papers_numbers_beside_the_users(tmp_path):
    from sr1lib.evaluate import paper_table2
    from sr1lib.viz import table2_html

    report = {"results": {"toy-1hop": {"direct": {"em": 0.1}, "search-r1 (<grpo>)": {"em": 0.6}},
                          "toy-2hop": {"direct": {"em": 0.05}, "search-r1 (<grpo>)": {"em": 0.3}}},
              "averages": {}}
    html = table2_html(report, paper_model="Qwen2.5-7B")
    assert "search-r1 (&lt;grpo&gt;)" in html and "<grpo>" not in html
    assert 'class="best">0.600' in html and "0.450" in html  # average of the two hop columns
    search_r1 = next(r for r in paper_table2("Qwen2.5-7B") if r["method_key"] == "search-r1-base")
    assert f"{search_r1['nq']:.3f}" in html and "Qwen2.5-7B" in html
    assert "Paper" not in table2_html(report, paper_model=None)


def test_recall_figure_plots_every_backend_and_skips_failures():
    from sr1lib.viz import recall_figure

    study = {"n_questions": 10, "n_passages": 99, "backends": {
        "bm25s": {"recall": {1: 0.2, 3: 0.5, 10: 0.8}, "latency_ms": 0.5, "build_s": 0.1},
        "dense": {"recall": {1: 0.1, 3: 0.3, 10: 0.6}, "latency_ms": 4.0, "build_s": 9.0},
        "pyserini": {"error": "Sr1Error: no Java"}}}
    fig = recall_figure(study)
    a = fig.axes[0]
    got = {ln.get_label(): list(ln.get_ydata()) for ln in a.get_lines()}
    assert got == {"bm25s": [0.2, 0.5, 0.8], "dense": [0.1, 0.3, 0.6]}
    assert [p.get_height() for p in fig.axes[1].patches] == [0.5, 4.0]
    with pytest.raises(Exception, match="no Java"):
        recall_figure({"backends": {"pyserini": {"error": "Sr1Error: no Java"}}})


def test_save_figure_writes_a_png(runs, tmp_path):
    from sr1lib.viz import save_figure, training_curves

    path = save_figure(training_curves(runs[:1]), tmp_path / "f" / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
