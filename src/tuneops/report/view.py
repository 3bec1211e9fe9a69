"""A snapshot of a study as the report sees it: trials, objectives, selection, attributes.

Read once from the storage; every figure and finding is computed from this snapshot, so one
report is consistent even while workers keep writing. ``tuneops.selection`` and
``tuneops.pruning`` (and with them the spec's pydantic models, about 0.2 s of CPU per process)
are imported only when needed: to select again when the run's choice is not current, to read
learning curves when trials have them. Attributes written by other features
(``worker``, ``warm_start``, ``fail_reason``, ``metrics_std``, pruning records) are read
defensively: a study that lacks them simply has no such marks.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from tuneops import _record, _study
from tuneops.errors import TuneOpsError
from tuneops.pareto import losses, pareto_mask
from tuneops.results import SECTIONS as RESULT_SECTIONS

__all__ = [
    "StudyView",
    "view_of",
    "worker_label",
    "intermediate_curve",
    "pruning_section",
    "warm_start_section",
]


@dataclass(frozen=True)
class StudyView:
    """What a report needs from a study. ``study`` is kept for Optuna's importance evaluators.

    Derived sets (completed trials, feasibility) are computed once per view: a 10,000-trial
    report asks for them in every panel and finding."""

    name: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    trials: tuple[FrozenTrial, ...]
    selected: int | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    study: optuna.Study | None = None
    #: results sections already computed for exactly these trials (``pruning``, ``workers``:
    #: the run's record while current, see :mod:`tuneops._record`); others are computed here
    sections: Mapping[str, Any] = field(default_factory=dict)
    #: the selection the report shows (``Choice.to_dict()``): the run's while current
    selection: Mapping[str, Any] | None = None
    #: derived series computed once per view by the panels and findings that share them
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def multi(self) -> bool:
        return len(self.directions) > 1

    def of_state(self, *states: TrialState) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state in states]

    @cached_property
    def _complete(self) -> tuple[FrozenTrial, ...]:
        return tuple(
            t
            for t in self.trials
            if t.state == TrialState.COMPLETE
            and t.values is not None
            and all(math.isfinite(v) for v in t.values)
        )

    @property
    def complete(self) -> list[FrozenTrial]:
        """Completed trials with finite values, in trial order (a new list each time)."""
        return list(self._complete)

    @cached_property
    def _infeasible(self) -> frozenset[int]:
        recorded = frozenset(t.number for t in self.trials if not feasible(t))
        texts = self.attrs.get(_study.CONSTRAINTS)
        if not isinstance(texts, list) or _study.constraints_recorded(self.trials, texts):
            return recorded
        # Run again with other constraints: the earlier trials' records are of the old ones
        # (a trial selection refused under 'rmse <= 2.43' was drawn feasible by its record
        # of 'rmse <= 3.5'); complete trials are judged again as selection judges them.
        # tuneops.selection (and the spec's models) only for such a study: see the module doc.
        again = importlib.import_module("tuneops.selection").infeasible_trials(
            self.trials, self.objectives, texts
        )
        done = {t.number for t in self.trials if t.state == TrialState.COMPLETE}
        return frozenset(again | (recorded - done))

    @cached_property
    def best(self) -> tuple[int, ...]:
        """Numbers of the best feasible trial (one objective) or of the feasible Pareto front:
        with several objectives the selection's front when there is one (noise-aware, as
        ``show`` and ``results.json`` give it), else the plain front."""
        # a repeat took its earlier trial's outcome: that trial stands for it (tuneops.repeats)
        ok = [t for t in self._complete if self.is_feasible(t) and _study.found(t)]
        if not ok:
            return ()
        front = (self.selection or {}).get("pareto_front")
        if self.multi and isinstance(front, list) and front:
            known = {t.number for t in self._complete}
            return tuple(n for n in front if n in known)
        if not self.multi:
            sign = -1.0 if self.directions[0] == "maximize" else 1.0
            return (min(ok, key=lambda t: sign * t.values[0]).number,)
        if len(self.directions) == 2:
            mask = _front_2d(losses([t.values for t in ok], self.directions))
        else:
            mask = pareto_mask([t.values for t in ok], self.directions)
        return tuple(t.number for t, m in zip(ok, mask, strict=False) if m)

    @cached_property
    def _warm(self) -> frozenset[int]:
        return frozenset(_study.warm_start_tags(self.trials))

    def is_warm(self, t: FrozenTrial) -> bool:
        """Whether ``t`` is a warm-start trial (:func:`tuneops._study.warm_start_tags`: an older
        study's untagged retry of one included)."""
        return t.number in self._warm

    def is_feasible(self, t: FrozenTrial) -> bool:
        """:func:`feasible`, answered from a set computed once (asked some 10^5 times for a
        10,000-trial report: without constraints, without reading the trial)."""
        infeasible = self._infeasible
        return not infeasible or t.number not in infeasible

    def distributions(self) -> dict[str, BaseDistribution]:
        """Each parameter's search-space distribution, as recorded by the trials (first seen)."""
        return dict(self._distributions)

    @cached_property
    def _distributions(self) -> dict[str, BaseDistribution]:
        out: dict[str, BaseDistribution] = {}
        for t in self.trials:
            for name, dist in t.distributions.items():
                if name not in out:
                    out[name] = dist
        return out


def _front_2d(loss: np.ndarray) -> np.ndarray:
    """:func:`tuneops.pareto.pareto_mask` for two objectives by a sort and a sweep (O(n log n)):
    in order of the first loss (ties: the second), a row is on the front when its second loss
    is below every earlier one, or when it repeats the last front row (duplicates all kept)."""
    mask = np.zeros(len(loss), dtype=bool)
    best = math.inf
    last: tuple[float, float] | None = None
    for i in np.lexsort((loss[:, 1], loss[:, 0])):
        a, b = float(loss[i, 0]), float(loss[i, 1])
        if b < best or (a, b) == last:
            mask[i] = True
            best, last = b, (a, b)
    return mask


def feasible(t: FrozenTrial) -> bool:
    """True unless a recorded constraint is violated (Optuna's ``constraints`` record)."""
    try:
        return bool(_study.feasible(t) in (None, True))
    except Exception:  # a constraint record that does not parse is no verdict
        return True


def worker_label(t: FrozenTrial) -> str | None:
    """The worker that ran the trial: its ``id`` (by default ``host:pid``), if recorded."""
    w = t.user_attrs.get(_study.WORKER)
    if isinstance(w, Mapping):
        if w.get("id") is not None:
            return str(w["id"])
        if w.get("host") is not None or w.get("pid") is not None:
            return f"{w.get('host', '?')}:{w.get('pid', '?')}"
        return None
    return str(w) if w else None


def intermediate_curve(
    t: FrozenTrial, n_objectives: int = 1
) -> tuple[list[int], list[float]] | None:
    """A trial's learning curve of the first objective, through the pruning feature's reader
    (tuneops' record ``tuneops:intermediate`` for any study, else Optuna's ``trial.report``)."""
    pairs = []
    from tuneops.pruning import intermediate_values  # the spec's models: see the module's doc

    try:
        for step, vector in sorted(intermediate_values(t, n_objectives).items()):
            value = vector[0] if vector else None
            if value is not None and math.isfinite(float(value)):
                pairs.append((int(step), float(value)))
    except (TypeError, ValueError, AttributeError):  # a record of another shape is no curve
        return None
    if not pairs:
        return None
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _objectives(study: optuna.Study) -> tuple[str, ...]:
    return tuple(o.metric for o in _study.objectives(study))


def _selection(
    study: optuna.Study, trials: Sequence[FrozenTrial], record: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The selection: the run's, as stored, while no trial completed since it was made (the
    record's when current; else the stored choice when it counted as many complete trials as
    the study has now, complete trials are never removed, unless the run's record says the
    study's rules changed since), else selected again now."""
    stored = study.user_attrs.get(_study.SELECTION)
    if record is not None and record.get("selection") is True and isinstance(stored, Mapping):
        return dict(stored)
    if record is not None or _record.choice_outdated(study):
        # current, and the stored choice is not the run's for these trials; or made under other
        # constraints, spec or tuneops rules than the study has now (a resumed run's first trial)
        stored = None
    n_complete = sum(1 for t in trials if t.state == TrialState.COMPLETE and t.values is not None)
    if (
        isinstance(stored, Mapping)
        and isinstance(stored.get("selected_trial"), int)
        and stored.get("n_complete") == n_complete
    ):
        return dict(stored)
    if not n_complete:
        return None
    from tuneops.selection import reselect  # the spec's models: see the module's doc

    try:
        return reselect(study).to_dict()
    except (TuneOpsError, ValueError, KeyError):
        return None


def view_of(
    study: optuna.Study,
    trials: Sequence[FrozenTrial] | None = None,
    *,
    sections: Mapping[str, Any] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> StudyView:
    """Read ``study`` once into a :class:`StudyView` (``trials``: already read, not read again).

    ``sections`` and ``selection``: computed already for these trials (by ``study_results``),
    not computed again; by default the run's record is reused while it is current."""
    trials = tuple(study.get_trials(deepcopy=False) if trials is None else trials)
    record = None
    if sections is None or selection is None:
        record = _record.current_record(study, trials)
    if sections is None:
        sections = record["sections"] if record is not None else {}
    if selection is None:
        selection = _selection(study, trials, record)
    selected = selection.get("selected_trial") if selection else None
    return StudyView(
        name=study.study_name,
        objectives=_objectives(study),
        directions=tuple(d.name.lower() for d in study.directions),
        trials=trials,
        selected=selected if isinstance(selected, int) else None,
        attrs=dict(study.user_attrs),
        study=study,
        sections=sections,
        selection=selection,
    )


def categorical_labels(dist: BaseDistribution) -> list[str] | None:
    if isinstance(dist, CategoricalDistribution):
        return [str(c) for c in dist.choices]
    return None


def pruning_section(view: StudyView) -> dict[str, Any] | None:
    """The pruning feature's account of the study (``results.json`` section ``pruning``: saved
    fit time, the compute spent and the anytime curve): the run's record when current, else
    computed once per view."""
    if "pruning" in view.sections:  # computed already for these trials (or the run's record)
        return view.sections["pruning"]  # type: ignore[no-any-return]
    if view.study is None:
        return None
    if "pruning" not in view.memo:
        # imported here: tuneops.pruning loads the spec's models (0.2 s), which a report whose
        # run's record is current does not otherwise need
        from tuneops.pruning import pruning_savings

        # the time to the front the selection printed, as results.json has it
        printed = (view.selection or {}).get("pareto_front") if view.multi else None
        view.memo["pruning"] = pruning_savings(view.study, list(view.trials), printed)
    return view.memo["pruning"]  # type: ignore[no-any-return]


def warm_start_section(view: StudyView) -> dict[str, Any] | None:
    """How the warm-start trials did (``results.json`` section ``warm_start``: sources, ranks,
    the best warm trial against the best other): the run's record when current, else computed
    once per view; None without warm-start trials. Computed through the results document's
    table of sections, so the knowledge package (and the spec's models) load only for a study
    that has warm-start trials and no current record."""
    if "warm_start" in view.sections:
        return view.sections["warm_start"]  # type: ignore[no-any-return]
    if view.study is None or not any(view.is_warm(t) for t in view.trials):
        return None
    if "warm_start" not in view.memo:
        module, function = RESULT_SECTIONS["warm_start"].split(":")
        compute = getattr(importlib.import_module(module), function)
        # the warm trials on the front the selection printed, as results.json has it
        printed = (view.selection or {}).get("pareto_front") if view.multi else None
        view.memo["warm_start"] = compute(view.study, list(view.trials), printed)
    return view.memo["warm_start"]  # type: ignore[no-any-return]
