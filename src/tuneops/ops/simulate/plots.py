"""The simulation's timeline as a figure (matplotlib): computed data in, pixels out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuneops.errors import require

__all__ = ["timeline_figure"]


def timeline_figure(timeline: Mapping[str, Any]) -> Any:
    """The timeline as a matplotlib figure: scores on top, drift scores below."""

    require("matplotlib", "report", "the simulation plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = timeline["batches"]
    t = [r["t"] for r in rows]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    top.plot(
        t, [r["champion_score"] for r in rows], "-o", ms=3, label="champion (monitored, re-tuned)"
    )
    top.plot(t, [r["baseline_score"] for r in rows], "--", color="grey", label="never updated")
    for r in rows:
        if r["retune"]:
            promoted = r["retune"]["decision"] == "promote"
            top.plot(
                r["t"],
                r["champion_score"],
                "*" if promoted else "x",
                ms=12 if promoted else 8,
                color="tab:green" if promoted else "tab:red",
            )
        if r.get("refresh") and r["refresh"]["decision"] == "promote":
            top.plot(r["t"], r["champion_score"], "^", ms=7, color="tab:olive")
    top.plot([], [], "*", color="tab:green", label="re-tuned: challenger promoted")
    top.plot([], [], "x", color="tab:red", label="re-tuned: champion kept")
    if any(r.get("refresh") for r in rows):
        top.plot([], [], "^", color="tab:olive", label="refreshed on the rows since the change")
    top.set_ylabel(timeline["metric"])
    top.set_title(
        f"{timeline['dataset']} ({timeline['family']}), {timeline['batch_size']} "
        f"unseen rows per batch ({timeline.get('mode', 'shifted')})"
    )
    bottom.plot(t, [r["max_psi"] for r in rows], "-o", ms=3, label="max feature PSI")
    bottom.plot(t, [r["prediction_psi"] for r in rows], "-", label="prediction PSI")
    bottom.plot(t, [r["share_drifted"] for r in rows], ":", label="share of features drifted")
    bottom.axhline(
        timeline["thresholds"]["psi_retune"], color="tab:red", lw=0.8, label="psi_retune"
    )
    bottom.set_xlabel("batch")
    bottom.set_ylabel("drift")
    for axis in (top, bottom):
        for s in timeline["shifts"]:
            axis.axvline(s["at"] - 0.5, color="black", lw=0.8, ls="--")
    for s in timeline["shifts"]:
        top.annotate(
            f"{s['kind']} shift",
            (s["at"] - 0.4, 1.0),
            xycoords=("data", "axes fraction"),
            va="top",
            fontsize=8,
        )
    top.legend(fontsize=7, loc="lower left")
    bottom.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
