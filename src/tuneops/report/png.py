"""Each panel as a PNG (matplotlib, Agg backend) for documents: ``DIR/<panel>.png``.

Panels a study cannot fill are listed in ``DIR/README.txt`` with the reason, with the findings.

The figures are drawn into a temporary folder beside ``DIR`` that takes ``DIR``'s place when
every file is written: an interrupted or failed report leaves ``DIR`` as it was (an earlier
report's figures, or nothing), never half the figures or new ones mixed with old ones.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import secrets
import shutil
import signal
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tuneops._files import write_error
from tuneops.errors import UsageError, WriteError, require
from tuneops.report import figures as F
from tuneops.report._base import (
    BEST_COLOR,
    HYPERVOLUME_COLOR,
    KIND_COLORS,
    KIND_NAMES,
    STATE_COLORS,
    WARM_COLOR,
    Renderer,
    selection_text,
)
from tuneops.report.document import Report

__all__ = ["PngRenderer"]

#: What a figures folder holds; a folder with anything else is not replaced (it is not one).
_OURS = (".png", "README.txt")


def _plt():
    require("matplotlib", "report", "PNG figures")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _positions(a: F.Axis) -> tuple[list[int], list[float]]:
    idx = [i for i, v in enumerate(a.values) if v is not None]
    return idx, [float(v) for v in a.values if v is not None]


def _style_axis(ax: Any, a: F.Axis, which: str) -> None:
    if a.labels is not None:
        getattr(ax, f"set_{which}ticks")(range(len(a.labels)))
        getattr(ax, f"set_{which}ticklabels")(
            a.labels, rotation=30 if which == "x" else 0, fontsize=7
        )
    elif a.log:
        getattr(ax, f"set_{which}scale")("log")
        _log_ticks(getattr(ax, f"{which}axis"), a)
    getattr(ax, f"set_{which}label")(a.name)


def _log_ticks(axis: Any, a: F.Axis) -> None:
    """Labels of a log axis as plain numbers, at 1, 2 and 5 times powers of ten over two
    decades or less (powers of ten beyond; the ends of the values when fewer than two fall
    inside), minor ticks unlabelled. matplotlib labelled every minor tick of a short log axis
    ("2x10^0 3x10^0 4x10^0 6x10^0" for n_neighbors 1-8), into one unreadable row."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    present = [v for v in a.values if v is not None and v > 0]
    if not present:
        return
    lo, hi = min(present), max(present)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks: list[float] = []
    for subs in ((1,) if last - first > 2 else (1, 2, 5), range(1, 10)):
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in subs]
        if sum(lo <= t <= hi for t in ticks) >= 2:
            break
    else:
        ticks = sorted({lo, hi, *(t for t in ticks if lo <= t <= hi)})
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def _integer_ticks(axis: Any) -> None:
    """Trial numbers, steps and counts: integer ticks only (matplotlib put "0.5 trial" between
    two trials, as plotly did before the HTML report's fix)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _cost_floor(ax: Any, name: str, values: Any) -> None:
    """A serving cost (latency, size) is never negative: matplotlib's margin drew its axis
    from below 0 ("-0.2 ms") under values near 0, as plotly did before the HTML's fix."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    bottom, top = ax.get_ylim()
    if F.is_cost(name) and present and bottom < 0 <= min(present):
        ax.set_ylim(0, top)


def _history(d: F.History):
    plt = _plt()
    rows = len(d.series) + (d.hypervolume is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.8 * rows), sharex=True, squeeze=False)
    last = d.last_trial
    for ax, s in zip(axes[:, 0], d.series, strict=False):
        for label, pick, kw in (
            (
                "trial",
                lambda i, s=s: s.feasible[i] and not s.warm_start[i],
                dict(c=STATE_COLORS["COMPLETE"], s=12),
            ),
            (
                "infeasible",
                lambda i, s=s: not s.feasible[i] and not s.warm_start[i],
                dict(c=KIND_COLORS["infeasible"], s=14, marker="x"),
            ),
            ("warm start", lambda i, s=s: s.warm_start[i], dict(c=WARM_COLOR, s=30, marker="D")),
        ):
            idx = [i for i in range(len(s.numbers)) if pick(i)]
            if idx:
                ax.scatter(
                    [s.numbers[i] for i in idx], [s.values[i] for i in idx], label=label, **kw
                )
        bx = list(s.numbers)
        by = [math.nan if b is None else b for b in s.best]
        if last is not None and bx and last > bx[-1]:
            # the best so far holds until the study's last trial: pruned, failed or running
            # trials after the last completed one have no point, and the axis ended before them
            bx.append(last)
            by.append(by[-1])
        ax.step(bx, by, where="post", color=BEST_COLOR, label="best so far (feasible trials)")
        ax.set_ylabel(f"{s.name} ({s.direction})")
        _cost_floor(ax, s.name, s.values)
        ax.legend(fontsize=7, loc="best")
    if d.hypervolume is not None:
        ax = axes[-1, 0]
        hx, hy = list(d.hypervolume[0]), list(d.hypervolume[1])
        if last is not None and hx and last > hx[-1]:
            hx.append(last)
            hy.append(hy[-1])
        ax.step(
            hx,
            hy,
            where="post",
            color=HYPERVOLUME_COLOR,
            label="hypervolume (normalized, 0-1)",
        )
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("hypervolume\n(share of this study's box)")
        ax.legend(fontsize=7, loc="lower right")
    if d.last_feasible is not None and last is not None and d.last_feasible < last:
        for ax in axes[:, 0]:
            ax.axvline(d.last_feasible, color="#555", linestyle=":", linewidth=1)
        axes[0, 0].annotate(
            f"last feasible trial: {d.last_feasible}; later trials pruned, failed, infeasible "
            "or running ",
            # half-way up, on a white ground: at the top it ran over the best-so-far line
            (d.last_feasible, 0.5),
            xycoords=("data", "axes fraction"),
            xytext=(-3 if d.last_feasible > (last + axes[0, 0].get_xlim()[0]) / 2 else 3, 0),
            textcoords="offset points",
            ha="right" if d.last_feasible > (last + axes[0, 0].get_xlim()[0]) / 2 else "left",
            va="center",
            fontsize=7,
            color="#555",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1},
        )
    axes[-1, 0].set_xlabel("trial")
    _integer_ticks(axes[-1, 0].xaxis)
    return fig


def _importances(d: F.Importances):
    plt = _plt()
    items = list(d.values.items())[::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.4 * len(items) + 1)))
    ax.barh([k for k, _ in items], [v for _, v in items], color=STATE_COLORS["COMPLETE"])
    ax.set_xlabel(f"importance for {d.target} ({d.evaluator})")
    return fig


def _parallel(d: F.ParallelCoordinates):
    """The top parameters and the objectives, each axis scaled to [0, 1] with its own tick
    labels (values, log values, category names; "inactive" below for conditional ones)."""
    plt = _plt()
    axes_shown = [*d.axes[: min(d.n_params, F.TOP_PARAMS)], *d.axes[d.n_params :]]
    fig, ax = plt.subplots(figsize=(max(8, 1.25 * len(axes_shown) + 1.5), 5))
    scaled = []
    for k, a in enumerate(axes_shown):
        present = [v for v in a.values if v is not None]
        log = bool(a.log and present and min(present) > 0)
        vals = [None if v is None else (math.log10(v) if log else v) for v in a.values]
        lo, hi = (
            (min(v for v in vals if v is not None), max(v for v in vals if v is not None))
            if present
            else (0.0, 1.0)
        )
        span = (hi - lo) or 1.0
        inactive = -0.08
        scaled.append([inactive if v is None else (v - lo) / span for v in vals])
        if a.labels is not None:
            ticks = [
                (i / max(1, len(a.labels) - 1) if len(a.labels) > 1 else 0.5, lab)
                for i, lab in enumerate(a.labels)
            ]
            scaled[-1] = [
                inactive
                if v is None
                else (v / max(1, len(a.labels) - 1) if len(a.labels) > 1 else 0.5)
                for v in a.values
            ]
        else:
            ticks = [
                (f, f"{(10 ** (lo + f * span)) if log else lo + f * span:.3g}") for f in (0, 0.5, 1)
            ]
        if any(v is None for v in a.values):
            ticks.append((inactive, "inactive"))
        ax.axvline(k, color="#999", linewidth=0.8)
        for y, text in ticks:
            ax.annotate(
                str(text)[:14],
                (k, y),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=7,
                va="center",
                ha="left",
                color="#333",
            )
    cmap = plt.get_cmap("viridis_r" if d.color_direction == "maximize" else "viridis")
    lo, hi = min(d.color), max(d.color)
    from matplotlib.collections import LineCollection

    xs = list(range(len(axes_shown)))
    lines = [list(zip(xs, [col[i] for col in scaled], strict=False)) for i in range(len(d.numbers))]
    ax.add_collection(
        LineCollection(
            lines,
            colors=[cmap((c - lo) / ((hi - lo) or 1.0)) for c in d.color],
            alpha=0.45,
            linewidths=0.7,
        )
    )
    ax.set_xticks(range(len(axes_shown)))
    ax.set_xticklabels([a.name for a in axes_shown], rotation=25, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.3, len(axes_shown) - 0.4)
    ax.set_ylim(-0.15, 1.05)
    norm = plt.Normalize(lo, hi)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
    bar.set_label(f"{d.color_name} ({d.color_direction})")
    if d.n_params > F.TOP_PARAMS:
        ax.set_title(
            f"the {F.TOP_PARAMS} most important of {d.n_params} parameters "
            "(all of them in the HTML report)",
            fontsize=8,
        )
    return fig


def _slices(d: F.Slices):
    """The top parameters against each objective, in rows of 4 (one block per objective)."""
    plt = _plt()
    names = list(d.objectives)
    params = d.params[: F.TOP_PARAMS]
    cols = min(4, len(params))
    per = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(
        per * len(names),
        cols,
        figsize=(3.0 * cols + 1, 2.6 * per * len(names)),
        squeeze=False,
        layout="constrained",
    )
    for b, obj in enumerate(names):
        for c in range(per * cols):
            ax = axes[b * per + c // cols, c % cols]
            if c >= len(params):
                ax.set_visible(False)
                continue
            a = params[c]
            idx, xs = _positions(a)
            points = ax.scatter(
                xs,
                [d.objectives[obj][i] for i in idx],
                c=[d.numbers[i] for i in idx],
                cmap="viridis",  # both ends visible on white (Blues drew early trials white)
                s=10,
                vmin=min(d.numbers),
                vmax=max(d.numbers),
            )
            broke = [k for k, i in enumerate(idx) if d.numbers[i] in d.infeasible]
            if broke:  # as the Pareto figure marks them
                ax.scatter(
                    [xs[k] for k in broke],
                    [d.objectives[obj][idx[k]] for k in broke],
                    c=KIND_COLORS["infeasible"],
                    marker="x",
                    s=24,
                    linewidths=1.0,
                    label=KIND_NAMES["infeasible"],
                )
            chosen = [i for i in idx if d.numbers[i] == d.selected]
            if chosen:
                ax.scatter(
                    [xs[idx.index(i)] for i in chosen],
                    [d.objectives[obj][i] for i in chosen],
                    c=KIND_COLORS["selected"],
                    marker="D",
                    s=40,
                    edgecolors="black",
                    linewidths=0.8,
                    label="selected trial",
                )
            _style_axis(ax, a, "x")
            ax.set_ylabel(obj, fontsize=8)
            _cost_floor(ax, obj, d.objectives[obj])
            ax.tick_params(labelsize=7)
    bar = fig.colorbar(points, ax=axes, shrink=0.5, label="trial number")
    _integer_ticks(bar.ax.yaxis)
    # one legend entry per kind drawn (infeasible trials, the selected trial)
    entries: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside upper left", fontsize=8)
    return fig


def _contour(d: F.Contour):
    """The interpolated surface with the trials as black dots; with a categorical axis (no
    surface) the trials themselves coloured by the objective, as the HTML draws them (they
    were black dots on white: the objective appeared nowhere)."""
    plt = _plt()

    fig, ax = plt.subplots(figsize=(6.5, 5))
    if d.x.labels is None and d.y.labels is None:
        z = np.array([[math.nan if v is None else v for v in row] for row in d.grid_z])
        cs = ax.contourf(d.grid_x, d.grid_y, np.ma.masked_invalid(z), levels=15, cmap="viridis")
        fig.colorbar(cs, ax=ax, label=f"{d.objective} (interpolated)")
        ax.scatter(list(d.x.values), list(d.y.values), c="black", s=8, label="trials")
        # what the dots are, against a surface that is not measured
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, 1.08), frameon=False)
    else:
        points = ax.scatter(list(d.x.values), list(d.y.values), c=list(d.z), cmap="viridis", s=24)
        fig.colorbar(points, ax=ax, label=d.objective)
    _style_axis(ax, d.x, "x")
    _style_axis(ax, d.y, "y")
    return fig


def _pareto(d: F.ParetoFront):
    plt = _plt()
    three = len(d.objectives) == 3
    fig = plt.figure(figsize=(7.5, 6))
    ax = fig.add_subplot(projection="3d" if three else None)
    markers = {"dominated": "o", "tied": "D", "pareto": "o", "infeasible": "x", "selected": "*"}
    sizes = {"dominated": 10, "tied": 18, "pareto": 26, "infeasible": 14, "selected": 160}
    outside = d.outside or tuple(False for _ in d.kinds)

    def clip(i: int) -> list[float]:
        return [min(max(v, lo), hi) for v, (lo, hi) in zip(d.values[i], d.ranges, strict=False)]

    for kind in ("dominated", "infeasible", "tied", "pareto", "selected"):
        idx = [i for i, k in enumerate(d.kinds) if k == kind and not outside[i]]
        if idx:
            cols = list(zip(*[clip(i) for i in idx], strict=False))
            ax.scatter(
                *cols,
                c=KIND_COLORS[kind],
                marker=markers[kind],
                s=sizes[kind],
                label=KIND_NAMES[kind],
            )
    # Beyond the axes, each kind apart as the HTML draws them: one grey "beyond the axis range"
    # group did not say whether those trials were infeasible or dominated feasible ones.
    for kind in ("dominated", "infeasible", "tied", "pareto", "selected"):
        idx = [i for i, k in enumerate(d.kinds) if k == kind and outside[i]]
        if idx:
            ax.scatter(
                *list(zip(*[clip(i) for i in idx], strict=False)),
                facecolors="none",
                edgecolors=KIND_COLORS[kind],
                marker="^",
                s=22,
                label=f"{KIND_NAMES[kind]}, beyond the axis range (drawn at the edge)",
            )
    labels = [f"{o} ({dr})" for o, dr in zip(d.objectives, d.directions, strict=False)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if d.ranges:
        ax.set_xlim(*d.ranges[0])
        ax.set_ylim(*d.ranges[1])
    if three:
        ax.set_zlabel(labels[2])
        if d.ranges:
            ax.set_zlim(*d.ranges[2])
    ax.legend(fontsize=7)
    return fig


def _intermediate(d: F.IntermediateValues):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    seen: set[str] = set()
    for c in d.curves:
        ax.plot(
            c.steps,
            c.values,
            color=STATE_COLORS.get(c.state, "#333"),
            linewidth=0.8,
            marker=".",
            alpha=0.7,
            label=None if c.state in seen else c.state.lower(),
        )
        seen.add(c.state)
    ax.set_xlabel("step")
    _integer_ticks(ax.xaxis)
    ax.set_ylabel(f"{d.objective} (intermediate)")
    ax.legend(fontsize=8)
    return fig


def _workers(d: F.Workers):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(d.rows) + 2), 4))
    names = [r.worker for r in d.rows]
    bottom = [0] * len(names)
    for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"):
        counts = [r.counts.get(state, 0) for r in d.rows]
        if any(counts):
            ax.bar(names, counts, bottom=bottom, color=STATE_COLORS[state], label=state.lower())
            bottom = [b + c for b, c in zip(bottom, counts, strict=False)]
    for i, r in enumerate(d.rows):
        ax.annotate(
            f"{r.busy_label}, {r.n_best} best",
            (i, bottom[i]),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_ylabel("trials")
    _integer_ticks(ax.yaxis)
    ax.tick_params(axis="x", labelrotation=20, labelsize=7)
    ax.legend(fontsize=8)
    return fig


def _anytime(d: F.Anytime):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    x = [p[0] for p in d.points] + [max(d.spent, d.points[-1][0])]
    y = [p[1] for p in d.points] + [d.points[-1][1]]
    ax.step(x, y, where="post", marker=".", label=f"best {d.objective} so far")
    if d.to_best is not None:
        ax.axvline(d.to_best, linestyle=":", linewidth=1, color="#444", label="best reached")
    if d.budget is not None:
        ax.axvline(d.budget, linestyle="--", linewidth=1, color="#888", label="budget")
    ax.set_xlabel(F.COMPUTE_LABELS.get(d.unit, d.unit) + " spent")
    ax.set_ylabel(f"best {d.objective}")
    ax.legend(fontsize=8)
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
    "anytime": _anytime,
}


def _captions(panel: F.Panel) -> list[str]:
    """What the HTML report writes under a figure (the panel's notes, such as why the
    hypervolume is not drawn or that it is relative to the study; the sample drawn of a large
    study), and the parameters this renderer leaves out."""
    d = panel.data
    lines = [str(n) for n in getattr(d, "notes", ()) or ()]
    if F.sample_note(panel):
        lines.append(F.sample_note(panel))
    if panel.key == "slices" and len(d.params) > F.TOP_PARAMS:
        lines.append(
            f"The {F.TOP_PARAMS} most important of {len(d.params)} parameters are drawn (all of "
            "them in the HTML report)."
        )
    return lines


def _figure(panel: F.Panel) -> Any:
    """The matplotlib figure of a panel that has data, as the report writes it: the panel's
    captions below the plot, where a figure copied into a document keeps them."""
    plt = _plt()
    # No offset on an axis: model sizes 8.4609-8.4619 read "0.0000-0.0008, +8.461" with the
    # offset written where the eye does not look (plotly writes the values)
    with plt.rc_context({"axes.formatter.useoffset": False}):
        fig = FIGURES[panel.key](panel.data)
    captions = _captions(panel)
    if captions:
        width = max(60, int(fig.get_figwidth() * 15))  # characters of 8 pt text per line
        fig.text(
            0.01,
            0,
            "\n".join(textwrap.fill(c, width) for c in captions),
            ha="left",
            va="top",
            fontsize=8,
            color="#444",
        )
    return fig


def _check_replaceable(out: Path) -> None:
    """Refuse, before any drawing, an ``out`` that replacing would lose something in: a file,
    or a folder holding anything but the PNGs and README.txt of a figures folder.

    Raises:
        UsageError: names the folder, what is in it, and what to do.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(
            f"figures folder {str(out)!r} is {'a link' if out.is_symlink() else 'a file'}; "
            "expected a directory (new, empty, or the figures of an earlier report, which the "
            "new ones replace). What to do: give --out another path."
        )
    if not out.is_dir():
        return
    foreign = sorted(
        e.name for e in out.iterdir() if not (e.is_file() and e.name.endswith(_OURS))
    )
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise UsageError(
            f"figures folder {str(out)!r} holds files that are not report figures ({shown}); "
            "the new figures replace the whole folder, which would delete them. What to do: "
            "give --out a new or empty directory, or the figures folder of an earlier report."
        )


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait for the block to end (two renames must not be split: ``out``
    would be missing); delivered when it ends. Only the main thread receives them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _new_folder(out: Path) -> Path:
    """A new empty folder beside ``out`` (``.NAME.XXXXXXXX.tmp``) with the mode an ordinary
    ``mkdir`` gives (``mkdtemp``'s is private; figures are meant to be read)."""
    while True:
        folder = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def _swap_in(folder: Path, out: Path) -> None:
    """Put the complete ``folder`` in ``out``'s place; an earlier ``out`` is removed."""
    old: Path | None = None
    try:
        with _signals_deferred():
            if out.exists():
                old = _new_folder(out)
                os.replace(out, old)  # onto the empty folder just made
            os.replace(folder, out)
    finally:  # also when a signal deferred above is raised as the block ends
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _values(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return ", ".join(_values(v) for v in values)
    return "–" if values is None else f"{values:.4g}" if isinstance(values, float) else str(values)


def _readme(report: Report) -> str:
    """README.txt: the selected trial (or why none is) as the HTML summary names it, each
    figure with its captions, the panels not drawn and why, the pruned trials with the step
    each stopped at (the HTML trial table's ``PRUNED at step N``), the findings, and the staged
    strategy's verification and the warm-start trials, which the HTML report shows as tables
    (the figures mark the selected and the warm-start trials, but not why nor how they did)."""
    lines = [f"Figures of study {report.study}.", "", f"Selected trial: {selection_text(report)}"]
    lines.append("")
    for p in report.panels:
        if p.data is not None:
            lines.append(f"{p.key}.png: {p.title}")
            lines += [f"    {c}" for c in _captions(p)]
    lines += [f"(not drawn) {p.title}: {p.missing}" for p in report.panels if p.data is None]
    # the HTML's trial table says where each pruned trial stopped; this folder has no table
    curves = next((p.data for p in report.panels if p.key == "intermediate_values"), None)
    if isinstance(curves, F.IntermediateValues) and curves.pruned:
        lines += [
            "",
            f"Pruned trials ({len(curves.pruned)}), by the last step each reported "
            "(the intermediate values figure draws at most "
            f"{F.MAX_CURVES} curves):",
        ]
        lines += [f"- {line}" for line in F.pruned_lines(curves)]
    lines += ["", "Findings:"] + [f"- [{f.level}] {f.topic}: {f.text}" for f in report.findings]
    verification = (report.strategy or {}).get("verification") or {}
    if verification.get("candidates"):
        lines += [
            "",
            f"Staged strategy: the top {len(verification['candidates'])} candidates verified with "
            f"{verification.get('folds', '?')} folds x {verification.get('repeats', '?')} repeats "
            f"({', '.join(report.objectives)}; ★ the selected trial):",
        ]
        for c in verification["candidates"]:
            mark = " ★" if c.get("number") == report.selected else ""
            cis = c.get("ci95") or [None] * len(report.objectives)
            lines.append(
                f"- trial {c.get('number')}{mark}: {_values(c.get('values'))} in the search, "
                f"{_values(c.get('mean'))} verified (95% CI "
                + "; ".join("–" if ci is None else f"{ci[0]:.4g} – {ci[1]:.4g}" for ci in cis)
                + ")"
            )
    warm = report.warm_start
    if warm:
        ranking = (
            "1 + the feasible trials that dominate it (1: on the Pareto front)"
            if warm.get("ranking") == "pareto"
            else "by value among the feasible completed trials (1: the best)"
        )
        lines += [
            "",
            f"Warm start: {str(warm.get('summary', '')).removeprefix('warm start: ')}.",
            f"Rank: {ranking}, of {warm.get('n_ranked', '?')} ({', '.join(report.objectives)}; "
            "★ the selected trial):",
        ]
        for t in warm.get("trials", []):
            mark = " ★" if t.get("number") == report.selected else ""
            lines.append(
                f"- trial {t.get('number')}{mark} from {t.get('source')}: {t.get('state')}, "
                f"{_values(t.get('values'))}, rank {_values(t.get('rank'))}"
            )
    return "\n".join(lines) + "\n"


class PngRenderer(Renderer):
    single_file = False
    default_name = "figures"

    def render(self, report: Report, out: Path) -> list[Path]:
        plt = _plt()
        out = Path(out)
        _check_replaceable(out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            folder = _new_folder(out)
        except OSError as exc:
            raise write_error(out, exc, what="write the figures to") from exc
        try:
            names = []
            for p in report.panels:
                if p.data is None:
                    continue
                # Text as written: '$' in a parameter, metric or category name started
                # matplotlib's math mode, and 'cost $\frac{1}{$' failed the whole report
                with plt.rc_context({"text.parse_math": False}):
                    fig = _figure(p)
                    fig.suptitle(f"{report.study}: {p.title}", fontsize=10)
                    buf = io.BytesIO()
                    try:
                        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
                    finally:
                        plt.close(fig)
                (folder / f"{p.key}.png").write_bytes(buf.getvalue())
                names.append(f"{p.key}.png")
            (folder / "README.txt").write_text(_readme(report))
            names.append("README.txt")
            _swap_in(folder, out)
        except BaseException as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, OSError) and not isinstance(exc, WriteError):
                raise write_error(out, exc, what="write the figures to") from exc
            raise
        return [out / name for name in names]
