"""The report's front pages: `index.html` (for a browser) and `README.md` (for a repository view).

Both list every notebook with its question, status, time and links (executed notebook, HTML
export, figures), then the headline tables the notebooks published. Links are relative to the
report folder, so the folder can be moved or zipped. All text from notebooks is escaped.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

CSS = """<style>
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1150px;color:#1d2329;
  padding:0 16px}
h1{font-size:22px;margin-bottom:2px}.meta{color:#57606a;font-size:13px;margin-bottom:18px}
table.nb{border-collapse:collapse;width:100%;font-size:14px}
table.nb td,table.nb th{border-bottom:1px solid #d8dee4;padding:8px 6px;text-align:left;vertical-align:top}
.ok{color:#116329;font-weight:600}.failed{color:#b42318;font-weight:600}
.err{font-family:ui-monospace,monospace;font-size:12px;color:#b42318;white-space:pre-wrap;max-width:520px}
.thumbs img{height:90px;border:1px solid #d8dee4;border-radius:4px;margin:2px}
.q{color:#57606a;font-size:13px}
h2{font-size:18px;margin-top:28px}
</style>"""


def _rel(path: str | Path, out: Path) -> str:
    return os.path.relpath(Path(path).resolve(), out.resolve()).replace(os.sep, "/")


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _inline(text: str) -> str:
    """Escaped text with `code` and **bold** spans (all the markdown headlines use)."""
    import re

    out = _esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def markdown_html(md: str) -> str:
    """The small markdown subset headlines are written in: paragraphs, `- ` lists, pipe tables."""
    from sr1lib.views.tables import html_table

    blocks: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(set(c) <= set(":-") for c in cells):  # skip the |---| rule
                    rows.append(cells)
                i += 1
            blocks.append(html_table(rows[0], rows[1:], css=False) if rows else "")
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            blocks.append(f"<ul>{''.join(items)}</ul>")
            continue
        if line:
            blocks.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "".join(blocks)


def index_html(summary: dict[str, Any], out: Path) -> str:
    rows = []
    for e in summary["notebooks"]:
        status = ('<span class="ok">ok</span>' if e["status"] == "ok"
                  else f'<span class="failed">failed</span><div class="err">{_esc(e["error"])}</div>')
        links = [f'<a href="{_esc(_rel(e["output"], out))}">notebook</a>'] if Path(e["output"]).exists() else []
        if e.get("html"):
            links.append(f'<a href="{_esc(_rel(e["html"], out))}">HTML</a>')
        thumbs = "".join(f'<a href="{_esc(_rel(f, out))}"><img src="{_esc(_rel(f, out))}" alt="figure"></a>'
                         for f in e.get("figures", []))
        rows.append(f'<tr><td><b>{_esc(e["notebook"])}</b><div class="q">{_esc(e.get("question", ""))}</div></td>'
                    f'<td>{status}</td><td>{e["seconds"]:.1f} s</td><td>{" · ".join(links)}</td>'
                    f'<td class="thumbs">{thumbs}</td></tr>')
    heads = []
    for e in summary["notebooks"]:
        h = e.get("headline")
        if h and (h.get("html") or h.get("markdown")):
            body = h["html"] or markdown_html(h["markdown"])
            heads.append(f"<h2>{_esc(e['notebook'])}: {_esc(e.get('question', ''))}</h2>{body}")
    prep, prep_html = summary.get("prepared") or {}, ""
    if prep.get("error"):
        prep_html = f'<p class="failed">The toy world could not be prepared: {_esc(prep["error"])}</p>'
    elif prep:
        prep_html = (f'<p class="q">Toy world, base model and index prepared in {prep["seconds"]:.0f} s '
                     f'(base model <code>{_esc(prep["model"])}</code>).</p>')
    failed = summary["failed"]
    verdict = (f'<span class="ok">all {len(summary["notebooks"])} notebooks ran</span>' if not failed
               else f'<span class="failed">{len(failed)} of {len(summary["notebooks"])} failed: '
                    f'{_esc(", ".join(failed))}</span>')
    from sr1lib.views.tables import TABLE_CSS

    return (f"<!doctype html><html><head><meta charset='utf-8'><title>sr1 report ({_esc(summary['profile'])})</title>"
            f"{CSS}{TABLE_CSS}</head><body><h1>sr1 report: profile {_esc(summary['profile'])}</h1>"
            f"<div class='meta'>{_esc(summary['created'])} · {summary['seconds']:.0f} s · commit "
            f"{_esc(summary.get('git_commit') or 'unknown')} · {verdict}</div>{prep_html}"
            f"<table class='nb'><thead><tr><th>notebook</th><th>status</th><th>time</th><th>open</th>"
            f"<th>figures</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{''.join(heads)}</body></html>")


def readme_md(summary: dict[str, Any], out: Path) -> str:
    lines = [f"# sr1 report: profile {summary['profile']}", "",
             f"{summary['created']}, {summary['seconds']:.0f} s, commit {summary.get('git_commit') or 'unknown'}. "
             "Open `index.html` for figures.", "",
             "| notebook | question | status | time | open |", "|---|---|---|---:|---|"]
    for e in summary["notebooks"]:
        status = "ok" if e["status"] == "ok" else f"**failed**: `{(e['error'] or '').replace('|', '/')}`"
        links = [f"[notebook]({_rel(e['output'], out)})"] if Path(e["output"]).exists() else []
        if e.get("html"):
            links.append(f"[HTML]({_rel(e['html'], out)})")
        lines.append(f"| {e['notebook']} | {e.get('question', '').replace('|', '/')} | {status} | "
                     f"{e['seconds']:.1f} s | {' · '.join(links)} |")
    for e in summary["notebooks"]:
        h = e.get("headline")
        if h and h.get("markdown"):
            lines += ["", f"## {e['notebook']}", "", h["markdown"].rstrip()]
    return "\n".join(lines) + "\n"
