"""The report's figures as plotly.js JSON (``{"data": [...], "layout": {...}}``): one function
per panel of :mod:`tuneops.report.figures`, drawn by the HTML report (:mod:`tuneops.report.html`).

Written directly, not through plotly.py's validated figure objects: those deep-copy and validate
every value, which cost about 40 s for a 10,000-trial study; the JSON is the same, built in well
under a second. Grids wrap at :data:`GRID_COLUMNS` columns, and the
:data:`~tuneops.report.figures.TOP_PARAMS` most important parameters are drawn first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tuneops.errors import require
from tuneops.report import figures as F
from tuneops.report._base import (
    BEST_COLOR,
    HYPERVOLUME_COLOR,
    KIND_COLORS,
    KIND_NAMES,
    STATE_COLORS,
    WARM_COLOR,
)

__all__ = ["figure_json", "plotly_figure", "Figure"]

GRID_COLUMNS = 4  # slice plots per row: ~270 px each on a 1280 px screen
OUTSIDE_COLOR = "#444444"  # trials beyond a Pareto-front axis range, drawn at its edge
Figure = dict[str, Any]


# -- JSON helpers ---------------------------------------------------------------------------------
def _num(v: Any) -> float | None:
    """A value for plotly.js: 6 significant digits (smaller files), None for missing/NaN/inf."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return float(f"{f:.6g}") if math.isfinite(f) else None


def _nums(values: Sequence[Any]) -> list[float | None]:
    return [_num(v) for v in values]


def _title(text: str, **font: Any) -> dict[str, Any]:
    return {"text": text, **({"font": font} if font else {})}


def _axis_values(a: F.Axis) -> tuple[list[Any], dict[str, Any]]:
    """Values to plot on an axis and the axis settings (categorical labels, log scale)."""
    if a.labels is not None:
        return (
            [a.labels[int(v)] if v is not None else None for v in a.values],
            {"type": "category", "categoryorder": "array", "categoryarray": list(a.labels)},
        )
    return _nums(a.values), ({"type": "log"} if a.log else {})


def _legend(title: str) -> dict[str, Any]:
    """A horizontal legend above the plot area, titled with what the colours mean."""
    return {
        "orientation": "h",
        "x": 0,
        "xanchor": "left",
        "y": 1.02,
        "yanchor": "bottom",
        "title": _title(title),
    }


def _integer_ticks(lo: float, hi: float) -> dict[str, Any]:
    """Axis settings for counts and trial or step numbers: integer labels, and a tick per unit
    over a short span (plotly put ticks at -0.5 and 0.5 "trial" around a single trial)."""
    return {"tickformat": "d", **({"tick0": 0, "dtick": 1} if hi - lo < 10 else {})}


def _grid(
    n: int,
    cols: int,
    row_px: int,
    *,
    top: int = 60,
    bottom: int = 10,
    gap_px: int = 90,
    hgap: float = 0.07,
) -> tuple[dict[str, Any], list[tuple[str, str]], int]:
    """Axes for ``n`` subplots in rows of ``cols``: (layout axes, (x, y) refs, height in px).
    Each row leaves ``gap_px`` below it for its tick labels and axis title."""
    rows = max(1, math.ceil(n / cols))
    height = top + bottom + rows * row_px + (rows - 1) * gap_px + gap_px // 2
    width = (1 - hgap * (cols - 1)) / cols
    layout: dict[str, Any] = {}
    refs = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = c * (width + hgap)
        y1 = 1 - (top + r * (row_px + gap_px)) / height
        y0 = y1 - row_px / height
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"] = {
            "domain": [x0, x0 + width],
            "anchor": f"y{suffix}",
            "automargin": True,
        }
        layout[f"yaxis{suffix}"] = {
            "domain": [max(0.0, y0), y1],
            "anchor": f"x{suffix}",
            "automargin": True,
        }
        refs.append((f"x{suffix}", f"y{suffix}"))
    return layout, refs, height


# -- one function per panel: (panel data) -> figures (the first drawn, the rest behind a click) ---
def _history(d: F.History) -> Figure:
    rows = len(d.series) + (d.hypervolume is not None)
    layout, refs, height = _grid(rows, 1, 230, top=70, gap_px=70)
    data: list[dict[str, Any]] = []
    last = d.last_trial if d.last_trial is not None else None
    first = min((s.numbers[0] for s in d.series if s.numbers), default=0)
    trial_ticks = _integer_ticks(first, last if last is not None else first)
    for r, s in enumerate(d.series):
        x, y = refs[r]
        groups = (
            (
                "trial (feasible)",
                lambda i, s=s: s.feasible[i] and not s.warm_start[i],
                {"color": STATE_COLORS["COMPLETE"], "size": 6, "opacity": 0.7},
            ),
            (
                "infeasible trial",
                lambda i, s=s: not s.feasible[i] and not s.warm_start[i],
                {"color": KIND_COLORS["infeasible"], "size": 7, "symbol": "x"},
            ),
            (
                "warm-start trial",
                lambda i, s=s: s.warm_start[i],
                {"color": WARM_COLOR, "size": 9, "symbol": "diamond"},
            ),
        )
        for name, pick, marker in groups:
            idx = [i for i in range(len(s.numbers)) if pick(i)]
            if idx:
                data.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": name,
                        "legendgroup": name,
                        "showlegend": r == 0,
                        "x": [s.numbers[i] for i in idx],
                        "y": _nums([s.values[i] for i in idx]),
                        "marker": marker,
                        "xaxis": x,
                        "yaxis": y,
                    }
                )
        bx = list(s.numbers)
        by = _nums(s.best)
        if last is not None and bx and last > bx[-1] and by and by[-1] is not None:
            bx.append(last)  # the best so far holds until the study's last trial
            by.append(by[-1])
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "best so far (feasible trials)",
                "legendgroup": "best",
                "showlegend": r == 0,
                "x": bx,
                "y": by,
                "line": {"color": BEST_COLOR, "shape": "hv", "width": 2},
                "xaxis": x,
                "yaxis": y,
            }
        )
        layout[f"xaxis{x[1:]}"].update(title=_title("trial"), **trial_ticks)
        layout[f"yaxis{y[1:]}"]["title"] = _title(f"{s.name} ({s.direction})")
        if F.is_cost(s.name):
            layout[f"yaxis{y[1:]}"]["rangemode"] = "nonnegative"
    if d.hypervolume is not None:
        x, y = refs[-1]
        hx, hy = list(d.hypervolume[0]), _nums(d.hypervolume[1])
        if last is not None and hx and last > hx[-1]:
            hx.append(last)
            hy.append(hy[-1])
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "hypervolume (normalized, 0-1)",
                "x": hx,
                "y": hy,
                "line": {"color": HYPERVOLUME_COLOR, "shape": "hv", "width": 2},
                "xaxis": x,
                "yaxis": y,
            }
        )
        layout[f"xaxis{x[1:]}"].update(title=_title("trial"), **trial_ticks)
        layout[f"yaxis{y[1:]}"].update(
            title=_title("hypervolume (share of this study's box)"), range=[0, 1.02]
        )
    shapes, notes = [], []
    if d.last_feasible is not None and last is not None and d.last_feasible < last:
        for x, y in refs:
            shapes.append(
                {
                    "type": "line",
                    "xref": x,
                    "yref": f"{y} domain",
                    "x0": d.last_feasible,
                    "x1": d.last_feasible,
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#555", "width": 1, "dash": "dot"},
                }
            )
        x, y = refs[0]
        notes.append(
            {
                "xref": x,
                "yref": f"{y} domain",
                "x": d.last_feasible,
                "y": 1,
                "xanchor": "right",
                "yanchor": "top",
                "showarrow": False,
                "text": f"last feasible trial: {d.last_feasible}; later trials pruned, "
                "failed, infeasible or running ",
                "font": {"size": 11, "color": "#555"},
            }
        )
    layout.update(height=height, shapes=shapes, annotations=notes, legend=_legend("marks:"))
    return {"data": data, "layout": layout}


def _importances(d: F.Importances) -> Figure:
    items = list(d.values.items())[::-1]
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "x": _nums([v for _, v in items]),
            "y": [k for k, _ in items],
            "marker": {"color": STATE_COLORS["COMPLETE"]},
            "hovertemplate": "%{y}: %{x:.3f}<extra></extra>",
        }
    ]
    layout = {
        "xaxis": {
            "title": _title(f"importance for {d.target} ({d.evaluator}, sums to 1)"),
            "automargin": True,
        },
        "yaxis": {"title": _title("parameter"), "automargin": True},
        "height": max(260, 22 * len(items) + 130),
    }
    return {"data": data, "layout": layout}


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks at powers of ten (and halves when the range is short) for a log10-scaled axis."""
    a, b = math.floor(lo), math.ceil(hi)
    step = 1 if b - a >= 2 else 0.5
    vals = [a + k * step for k in range(int((b - a) / step) + 1)]
    return vals, [f"{10**v:.3g}" for v in vals]


def _ticks(lo: float, hi: float, log: bool) -> tuple[list[float], list[str]]:
    """About five readable ticks over [lo, hi] (log10 values for a log axis)."""
    if log:
        return _log_ticks(lo, hi)
    if hi <= lo:
        return [lo], [f"{lo:.4g}"]
    vals = [lo + (hi - lo) * k / 4 for k in range(5)]
    return vals, [f"{v:.3g}" for v in vals]


def _parcoords_dim(a: F.Axis) -> dict[str, Any]:
    """One parallel-coordinates axis: categories by name, log parameters by their values (on a
    log10 scale), and trials where the parameter was inactive at an "inactive" tick below."""
    if a.labels is not None:
        missing = len(a.labels)
        cats = [v if v is not None else missing for v in a.values]
        ticks = list(a.labels) + (["inactive"] if missing in cats else [])
        return {
            "label": a.name,
            "values": cats,
            "tickvals": list(range(len(ticks))),
            "ticktext": ticks,
        }
    present = [v for v in a.values if v is not None]
    if not present:
        return {"label": a.name, "values": [0.0] * len(a.values)}
    log = bool(a.log and min(present) > 0)
    vals: list[float | None] = [math.log10(v) if (log and v is not None) else v for v in a.values]
    lo = min(v for v in vals if v is not None)
    hi = max(v for v in vals if v is not None)
    tickvals, ticktext = _ticks(lo, hi, log)
    if any(v is None for v in vals):
        fill = lo - 0.15 * ((hi - lo) or 1.0)
        vals = [fill if v is None else v for v in vals]
        tickvals, ticktext = [fill, *tickvals], ["inactive", *ticktext]
    return {
        "label": a.name,
        "values": _nums(vals),
        "tickvals": _nums(tickvals),
        "ticktext": ticktext,
    }


def _parallel_figure(d: F.ParallelCoordinates, params: Sequence[F.Axis]) -> Figure:
    dims = [_parcoords_dim(a) for a in (*params, *d.axes[d.n_params :])]
    reverse = d.color_direction == "maximize"
    data = [
        {
            "type": "parcoords",
            "dimensions": dims,
            "labelangle": -30,
            "labelside": "top",
            "labelfont": {"size": 11},
            "tickfont": {"size": 10},
            "line": {
                "color": _nums(d.color),
                "colorscale": "Viridis",
                "reversescale": reverse,
                "showscale": True,
                "colorbar": {
                    "title": _title(f"{d.color_name}<br>({d.color_direction})"),
                    "thickness": 14,
                },
            },
        }
    ]
    return {
        "data": data,
        "layout": {"height": 470, "margin": {"l": 70, "r": 40, "t": 140, "b": 30}},
    }


def _pages(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _page_caption(first: int, page: Sequence[F.Axis]) -> str:
    names = ", ".join(a.name for a in page)
    if len(page) == 1:
        return f"parameter {first} by importance ({names})"
    return f"parameters {first}-{first + len(page) - 1} by importance ({names})"


def _parallel(d: F.ParallelCoordinates) -> list[tuple[str, Figure]]:
    params = d.axes[: d.n_params]
    out = [("", _parallel_figure(d, params[: F.TOP_PARAMS]))]
    for k, page in enumerate(_pages(params[F.TOP_PARAMS :], F.TOP_PARAMS)):
        out.append((_page_caption(F.TOP_PARAMS * (k + 1) + 1, page), _parallel_figure(d, page)))
    return out


def _slices_figure(d: F.Slices, params: Sequence[F.Axis]) -> Figure:
    names = list(d.objectives)
    n = len(params) * len(names)
    cols = min(GRID_COLUMNS, len(params))
    # one block of rows per objective: each block starts a new row
    per_block = math.ceil(len(params) / cols) * cols
    layout, refs, height = _grid(per_block * len(names), cols, 210, top=40, gap_px=75, hgap=0.08)
    data: list[dict[str, Any]] = []
    used = []
    for b, obj in enumerate(names):
        for c, a in enumerate(params):
            x, y = refs[b * per_block + c]
            used.append((x, y))
            xs, axis = _axis_values(a)
            idx = [i for i, v in enumerate(xs) if v is not None]
            first = b == 0 and c == 0
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "x": [xs[i] for i in idx],
                    "y": _nums([d.objectives[obj][i] for i in idx]),
                    "xaxis": x,
                    "yaxis": y,
                    "showlegend": False,
                    "text": [f"trial {d.numbers[i]}" for i in idx],
                    "marker": {
                        "size": 5,
                        "opacity": 0.75,
                        "color": [d.numbers[i] for i in idx],
                        # both ends visible on white: the reversed Blues drew the earliest
                        # trials (often the best) near-white
                        "colorscale": "Viridis",
                        "cmin": min(d.numbers),
                        "cmax": max(d.numbers),
                        "showscale": first,
                        **(
                            {
                                "colorbar": {
                                    "title": _title("trial<br>number"),
                                    **_integer_ticks(min(d.numbers), max(d.numbers)),
                                    "thickness": 12,
                                    "len": min(1.0, 300 / height),
                                    "y": 1,
                                    "yanchor": "top",
                                }
                            }
                            if first
                            else {}
                        ),
                    },
                }
            )
            broke = [i for i in idx if d.numbers[i] in d.infeasible]
            if broke:  # over their trial-number colour, as the Pareto figure marks them
                data.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": KIND_NAMES["infeasible"],
                        "legendgroup": "infeasible",
                        "showlegend": not any(
                            t.get("name") == KIND_NAMES["infeasible"] for t in data
                        ),
                        "x": [xs[i] for i in broke],
                        "y": _nums([d.objectives[obj][i] for i in broke]),
                        "xaxis": x,
                        "yaxis": y,
                        "text": [f"trial {d.numbers[i]} (infeasible)" for i in broke],
                        "marker": {"size": 7, "symbol": "x", "color": KIND_COLORS["infeasible"]},
                    }
                )
            chosen = [i for i in idx if d.numbers[i] == d.selected]
            if chosen:
                data.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": "selected trial",
                        "legendgroup": "selected",
                        "showlegend": not any(t.get("name") == "selected trial" for t in data),
                        "x": [xs[i] for i in chosen],
                        "y": _nums([d.objectives[obj][i] for i in chosen]),
                        "xaxis": x,
                        "yaxis": y,
                        "text": [f"trial {d.numbers[i]} (selected)" for i in chosen],
                        "marker": {
                            "size": 11,
                            "symbol": "diamond",
                            "color": KIND_COLORS["selected"],
                            "line": {"color": "black", "width": 1},
                        },
                    }
                )
            xa, ya = f"xaxis{x[1:]}", f"yaxis{y[1:]}"
            layout[xa].update(title=_title(a.name, size=11), **axis)
            layout[ya]["title"] = _title(obj, size=11)
            if F.is_cost(obj):
                layout[ya]["rangemode"] = "nonnegative"
    for i in range(len(refs)):  # grid cells left empty at the end of a block
        if refs[i] not in used:
            for axis_key in (f"xaxis{refs[i][0][1:]}", f"yaxis{refs[i][1][1:]}"):
                layout[axis_key]["visible"] = False
    assert len(used) == n
    layout.update(
        height=height,
        margin={"l": 60, "r": 80, "t": 30, "b": 40},
        legend={**_legend(""), "y": 1.0, "title": None},
    )
    return {"data": data, "layout": layout}


def _slices(d: F.Slices) -> list[tuple[str, Figure]]:
    out = [("", _slices_figure(d, d.params[: F.TOP_PARAMS]))]
    for k, page in enumerate(_pages(d.params[F.TOP_PARAMS :], F.TOP_PARAMS)):
        out.append((_page_caption(F.TOP_PARAMS * (k + 1) + 1, page), _slices_figure(d, page)))
    return out


def _contour(d: F.Contour) -> Figure:
    xs, xaxis = _axis_values(d.x)
    ys, yaxis = _axis_values(d.y)
    data: list[dict[str, Any]] = []
    if d.x.labels is None and d.y.labels is None:
        data.append(
            {
                "type": "contour",
                "x": _nums(d.grid_x),
                "y": _nums(d.grid_y),
                "z": [_nums(row) for row in d.grid_z],
                "colorscale": "Viridis",
                "connectgaps": False,
                "name": "interpolated",
                "colorbar": {"title": _title(f"{d.objective}<br>(interpolated)"), "thickness": 14},
            }
        )
        marker: dict[str, Any] = {"color": "black", "size": 4}
    else:  # a categorical axis has no surface: colour the points by the objective
        marker = {
            "color": _nums(d.z),
            "colorscale": "Viridis",
            "size": 7,
            "showscale": True,
            "colorbar": {"title": _title(d.objective), "thickness": 14},
        }
    data.append(
        {
            "type": "scatter",
            "mode": "markers",
            "x": xs,
            "y": ys,
            "name": "trials",
            "text": [f"{d.objective}={v:.4g}" for v in d.z],
            "marker": marker,
        }
    )
    layout = {
        "xaxis": {"title": _title(d.x.name), **xaxis, "automargin": True},
        "yaxis": {"title": _title(d.y.name), **yaxis, "automargin": True},
        "height": 480,
    }
    if d.x.labels is None and d.y.labels is None:
        # plotly hides the legend of a figure with one legend item: the black dots' meaning
        # (trials, against an interpolated surface) would never show
        layout.update(legend=_legend("black dots:"), showlegend=True)
    return {"data": data, "layout": layout}


def _pareto(d: F.ParetoFront) -> Figure:
    k = len(d.objectives)
    three = k == 3
    style: dict[str, dict[str, Any]] = {
        "dominated": {"size": 6, "opacity": 0.6},
        "pareto": {"size": 8},
        "tied": {"size": 8, "symbol": "circle-open", "line": {"width": 2}},
        "infeasible": {"size": 6, "symbol": "x" if not three else "cross", "opacity": 0.7},
        "selected": {"size": 14, "symbol": "diamond", "line": {"color": "black", "width": 1}},
    }
    if three:
        style["dominated"]["size"], style["pareto"]["size"], style["selected"]["size"] = 3, 5, 8
        style["infeasible"]["size"], style["tied"]["size"] = 4, 5
    data: list[dict[str, Any]] = []

    def clip(row: Sequence[float]) -> list[float | None]:
        return [_num(min(max(v, lo), hi)) for v, (lo, hi) in zip(row, d.ranges, strict=False)]

    for kind in ("dominated", "infeasible", "tied", "pareto", "selected"):
        for out in (False, True):
            idx = [
                i
                for i, kd in enumerate(d.kinds)
                if kd == kind and (bool(d.outside[i]) if d.outside else False) == out
            ]
            if not idx:
                continue
            cols = list(zip(*[clip(d.values[i]) for i in idx], strict=False))
            text = [
                "trial {}: {}".format(
                    d.numbers[i],
                    ", ".join(
                        f"{o}={v:.4g}" for o, v in zip(d.objectives, d.values[i], strict=False)
                    ),
                )
                for i in idx
            ]
            marker = {"color": KIND_COLORS[kind], **style[kind]}
            name = KIND_NAMES[kind]
            if out:
                marker = {
                    **marker,
                    "color": OUTSIDE_COLOR,
                    "opacity": 0.9,
                    "symbol": "triangle-up-open" if not three else "diamond-open",
                    "size": 9 if not three else 4,
                }
                name += ", beyond the axis range (drawn at the edge)"
            trace = {
                "mode": "markers",
                "name": name,
                "text": text,
                "hoverinfo": "text",
                "marker": marker,
                "x": list(cols[0]),
                "y": list(cols[1]),
            }
            if three:
                trace.update(type="scatter3d", z=list(cols[2]))
            else:
                trace["type"] = "scatter"
            data.append(trace)
    labels = [f"{o} ({dr})" for o, dr in zip(d.objectives, d.directions, strict=False)]
    if three:
        axes = {
            f"{a}axis": {"title": _title(lab, size=11), "range": list(r)}
            for a, lab, r in zip("xyz", labels, d.ranges, strict=False)
        }
        layout = {
            "scene": {
                **axes,
                "camera": {"eye": {"x": 1.45, "y": 1.45, "z": 0.85}},
                "domain": {"x": [0.0, 0.98], "y": [0.0, 1.0]},
            },
            "height": 620,
            "margin": {"l": 10, "r": 10, "t": 90, "b": 10},
            "legend": _legend("points:"),
            "showlegend": True,  # one kind (all infeasible: grey crosses) must still say so
        }
    else:
        layout = {
            "xaxis": {"title": _title(labels[0]), "range": list(d.ranges[0]), "automargin": True},
            "yaxis": {"title": _title(labels[1]), "range": list(d.ranges[1]), "automargin": True},
            "height": 500,
            "legend": _legend("points:"),
            "showlegend": True,
        }
    return {"data": data, "layout": layout}


def _intermediate(d: F.IntermediateValues) -> Figure:
    data: list[dict[str, Any]] = []
    # One trace per state, curves separated by gaps: hundreds of traces make plotly slow.
    for state in ("COMPLETE", "PRUNED", "RUNNING", "FAIL"):
        x: list[Any] = []
        y: list[Any] = []
        text: list[str] = []
        for c in d.curves:
            if c.state == state:
                x += [*c.steps, None]
                y += [*_nums(c.values), None]
                text += [f"trial {c.number}"] * (len(c.steps) + 1)
        if x:
            data.append(
                {
                    "type": "scatter",
                    "x": x,
                    "y": y,
                    "text": text,
                    "mode": "lines+markers",
                    "name": state.lower(),
                    "connectgaps": False,
                    "line": {"color": STATE_COLORS[state], "width": 1},
                    "marker": {"size": 4},
                    "opacity": 0.6 if state == "PRUNED" else 0.85,
                }
            )
    steps = [step for c in d.curves for step in c.steps]
    layout = {
        "xaxis": {
            "title": _title("step"),
            "automargin": True,
            **_integer_ticks(min(steps, default=0), max(steps, default=0)),
        },
        "yaxis": {"title": _title(f"{d.objective} (intermediate)"), "automargin": True},
        "height": 420,
        "legend": _legend("trial state:"),
    }
    return {"data": data, "layout": layout}


def _workers(d: F.Workers) -> Figure:
    names = [r.worker for r in d.rows]
    data: list[dict[str, Any]] = []
    for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"):
        counts = [r.counts.get(state, 0) for r in d.rows]
        if any(counts):
            data.append(
                {
                    "type": "bar",
                    "x": names,
                    "y": counts,
                    "name": state.lower(),
                    "marker": {"color": STATE_COLORS[state]},
                }
            )
    data.append(
        {
            "type": "scatter",
            "mode": "text",
            "x": names,
            "showlegend": False,
            "y": [sum(r.counts.values()) for r in d.rows],
            "textposition": "top center",
            "text": [f"{r.busy_label}, {r.n_best} best" for r in d.rows],
        }
    )
    layout = {
        "barmode": "stack",
        "xaxis": {"title": _title("worker"), "automargin": True},
        "yaxis": {
            "title": _title("trials"),
            "automargin": True,
            **_integer_ticks(0, max((sum(r.counts.values()) for r in d.rows), default=0)),
        },
        "height": 380,
        "legend": _legend("trial state:"),
    }
    return {"data": data, "layout": layout}


def _anytime(d: F.Anytime) -> Figure:
    x = [p[0] for p in d.points] + ([d.spent] if d.spent > d.points[-1][0] else [])
    y = [p[1] for p in d.points] + ([d.points[-1][1]] if len(x) > len(d.points) else [])
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "line": {"shape": "hv"},
            "x": x,
            "y": y,
            "name": f"best {d.objective} so far",
        }
    ]
    shapes: list[dict[str, Any]] = []
    drawn: list[str] = []
    for at, label, dash in (
        (d.to_best, "dotted: best reached", "dot"),
        (d.budget, "dashed: the compute budget", "dash"),
    ):
        if at is not None:
            drawn.append(label)
            shapes.append(
                {
                    "type": "line",
                    "x0": at,
                    "x1": at,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"dash": dash, "width": 1},
                    "name": label,
                }
            )
    spent = F.COMPUTE_LABELS.get(d.unit, d.unit) + " spent"
    layout = {
        "xaxis": {"title": _title(spent), "automargin": True},
        "yaxis": {"title": _title(f"best {d.objective}"), "automargin": True},
        "height": 360,
        "shapes": shapes,
        # the lines are shapes, not traces: the legend's title says what they mean, and plotly
        # hides a legend of one trace unless told
        "legend": _legend("; ".join(drawn)),
        "showlegend": True,
    }
    return {"data": data, "layout": layout}


FIGURES: dict[str, Callable[[Any], Figure | list[tuple[str, Figure]]]] = {
    "history": _history,
    "importances": _importances,
    "pareto_front": _pareto,
    "parallel_coordinates": _parallel,
    "slices": _slices,
    "contour": _contour,
    "intermediate_values": _intermediate,
    "workers": _workers,
    "anytime": _anytime,
}


def _finish(fig: Figure) -> Figure:
    layout = {
        "margin": {"l": 60, "r": 30, "t": 60, "b": 50},
        "template": None,
        "autosize": True,
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"size": 12},
        **fig["layout"],
    }
    for key, axis in layout.items():
        if key.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
            axis.setdefault("gridcolor", "#e5e5e5")
            axis.setdefault("zerolinecolor", "#cccccc")
            axis.setdefault("linecolor", "#999999")
            axis.setdefault("showline", True)
    return {"data": fig["data"], "layout": layout}


def figure_json(panel: F.Panel) -> list[tuple[str, Figure]]:
    """The plotly.js figures of a panel that has data: ``[("", main), (caption, more), ...]``;
    figures after the first are the less important parameters, drawn behind a click."""
    made = FIGURES[panel.key](panel.data)
    figures = made if isinstance(made, list) else [("", made)]
    return [(caption, _finish(fig)) for caption, fig in figures]


def plotly_figure(panel: F.Panel) -> Any:
    """The main figure of a panel as a ``plotly.graph_objects.Figure`` (for notebooks)."""
    go = _go()
    return go.Figure(figure_json(panel)[0][1])


def _go() -> Any:
    require("plotly", "report", "the HTML report")
    import plotly.graph_objects as go

    return go

