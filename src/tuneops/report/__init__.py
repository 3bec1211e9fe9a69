"""Reports a person reads at a glance: figures computed as data, rendered to HTML and PNG.

* :func:`build_report` reads a study once and computes a :class:`Report` (panels as data,
  findings in words, the trial table, the spec and data fingerprint).
* :data:`RENDERERS` maps a format name to its renderer; :func:`write_report` does both steps.
* :mod:`tuneops.report.dashboard` serves optuna-dashboard on the same storage.

Example::

    >>> from tuneops.report import write_report
    >>> write_report(study, "report.html")          # doctest: +SKIP
    [PosixPath('report.html')]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneops._files import path_part
from tuneops.errors import UsageError, unknown_name

if TYPE_CHECKING:
    import optuna

    from tuneops.report._base import Renderer
    from tuneops.report.document import Report

__all__ = ["RENDERERS", "build_report", "get_renderer", "write_report"]

# format -> "module:class"; resolved on use so `import tuneops.report` loads neither plotly nor
# matplotlib.
RENDERERS: dict[str, str] = {
    "html": "tuneops.report.html:HtmlRenderer",
    "png": "tuneops.report.png:PngRenderer",
}


def get_renderer(fmt: str, **options: Any) -> Renderer:
    """The renderer for ``fmt`` (``html`` or ``png``); ``options`` go to its constructor
    (``html``: ``plotly="embed"`` or ``"cdn"``).

    Raises:
        UsageError: unknown format (the message lists the valid ones), or an option the format
            does not take.
    """
    import importlib

    if fmt not in RENDERERS:
        raise UsageError(unknown_name("report format", fmt, RENDERERS, field="fmt (--format)"))
    module, cls = RENDERERS[fmt].split(":")
    try:
        return getattr(importlib.import_module(module), cls)(**options)
    except TypeError:
        raise UsageError(
            f"fmt (--format): {fmt!r} takes no option {', '.join(options)}; only the html "
            "format has plotly (--plotly)."
        ) from None


def build_report(study: Any) -> Report:
    """Compute the report of an Optuna study (see :func:`tuneops.report.document.build_report`)."""
    from tuneops.report.document import build_report as build

    return build(study)


def write_report(
    study: optuna.Study | Report,
    out: str | Path | None = None,
    *,
    fmt: str = "html",
    **options: Any,
) -> list[Path]:
    """Compute and render the report of ``study`` to ``out`` (a file for html, a directory for png).

    ``out`` defaults to ``report.html`` (html) or ``figures`` (png) next to ``results.json``:
    in the run's ``output_dir`` when the study's spec names one that holds this study's
    results.json, else in ``tuneops-out/<study>``.
    ``options``: the
    renderer's (html: ``plotly="cdn"`` links plotly.js from its CDN instead of embedding 4.6 MB
    of it). Returns the paths written. The
    format and options are checked before any work is done.
    """
    from tuneops.report.document import Report

    renderer = get_renderer(fmt, **options)
    report = study if isinstance(study, Report) else build_report(study)
    target = Path(out) if out is not None else _beside_results(report) / renderer.default_name
    if renderer.single_file and target.is_dir():
        target = target / renderer.default_name
    return renderer.render(report, target)


def _beside_results(report: Report) -> Path:
    """The run's output directory: where its last run wrote results.json (recorded absolute),
    else the spec's ``output_dir``, when it holds this study's results.json (what the storage
    says is not trusted to choose a directory by itself, as a study's name is not), else
    ``tuneops-out/<study>``."""
    for named in (report.output_dir, (report.spec or {}).get("output_dir")):
        if isinstance(named, str) and named:
            try:
                held = json.loads((Path(named) / "results.json").read_text())
            except (OSError, ValueError):
                continue
            if isinstance(held, dict) and held.get("study") == report.study:
                return Path(named)
    return Path("tuneops-out") / path_part(report.study)
