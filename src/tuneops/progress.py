"""Progress of a study read from its storage: trials done, best so far or Pareto size, and how far
the running trials got (their last reported step).

It works the same with one worker in-process or many worker processes: it only reads state. It
writes to stderr, so stdout keeps only results (``tuneops run --json``):

* on a terminal, a bar redrawn in place;
* otherwise (logs, CI, a pipe), plain lines and no redraws: one line per finished trial, and for
  trials running longer than ``step_log_s`` one line per step they report.

A background thread reads the storage every ``poll_s`` seconds, so the bar moves (and plain lines
appear) while a long trial runs in this process, not only between trials. The thread is stopped
before the process forks its local workers (a thread holding a storage lock at ``fork`` would
deadlock the child; Python 3.12 warns about forking with threads) and started again on the next
refresh.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tuneops._study import ABANDONED, OBJECTIVES, objectives
from tuneops._study import REPEAT_OF as _REPEAT_OF
from tuneops.pareto import ParetoFront

__all__ = ["StudyProgress"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# The multi-objective intermediate record (tuneops.pruning.INTERMEDIATE_ATTR): a literal here
# because this module sits below pruning (which imports the families and scikit-learn).
_INTERMEDIATE = "tuneops:intermediate"
_TIMED_OUT = "tuneops:timed_out"  # tuneops._study.TIMED_OUT, a literal for the same reason


_ACTIVE: weakref.WeakSet[StudyProgress] = weakref.WeakSet()


def _before_fork() -> None:
    for progress in list(_ACTIVE):
        progress._pause()


def _after_fork_in_child() -> None:
    for progress in list(_ACTIVE):
        progress._orphan()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _last_step(trial: FrozenTrial) -> int | None:
    """The last step a running trial reported (fidelity step, or fold for Wilcoxon pruning)."""
    steps = list(trial.intermediate_values)
    steps += [int(s) for s in trial.user_attrs.get(_INTERMEDIATE, {})]
    return max(steps) if steps else None


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.5g}"


def _feasible(t: FrozenTrial) -> bool:
    return all(v <= 0 for v in (t.constraints or {}).values())


class _Tally:
    """What the progress shows, kept from the trials seen finished since the last refresh: a
    finished trial never changes, so each is looked at once (a refresh of a 10,000-trial study
    then costs the read of the trials, not a Pareto front or a best value over all of them)."""

    def __init__(
        self,
        directions: list[optuna.study.StudyDirection],
        judged: Mapping[int, bool] | None = None,
    ) -> None:
        maximize = optuna.study.StudyDirection.MAXIMIZE
        # trial -> feasible, for trials whose Optuna record is of other constraints (a study
        # run again with new ones): judged by the caller, who can ask the selection's rule
        self.judged = judged or {}
        self.signs = [-1.0 if d == maximize else 1.0 for d in directions]
        self.seen: set[int] = set()
        self.done = self.pruned = self.failed = self.complete = 0
        self.best: float | None = None  # single objective: the best feasible value
        self.front = ParetoFront(len(directions))  # several: the feasible front, as losses

    def update(self, trials: list[FrozenTrial]) -> None:
        for t in trials:
            if t.state not in _FINISHED or t.number in self.seen:
                continue
            self.seen.add(t.number)
            if "abandoned" in t.user_attrs:
                continue
            self.done += 1
            self.pruned += t.state == TrialState.PRUNED
            self.failed += t.state == TrialState.FAIL
            if t.state != TrialState.COMPLETE or t.values is None:
                continue
            self.complete += 1
            if not (self.judged[t.number] if t.number in self.judged else _feasible(t)):
                continue
            loss = [s * v for s, v in zip(self.signs, t.values, strict=True)]
            if len(loss) > 1 and _REPEAT_OF in t.user_attrs:
                # the earlier trial's model and values, already on the front or not: a second
                # point of it counted one model once per repeat ("18 non-dominated" for 2)
                continue
            if len(loss) == 1:
                if self.best is None or loss[0] < self.signs[0] * self.best:
                    self.best = t.values[0]
            else:
                self.front.add(loss)

    def best_text(self) -> str:
        if not self.complete:
            return "no complete trial yet"
        if len(self.signs) > 1:
            # by value: the front the run ends with treats differences within a measured
            # interval as ties, and may hold fewer trials ("Pareto front 7" then a table of 2)
            # an empty front after complete trials: none met the constraints ("0 non-dominated"
            # read as if every trial were dominated)
            return (
                f"{len(self.front)} non-dominated" if len(self.front) else "no feasible trial yet"
            )
        return "no feasible trial yet" if self.best is None else f"best {self.best:.5g}"


class StudyProgress:
    """``with StudyProgress(study, total) as p: ... p.refresh()``; does nothing when disabled.

    Args:
        study: the study to watch (only read).
        total: the budget of trials, or None when unlimited.
        enabled: False makes every method a no-op (``progress=False``).
        min_interval_s: least time between two reads of the storage from ``refresh``.
        stream: where to write (default: stderr).
        plain: True for plain lines, False for the bar; None decides by whether ``stream`` is
            a terminal.
        poll_s: seconds between reads of the background thread (None: 1 s for the bar, 5 s for
            plain lines); 0 disables the thread.
        step_log_s: plain mode prints a running trial's steps only once it has run this long.
        judged: trial -> feasible, for the trials whose Optuna constraint record is of other
            constraints than the study's now (a study run again with new ones); the others
            are judged by their record.
    """

    def __init__(
        self,
        study: optuna.Study,
        total: int | None,
        *,
        enabled: bool = True,
        min_interval_s: float = 0.5,
        stream: IO[str] | None = None,
        plain: bool | None = None,
        poll_s: float | None = None,
        step_log_s: float = 10.0,
        judged: Mapping[int, bool] | None = None,
    ) -> None:
        self.study = study
        self.total = total
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self.step_log_s = step_log_s
        self._console = Console(file=stream if stream is not None else sys.stderr)
        self.plain = (not self._console.is_terminal) if plain is None else plain
        self.poll_s = poll_s if poll_s is not None else (5.0 if self.plain else 1.0)
        self._last = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Any = None
        self._task: Any = None
        self._seen: set[int] = set()  # finished trials already counted (and printed)
        self._tally = _Tally(list(study.directions), judged)
        # a tuneops study names its objectives ("rmse=2.4362, model_size_kb=280.26": bare
        # numbers left the reader to guess which is which); a plain Optuna study has no names
        stored = study.user_attrs.get(OBJECTIVES) if enabled else None
        self._names = [o.metric for o in objectives(study)] if stored else None
        self._steps: dict[int, int] = {}  # running trial -> last step printed
        self._active = False
        self._paused = False

    # -- context ----------------------------------------------------------------------------
    def __enter__(self) -> StudyProgress:
        if not self.enabled:
            return self
        finished = [t for t in self._trials() if t.state in _FINISHED]
        self._seen = {t.number for t in finished}
        self._active = True
        if self.plain:
            budget = f"{self.total} trials" if self.total is not None else "no trial budget"
            # what counts against the budget: abandoned trials were given back
            before = sum(ABANDONED not in t.user_attrs for t in finished)
            self._line(f"{self.study.study_name}: started ({budget}, {before} finished before)")
        else:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[study]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                transient=False,
                console=self._console,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "tune", total=self.total, study=self.study.study_name, status="starting"
            )
        self.refresh(force=True)
        self._start_thread()
        _ACTIVE.add(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._active:
            return
        _ACTIVE.discard(self)
        self._stop_thread()
        self._paused = False
        self.refresh(force=True)
        self._active = False
        if self._progress is not None:
            self._progress.stop()

    # -- the polling thread -----------------------------------------------------------------
    def _start_thread(self) -> None:
        if self.poll_s <= 0 or self._thread is not None:
            return
        self._stop = threading.Event()  # one per thread: a late old thread never sees it cleared
        self._thread = threading.Thread(
            target=self._poll, args=(self._stop,), name="tuneops-progress", daemon=True
        )
        self._thread.start()

    def _stop_thread(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self._thread = None

    def _pause(self) -> None:
        """Before ``fork``: no thread runs (and none holds a lock) when the child is made."""
        if self._thread is not None:
            self._stop_thread()
            self._paused = True

    def _orphan(self) -> None:
        """In a forked child: the parent draws the progress; the child never does."""
        self._active, self._progress, self._thread = False, None, None

    def _poll(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll_s):
            try:
                self.refresh(force=True)
            except Exception:  # noqa: BLE001 - a failed read must not end the run; next poll retries
                continue

    # -- reading the study ------------------------------------------------------------------
    def _trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def refresh(self, *, force: bool = False) -> None:
        """Read the study and update the bar (or print what finished); cheap when called often."""
        if not self._active:
            return
        if self._paused and threading.current_thread() is threading.main_thread():
            self._paused = False
            self._start_thread()
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        with self._lock:
            self._last = now
            trials = self._trials()
            if self.plain:
                self._print_lines(trials)  # the tally, trial by trial with its line
            else:
                self._tally.update(trials)
                self._progress.update(
                    self._task, completed=self._tally.done, status=self._status(trials)
                )

    def _status(self, trials: list[FrozenTrial]) -> str:
        tally = self._tally
        status = f"{tally.best_text()} | pruned {tally.pruned} | failed {tally.failed}"
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if running:
            status += " | running " + ", ".join(self._running(t) for t in running[:3])
            if len(running) > 3:
                status += f" +{len(running) - 3}"
        return status

    @staticmethod
    def _running(trial: FrozenTrial) -> str:
        """``#12 step 4 45s``: how far a running trial got, and for how long it has run."""
        text = f"#{trial.number}"
        step = _last_step(trial)
        if step is not None:
            text += f" step {step}"
        if trial.datetime_start is not None:
            text += f" {(datetime.now() - trial.datetime_start).total_seconds():.0f}s"
        return text

    # -- plain mode -------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        self._console.print(text, highlight=False, markup=False, soft_wrap=True)
        self._console.file.flush()

    def _print_lines(self, trials: list[FrozenTrial]) -> None:
        finished = [t for t in trials if t.state in _FINISHED and t.number not in self._seen]
        finished.sort(key=lambda t: t.number)
        # Several trials may have finished since the last read (workers elsewhere, a slow
        # poll): each line counts up to its own trial and says the best as of it, not as of
        # the trials read now (a line for trial 0 quoted trial 3's value as the best).
        for t in finished:
            self._seen.add(t.number)
            self._steps.pop(t.number, None)
            self._tally.update([t])
            if ABANDONED not in t.user_attrs:  # re-queued: reported when it runs again
                self._line(self._finished_line(t, self._tally.done))
        self._tally.update(trials)  # trials finished before the start, not shown
        for t in trials:
            if t.state != TrialState.RUNNING or t.datetime_start is None:
                continue
            ran_s = (datetime.now() - t.datetime_start).total_seconds()
            step = _last_step(t)
            if step is None or ran_s < self.step_log_s or self._steps.get(t.number) == step:
                continue
            self._steps[t.number] = step
            self._line(
                f"{self.study.study_name}: trial {t.number} running {ran_s:.0f}s, "
                f"reached step {step}"
            )

    def _finished_line(self, t: FrozenTrial, done: int) -> str:
        seconds = f" in {t.duration.total_seconds():.1f}s" if t.duration else ""
        if t.state == TrialState.COMPLETE and t.values is not None:
            values = [_number(v) for v in t.values]
            if self._names is not None and len(self._names) == len(values):
                values = [f"{n}={v}" for n, v in zip(self._names, values, strict=True)]
            outcome = "complete: " + ", ".join(values)
        elif t.state == TrialState.PRUNED and isinstance(t.user_attrs.get(_TIMED_OUT), dict):
            late = t.user_attrs[_TIMED_OUT]
            limit = late.get("limit_s")
            outcome = f"stopped {late.get('at', '')}: over the trial time limit ({limit} s)"
        elif t.state == TrialState.PRUNED:
            step = _last_step(t)
            outcome = "pruned" + (f" at step {step}" if step is not None else "")
        else:
            reason = str(t.user_attrs.get("fail_reason", "")).splitlines()
            outcome = "failed" + (f": {reason[0][:120]}" if reason else "")
        if _REPEAT_OF in t.user_attrs:
            outcome += f" (trial {t.user_attrs[_REPEAT_OF]}'s configuration again: nothing fitted)"
        of = f"/{self.total}" if self.total is not None else ""
        return (
            f"{self.study.study_name}: trial {t.number} {outcome}{seconds} "
            f"({done}{of} done, {self._tally.best_text()})"
        )
