"""One self-contained HTML report: plotly figures (plotly.js embedded once, or linked from its
CDN with ``plotly="cdn"``), findings, a sortable trial table, the spec and the data fingerprint.

The figures are plotly.js JSON from :mod:`tuneops.report.plotly_figures`. Every panel fits its
box at any width from a laptop screen up: the most important parameters are drawn and the rest
are one click away (a ``<details>`` drawn when opened).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import math
import pkgutil
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tuneops._files import write_atomic
from tuneops.errors import UsageError, require
from tuneops.report import figures as F
from tuneops.report._base import (
    Renderer,
    selection_text,
)
from tuneops.report.document import Report, jsonable
from tuneops.report.plotly_figures import figure_json

__all__ = ["HtmlRenderer", "render_html", "PLOTLY_MODES"]

PLOTLY_MODES = ("embed", "cdn")


# -- the page -----------------------------------------------------------------------------------
_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
  max-width:1240px;padding:1em 1.5em;color:#222}
h1{margin-bottom:.2em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#666}
.finding{padding:.4em .7em;margin:.3em 0;border-left:4px solid #999;background:#f7f7f7}
.finding.warning{border-color:#e08a00;background:#fff6e6}
.finding.ok{border-color:#2ca02c;background:#f0fbf0}
.finding b{text-transform:capitalize}
.missing{color:#666;font-style:italic;padding:.5em;background:#fafafa}
section.panel{width:100%;min-width:0}
.plot{width:100%}
details.more{margin:.5em 0}
details.more summary{cursor:pointer;color:#1f5fa8;padding:.3em 0}
table.trials{border-collapse:collapse;font-size:12px}
.tablewrap{max-height:600px;max-width:100%;overflow:auto;border:1px solid #ddd}
table.trials th{position:sticky;top:0;background:#eee;cursor:pointer;user-select:none;
  white-space:nowrap}
table.trials th,table.trials td{border:1px solid #ddd;padding:2px 6px;text-align:right;
  white-space:nowrap}
table.trials td.s{text-align:left;max-width:28em;overflow:hidden;text-overflow:ellipsis}
table.trials tr.sel td,table.kv tr.sel td{background:#ffe9e9}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px;max-width:100%}
.kv td{padding:2px 10px 2px 0;vertical-align:top}
"""

# Figures are drawn from their JSON: visible ones on load, those in a <details> when it opens
# (a plot drawn while hidden has no width). Then the trial table is built from its JSON rows;
# a click on a header sorts by that column, again to reverse; numbers as numbers, empty last.
_PAGE_JS = """
(function(){
  // offline: no button that uploads a figure (trial values, parameters) to Plotly's cloud
  var config = {displaylogo: false, responsive: true, showSendToCloud: false,
                plotlyServerURL: '', showEditInChartStudio: false};
  function draw(el){ if (el.dataset.drawn) return; el.dataset.drawn = '1';
    var fig = JSON.parse(document.getElementById(el.dataset.fig).textContent);
    Plotly.newPlot(el, fig.data, fig.layout, config); }
  document.querySelectorAll('.plot').forEach(function(el){ if (!el.closest('details')) draw(el); });
  document.querySelectorAll('details.more').forEach(function(d){
    d.addEventListener('toggle', function(){
      if (d.open) d.querySelectorAll('.plot').forEach(draw); });
  });
  var t = JSON.parse(document.getElementById('trial-data').textContent);
  var head = document.querySelector('#trial-table thead tr');
  var body = document.querySelector('#trial-table tbody');
  function esc(s){
    return String(s).replace(/&/g,'&amp;').replace(/</g,'&lt;').replace(/"/g,'&quot;'); }
  function cell(v){
    if (v === null || v === undefined) return '<td data-v=""></td>';
    if (typeof v === 'boolean')
      return '<td class="s" data-v="' + (v ? 1 : 0) + '">' + (v ? 'yes' : 'no') + '</td>';
    if (typeof v === 'number')
      return '<td data-v="' + v + '">' + (Number.isInteger(v) ? v : Number(v.toPrecision(5)))
        + '</td>';
    return '<td class="s" data-v="' + esc(v) + '" title="' + esc(v) + '">' + esc(v.slice(0, 80))
      + '</td>';
  }
  body.innerHTML = t.rows.map(function(r){
    return '<tr' + (r[0] === t.selected ? ' class="sel"' : '') + '>' + r.map(cell).join('')
      + '</tr>';
  }).join('');
  head.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        if (x === '' || x === undefined) return 1; if (y === '' || y === undefined) return -1;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      var frag = document.createDocumentFragment();
      rows.forEach(function(r){ frag.appendChild(r); });
      body.appendChild(frag);
    });
  });
})();
"""


#: "<", ">" and "&" as JSON escapes: inside a <script> element "</script" would end it early,
#: and "<!--<script>" (a category value, a parameter's name) made the browser read on past its
#: end, into the page's own script: the report showed no table and no figure.
_SCRIPT_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no markup character the HTML parser reads there."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).translate(_SCRIPT_ESCAPES)


def _table(report: Report) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in report.table.columns)
    rows = [[_table_value(v) for v in row] for row in report.table.rows]
    payload = _script_json({"rows": rows, "selected": report.selected})
    return (
        f'<div class="tablewrap"><table class="trials" id="trial-table"><thead><tr>{head}</tr>'
        f"</thead><tbody></tbody></table></div>"
        f'<script type="application/json" id="trial-data">{payload}</script>'
    )


def _legend(report: Report) -> str:
    """What the trial table's special cells mean, one line per column that has them."""
    return "".join(
        f'<p class="meta"><b>{html.escape(column)}</b>: {html.escape(text)}</p>'
        for column, text in report.table.legend
    )


def _table_value(v: Any) -> Any:
    """A cell for the table's JSON (10,000 rows: the common types take the short path)."""
    kind = type(v)
    if v is None or kind is int or kind is str or kind is bool:
        return v
    if kind is float:
        return float(f"{v:.8g}") if math.isfinite(v) else None
    return jsonable(v)


def _summary(report: Report) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(report.counts.items())) or "no trials"
    objectives = ", ".join(
        f"{o} ({d})" for o, d in zip(report.objectives, report.directions, strict=False)
    )
    rows = [
        ("objectives", objectives),
        ("trials", counts),
        ("constraints", ", ".join(report.constraints) or "none"),
    ]
    rows.append(("selected trial", selection_text(report)))
    data = report.data or {}
    if data:
        rows.append(
            (
                "data",
                f"{data.get('name', '?')}: {data.get('rows', '?')} rows × "
                f"{data.get('columns', '?')} columns, {data.get('task', '?')}; "
                f"fingerprint {data.get('fingerprint', '?')}",
            )
        )
    return (
        '<table class="kv">'
        + "".join(
            f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        + "</table>"
    )


def _g(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)


def _strategy_block(report: Report) -> str:
    """``strategy: staged``: the phases as run, and the top candidates verified with more folds
    and repeats (the values selection used, with their 95% intervals)."""
    record = report.strategy
    if not record:
        return ""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return html.escape(f"{v:.4g}")
        return html.escape("–" if v is None else str(v))

    def table(
        columns: Sequence[str], rows: Sequence[Sequence[Any]], selected: Any = None
    ) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            ('<tr class="sel">' if selected is not None and r[0] == selected else "<tr>")
            + "".join(f"<td>{cell(v)}</td>" for v in r)
            + "</tr>"
            for r in rows
        )
        return f'<table class="kv"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    objectives = list(report.objectives)
    phases = table(
        ["phase", "places in the budget", "sampler", "pruning", "complete", "pruned", "failed"]
        + [f"best {o}" for o in objectives],
        [
            [
                p["phase"],
                f"{p['from_trial']}–{p['to_trial'] - 1}",
                p["sampler"],
                "yes" if p["pruning"] else "no",
                p["trials"]["complete"],
                p["trials"]["pruned"],
                p["trials"]["fail"],
                *p["best"],
            ]
            for p in record["phases"]
        ],
    )
    verified = record.get("verification") or {}
    rows = []
    for c in verified.get("candidates", []):
        row: list[Any] = [f"{c['number']} ★" if c["number"] == report.selected else c["number"]]
        for i, _ in enumerate(objectives):
            ci = (c.get("ci95") or [None] * len(objectives))[i]
            row += [
                c["values"][i],
                c["mean"][i],
                f"{ci[0]:.4g} – {ci[1]:.4g}" if ci else None,
            ]
        rows.append(row)
    verification = (
        f"<h3>Verification: the top {verified.get('k')} candidates, {verified.get('folds')} "
        f"folds × {verified.get('repeats')} repeats on other fold seeds</h3>"
        + table(
            ["trial"]
            + [h for o in objectives for h in (f"{o} (search)", f"{o} (verified)", "95% CI")],
            rows,
            selected=f"{report.selected} ★",
        )
        if rows
        else '<p class="missing">The verification phase has not run yet (it runs when the '
        "budget is spent).</p>"
    )
    return (
        '<section class="panel" data-panel="strategy"><h2>Staged strategy</h2>'
        '<p class="meta">Each trial belongs to the phase of its place in the budget. Selection '
        "chose among the verified candidates at their verified means.</p>"
        f"{phases}{verification}</section>"
    )


def _warm_start_block(report: Report) -> str:
    """How the warm-start trials did: results.json's ``warm_start`` summary, then each warm
    trial's source, state, values and rank among the feasible completed trials (1: the best,
    or on the Pareto front)."""
    section = report.warm_start
    if not section:
        return ""

    def cell(v: Any) -> str:
        if isinstance(v, list):
            return html.escape(", ".join(_g(x) for x in v))
        return html.escape("–" if v is None else _g(v))

    ranking = (
        "1 + the feasible trials that dominate it (1: on the Pareto front)"
        if section.get("ranking") == "pareto"
        else "by value among the feasible completed trials (1: the best)"
    )
    head = "".join(
        f"<th>{html.escape(c)}</th>"
        for c in ("trial", "source", "state", ", ".join(report.objectives), "rank")
    )
    body = "".join(
        ('<tr class="sel">' if t.get("number") == report.selected else "<tr>")
        + "".join(
            f"<td>{cell(v)}</td>"
            for v in (
                f"{t.get('number')} ★" if t.get("number") == report.selected else t.get("number"),
                t.get("source"),
                t.get("state"),
                t.get("values"),
                t.get("rank"),
            )
        )
        + "</tr>"
        for t in section.get("trials", [])
    )
    return (
        '<section class="panel" data-panel="warm_start"><h2>Warm start</h2>'
        f"<p>{html.escape(str(section.get('summary', '')))}.</p>"
        f'<p class="meta">Rank: {html.escape(ranking)}, of {section.get("n_ranked", "?")}.</p>'
        f'<table class="kv"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        "</section>"
    )


def _spec_block(report: Report) -> str:
    parts = []
    if report.spec:
        parts.append(
            "<h3>Spec</h3><pre>"
            + html.escape(yaml.safe_dump(report.spec, sort_keys=False))
            + "</pre>"
        )
    if report.data:
        parts.append(
            "<h3>Data</h3><pre>"
            + html.escape(json.dumps(report.data, indent=2, default=str))
            + "</pre>"
        )
    return "".join(parts) or (
        '<p class="missing">The study was not run from a spec (tuneops.tune or plain Optuna).</p>'
    )


def _sample_note(p: F.Panel) -> str:
    """Say when a panel draws a sample of the trials, and how the sample was chosen."""
    note = F.sample_note(p)
    return f'<p class="meta">{html.escape(note)}</p>' if note else ""


def _panel_section(p: F.Panel, scripts: list[str]) -> str:
    if p.data is None:
        body = f'<p class="missing">Not shown: {html.escape(p.missing or "")}</p>'
    else:
        parts = []
        figures = figure_json(p)
        for i, (caption, fig) in enumerate(figures):
            fid = f"fig-{p.key}-{i}"
            div_id = f"panel-{p.key}" if i == 0 else f"panel-{p.key}-{i}"
            scripts.append(
                f'<script type="application/json" id="{fid}">{_script_json(fig)}</script>'
            )
            div = f'<div class="plot" id="{div_id}" data-fig="{fid}"></div>'
            parts.append(
                div
                if i == 0
                else f'<details class="more"><summary>More: {html.escape(caption)}</summary>'
                f"{div}</details>"
            )
        body = "".join(parts)
    notes = "".join(
        f'<p class="meta">{html.escape(n)}</p>' for n in getattr(p.data, "notes", ()) or ()
    )
    sample = _sample_note(p) if p.data is not None else ""
    return (
        f'<section class="panel" data-panel="{p.key}" data-drawn="{int(p.data is not None)}">'
        f"<h2>{html.escape(p.title)}</h2>{body}{sample}{notes}</section>"
    )


def render_html(report: Report, *, plotly: str = "embed") -> str:
    """The report as one HTML document. ``plotly="embed"`` (default) includes plotly.js (about
    4.6 MB; works offline); ``"cdn"`` links it from cdn.plot.ly, pinned by the sha384 of the
    file plotly bundles (a file of a few hundred KB that needs the network when opened)."""
    if plotly not in PLOTLY_MODES:
        raise UsageError(
            f"plotly (--plotly): expected one of {', '.join(PLOTLY_MODES)}, received "
            f"{plotly!r}."
        )
    require("plotly", "report", "the HTML report")
    from plotly.offline import get_plotlyjs

    if plotly == "embed":
        plotly_js = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    else:
        plotly_js = _plotly_cdn_script()
    scripts: list[str] = []
    sections = [_panel_section(p, scripts) for p in report.panels]
    findings = (
        "".join(
            f'<div class="finding {f.level}"><b>{html.escape(f.topic)}</b>: '
            f"{html.escape(f.text)}</div>"
            for f in report.findings
        )
        or '<p class="meta">Nothing to report.</p>'
    )
    notes = "".join(f'<p class="finding">{html.escape(n)}</p>' for n in report.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tuneops report: {html.escape(report.study)}</title>
<style>{_CSS}</style>
{plotly_js}
</head><body>
<h1>Study {html.escape(report.study)}</h1>
<p class="meta">tuneops report, {html.escape(report.created)}</p>
{notes}
{_summary(report)}
<h2>Findings</h2>
{findings}
{"".join(sections)}
{_strategy_block(report)}
{_warm_start_block(report)}
<section class="panel" data-panel="trials" data-drawn="1">
<h2>Trials</h2>
<p class="meta">Click a column header to sort. ★ marks the selected trial.
The table scrolls inside its box.</p>
{_legend(report)}
{_table(report)}
</section>
<h2>Spec and data</h2>
{_spec_block(report)}
{"".join(scripts)}
<script type="text/javascript">{_PAGE_JS}</script>
</body></html>
"""


# A plotly.js release number (4.1.1, 3.0.0-rc.1), and the version a bundle's header names.
_RELEASE = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?")
_BUNDLE_VERSION = re.compile(rb"\A/\*\*\s*\*\s*plotly\.js v(\S+)")


def _plotly_cdn_script() -> str:
    """The ``<script>`` that loads the installed plotly's plotly.js from cdn.plot.ly, pinned
    by a Subresource Integrity hash of the file plotly bundles.

    Why that hash is the CDN file's: a plotly.py release bundles plotly.js's
    ``dist/plotly.min.js`` of tag ``v<version>`` and records that version
    (``update_bundle`` in plotly.py's ``commands.py``), and cdn.plot.ly/plotly-<version>.min.js
    serves the same dist file (plotly.py's own ``include_plotlyjs="cdn"`` emits a hash of its
    bundle for that URL). A development plotly (``updateplotlyjsdev``) bundles a branch's
    build and names it ``plotly/plotly.js_master_<date>_<rev>``, which the CDN does not serve,
    and a bundle replaced by hand names another version than the one recorded: a hash of the
    bundle would then describe a file the URL does not serve. So the hash is given only when
    the recorded version is a release number and the bundle's header names it; otherwise the
    CDN mode is refused rather than linking a script nobody can pin.

    Raises:
        UsageError: the bundle is not the release its version names.
    """
    require("plotly", "report", "the HTML report")
    from plotly.offline import get_plotlyjs_version

    version = str(get_plotlyjs_version())
    bundled, digest = _plotly_bundle()
    if not _RELEASE.fullmatch(version) or bundled != version:
        raise UsageError(
            f"plotly (--plotly): 'cdn': the installed plotly records plotly.js version "
            f"{version!r} but "
            f"bundles {f'v{bundled}' if bundled else 'a plotly.js of no stated version'}; "
            f"cdn.plot.ly may not serve that file, so no integrity hash can pin it. "
            "Use plotly 'embed' (--plotly embed, the default: the bundled file inside the "
            "report), or install "
            "a released plotly (pip install --force-reinstall plotly)."
        )
    return (
        f'<script src="https://cdn.plot.ly/plotly-{version}.min.js" charset="utf-8" '
        f'integrity="sha384-{digest}" crossorigin="anonymous"></script>'
    )


@functools.cache  # read and hashed once per process (4.6 MB), not once per page
def _plotly_bundle() -> tuple[str | None, str]:
    """The plotly.js version the installed bundle's header names, and the bundle's sha384."""
    bundle = pkgutil.get_data("plotly", "package_data/plotly.min.js") or b""
    named = _BUNDLE_VERSION.match(bundle)
    bundled = named.group(1).decode("ascii", "replace") if named else None
    return bundled, base64.b64encode(hashlib.sha384(bundle).digest()).decode("ascii")


class HtmlRenderer(Renderer):
    """The HTML report; ``plotly``: ``"embed"`` (offline, default) or ``"cdn"`` (smaller file)."""

    single_file = True
    default_name = "report.html"

    def __init__(self, plotly: str = "embed") -> None:
        if plotly not in PLOTLY_MODES:
            raise UsageError(
                f"plotly (--plotly): expected one of {', '.join(PLOTLY_MODES)}, received "
                f"{plotly!r}; 'cdn' links plotly.js instead of embedding it."
            )
        if plotly == "cdn":
            _plotly_cdn_script()  # a bundle no hash can pin fails before any work is done
        self.plotly = plotly

    def render(self, report: Report, out: Path) -> list[Path]:
        return [write_atomic(Path(out), render_html(report, plotly=self.plotly).encode("utf-8"))]
