"""A progress bar that reads the study from its storage: trials done, best so far or Pareto size.

It works the same with one worker in-process or many worker processes: it only reads state.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import TrialState

__all__ = ["StudyProgress"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class StudyProgress:
    """``with StudyProgress(study, total) as p: ... p.refresh()``; does nothing when disabled."""

    def __init__(self, study: optuna.Study, total: int | None, *, enabled: bool = True, min_interval_s: float = 0.5):
        self.study = study
        self.total = total
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> StudyProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.fields[study]}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[status]}"), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "tune", total=self.total, study=self.study.study_name, status="starting"
            )
            self._done_before = self._finished_count()
            self.refresh(force=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self.refresh(force=True)
            self._progress.stop()

    def _finished_count(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=_FINISHED))

    def refresh(self, *, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        trials = self.study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state in _FINISHED and "abandoned" not in t.user_attrs]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        failed = sum(t.state == TrialState.FAIL and "abandoned" not in t.user_attrs for t in trials)
        if not complete:
            status = "no complete trial yet"
        elif len(self.study.directions) == 1:
            status = f"best {self.study.best_value:.5g}"
        else:
            status = f"Pareto front {len(self.study.best_trials)}"
        status += f" | pruned {pruned} | failed {failed}"
        self._progress.update(self._task, completed=len(finished), status=status)
