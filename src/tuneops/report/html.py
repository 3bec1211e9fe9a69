"""One self-contained HTML report: plotly figures with plotly.js embedded (no network at view
time), findings, a sortable trial table, the spec and the data fingerprint."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tuneops.errors import require
from tuneops.report import figures as F
from tuneops.report._base import (
    BEST_COLOR,
    KIND_COLORS,
    STATE_COLORS,
    WARM_COLOR,
    Renderer,
    write_atomic,
)
from tuneops.report.document import Report, jsonable

__all__ = ["HtmlRenderer", "plotly_figure"]


def _go():
    require("plotly", "report", "the HTML report")
    import plotly.graph_objects as go

    return go


def _subplots(**kw: Any):
    from plotly.subplots import make_subplots

    return make_subplots(**kw)


def _axis_values(a: F.Axis) -> tuple[list[Any], dict[str, Any]]:
    """Values to plot on an axis and the axis settings (categorical labels, log scale)."""
    if a.labels is not None:
        return [a.labels[int(v)] if v is not None else None for v in a.values], {"type": "category"}
    return list(a.values), ({"type": "log"} if a.log else {})


# -- one function per panel ---------------------------------------------------------------------
def _history(d: F.History):
    go = _go()
    rows = len(d.series) + (d.hypervolume is not None)
    titles = [f"{s.name} ({s.direction})" for s in d.series]
    if d.hypervolume is not None:
        titles.append("hypervolume of the feasible front (normalized objectives)")
    fig = _subplots(rows=rows, cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.08)
    for r, s in enumerate(d.series, start=1):
        groups = {
            "trial": [i for i in range(len(s.numbers)) if s.feasible[i] and not s.warm_start[i]],
            "warm-start trial": [i for i in range(len(s.numbers)) if s.warm_start[i]],
            "infeasible trial": [i for i in range(len(s.numbers)) if not s.feasible[i] and not s.warm_start[i]],
        }
        style = {"trial": dict(color=STATE_COLORS["COMPLETE"], size=6),
                 "warm-start trial": dict(color=WARM_COLOR, size=9, symbol="diamond"),
                 "infeasible trial": dict(color=KIND_COLORS["infeasible"], size=6, symbol="x")}
        for name, idx in groups.items():
            if idx:
                fig.add_trace(go.Scatter(
                    x=[s.numbers[i] for i in idx], y=[s.values[i] for i in idx], mode="markers",
                    name=name, legendgroup=name, showlegend=r == 1, marker=style[name],
                ), row=r, col=1)
        fig.add_trace(go.Scatter(x=list(s.numbers), y=list(s.best), mode="lines", name="best so far",
                                 legendgroup="best", showlegend=r == 1,
                                 line=dict(color=BEST_COLOR, shape="hv")), row=r, col=1)
    if d.hypervolume is not None:
        fig.add_trace(go.Scatter(x=list(d.hypervolume[0]), y=list(d.hypervolume[1]), mode="lines",
                                 name="hypervolume", line=dict(color=BEST_COLOR, shape="hv")),
                      row=rows, col=1)
    fig.update_xaxes(title_text="trial", row=rows, col=1)
    fig.update_layout(height=260 * rows + 60)
    return fig


def _importances(d: F.Importances):
    go = _go()
    items = list(d.values.items())[::-1]
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                           marker_color=STATE_COLORS["COMPLETE"]))
    fig.update_layout(xaxis_title=f"importance for {d.target} ({d.evaluator})",
                      height=max(250, 40 * len(items) + 120))
    return fig


def _parallel(d: F.ParallelCoordinates):
    go = _go()
    dims = []
    for a in d.axes:
        if a.labels is not None:
            missing = len(a.labels)
            vals = [v if v is not None else missing for v in a.values]
            ticks = list(a.labels) + (["inactive"] if missing in vals else [])
            dims.append(dict(label=a.name, values=vals, tickvals=list(range(len(ticks))), ticktext=ticks))
            continue
        present = [v for v in a.values if v is not None]
        log = a.log and present and min(present) > 0

        vals = [math.log10(v) if (log and v is not None) else v for v in a.values]
        label = f"log10({a.name})" if log else a.name
        if any(v is None for v in vals):
            lo, hi = min(v for v in vals if v is not None), max(v for v in vals if v is not None)
            fill = lo - 0.1 * ((hi - lo) or 1.0)
            vals = [fill if v is None else v for v in vals]
            label += " (lowest: inactive)"
        dims.append(dict(label=label, values=vals))
    fig = go.Figure(go.Parcoords(
        dimensions=dims, line=dict(color=list(d.color), colorscale="Viridis", showscale=True,
                                   colorbar=dict(title=dict(text=d.color_name))),
    ))
    fig.update_layout(height=420)
    return fig


def _slices(d: F.Slices):
    go = _go()
    names = list(d.objectives)
    fig = _subplots(rows=len(names), cols=len(d.params), shared_yaxes=True,
                    column_titles=[a.name for a in d.params], row_titles=names,
                    horizontal_spacing=min(0.05, 0.5 / max(1, len(d.params))))
    for r, obj in enumerate(names, start=1):
        for c, a in enumerate(d.params, start=1):
            xs, axis = _axis_values(a)
            idx = [i for i, x in enumerate(xs) if x is not None]
            fig.add_trace(go.Scatter(
                x=[xs[i] for i in idx], y=[d.objectives[obj][i] for i in idx], mode="markers",
                text=[f"trial {d.numbers[i]}" for i in idx], showlegend=False,
                marker=dict(color=[d.numbers[i] for i in idx], colorscale="Blues", size=6,
                            showscale=r == 1 and c == len(d.params),
                            colorbar=dict(title=dict(text="trial"), x=1.06)),
            ), row=r, col=c)
            fig.update_xaxes(row=r, col=c, **axis)
    # A wide grid keeps its own width (the page scrolls); a narrow one follows the page.
    fig.update_layout(height=max(300, 260 * len(names)), width=230 * len(d.params) if len(d.params) > 5 else None)
    return fig


def _contour(d: F.Contour):
    go = _go()
    xs, xaxis = _axis_values(d.x)
    ys, yaxis = _axis_values(d.y)
    grid = [[v for v in row] for row in d.grid_z]
    fig = go.Figure()
    if d.x.labels is None and d.y.labels is None:
        fig.add_trace(go.Contour(x=list(d.grid_x), y=list(d.grid_y), z=grid, colorscale="Viridis",
                                 connectgaps=False, colorbar=dict(title=dict(text=d.objective))))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="trials", text=[f"{d.objective}={v:.4g}" for v in d.z],
                             marker=dict(color="black", size=5)))
    fig.update_xaxes(title_text=d.x.name, **xaxis)
    fig.update_yaxes(title_text=d.y.name, **yaxis)
    fig.update_layout(height=480)
    return fig


def _pareto(d: F.ParetoFront):
    go = _go()
    fig = go.Figure()
    style = {"dominated": dict(size=6), "pareto": dict(size=8), "infeasible": dict(size=6, symbol="x"),
             "selected": dict(size=14, symbol="diamond", line=dict(color="black", width=1))}
    for kind in ("dominated", "infeasible", "pareto", "selected"):
        idx = [i for i, k in enumerate(d.kinds) if k == kind]
        if not idx:
            continue
        cols = [[d.values[i][j] for i in idx] for j in range(len(d.objectives))]
        text = [f"trial {d.numbers[i]}" for i in idx]
        marker = dict(color=KIND_COLORS[kind], **style[kind])
        name = {"pareto": "Pareto front (feasible)", "selected": "selected trial"}.get(kind, kind)
        if len(d.objectives) == 3:
            marker["size"] = marker["size"] // 2 + 2
            marker["symbol"] = {"x": "x", "diamond": "diamond"}.get(marker.get("symbol", "circle"), "circle")
            fig.add_trace(go.Scatter3d(x=cols[0], y=cols[1], z=cols[2], mode="markers", name=name,
                                       text=text, marker=marker))
        else:
            fig.add_trace(go.Scatter(x=cols[0], y=cols[1], mode="markers", name=name, text=text, marker=marker))
    labels = [f"{o} ({dr})" for o, dr in zip(d.objectives, d.directions)]
    if len(d.objectives) == 3:
        fig.update_layout(scene=dict(xaxis_title=labels[0], yaxis_title=labels[1], zaxis_title=labels[2]),
                          height=560)
    else:
        fig.update_layout(xaxis_title=labels[0], yaxis_title=labels[1], height=460)
    return fig


def _intermediate(d: F.IntermediateValues):
    go = _go()
    fig = go.Figure()
    # One trace per state, curves separated by gaps: hundreds of traces make plotly slow.
    for state in ("COMPLETE", "PRUNED", "RUNNING", "FAIL"):
        x: list[Any] = []
        y: list[Any] = []
        text: list[str] = []
        for c in d.curves:
            if c.state == state:
                x += [*c.steps, None]
                y += [*c.values, None]
                text += [f"trial {c.number}"] * (len(c.steps) + 1)
        if x:
            fig.add_trace(go.Scatter(
                x=x, y=y, text=text, mode="lines+markers", name=state.lower(), connectgaps=False,
                line=dict(color=STATE_COLORS[state], width=1), marker=dict(size=4),
                opacity=0.6 if state == "PRUNED" else 0.85,
            ))
    fig.update_layout(xaxis_title="step", yaxis_title=f"{d.objective} (intermediate)", height=420)
    return fig


def _workers(d: F.Workers):
    go = _go()
    fig = go.Figure()
    names = [r.worker for r in d.rows]
    for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"):
        counts = [r.counts.get(state, 0) for r in d.rows]
        if any(counts):
            fig.add_trace(go.Bar(x=names, y=counts, name=state.lower(), marker_color=STATE_COLORS[state]))
    fig.add_trace(go.Scatter(
        x=names, y=[sum(r.counts.values()) for r in d.rows], mode="text", showlegend=False,
        text=[f"{r.busy_s:.0f}s busy, {r.n_best} best" for r in d.rows], textposition="top center",
    ))
    fig.update_layout(barmode="stack", yaxis_title="trials", height=380)
    return fig


FIGURES: dict[str, Callable[[Any], Any]] = {
    "history": _history,
    "importances": _importances,
    "pareto_front": _pareto,
    "parallel_coordinates": _parallel,
    "slices": _slices,
    "contour": _contour,
    "intermediate_values": _intermediate,
    "workers": _workers,
}


def plotly_figure(panel: F.Panel):
    """The plotly figure of a panel that has data."""
    fig = FIGURES[panel.key](panel.data)
    fig.update_layout(margin=dict(l=60, r=30, t=50, b=50), template="plotly_white")
    return fig


# -- the page -----------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#666} .finding{padding:.4em .7em;margin:.3em 0;border-left:4px solid #999;background:#f7f7f7}
.finding.warning{border-color:#e08a00;background:#fff6e6} .finding.ok{border-color:#2ca02c;background:#f0fbf0}
.finding b{text-transform:capitalize} .missing{color:#666;font-style:italic;padding:.5em;background:#fafafa}
table.trials{border-collapse:collapse;font-size:12px;width:100%} .tablewrap{max-height:600px;overflow:auto}
table.trials th{position:sticky;top:0;background:#eee;cursor:pointer;user-select:none;white-space:nowrap}
table.trials th,table.trials td{border:1px solid #ddd;padding:2px 6px;text-align:right}
table.trials td.s{text-align:left} table.trials tr.sel td{background:#ffe9e9}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px} .kv td{padding:2px 10px 2px 0}
"""

# Click a header to sort by that column; again to reverse. Numbers sort as numbers, empty last.
_SORT_JS = """
document.querySelectorAll('table.trials th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x === '' || x === undefined) return 1; if (y === '' || y === undefined) return -1;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _cell(v: Any) -> str:
    v = jsonable(v)
    if v is None:
        return '<td data-v=""></td>'
    if isinstance(v, bool):
        return f'<td class="s" data-v="{int(v)}">{"yes" if v else "no"}</td>'
    if isinstance(v, (int, float)):
        shown = f"{v:.5g}" if isinstance(v, float) else str(v)
        return f'<td data-v="{v!r}">{shown}</td>'
    text = html.escape(v)
    return f'<td class="s" data-v="{text}" title="{text}">{html.escape(v[:80])}</td>'


def _table(report: Report) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in report.table.columns)
    body = []
    for row in report.table.rows:
        cls = ' class="sel"' if row[0] == report.selected else ""
        body.append(f"<tr{cls}>" + "".join(_cell(v) for v in row) + "</tr>")
    return (f'<div class="tablewrap"><table class="trials" id="trial-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _summary(report: Report) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(report.counts.items())) or "no trials"
    objectives = ", ".join(f"{o} ({d})" for o, d in zip(report.objectives, report.directions))
    rows = [("objectives", objectives), ("trials", counts),
            ("constraints", ", ".join(report.constraints) or "none")]
    if report.selected is not None:
        sel = next((r for r in report.table.rows if r[0] == report.selected), None)
        values = ""
        if sel is not None:
            values = ", ".join(f"{o}={jsonable(v):.4g}" if isinstance(jsonable(v), float) else f"{o}={v}"
                               for o, v in zip(report.objectives, sel[2:2 + len(report.objectives)]))
        policy = (report.selection or {}).get("policy")
        rows.append(("selected trial", f"{report.selected} ★ {values}" + (f" (policy: {policy})" if policy else "")))
    else:
        rows.append(("selected trial", "none (no completed trial meets the constraints)"))
    data = report.data or {}
    if data:
        rows.append(("data", f"{data.get('name', '?')}: {data.get('rows', '?')} rows × "
                             f"{data.get('columns', '?')} columns, {data.get('task', '?')}; "
                             f"fingerprint {data.get('fingerprint', '?')}"))
    return '<table class="kv">' + "".join(
        f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    ) + "</table>"


def _spec_block(report: Report) -> str:
    parts = []
    if report.spec:

        parts.append("<h3>Spec</h3><pre>" + html.escape(yaml.safe_dump(report.spec, sort_keys=False)) + "</pre>")
    if report.data:
        parts.append("<h3>Data</h3><pre>" + html.escape(json.dumps(report.data, indent=2, default=str)) + "</pre>")
    return "".join(parts) or '<p class="missing">The study was not run from a spec (tuneops.tune or plain Optuna).</p>'


def render_html(report: Report) -> str:
    """The report as one HTML document (about 5 MB: plotly.js is embedded once)."""
    _go()  # fails with the install command when plotly is missing
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    sections = []
    for p in report.panels:
        body = (f'<p class="missing">Not shown: {html.escape(p.missing or "")}</p>' if p.data is None else
                pio.to_html(plotly_figure(p), full_html=False, include_plotlyjs=False,
                            div_id=f"panel-{p.key}", config={"displaylogo": False, "responsive": True}))
        notes = "".join(f'<p class="meta">{html.escape(n)}</p>' for n in getattr(p.data, "notes", ()) or ())
        sections.append(f'<section class="panel" data-panel="{p.key}" data-drawn="{int(p.data is not None)}">'
                        f"<h2>{html.escape(p.title)}</h2>{body}{notes}</section>")
    findings = "".join(
        f'<div class="finding {f.level}"><b>{html.escape(f.topic)}</b>: {html.escape(f.text)}</div>'
        for f in report.findings
    ) or '<p class="meta">Nothing to report.</p>'
    notes = "".join(f'<p class="finding">{html.escape(n)}</p>' for n in report.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tuneops report: {html.escape(report.study)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Study {html.escape(report.study)}</h1>
<p class="meta">tuneops report, {html.escape(report.created)}</p>
{notes}
{_summary(report)}
<h2>Findings</h2>
{findings}
{''.join(sections)}
<h2>Trials</h2>
<p class="meta">Click a column header to sort. ★ marks the selected trial.</p>
{_table(report)}
<h2>Spec and data</h2>
{_spec_block(report)}
<script type="text/javascript">{_SORT_JS}</script>
</body></html>
"""


class HtmlRenderer(Renderer):
    single_file = True
    default_name = "report.html"

    def render(self, report: Report, out: Path) -> list[Path]:
        return [write_atomic(Path(out), render_html(report).encode("utf-8"))]
