"""Commands on a study that exists: ``show`` and ``select`` (select again).

They read the study through ``_study`` and ``selection`` only, not ``tuning`` (the spec path,
which imports scikit-learn and pandas): ``tuneops show`` starts in the time of those imports.
``tuneops.selection`` itself (and with it the spec's pydantic models, about 0.25 s of CPU) is
imported only to select again: ``show`` of a study whose run's record is current reuses the
run's choice (:mod:`tuneops._record`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from tuneops._record import current_choice
from tuneops._study import abandoned_label
from tuneops.cli._common import (
    FRONT_ROWS,
    AllOpt,
    JsonOpt,
    StorageOpt,
    WideOpt,
    emit_json,
    print_summary,
    print_trials,
    print_workers,
    read_study,
    term,
)
from tuneops.errors import NoFeasibleTrial
from tuneops.results import study_results

if TYPE_CHECKING:
    from tuneops.selection import Choice

__all__ = ["show", "select"]


def show(
    study: Annotated[str, typer.Argument(help="Study name.")],
    storage: StorageOpt = None,
    trials: Annotated[bool, typer.Option("--trials", help="List every trial.")] = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print the results document (as in results.json) to stdout."),
    ] = False,
    wide: WideOpt = False,
    all_rows: AllOpt = False,
) -> None:
    """Show a study: trial counts, the Pareto front and the selected trial."""
    with read_study(study, storage) as s:
        # The run's choice while nothing changed since (tuneops._record), else selected again.
        choice: Choice | dict[str, Any] | None = current_choice(s, s.get_trials(deepcopy=False))
        message = None
        if choice is None:
            from tuneops.selection import reselect  # the spec's models: only to select again

            try:
                choice = reselect(s)
            except NoFeasibleTrial as exc:
                message = str(exc)
        # The summary prints neither the findings nor the trials off the front: not computed.
        results = study_results(s, choice=choice, message=message, brief=not (json_out or trials))
    if json_out:
        emit_json(results)
        return
    print_summary(results, wide=wide, limit=None if all_rows else FRONT_ROWS)
    print_workers(results)
    if trials:
        print_trials(results, abandoned_label, wide=wide)


def select(
    study: Annotated[str, typer.Argument(help="Study name.")],
    constraint: Annotated[
        list[str] | None,
        typer.Option(
            "--constraint",
            "-c",
            help="e.g. 'accuracy >= 0.95'; repeat for more. Replaces the spec's constraints.",
        ),
    ] = None,
    policy: Annotated[str | None, typer.Option(help="knee, lexicographic or weighted.")] = None,
    storage: StorageOpt = None,
    json_out: JsonOpt = False,
    wide: WideOpt = False,
    all_rows: AllOpt = False,
) -> None:
    """Select again with other constraints or policy, without re-running any trial.

    Exits 1 when no trial meets the constraints (the message names the closest trial).
    """
    from tuneops.selection import reselect  # not imported by `show` (see the module's doc)

    with read_study(study, storage) as s:
        choice = reselect(s, constraints=constraint, policy=policy)
        results = study_results(s, choice=choice, brief=not json_out)
        # What `deploy` and `export` take without --trial (tuning.complete_trial): the spec's
        # rules, not this choice (trial 9 selected here, then deployed: trial 12, unwarned)
        try:
            kept: int | None = reselect(s).selected.number
        except NoFeasibleTrial:
            kept = None
    if constraint is not None:
        results["constraints"] = constraint
    if json_out:
        emit_json(results)
    else:
        print_summary(results, wide=wide, limit=None if all_rows else FRONT_ROWS)
        shown = choice.selected.number
        if kept != shown:
            then = (
                f"still take trial {kept}, selected by the spec's constraints and policy"
                if kept is not None
                else "find no trial (none meets the spec's constraints)"
            )
            term.info(
                f"Not stored: without --trial, `tuneops deploy {study}` and `tuneops export "
                f"{study}` {then}; `tuneops deploy {study} --trial {shown}` deploys the trial "
                "selected here.",
                soft_wrap=True,
                highlight=False,
                markup=False,
            )
