"""HTML tables: the Table-2 layout beside the paper's numbers, and the ablation's final table.

Tables are plain HTML strings (escaped), so a notebook shows them with `IPython.display.HTML` and an
executed report keeps them in its HTML export. The Table-2 block reuses the row/column order of
`sr1lib.evaluate.table` (the paper's layout) for both the user's report and the paper's numbers.
"""

from __future__ import annotations

import html
from typing import Any, Sequence


TABLE_CSS = """<style>
.sr1-table{border-collapse:collapse;font-family:system-ui,sans-serif;font-size:13px;margin:6px 0 14px 0}
.sr1-table caption{text-align:left;font-weight:600;padding:4px 0}
.sr1-table th,.sr1-table td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
.sr1-table th:first-child,.sr1-table td:first-child{text-align:left}
.sr1-table thead th{background:#f3f5f7}
.sr1-table td.best{font-weight:700;background:#e6f4ea}
.sr1-table td.warn{background:#fde2e1}
.sr1-note{font-family:system-ui,sans-serif;font-size:12px;color:#57606a;margin:-8px 0 12px 0}
</style>"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "",
               best_cols: Sequence[int] = (), css: bool = True) -> str:
    """A simple table; in `best_cols` the highest numeric cell of the column is bold."""
    best: dict[int, float] = {}
    for c in best_cols:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[c]))
            except (TypeError, ValueError):
                pass
        if vals and max(vals) > min(vals):  # a column without differences has no best cell
            best[c] = max(vals)
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ""
            try:
                if i in best and float(v) == best[i]:
                    cls = ' class="best"'
            except (TypeError, ValueError):
                pass
            cells.append(f"<td{cls}>{_esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    head = "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"
    return (f'{TABLE_CSS if css else ""}<table class="sr1-table">{cap}<thead>{head}</thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def table2_html(report: dict[str, Any], paper_model: str | None = "Qwen2.5-7B", metric: str = "em",
                title: str = "Your evaluation (exact match)") -> str:
    """The user's report in the paper's Table-2 layout and, beside it, the paper's block for
    `paper_model` (None: none). Best cell per column in bold."""
    from sr1lib.evaluate import paper_report
    from sr1lib.evaluate.table import table_rows

    header, rows = table_rows(report, metric)
    parts = [html_table(header, rows, caption=title, best_cols=range(1, len(header)))]
    if paper_model:
        ref = paper_report(paper_model)
        p_header, p_rows = table_rows(ref, "em")
        src = ref["provenance"]["source"]
        parts.append(html_table(p_header, p_rows, css=False, best_cols=range(1, len(p_header)),
                                caption=f"Paper: Search-R1 Table 2, {ref['provenance']['model']} (EM)"))
        parts.append(f'<div class="sr1-note">Reference numbers from {_esc(src.get("paper", "Search-R1"))} '
                     f'(arXiv {_esc(src.get("arxiv", "2503.09516"))} {_esc(src.get("version", ""))}), '
                     "on the full benchmarks with the wiki-18 corpus; a toy-world or subset evaluation is "
                     "not comparable number for number, only in direction.</div>")
    return "".join(parts)


def final_table_html(final: Any, caption: str = "Final validation EM and stability per method") -> str:
    """The ablation's `sr1lib.experiments.frames.final_table` as HTML; unstable runs shaded."""
    header = ["method", "seeds", "steps", "val EM (mean)", "val EM (std)", "train reward", "alarm steps", "alarms"]
    rows = []
    for r in final.to_dict("records"):
        def f(x: Any) -> str:
            return "-" if x is None or x != x else f"{float(x):.3f}"

        rows.append([r["variant"], int(r["seeds"]), int(r["steps"]), f(r["val_em"]), f(r["val_em_std"]),
                     f(r["reward"]), int(r["alarm_steps"]), r["alarms"] or "none"])
    return html_table(header, rows, caption=caption, best_cols=(3,))
