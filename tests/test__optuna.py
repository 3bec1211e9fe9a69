"""The seam to Optuna's internals, tested on its own: each reach into a private name does what
tuneops relies on, on journal and SQLite storages, and on a real PostgreSQL for the RDB writes
(what a trial costs there, counted in statements and transactions). CI runs this on the lowest
and the newest supported Optuna, so an upgrade that moves a private name fails here first."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import tempfile
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import sqlalchemy
import sqlalchemy.event
from optuna.trial import FrozenTrial, TrialState
from servers import postgres_server, redis_server  # noqa: F401

import tuneops
from tuneops import _optuna, runner
from tuneops.storage import SnapshotJournalFile, get_storage


@pytest.fixture(params=["journal", "sqlite"])
def study(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.Study:
    url = str(tmp_path / "s.journal") if request.param == "journal" else f"sqlite:///{tmp_path / 's.db'}"
    return optuna.create_study(study_name="seam", storage=get_storage(url))


def test_trials_are_read_created_and_told_through_the_storage(study: optuna.Study) -> None:
    template = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={"worker": "w"})
    trial = _optuna.create_trial(study, template)
    assert trial.number == 0 and _optuna.frozen(trial).user_attrs == {"worker": "w"}
    assert [t.number for t in _optuna.read_trials(study, states=(TrialState.RUNNING,))] == [0]
    assert _optuna.read_trial(study, trial).state == TrialState.RUNNING
    trial.suggest_float("x", 0, 1)
    assert _optuna.tell(study, trial, [0.5], TrialState.COMPLETE) == TrialState.COMPLETE
    # a trial finished meanwhile (declared dead) is skipped and keeps its state
    assert _optuna.tell(study, trial, [0.7], TrialState.COMPLETE) == TrialState.COMPLETE
    assert study.trials[0].values == [0.5]


def test_claiming_a_queued_trial_is_atomic(study: optuna.Study) -> None:
    study.enqueue_trial({"x": 0.3})
    queued = _optuna.read_trials(study)[0]
    assert _optuna.set_trial_state(study, queued, TrialState.RUNNING) is True
    assert _optuna.set_trial_state(study, queued, TrialState.RUNNING) is False  # taken already
    _optuna.set_trial_user_attr(study, queued, "abandoned", "test")
    _optuna.set_trial_state(study, queued, TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        _optuna.set_trial_state(study, queued, TrialState.RUNNING)
    assert study.trials[0].user_attrs["abandoned"] == "test"
    assert _optuna.trial_id(queued) == _optuna.trial_id(study.trials[0])


def test_study_attributes_and_shared_trials(study: optuna.Study) -> None:
    _optuna.set_study_system_attr(study, "tuneops:budget", {"n_trials": 3})
    assert _optuna.study_system_attrs(study)["tuneops:budget"] == {"n_trials": 3}
    study.set_user_attr("k", 1)
    assert _optuna.study_user_attrs(study) == {"k": 1}
    assert _optuna.storage_of(study) is study._storage and isinstance(_optuna.study_id(study), int)
    (listed,) = [s for s in study._storage.get_all_studies() if s.study_name == study.study_name]
    assert _optuna.study_id_of(listed) == _optuna.study_id(study)
    trials = _optuna.read_trials(study)
    _optuna.share_trials(study, trials)  # the next ask() uses these instead of reading again
    assert study.ask().number == 0


def test_a_study_seen_through_a_view_and_a_trial_with_other_constraint_values(
    study: optuna.Study,
) -> None:
    """What tuneops.samplers.CurrentConstraints relies on: every read of trials a sampler
    makes goes through the view (cached or not), writes reach the study, and a finished trial's
    constraint record can be replaced in a copy, in the old list format as in the new."""
    for value in (1.0, 2.0):
        study.add_trial(optuna.trial.create_trial(value=value, constraints={"a": value - 1.5}))
    old = optuna.trial.create_trial(value=3.0, system_attrs={"constraints": [0.5]})
    study.add_trial(old)
    trials = study.get_trials()
    changed = _optuna.with_constraints(trials[2], {"b": -1.0})
    assert changed.constraints == {"b": -1.0} and trials[2].constraints == {"0": 0.5}
    assert (changed.number, changed.values, _optuna.trial_id(changed)) == (
        2, [3.0], _optuna.trial_id(trials[2]))

    view = _optuna.study_seeing(study, lambda ts: [t for t in ts if t.number != 1])
    assert [t.number for t in view.trials] == [0, 2]
    assert [t.number for t in view.get_trials(states=(TrialState.COMPLETE,))] == [0, 2]
    _optuna.share_trials(study, _optuna.read_trials(study))  # the runner's shared read
    assert [t.number for t in view._get_trials(deepcopy=False, use_cache=True)] == [0, 2]
    view.set_user_attr("k", 1)
    assert study.user_attrs["k"] == 1 and view.directions == study.directions


def test_the_pruner_sees_the_latest_reports(study: optuna.Study) -> None:
    trial = study.ask()
    trial.report(0.5, step=1)
    assert _optuna.latest(trial).intermediate_values == {1: 0.5}


def test_hypervolume_and_cached_storage(tmp_path: Path) -> None:
    points = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    assert _optuna.hypervolume(points, np.array([2.0, 2.0])) == pytest.approx(3.25)
    assert _optuna.hypervolume(np.empty((0, 2)), np.array([1.0, 1.0])) == 0.0
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'c.db'}")
    cached = _optuna.cached_storage(rdb)
    assert isinstance(cached, optuna.storages.BaseStorage)
    assert optuna.create_study(storage=cached).study_name


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="GPSampler needs PyTorch to sample"
)
def test_gp_sampler_searches_its_acquisition_from_the_starting_points_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from optuna._gp import optim_mixed

    seen: list[int] = []
    search = optim_mixed.optimize_acqf_mixed

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["n_local_search"])
        return search(*args, **kwargs)

    monkeypatch.setattr(optim_mixed, "optimize_acqf_mixed", spy)
    for n_local_search, expected in ((2, 2), (None, 10)):
        seen.clear()
        sampler = _optuna.gp_sampler(seed=0, n_local_search=n_local_search, n_startup_trials=3)
        study = optuna.create_study(sampler=sampler)
        study.optimize(
            lambda t: t.suggest_float("x", 0, 1) + (t.suggest_categorical("c", [0, 1]) == 1),
            n_trials=5,
        )
        assert seen == [expected, expected]


def test_gp_sampler_refuses_fewer_than_two_starting_points() -> None:
    with pytest.raises(ValueError, match="n_local_search: expected a whole number >= 2"):
        _optuna.gp_sampler(seed=0, n_local_search=1)
    with pytest.raises(ValueError, match="n_local_search: expected a whole number >= 2"):
        _optuna.gp_sampler(seed=0, n_local_search=2.5)  # type: ignore[arg-type]


def test_quiet_restores_the_verbosity() -> None:
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        with _optuna.quiet():
            assert optuna.logging.get_verbosity() == optuna.logging.WARNING
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(before)


# -- RDB writes: a trial's attributes with its read, a created trial not read back ----------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def rdb_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL; the storage made of it is Optuna's cache over an RDB, as
    ``tuneops.storage`` makes it for a database server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return request.getfixturevalue("postgres_server").url


def _cached(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("sqlite"):
        return _optuna.cached_storage(optuna.storages.RDBStorage(url))
    return get_storage(url)  # RetryingStorage over the cached RDB


def _rdb_of(storage: Any) -> optuna.storages.RDBStorage:
    """The RDB under the cache (tuneops' RetryingStorage hands on ``_backend``)."""
    return storage._backend


def _stored(url: str, name: str) -> list[dict[str, Any]]:
    """The study's trials as a fresh process would read them (no cache), without ids/times."""
    rdb = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        trials = optuna.load_study(study_name=name, storage=rdb).get_trials(deepcopy=False)
    finally:
        rdb.engine.dispose()
    return [
        {k: getattr(t, k) for k in ("number", "state", "values", "params", "distributions",
                                    "user_attrs", "system_attrs", "intermediate_values")}
        for t in trials
    ]


class _Seen(optuna.samplers.RandomSampler):
    """Keeps the record of each trial the tell hands to ``after_trial``."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.told: list[FrozenTrial] = []

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        self.told.append(trial)
        super().after_trial(study, trial, state, values)


def _run_three(study: optuna.Study) -> list[tuple[FrozenTrial, FrozenTrial]]:
    """Three trials as the runner runs them: created with the worker's record, a parameter, a
    report, an attribute, told with their last attributes (one none, one one, one several, one
    of them set before). Returns each trial's record when created, with a read made then."""
    created = []
    for i, attrs in enumerate([{}, {"fidelity": {"steps": 1}}, {"a": 1, "b": {"c": [2.5]},
                                                                 "t": (1, 2)}]):
        template = optuna.trial.create_trial(
            state=TrialState.RUNNING, user_attrs={"worker": {"host": "h", "pid": 7, "n": (1,)}})
        trial = _optuna.create_trial(study, template)
        read = _rdb_of(_optuna.storage_of(study)).get_trial(_optuna.trial_id(trial))
        created.append((copy.deepcopy(_optuna.frozen(trial)), read))
        trial.suggest_float("x", 0, 1)
        trial.report(0.25, step=1)
        trial.set_user_attr("a", 0)
        state = TrialState.FAIL if i == 0 else TrialState.COMPLETE
        values = None if i == 0 else [0.5 + i]
        assert _optuna.tell(study, trial, values, state, attrs) == state
    return created


def test_a_trial_is_stored_and_seen_as_through_optunas_own_storage(rdb_url: str) -> None:
    """The savings change nothing stored nor seen: the same trials, attributes and records (the
    trial's own and the one the sampler's ``after_trial`` gets) as through Optuna's own storage
    stack (one transaction per attribute, its own attribute statement, every read made)."""
    runs = {}
    for way in ("saving", "public"):
        name = f"seam-{way}-{uuid.uuid4().hex[:6]}"
        # public: Optuna's own stack, as optuna.create_study(storage=URL) builds it
        plain = optuna.storages.RDBStorage(rdb_url.replace("postgresql://", "postgresql+psycopg://"))
        storage = _cached(rdb_url) if way == "saving" else optuna.storages.get_storage(plain)
        sampler = _Seen()
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler)
        created = _run_three(study)
        study.set_user_attr("s", [1])  # and writes outside a trial's path
        extra = _optuna.create_trial(study)
        _optuna.set_trial_user_attr(study, extra, "late", {"x": None})
        storage.set_trial_system_attr(_optuna.trial_id(extra), "sys", "v")
        _optuna.set_trial_user_attrs(study, extra, {"m": 1, "n": [2]})
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            _optuna.set_trial_user_attr(study, created[1][0], "after", 1)
        runs[way] = (_stored(rdb_url, name), sampler.told, created)
        plain.engine.dispose()
    saving, public = runs["saving"], runs["public"]
    assert saving[0] == public[0]
    assert saving[0][2]["user_attrs"] == {"worker": {"host": "h", "pid": 7, "n": [1]}, "a": 1,
                                          "b": {"c": [2.5]}, "t": [1, 2]}
    assert saving[0][3]["user_attrs"] == {"late": {"x": None}, "m": 1, "n": [2]}
    assert saving[0][3]["system_attrs"] == {"sys": "v"}

    def plain(t: FrozenTrial) -> dict[str, Any]:
        return {k: v for k, v in vars(t).items() if k not in ("_trial_id", "_datetime_start")}

    assert [plain(t) for t in saving[1]] == [plain(t) for t in public[1]]
    # a created trial's record (handed, not read) is the record a read gives, times included
    assert all(record == read for record, read in saving[2] + public[2])


def test_a_trial_finished_meanwhile_is_skipped_with_nothing_written(rdb_url: str) -> None:
    """Another worker declared the trial dead while it ran: its last attributes and outcome
    are refused, and it keeps its abandoner's state."""
    storage = _cached(rdb_url)
    study = optuna.create_study(study_name=f"seam-{uuid.uuid4().hex[:6]}", storage=storage)
    trial = _optuna.create_trial(study)
    _rdb_of(storage).set_trial_state_values(_optuna.trial_id(trial), TrialState.FAIL)
    told = _optuna.tell(study, trial, [1.0], TrialState.COMPLETE, {"a": 1, "b": 2})
    assert told == TrialState.FAIL  # the state it has (the runner sees it was not told)
    (t,) = _stored(rdb_url, study.study_name)
    assert t["state"] == TrialState.FAIL and t["user_attrs"] == {}
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        _optuna.set_trial_user_attrs(study, trial, {"a": 1, "b": 2})
    assert _stored(rdb_url, study.study_name)[0]["user_attrs"] == {}


def test_a_failed_transaction_is_rolled_back_and_done_the_public_way(
    rdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction that fails midway (a lost connection) leaves nothing half-written: the
    public path then writes every attribute (retrying as tuneops' storage does)."""
    storage = _cached(rdb_url)
    study = optuna.create_study(study_name=f"seam-{uuid.uuid4().hex[:6]}", storage=storage)
    rdb = _rdb_of(storage)
    write = rdb._set_trial_attr_without_commit
    calls: list[str] = []

    def flaky(session: Any, model: Any, trial_id: int, key: str, value: Any) -> None:
        calls.append(key)
        if len(calls) == 2:  # the second attribute of the one transaction
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("connection lost"))
        write(session, model, trial_id, key, value)

    monkeypatch.setattr(rdb, "_set_trial_attr_without_commit", flaky)
    trial = _optuna.create_trial(study)
    assert _optuna.tell(study, trial, [1.0], TrialState.COMPLETE, {"a": 1, "b": 2}) == (
        TrialState.COMPLETE)
    assert calls == ["a", "b", "a", "b"]  # rolled back, then one write per attribute
    calls.clear()
    second = _optuna.create_trial(study)
    _optuna.set_trial_user_attrs(study, second, {"c": 3, "d": 4})
    assert calls == ["c", "d", "c", "d"]
    stored = _stored(rdb_url, study.study_name)
    assert [t["user_attrs"] for t in stored] == [{"a": 1, "b": 2}, {"c": 3, "d": 4}]
    assert stored[0]["state"] == TrialState.COMPLETE and stored[0]["values"] == [1.0]


def test_without_optunas_session_helpers_the_public_path_is_taken(
    rdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Optuna release without the helpers that write within a session: the same trials are
    stored, one write per attribute."""
    # as the seam sees Optuna's RDB module (Optuna itself keeps using its own)
    monkeypatch.setattr(_optuna, "_rdb", types.SimpleNamespace(models=_optuna._rdb.models))
    storage = _cached(rdb_url)
    study = optuna.create_study(study_name=f"seam-{uuid.uuid4().hex[:6]}", storage=storage)
    _run_three(study)
    trial = _optuna.create_trial(study)
    _optuna.set_trial_user_attrs(study, trial, {"c": 3, "d": 4})
    stored = _stored(rdb_url, study.study_name)
    assert [t["user_attrs"].get("b") for t in stored] == [None, None, {"c": [2.5]}, None]
    assert stored[3]["user_attrs"]["d"] == 4 and stored[2]["values"] == [2.5]


def test_a_created_trial_is_read_back_when_its_record_could_differ(tmp_path: Path) -> None:
    """Parameters and values are stored converted: a template with them is read back."""
    storage = _cached(f"sqlite:///{tmp_path / 'c.db'}")
    study = optuna.create_study(storage=storage)
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING, params={"x": 0.5},
        distributions={"x": optuna.distributions.FloatDistribution(0, 1)})
    trial_id = storage.create_new_trial(_optuna.study_id(study), template_trial=template)
    cached = _optuna._cached_rdb(storage)
    assert cached is not None and cached.created(trial_id, template) is None
    assert cached.created(trial_id + 100, None) is None  # not created here: read


@contextlib.contextmanager
def _statements() -> Iterator[list[str]]:
    """Every SQL statement and ``COMMIT`` any engine of this process runs in the block."""
    seen: list[str] = []

    def statement(_conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        seen.append(text)

    def commit(_conn: Any) -> None:
        seen.append("COMMIT")

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", statement)
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "commit", commit)
    try:
        yield seen
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", statement)
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "commit", commit)


def _per_trial(run: Callable[[Callable[[optuna.Trial], Any]], None], n_objectives: int,
               n_trials: int) -> tuple[float, float]:
    """Statements and transactions (commits) per trial of ``run(objective)``, counted from one
    call of the objective to the next over the middle trials (the run's start and end apart)."""
    marks: list[int] = []
    with _statements() as seen:

        def objective(trial: optuna.Trial) -> Any:
            marks.append(len(seen))
            x = trial.suggest_float("x", 0, 1)
            return x if n_objectives == 1 else (x, 1 - x + 0.01 * trial.suggest_float("y", 0, 1))

        run(objective)
    assert len(marks) == n_trials
    window = seen[marks[2]:marks[-2]]
    n = len(marks) - 4
    commits = window.count("COMMIT")
    return (len(window) - commits) / n, commits / n


@pytest.mark.postgres
@pytest.mark.parametrize("n_objectives", [1, 2])
def test_a_trial_costs_fewer_statements_and_transactions_than_plain_optuna_on_postgresql(
    postgres_server, n_objectives: int, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """``tune()`` against ``optimize()``, RandomSampler, on a real PostgreSQL: per trial tuneops
    makes 5 transactions (6 with a second parameter): create (with the worker's record), the
    parameter, the loop's read of the trials (which serves the sampler, as ``ask()``'s does),
    the last attributes with the tell's read, the outcome; plain Optuna makes one more (it
    reads a trial back after creating it). Was 7: the attributes alone, the created trial read."""
    monkeypatch.setattr(runner, "BUDGET_TTL_S", 1e9)  # the budget's periodic read: not a trial's
    monkeypatch.setattr(runner, "INTERVAL_S", 1e9)  # no heartbeat within the count
    url = postgres_server.url
    n_trials = 14
    directions = ["minimize"] * n_objectives
    names = ["value"] if n_objectives == 1 else ["f1", "f2"]

    def plain(objective: Callable[[optuna.Trial], Any]) -> None:
        # as optuna.create_study(storage=URL) makes it: Optuna's cache over the RDB
        rdb = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            study = optuna.create_study(
                study_name=f"plain-{uuid.uuid4().hex[:6]}", directions=directions,
                storage=optuna.storages.get_storage(rdb),
                sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(objective, n_trials=n_trials)
        finally:
            rdb.engine.dispose()

    def tuned(objective: Callable[[optuna.Trial], Any]) -> None:
        tuneops.tune(objective, objectives=names, directions=directions, n_trials=n_trials,
                     sampler="random", storage=url, study=f"tuned-{uuid.uuid4().hex[:6]}",
                     output_dir=tempfile.mkdtemp(dir=postgres_server.root.parent))

    with _optuna.quiet():  # as the benchmark runs it: no "Best is trial ..." read per trial
        optuna_statements, optuna_commits = _per_trial(plain, n_objectives, n_trials)
        statements, commits = _per_trial(tuned, n_objectives, n_trials)
    assert commits == 4 + n_objectives == optuna_commits - 1
    assert statements <= optuna_statements - 2


@pytest.mark.postgres
def test_a_trial_reads_as_many_rows_late_in_a_large_study_as_in_a_new_one(
    postgres_server, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Per-trial cost flat as the study grows, on PostgreSQL, counted: the statements a trial
    runs and the rows they return are the same for trials 2-12 of a new study and for trials
    202-212 of the same study resumed (a read of every trial per trial would return 200 more
    rows). The run's own first read of the study is outside the window."""
    monkeypatch.setattr(runner, "BUDGET_TTL_S", 1e9)
    monkeypatch.setattr(runner, "INTERVAL_S", 1e9)
    returned: list[int] = []  # rows each statement returned (0 for a write)
    marks: list[int] = []

    def counted(_conn: Any, cursor: Any, text: str, *_args: Any) -> None:
        returned.append(max(cursor.rowcount, 0) if text.lstrip()[:6].upper() == "SELECT" else 0)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        marks.append(len(returned))
        x = trial.suggest_float("x", 0, 1)
        return x, 1 - x

    study = f"flat-{uuid.uuid4().hex[:6]}"

    def run(n_trials: int) -> tuple[float, float]:
        marks.clear()
        tuneops.tune(objective, objectives=["a", "b"], directions=["minimize", "minimize"],
                     n_trials=n_trials, sampler="random", storage=postgres_server.url,
                     study=study, output_dir=tempfile.mkdtemp(dir=postgres_server.root.parent))
        window, n = returned[marks[2]:marks[-2]], len(marks) - 4
        return len(window) / n, sum(window) / n

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", counted)
    try:
        with _optuna.quiet():
            new = run(14)
            run(200)
            late = run(214)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "after_cursor_execute", counted)
    assert new[1] > 0  # the count sees the reads
    assert late == new


# -- RDB reads: every trial by six Core SELECTs --------------------------------------------------
def _varied_trials(study: optuna.Study) -> None:
    """Trials of every state, every kind of distribution, infinite values and NaN reports."""
    n_objectives = len(study.directions)
    for i in range(14):
        trial = study.ask()
        trial.suggest_float("f", -1, 1)
        trial.suggest_float("lf", 1e-3, 1, log=True)
        trial.suggest_float("sf", 0, 1, step=0.25)
        trial.suggest_int("i", 0, 9)
        trial.suggest_int("li", 1, 64, log=True)
        trial.suggest_int("si", 0, 10, step=2)
        trial.suggest_categorical("c", [None, True, "a", 1.5])
        trial.set_user_attr("u", {"i": i, "l": [1, None]})
        trial.set_user_attr("z", i * 0.5)
        study._storage.set_trial_system_attr(trial._trial_id, "s", [i])
        if n_objectives == 1:
            trial.report([float("nan"), float("inf"), float("-inf"), 0.5][i % 4], step=i % 3)
            trial.report(0.25, step=7)
        if i % 5 == 1:
            study.tell(trial, state=TrialState.PRUNED)
        elif i % 5 == 2:
            study.tell(trial, state=TrialState.FAIL)
        elif i % 5 == 3:
            continue  # RUNNING
        else:
            value = [float("inf"), float("-inf"), 0.5][i % 3]
            study.tell(trial, [value] * n_objectives if n_objectives > 1 else value)
    study.enqueue_trial({"f": 0.5}, user_attrs={"queued": True})  # WAITING


def _fields(trial: FrozenTrial) -> dict[str, Any]:
    out = {k: v for k, v in vars(trial).items() if k != "intermediate_values"}
    out["steps"] = repr(sorted(trial.intermediate_values.items()))  # NaN != NaN
    return out


@pytest.mark.parametrize("n_objectives", [1, 2])
def test_every_trial_is_read_as_optunas_own_read_gives_it(
    rdb_url: str, n_objectives: int
) -> None:
    """``_RDB._get_trials`` (Core rows) returns what Optuna's ORM read returns, field for
    field, for every filter Optuna's cache reads with; and a study with no trials reads none."""
    rdb = _optuna.rdb_storage(rdb_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        empty = optuna.create_study(storage=rdb, directions=["minimize"] * n_objectives)
        assert rdb._get_trials(empty._study_id, None, set(), -1) == []
        study = optuna.create_study(storage=rdb, directions=["minimize"] * n_objectives)
        _varied_trials(study)
        ids = [t._trial_id for t in study.get_trials(deepcopy=False)]
        assert len(ids) == 15
        for states, included, above in [
            (None, set(), -1),
            ((TrialState.COMPLETE, TrialState.PRUNED), set(), -1),
            (None, set(), ids[6]),
            (None, {ids[1], ids[3], ids[12]}, ids[8]),
            ((TrialState.RUNNING, TrialState.WAITING), {ids[2]}, ids[4]),
        ]:
            mine = rdb._get_trials(study._study_id, states, included, above)
            theirs = optuna.storages.RDBStorage._get_trials(
                rdb, study._study_id, states, included, above)
            assert len(mine) == len(theirs) > 0
            assert [_fields(t) for t in mine] == [_fields(t) for t in theirs]
        with pytest.raises(KeyError):
            rdb._get_trials(study._study_id + 100, None, set(), -1)
    finally:
        rdb.engine.dispose()


def test_reading_every_trial_takes_seven_statements_and_optunas_path_when_tables_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read costs the same statements whatever the number of trials (the study's check,
    the trials, five tables of their parts); when Optuna's tables are not the ones it knows,
    Optuna's own read runs and gives the same trials."""
    rdb = _optuna.rdb_storage(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        study = optuna.create_study(storage=rdb)
        _varied_trials(study)
        with _statements() as seen:
            read = rdb._get_trials(study._study_id, None, set(), -1)
        assert len([s for s in seen if s.startswith("SELECT")]) == 7
        assert sum("IN (SELECT" in s for s in seen) == 5  # each part by the trials' filter
        monkeypatch.setattr(_optuna, "_CHILD_COLUMNS", {**_optuna._CHILD_COLUMNS,
                                                        "trial_params": ("param_id", "moved")})
        assert _optuna._trial_tables() is None
        with _statements() as seen:
            again = rdb._get_trials(study._study_id, None, set(), -1)
        assert not any("IN (SELECT" in s for s in seen)  # Optuna's ORM read: its own lists
        assert [_fields(t) for t in again] == [_fields(t) for t in read]
    finally:
        rdb.engine.dispose()


def test_parts_of_a_trial_created_between_the_statements_are_left_out(tmp_path: Path) -> None:
    """Another worker creates a trial after the trials were read and before their parts are:
    its parts are left out with it (Optuna's ORM read never sees them either)."""
    rdb = _optuna.rdb_storage(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        study = optuna.create_study(storage=rdb)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        tables = _optuna._trial_tables()
        execute = sqlalchemy.orm.Session.execute
        calls = []

        def late(session: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(statement)
            if len(calls) == 3:  # after the trials, before their parameters: a new trial
                later = optuna.load_study(study_name=study.study_name,
                                          storage=optuna.storages.RDBStorage(rdb.url))
                later.enqueue_trial({"x": 0.5})
                later.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
            return execute(session, statement, *args, **kwargs)

        assert tables is not None
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sqlalchemy.orm.Session, "execute", late)
            read = rdb._get_trials(study._study_id, None, set(), -1)
        assert [t.number for t in read] == [0, 1]
        assert all(t.params == {"x": t.values[0]} for t in read)
        assert len(study.get_trials()) == 3  # the late trial is there for the next read
    finally:
        rdb.engine.dispose()


def test_the_journal_file_reader_is_optunas_on_a_sound_journal(tmp_path: Path) -> None:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = str(tmp_path / "s.journal")
    study = optuna.create_study(study_name="r", storage=JournalStorage(JournalFileBackend(path)))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    with open(path, "ab") as f:
        f.write(b'{"op_code":8,"worker_id"')  # a torn last line: skipped by both
    theirs, ours = JournalFileBackend(path), JournalFileBackend(path)
    assert list(_optuna.read_journal_file(ours, 0, _no_glue)) == list(theirs.read_logs(0))
    # the offsets kept are Optuna's, but only those of entry 0 and of the next entry to read
    last = max(theirs._log_number_offset)
    assert ours._log_number_offset == {n: theirs._log_number_offset[n] for n in (0, last)}
    assert list(_optuna.read_journal_file(ours, 7, _no_glue)) == list(theirs.read_logs(7))
    assert list(_optuna.read_journal_file(ours, last, _no_glue)) == []


def test_the_journal_reader_keeps_few_offsets_and_one_copy_of_each_attribute_name(
    tmp_path: Path, monkeypatch
) -> None:
    """A 10,000-trial study is some 50,000 entries: an offset per entry, and a copy per trial of
    every attribute name and worker, were megabytes that Optuna's replay kept (issue 15)."""
    from optuna.storages.journal import JournalStorage

    # the process-wide table of shared records holds the first 256 distinct ones: the tests
    # run before this one in the same process may have filled it
    monkeypatch.setattr(_optuna, "_shared_records", {})

    backend = SnapshotJournalFile(str(tmp_path / "s.journal"), use_snapshot=False)
    study = optuna.create_study(study_name="r", storage=JournalStorage(backend))
    for _ in range(30):  # a read after every write, as a worker reads
        trial = study.ask()
        trial.set_user_attr("tuneops:fidelity", {"steps": [], "custom": True})
        trial.set_user_attr("worker", {"host": "vm", "id": "vm:1"})
        study.tell(trial, 1.0)
    assert len(backend._log_number_offset) <= 3
    attrs = [t.user_attrs for t in study.get_trials(deepcopy=False)]
    keys = {id(k) for a in attrs for k in a} | {id(k) for a in attrs for k in a["worker"]}
    assert len(keys) == 2 + 2  # one object per name, not one per trial
    assert len({id(a["worker"]) for a in attrs}) == 1  # a small record: one object
    assert len({id(a["tuneops:fidelity"]) for a in attrs}) == 30  # holds a list: each its own
    assert all(a["worker"] == {"host": "vm", "id": "vm:1"} for a in attrs)
    # equal in Python is not the same JSON: 1, 1.0 and true stay what was written
    shared = [_optuna._shared({"v": v}) for v in (1, 1.0, True, 1)]
    assert [type(d["v"]) for d in shared] == [int, float, bool, int]
    assert shared[0] is shared[3]


def _no_glue(log_number: int, dropped: int) -> None:
    raise AssertionError(f"no glued line here (entry {log_number})")


def test_the_database_reader_shares_distributions_and_attribute_names(
    tmp_path: Path, monkeypatch
) -> None:
    """Trials read from a database: one distribution object per distinct distribution and one
    copy of each attribute name and small record, not one per trial (issue 15: memory)."""
    monkeypatch.setattr(_optuna, "_shared_records", {})  # as above: a fresh table
    study = optuna.create_study(
        study_name="r", storage=get_storage(f"sqlite:///{tmp_path / 's.db'}")
    )
    for _ in range(12):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("worker", {"host": "vm", "id": "vm:1"})
        study.tell(trial, 1.0)
    again = optuna.load_study(study_name="r", storage=get_storage(f"sqlite:///{tmp_path / 's.db'}"))
    trials = again.get_trials(deepcopy=False)
    assert len(trials) == 12
    assert len({id(t.distributions["x"]) for t in trials}) == 1
    assert len({id(t.user_attrs["worker"]) for t in trials}) == 1
    assert {id(k) for t in trials for k in t.user_attrs} == {id(next(iter(trials[0].user_attrs)))}


def _gets(client: Any) -> int:
    """GET commands the Redis server has run, as it counts them (INFO commandstats)."""
    return int(client.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


def test_a_redis_sync_reads_the_entry_count_once_and_the_journal_as_optuna_does(
    request: pytest.FixtureRequest,
) -> None:
    """Every sync of a Redis journal read its ``log_number`` twice (tuneops' check, then
    Optuna's reader): one GET, then one per new entry; the entries read are Optuna's."""
    from optuna.storages.journal import JournalRedisBackend, JournalStorage

    server = request.getfixturevalue("redis_server")  # a real redis-server (tests/servers.py)
    url, client = server.database(6)  # a database of its own
    storage = get_storage(url)
    study = optuna.create_study(study_name="gets", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    study_id = _optuna.study_id(study)
    before = _gets(client)
    storage.get_all_trials(study_id, deepcopy=False)  # one sync, nothing new
    assert _gets(client) - before == 1
    other = optuna.load_study(study_name="gets", storage=JournalStorage(JournalRedisBackend(url)))
    for i in range(3):  # three entries another process appends
        other.set_user_attr(f"k{i}", i)
    before = _gets(client)
    storage.get_all_trials(study_id, deepcopy=False)
    assert _gets(client) - before == 1 + 3
    assert study.user_attrs == {"k0": 0, "k1": 1, "k2": 2}
    backend = JournalRedisBackend(url)
    for start in (0, 5):
        top = _optuna.redis_journal_top(backend)
        ours = list(_optuna.read_redis_journal(backend, start, top))
        assert ours == list(backend.read_logs(start)) and len(ours) == top + 1 - start
    client.flushdb()
    assert list(_optuna.read_redis_journal(backend, 0, _optuna.redis_journal_top(backend))) == []


def test_gp_sampler_on_an_optuna_without_the_starting_points_warns_and_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The setting is a private attribute: an Optuna without it must not stop a study."""

    class Plain:
        def __init__(self, **kw: object) -> None:
            self.kw = kw

    monkeypatch.setattr(optuna.samplers, "GPSampler", Plain)
    with pytest.warns(RuntimeWarning, match="no _n_local_search.*not 3"):
        sampler = _optuna.gp_sampler(seed=0, n_local_search=3)
    assert isinstance(sampler, Plain) and not hasattr(sampler, "_n_local_search")
