"""Static HTML of one trajectory (and of one question across steps): what the loss sees, token by token.

`render_trajectory_html(traj)` is a pure function of its arguments, used by the live inspector
(`sr1lib.widgets.inspector`) and by executed reports, which cannot run widgets. It shows:

- a header: question, gold answers, the extracted answer and whether it is an exact match, the
  reward, searches (valid / issued), invalid actions, turns, how the episode ended;
- the context in order, each segment coloured by its source (prompt, model, retrieved, feedback);
  segments the policy loss does not see are hatched, greyed and labelled "not trained" (with
  `mask_retrieved=False`, the masking ablation, retrieved and feedback tokens ARE trained and are
  drawn as such, because that run's loss saw them);
- model tokens one by one with their sampling log-prob (hover), shaded by it, when a tokenizer is
  given; otherwise a heat strip of log-probs under each model segment;
- each search: the query and the passages it returned, gold answers marked where they occur.

Everything that came from a model, a dataset or a corpus is HTML-escaped: model output is
untrusted text and must never become markup.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any, Sequence

from sr1lib.retrieval.evaluation import contains_answer
from sr1lib.rewards import exact_match, normalize_answer
from sr1lib.types import FEEDBACK, MODEL, PROMPT, RETRIEVED, Segment, Trajectory, unquote_title

COLOURS = {PROMPT: "#eceff1", MODEL: "#dcebfb", RETRIEVED: "#fff1d6", FEEDBACK: "#f1e4f6"}
BORDERS = {PROMPT: "#90a4ae", MODEL: "#1e6fd0", RETRIEVED: "#d08a00", FEEDBACK: "#8e44ad"}
LABELS = {PROMPT: "prompt", MODEL: "model (sampled)", RETRIEVED: "retrieved passages", FEEDBACK: "feedback"}
DOC_RE = re.compile(r"Doc (\d+)\(Title: (.*?)\) (.*?)(?=\nDoc \d+\(Title: |</information>|\Z)", re.DOTALL)
MAX_PROMPT_CHARS = 4000  # a longer prompt is cut in the view (the tokens are all still counted)

CSS = """
<style>
.sr1-traj{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;color:#1d2329;line-height:1.45;
  max-width:1100px;margin:0 0 22px 0}
.sr1-traj h4{margin:6px 0 4px 0;font-size:14px}
.sr1-traj .hdr{display:flex;flex-wrap:wrap;gap:4px;margin:4px 0}
.sr1-traj .b{display:inline-block;padding:1px 7px;border-radius:9px;background:#eef1f4;font-size:12px}
.sr1-traj .ok{background:#d7f5dd;color:#14532d}.sr1-traj .bad{background:#fde2e1;color:#7f1d1d}
.sr1-traj .legend{display:flex;flex-wrap:wrap;gap:10px;font-size:12px;margin:6px 0}
.sr1-traj .sw{display:inline-block;width:14px;height:12px;vertical-align:middle;margin-right:4px;
  border-left:3px solid}
.sr1-traj .ctx{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,Menlo,Consolas,monospace;
  font-size:12px;border:1px solid #d0d7de;border-radius:6px;padding:8px;background:#fff}
.sr1-traj .seg{border-left:3px solid;padding:0 2px}
.sr1-traj .masked{color:#5f6b76;background-image:repeating-linear-gradient(135deg,rgba(0,0,0,.07) 0 2px,
  transparent 2px 7px)}
.sr1-traj .tag{font-size:10px;font-family:system-ui,sans-serif;padding:0 4px;border-radius:3px;
  background:#5f6b76;color:#fff;margin-right:3px;vertical-align:1px}
.sr1-traj .tag.tr{background:#1e6fd0}
.sr1-traj .tok{border-radius:2px}
.sr1-traj .strip{display:flex;flex-wrap:wrap;margin:1px 0 3px 0}
.sr1-traj .strip span{display:inline-block;width:5px;height:9px;margin-right:1px}
.sr1-traj .srch{border:1px solid #e3c27a;border-radius:6px;padding:4px 8px;margin:6px 0;background:#fffaf0}
.sr1-traj .srch ol{margin:2px 0 2px 18px;padding:0}
.sr1-traj mark{background:#ffe066;padding:0 1px}
.sr1-traj table{border-collapse:collapse;font-size:12px}
.sr1-traj td,.sr1-traj th{border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top}
.sr1-traj details summary{cursor:pointer}
</style>
"""


def esc(text: Any) -> str:
    """HTML-escape anything (quotes too, so it is also safe inside attribute values)."""
    return html.escape(str(text), quote=True)


def trained_sources(mask_retrieved: bool = True) -> frozenset[str]:
    """Sources whose tokens the policy loss sees (sr1lib.train.step: model tokens, or the whole
    response when retrieved-token masking is off)."""
    return frozenset({MODEL}) if mask_retrieved else frozenset({MODEL, RETRIEVED, FEEDBACK})


def is_correct(traj: Trajectory) -> bool:
    """Exact match of the extracted answer (the outcome, whatever reward function the run used)."""
    return bool(exact_match(traj.answer, traj.record.golden_answers))


def parse_docs(observation: str) -> list[tuple[str, str, str]]:
    """(rank, title, text) of every `Doc i(Title: t) text` passage in an observation block."""
    return [(m.group(1), unquote_title(m.group(2)), m.group(3).strip()) for m in DOC_RE.finditer(observation)]


def mark_answers(text: str, golds: Sequence[str]) -> str:
    """Escaped `text` with case-insensitive occurrences of the gold answers wrapped in <mark>."""
    needles = sorted({g.strip() for g in golds if g and g.strip() and normalize_answer(g)}, key=len, reverse=True)
    if not needles:
        return esc(text)
    pattern = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)
    out, pos = [], 0
    for m in pattern.finditer(text):
        out += [esc(text[pos:m.start()]), f"<mark>{esc(m.group(0))}</mark>"]
        pos = m.end()
    return "".join(out) + esc(text[pos:])


def logprob_colour(lp: float) -> str:
    """Background for a token of log-prob `lp`: clear when likely, deepening red as p falls."""
    p = math.exp(max(lp, -20.0))
    return f"rgba(220,38,38,{0.55 * (1.0 - p):.2f})"


def value_colour(v: float, scale: float) -> str:
    """Green for positive values (e.g. advantages), red for negative, alpha by |v| / scale."""
    a = min(abs(v) / scale, 1.0) * 0.55 if scale > 0 else 0.0
    return f"rgba(22,163,74,{a:.2f})" if v >= 0 else f"rgba(220,38,38,{a:.2f})"


def _token_title(tid: int, lp: float | None, adv: float | None) -> str:
    parts = [f"id {tid}"]
    if lp is not None:
        parts.append(f"logprob {lp:.3f} (p={math.exp(lp):.3f})")
    if adv is not None:
        parts.append(f"advantage {adv:+.3f}")
    return " · ".join(parts)


def _model_tokens(seg: Segment, tokenizer: Any, advs: Sequence[float] | None, colour_by: str) -> str:
    """The segment token by token (decoded one id at a time), each with a hover title."""
    scale = max((abs(a) for a in advs), default=0.0) if advs else 0.0
    out = []
    for i, tid in enumerate(seg.token_ids):
        lp = seg.logprobs[i] if seg.logprobs is not None else None
        adv = advs[i] if advs is not None else None
        style = ""
        if colour_by == "advantage" and adv is not None:
            style = f' style="background:{value_colour(adv, scale)}"'
        elif colour_by == "logprob" and lp is not None:
            style = f' style="background:{logprob_colour(lp)}"'
        text = tokenizer.decode([tid], skip_special_tokens=False)
        out.append(f'<span class="tok" title="{esc(_token_title(tid, lp, adv))}"{style}>{esc(text)}</span>')
    return "".join(out)


def _heat_strip(seg: Segment, advs: Sequence[float] | None) -> str:
    """One small cell per token, shaded by log-prob, with the value on hover (no tokenizer needed)."""
    if seg.logprobs is None and advs is None:
        return ""
    cells = []
    for i, tid in enumerate(seg.token_ids):
        lp = seg.logprobs[i] if seg.logprobs is not None else None
        adv = advs[i] if advs is not None else None
        colour = logprob_colour(lp) if lp is not None else value_colour(adv or 0.0, 1.0)
        cells.append(f'<span title="{esc(_token_title(tid, lp, adv))}" style="background:{colour}"></span>')
    return f'<div class="strip" title="per-token log-probs">{"".join(cells)}</div>'


def _segment_html(seg: Segment, trained: bool, tokenizer: Any, advs: Sequence[float] | None,
                  colour_by: str, golds: Sequence[str]) -> str:
    cls = "seg" if trained else "seg masked"
    style = f"background-color:{COLOURS[seg.source]};border-color:{BORDERS[seg.source]}"
    status = "trained" if trained else "not trained (masked from the loss)"
    title = f"{LABELS[seg.source]}: {len(seg.token_ids)} tokens, {status}"
    tag = f'<span class="tag{" tr" if trained else ""}">{esc(seg.source)}{"" if trained else " · not trained"}</span>'
    lead = ""
    if seg.source == MODEL and tokenizer is not None:
        body = _model_tokens(seg, tokenizer, advs, colour_by)
    else:
        # leading blank lines go before the tag, so the tag starts the block it labels
        text = seg.text.lstrip("\n")
        lead = "\n" * (len(seg.text) - len(text))
        body = mark_answers(text, golds) if seg.source == RETRIEVED else esc(text)
    strip = _heat_strip(seg, advs) if seg.source == MODEL and tokenizer is None else ""
    return f'{lead}<span class="{cls}" style="{style}" title="{esc(title)}">{tag}{body}</span>{strip}'


def _token_advantages(traj: Trajectory) -> list[list[float]] | None:
    """Per-model-segment advantages when the run logged `extra["token_advantages"]` (one value per
    model token, in order); None otherwise or when the lengths disagree."""
    flat = traj.extra.get("token_advantages")
    model_segs = [s for s in traj.segments if s.source == MODEL]
    if not isinstance(flat, list) or len(flat) != sum(len(s.token_ids) for s in model_segs):
        return None
    out, i = [], 0
    for s in model_segs:
        out.append([float(x) for x in flat[i:i + len(s.token_ids)]])
        i += len(s.token_ids)
    return out


def _header(traj: Trajectory, step: int | None) -> str:
    ok = is_correct(traj)
    golds = ", ".join(traj.record.golden_answers)
    badges = [
        f'<span class="b {"ok" if ok else "bad"}">{"correct" if ok else "incorrect"}</span>',
        f'<span class="b">reward {traj.reward:.3g}</span>',
        f'<span class="b">searches {traj.n_valid_searches} valid / {traj.n_searches}</span>',
        f'<span class="b">invalid actions {traj.n_invalid}</span>',
        f'<span class="b">turns {traj.n_turns}</span>',
        f'<span class="b">{"finished" if traj.finished else "unfinished"}{" · truncated" if traj.truncated else ""}'
        f'{" · " + esc(traj.extra["end"]) if traj.extra.get("end") else ""}</span>',
        f'<span class="b">{traj.n_model_tokens} model / {traj.n_response_tokens} response tokens</span>',
        f'<span class="b">source {esc(traj.record.data_source)}</span>',
    ]
    if step is not None:
        badges.insert(0, f'<span class="b">step {step}</span>')
    if "advantage" in traj.extra:
        badges.append(f'<span class="b">advantage {float(traj.extra["advantage"]):+.3f}</span>')
    answer = "<i>none</i>" if traj.answer is None else f"<b>{esc(traj.answer)}</b>"
    return (f"<h4>{esc(traj.record.question)}</h4>"
            f'<div>answer {answer} &nbsp;vs&nbsp; gold <b>{esc(golds)}</b> '
            f'<span style="color:#6b7280">({esc(traj.uid)})</span></div>'
            f'<div class="hdr">{"".join(badges)}</div>')


def _legend(trained: frozenset[str]) -> str:
    items = []
    for src in (PROMPT, MODEL, RETRIEVED, FEEDBACK):
        masked = "" if src in trained else " masked"
        items.append(f'<span><span class="sw{masked}" style="background-color:{COLOURS[src]};'
                     f'border-color:{BORDERS[src]}"></span>{LABELS[src]}'
                     f'{"" if src in trained else " — not trained"}</span>')
    items.append('<span><span class="sw" style="background:rgba(220,38,38,.5);border-color:transparent">'
                 '</span>low sampling probability (hover a token for its log-prob)</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _searches(traj: Trajectory) -> str:
    """Each search: its query and the passages that came back (gold answers marked)."""
    blocks, q = [], 0
    golds = traj.record.golden_answers
    for seg in traj.segments:
        if seg.source != RETRIEVED:
            continue
        query = traj.queries[q] if q < len(traj.queries) else "?"
        q += 1
        docs = parse_docs(seg.text)
        if docs:
            items = "".join(f"<li><b>{mark_answers(t, golds)}</b> {mark_answers(x, golds)}</li>" for _, t, x in docs)
            body = f"<ol>{items}</ol>"
        else:  # an error observation or a passage cut by the budget
            body = f"<div>{mark_answers(seg.text.strip(), golds)}</div>"
        found = contains_answer(seg.text, golds)  # on word boundaries, as answer recall counts it
        hit = ('<span class="b ok">gold answer appears in the passages</span>' if found
               else '<span class="b">gold answer not in the passages</span>')
        blocks.append(f'<div class="srch">search {q}: <code>{esc(query)}</code> {hit}{body}</div>')
    if not blocks:
        return "<div><i>no search in this trajectory</i></div>"
    return "".join(blocks)


def render_trajectory_html(traj: Trajectory, *, step: int | None = None, tokenizer: Any = None,
                           mask_retrieved: bool = True, colour_by: str = "logprob", show_prompt: bool = False,
                           css: bool = True) -> str:
    """A self-contained HTML fragment showing `traj` (see the module docstring).

    tokenizer: decodes model tokens one by one for per-token hover; without it a heat strip of
    log-probs is drawn under each model segment. mask_retrieved: the run's
    `algorithm.mask_retrieved` (what the loss saw). colour_by: `logprob`, `advantage` (needs
    `extra["token_advantages"]`) or `none`. show_prompt: open the prompt instead of folding it.
    """
    if colour_by not in ("logprob", "advantage", "none"):
        raise ValueError(f"colour_by must be one of ['logprob', 'advantage', 'none'], got {colour_by!r}")
    trained = trained_sources(mask_retrieved)
    advs = _token_advantages(traj)
    golds = traj.record.golden_answers
    parts, m = [], 0
    for seg in traj.segments:
        seg_advs = None
        if seg.source == MODEL:
            seg_advs = advs[m] if advs is not None else None
            m += 1
        if seg.source == PROMPT:
            text = seg.text if len(seg.text) <= MAX_PROMPT_CHARS else seg.text[:MAX_PROMPT_CHARS] + " [...]"
            shown = Segment(PROMPT, seg.token_ids, text)
            inner = _segment_html(shown, PROMPT in trained, None, None, colour_by, golds)
            parts.append(f'<details{" open" if show_prompt else ""}><summary>prompt: {len(seg.token_ids)} tokens, '
                         f'not trained (click to show)</summary>{inner}</details>')
        else:
            parts.append(_segment_html(seg, seg.source in trained, tokenizer, seg_advs, colour_by, golds))
    return (f'{CSS if css else ""}<div class="sr1-traj">{_header(traj, step)}{_legend(trained)}'
            f'<div class="ctx">{"".join(parts)}</div><h4>Searches</h4>{_searches(traj)}</div>')


def render_comparison_html(items: Sequence[tuple[int, Trajectory]], *, css: bool = True) -> str:
    """One question across training steps: a row per (step, trajectory), oldest first."""
    if not items:
        return f'{CSS if css else ""}<div class="sr1-traj"><i>no trajectories of this question</i></div>'
    first = items[0][1].record
    rows = []
    for step, t in sorted(items, key=lambda x: (x[0], x[1].uid)):
        ok = is_correct(t)
        queries = "<br>".join(esc(q) for q in t.queries) or "<i>none</i>"
        rows.append(f'<tr><td>{step}</td><td><span class="b {"ok" if ok else "bad"}">{"✓" if ok else "✗"}</span> '
                    f'{esc(t.answer) if t.answer is not None else "<i>none</i>"}</td><td>{t.reward:.3g}</td>'
                    f'<td>{t.n_valid_searches}/{t.n_searches}</td><td>{queries}</td><td>{t.n_model_tokens}</td>'
                    f'<td>{t.n_response_tokens}</td><td>{esc(t.uid)}</td></tr>')
    head = ("<tr><th>step</th><th>answer</th><th>reward</th><th>searches (valid/all)</th><th>queries</th>"
            "<th>model tokens</th><th>response tokens</th><th>trajectory</th></tr>")
    return (f'{CSS if css else ""}<div class="sr1-traj"><h4>{esc(first.question)}</h4>'
            f'<div>gold <b>{esc(", ".join(first.golden_answers))}</b> · every logged trajectory of this question, '
            "by step (the rows of a step are its group)</div>"
            f"<table>{head}{''.join(rows)}</table></div>")
