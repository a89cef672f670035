"""Retrieval figures: answer recall@k per backend (and per hop type), search latency, index build time."""

from __future__ import annotations

from typing import Any

from sr1lib.errors import Sr1Error


def recall_figure(study: dict[str, Any], title: str = "Retrieval: answer recall@k and latency") -> Any:
    """(a) answer recall@k vs k per backend, (b) mean search latency per query (ms), (c) build time (s).

    study: what `sr1lib.experiments.retrieval_study` returns (`backends` -> {recall: {k: r},
    latency_ms, build_s, ...})."""
    import matplotlib.pyplot as plt

    backends = study.get("backends") or {}
    ok = {b: v for b, v in backends.items() if not v.get("error")}
    if not ok:
        raise Sr1Error("recall_figure: no backend finished; see the study's errors: "
                       + "; ".join(f"{b}: {v.get('error')}" for b, v in backends.items()))
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    names = list(ok)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"single": "--", "two": ":"}
    for i, name in enumerate(names):
        colour = cycle[i % len(cycle)]
        rec = {int(k): v for k, v in ok[name]["recall"].items()}
        ks = sorted(rec)
        a.plot(ks, [rec[k] for k in ks], marker="o", color=colour, label=name)
        # per hop type (toy world): one search with the question finds two-hop answers far less often
        for hop, hrec in (ok[name].get("recall_by_hop") or {}).items():
            hrec = {int(k): v for k, v in hrec.items()}
            a.plot(ks, [hrec[k] for k in ks], ls=styles.get(hop, "-."), color=colour, lw=1.2, alpha=0.85,
                   label=f"{name}, {hop}-hop questions")
    a.set_xscale("log")
    a.set_xticks(ks)
    a.set_xticklabels([str(k) for k in ks])
    a.set_ylim(-0.02, 1.02)
    a.set_xlabel("k (passages retrieved)")
    a.set_ylabel("answer recall@k (fraction of questions)")
    a.set_title(f"(a) answer recall@k, {study.get('n_questions', '?')} questions")
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
    colours = [cycle[i % len(cycle)] for i in range(len(names))]
    b.bar(names, [ok[n]["latency_ms"] for n in names], color=colours)
    b.set_ylabel("ms per query (batched)")
    b.set_title("(b) search latency")
    c.bar(names, [ok[n]["build_s"] for n in names], color=colours)
    c.set_ylabel("seconds")
    c.set_title(f"(c) index build, {study.get('n_passages', '?')} passages")
    for ax in (b, c):
        ax.grid(alpha=0.3, axis="y")
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig
