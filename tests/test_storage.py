"""The storage contract on every storage tuneops offers, against real servers; bad URLs; retry."""

from __future__ import annotations

import threading
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState
from servers import STORAGE_KINDS, postgres_server, redis_server, storage_url_for  # noqa: F401

import tuneops
from tuneops import _study, runner
from tuneops.errors import MissingExtra, StorageUnavailable
from tuneops.storage import RetryingStorage, engine_url, get_storage, mask_url


@pytest.fixture(params=STORAGE_KINDS)
def storage_url(request: pytest.FixtureRequest, workdir) -> str:
    """One URL per storage backend; the same contract runs against each."""
    return storage_url_for(request.param, request, workdir)


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -3, 3)
    time.sleep(0.02)  # long enough that parallel workers overlap
    return -((x - 1) ** 2)


def _name() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


def _complete(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=get_storage(url))
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


# -- the contract ---------------------------------------------------------------------------------
def test_create_and_exact_count(storage_url: str) -> None:
    name = _name()
    result = tuneops.tune(quadratic, n_trials=5, storage=storage_url, study=name)
    assert result.results["n_trials"] == {"complete": 5}
    assert len(_complete(storage_url, name)) == 5
    # The study is in the storage, readable by name from a new connection.
    assert name in [s.study_name for s in optuna.get_all_study_summaries(get_storage(storage_url))]


def test_resume_adds_only_the_missing_trials(storage_url: str) -> None:
    name = _name()
    tuneops.tune(quadratic, n_trials=3, storage=storage_url, study=name)
    first = {t.number: t.params for t in _complete(storage_url, name)}
    tuneops.tune(quadratic, n_trials=7, storage=storage_url, study=name)
    trials = _complete(storage_url, name)
    assert len(trials) == 7
    assert {t.number: t.params for t in trials if t.number in first} == first


def test_parallel_workers_run_exactly_n_trials(storage_url: str) -> None:
    name = _name()
    result = tuneops.tune(quadratic, n_trials=12, n_workers=3, storage=storage_url, study=name)
    trials = _complete(storage_url, name)
    assert len(trials) == 12
    assert len({t.number for t in trials}) == 12
    study = optuna.load_study(study_name=name, storage=get_storage(storage_url))
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert all(_study.is_retired(t) for t in study.get_trials(states=(TrialState.FAIL,)))  # see above
    # Every trial names the worker process that ran it; the contribution table adds up.
    workers = result.results["workers"]["workers"]
    assert all(t.user_attrs["worker"]["pid"] for t in trials)
    assert sum(w["complete"] for w in workers) == 12
    assert abs(sum(w["pareto_share"] for w in workers) - 1.0) < 1e-9


class Watcher:
    """An objective that records how many trials were queued while it ran, and its process."""

    def __call__(self, trial: optuna.Trial) -> float:
        import os

        waiting = trial.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        trial.set_user_attr("seen_waiting", len(waiting))
        trial.set_user_attr("ran_in", os.getpid())
        return quadratic(trial)


def test_many_workers_queue_nothing_and_keep_the_exact_count(storage_url: str) -> None:
    name = _name()
    tuneops.tune(Watcher(), n_trials=24, n_workers=4, storage=storage_url, study=name)
    study = optuna.load_study(study_name=name, storage=get_storage(storage_url))
    trials = study.get_trials()
    ran = _study.counted(trials)
    assert [t.state for t in ran] == [TrialState.COMPLETE] * 24  # nothing failed or left
    # Workers that created a trial at the same moment as the last one retired theirs unrun.
    assert all(_study.is_retired(t) and not t.params for t in trials if t not in ran)
    assert len(trials) - len(ran) <= 3
    assert max(t.user_attrs["seen_waiting"] for t in ran) == 0  # trials are created, not queued
    # the worker record (written with the trial) names the process that ran it
    assert all(t.user_attrs["worker"]["pid"] == t.user_attrs["ran_in"] for t in ran)


# -- URLs ------------------------------------------------------------------------------------------
def test_mask_url_hides_the_password() -> None:
    assert mask_url("postgresql://ann:s3cr@t@db:5432/x") == "postgresql://ann:***@db:5432/x"
    assert mask_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("sqlite:///a.db") == "sqlite:///a.db"


def test_postgres_url_uses_the_installed_driver() -> None:
    import importlib.util

    url = engine_url("postgres://u:p@h:5/db")
    if importlib.util.find_spec("psycopg2"):
        assert url == "postgresql://u:p@h:5/db"
    else:
        assert url == "postgresql+psycopg://u:p@h:5/db"
    assert engine_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_mysql_url_gets_an_installed_driver_or_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import tuneops.storage as storage

    monkeypatch.setattr(storage, "_has", lambda module: module == "pymysql")
    assert engine_url("mysql://u:p@h/db") == "mysql+pymysql://u:p@h/db"
    monkeypatch.setattr(storage, "_has", lambda module: False)
    with pytest.raises(MissingExtra, match=r"mysql://u:\*\*\*@h/db.*pip install pymysql"):
        engine_url("mysql://u:p@h/db")


def test_unknown_scheme_lists_the_valid_ones() -> None:
    # the house form, named as the spec's field (the CLI's --storage names the option)
    with pytest.raises(
        StorageUnavailable,
        match=r"^storage: expected .*postgresql://.*redis://.*; received 'mongodb://u:\*\*\*@h/db' "
        r"\(unknown scheme 'mongodb'\)",
    ):
        get_storage("mongodb://u:secret@h/db")


def test_refused_postgres_names_url_masked_and_what_to_check() -> None:
    from servers import free_port

    url = f"postgresql://tuner:hunter2@127.0.0.1:{free_port()}/tune"
    with pytest.raises(StorageUnavailable) as info:
        get_storage(url)
    message = str(info.value)
    assert "hunter2" not in message
    assert "postgresql://tuner:***@127.0.0.1" in message
    assert "Connection refused" in message
    assert "server is running" in message


@pytest.mark.postgres
def test_missing_database_says_create_it(postgres_server) -> None:
    url = postgres_server.url.replace("postgres@", "postgres:pw@").rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(StorageUnavailable, match=r"no_such_db.*does not exist.*createdb") as info:
        get_storage(url)
    assert ":pw@" not in str(info.value)


def test_refused_redis_names_url_and_what_to_check() -> None:
    from servers import free_port

    with pytest.raises(StorageUnavailable, match=r"redis://:\*\*\*@127\.0\.0\.1.*server is running"):
        get_storage(f"redis://:topsecret@127.0.0.1:{free_port()}/0")


def test_a_redis_that_lost_the_journal_stops_the_run_by_name(redis_server, caplog) -> None:
    """A Redis restarted without its data: a run went on writing into a journal that no longer
    held its study and reported success; `show` then found no study."""

    url, client = redis_server.database(5)  # a database of its own
    storage = get_storage(url)
    study = optuna.create_study(study_name="lost", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    client.flushdb()  # the server comes back empty, and another writer appends from 0 again
    client.set(":log_number", 0)  # (Optuna's journal keys: one entry since the restart)
    with pytest.raises(StorageUnavailable, match="lost the study journal.*appendonly yes"):
        study.get_trials()
    client.flushdb()


def test_a_redis_that_keeps_its_data_in_memory_only_is_named(caplog) -> None:
    """(Switching the test server's persistence off and on again makes it refuse to stop
    while it writes its first append-only file: a server of another config is faked.)"""
    from tuneops.storage import _warn_if_volatile

    class Server:
        def __init__(self, appendonly: str, save: str) -> None:
            self.config = {"appendonly": appendonly, "save": save}

        def config_get(self, key: str) -> dict:
            return {key: self.config[key]}

    with caplog.at_level("WARNING", logger="tuneops"):
        _warn_if_volatile(Server("yes", ""), "redis://:pw@a:1/0")
        _warn_if_volatile(Server("no", "3600 1"), "redis://:pw@b:1/0")
        assert caplog.text == ""  # an append-only file or save points keep the data
        for _ in range(2):
            _warn_if_volatile(Server("no", ""), "redis://:pw@c:1/0")
    assert caplog.text.count("keeps its data in memory only") == 1  # said once per server
    assert "redis://:***@c:1/0" in caplog.text and "appendonly yes" in caplog.text


def test_journal_in_missing_directory(workdir) -> None:
    with pytest.raises(StorageUnavailable, match="does not exist; create it first"):
        get_storage(str(workdir / "nope" / "x.journal"))


def test_memory_storage_refuses_several_workers() -> None:
    with pytest.raises(StorageUnavailable, match="lives in one process.*n_workers is 2"):
        get_storage(":memory:", n_workers=2)


def test_cli_bad_url_exits_2_with_masked_password(cli) -> None:
    from servers import free_port

    code, _out, err = cli("show", "s", "--storage", f"postgresql://u:pa55@127.0.0.1:{free_port()}/d")
    assert code == 2
    assert "pa55" not in err and "***" in err and "cannot be opened" in err


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import tuneops.storage as storage

    monkeypatch.setattr(storage, "_has", lambda module: False)
    with pytest.raises(MissingExtra, match=r"pip install 'tuneops\[postgres\]'"):
        get_storage("postgresql://u:p@127.0.0.1/db")


# -- dropped connections ----------------------------------------------------------------------
@pytest.mark.postgres
def test_dropped_postgres_connection_is_retried(postgres_server) -> None:
    storage = get_storage(postgres_server.url)
    study = optuna.create_study(study_name=_name(), storage=storage)
    assert isinstance(study._storage, RetryingStorage)
    postgres_server.restart_after(1.5)  # the server is down now, back in 1.5 s
    try:
        study.enqueue_trial({"x": 1.0})  # fails at first, succeeds on a retry after the restart
    finally:
        postgres_server.wait_ready()
    assert len(study.get_trials()) == 1


def test_retry_gives_up_on_errors_that_are_not_connections() -> None:
    calls = []

    class Inner(optuna.storages.InMemoryStorage):
        def get_all_studies(self):
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionResetError("reset by peer")
            return []

        def get_study_id_from_name(self, name):
            calls.append(1)
            raise KeyError(name)

    storage = RetryingStorage(Inner(), "redis://h/0", first_delay_s=0.01)
    assert storage.get_all_studies() == [] and len(calls) == 3
    calls.clear()
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("x")
    assert len(calls) == 1

    class Down(optuna.storages.InMemoryStorage):
        def get_all_studies(self):
            raise ConnectionRefusedError("connection refused to pw:secret@h")

    down = RetryingStorage(Down(), "redis://:secret@h/0", attempts=3, first_delay_s=0.01)
    with pytest.raises(StorageUnavailable, match=r"stayed unreachable: get_all_studies failed 3 "
                       r"times.*ConnectionRefusedError.*run the same command again") as raised:
        down.get_all_studies()
    assert "secret" not in str(raised.value)

    class Wrapped(optuna.storages.InMemoryStorage):
        def get_all_studies(self):
            try:
                raise ConnectionRefusedError("connection to server at 127.0.0.1 refused")
            except ConnectionRefusedError as exc:  # as Optuna's RDB storage wraps a commit
                raise optuna.exceptions.StorageInternalError(
                    "An exception is raised during the commit. This typically happens due to "
                    "invalid data in the commit, e.g. exceeding max length."
                ) from exc

    wrapped = RetryingStorage(Wrapped(), "postgresql://h/db", attempts=2, first_delay_s=0.01)
    with pytest.raises(StorageUnavailable) as raised:
        wrapped.get_all_studies()
    assert "ConnectionRefusedError: connection to server at 127.0.0.1 refused" in str(raised.value)
    assert "invalid data" not in str(raised.value)


def test_an_outage_is_said_when_it_begins_and_when_it_ends_not_per_retry(caplog) -> None:
    """Each retry of each call and thread printed a line (about 50 for one outage, each twice)
    and nothing said when the server was back."""
    failures = [3]

    class Flaky(optuna.storages.InMemoryStorage):
        def get_all_studies(self):
            if failures[0]:
                failures[0] -= 1
                raise ConnectionResetError("reset by peer")
            return []

    storage = RetryingStorage(Flaky(), "postgresql://u:pw@flaky/db", first_delay_s=0.01)
    with caplog.at_level("WARNING", logger="tuneops"):
        assert storage.get_all_studies() == []
        failures[0] = 2  # a second outage later is said again
        assert storage.get_all_studies() == []
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(": ", 1)[1].split(" (")[0].split(";")[0] for line in lines] == [
        "connection lost during get_all_studies",
        "reconnected after 0 s",
        "connection lost during get_all_studies",
        "reconnected after 0 s",
    ], lines
    assert all("u:***@flaky" in line and "pw" not in line for line in lines)


def test_retrying_storage_is_thread_safe_to_share(workdir) -> None:
    storage = RetryingStorage(get_storage(str(workdir / "s.journal")), "x", first_delay_s=0.01)
    study = optuna.create_study(storage=storage)
    threads = [threading.Thread(target=study.optimize, args=(quadratic,), kwargs={"n_trials": 3})
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6


def test_a_missing_study_lists_the_studies_but_not_the_registries(workdir) -> None:
    url = "s.journal"
    storage = get_storage(url)
    optuna.create_study(study_name="tuned", storage=storage)
    optuna.create_study(study_name=f"{_study.REGISTRY_PREFIX}model", storage=storage)
    with pytest.raises(tuneops.errors.StudyNotFound) as error:
        _study.load_study("nope", url)
    assert "studies there: tuned." in str(error.value)


def test_an_entry_torn_at_the_journals_end_is_cut_before_the_next_append(
    workdir, caplog: pytest.LogCaptureFixture
) -> None:
    # A writer killed within a large write, or a full disk, leaves a line without its newline.
    # Appended after as is, the next entry would be glued to it and no reader could load the
    # study again (plain Optuna fails so); tuneops cuts the torn bytes off first.
    path = workdir / "s.journal"
    study = optuna.create_study(study_name="torn", storage=get_storage(str(path)))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    torn = b'{"op_code":5,"worker_id":"w","trial_id":3,"state":'
    with path.open("ab") as f:
        f.write(torn)
    study = optuna.load_study(study_name="torn", storage=get_storage(str(path)))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert f"cut off {len(torn)} bytes" in caplog.text
    again = optuna.load_study(study_name="torn", storage=get_storage(str(path)))
    assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 5
    assert path.read_bytes().endswith(b"}\n") and torn not in path.read_bytes()


def test_a_torn_tail_longer_than_a_read_or_the_whole_file_is_cut(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from tuneops.storage import snapshots

    monkeypatch.setattr(snapshots, "_TAIL_CHUNK", 4)
    for content, kept in ((b'{"a":1}\n{"b":2}\n' + b"x" * 23, b'{"a":1}\n{"b":2}\n'),
                          (b"x" * 9, b""), (b'{"a":1}\n', b'{"a":1}\n')):
        path = tmp_path / "j"
        path.write_bytes(content)
        with path.open("a+b") as f:
            snapshots._cut_torn_tail(f.fileno(), str(path))
        assert path.read_bytes() == kept
        os.remove(path)


def test_a_journal_with_an_entry_glued_to_a_torn_one_is_read_again(workdir, caplog) -> None:
    # Written before tails were cut (or by plain Optuna): a torn entry with the next writer's
    # whole entry appended on the same line. Optuna stops every read of the study there.
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = workdir / "s.journal"
    plain = optuna.create_study(study_name="glued",
                                storage=JournalStorage(JournalFileBackend(str(path))))
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    with path.open("ab") as f:
        f.write(b'{"op_code":8,"worker_id":"w","trial_id":2,"user_attr":{"big"')
    plain.set_user_attr("after", 1)  # glued to the torn bytes
    assert b'"big"{"op_code":2' in path.read_bytes()
    study = optuna.load_study(study_name="glued", storage=get_storage(str(path)))
    assert study.user_attrs == {"after": 1}
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert "was glued to 60 bytes of an entry left incomplete" in caplog.text
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # and it goes on
    again = optuna.load_study(study_name="glued", storage=get_storage(str(path)))
    assert len(again.trials) == 4


def _open_together(path: str, barrier, results) -> None:  # noqa: ANN001 - multiprocessing
    from tuneops.storage import get_storage

    barrier.wait()
    try:
        get_storage(f"sqlite:///{path}")
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_one_new_sqlite_file_together_all_open_it(tmp_path) -> None:
    """Each created the tables; the losers failed ("table studies already exists", a unique
    violation on alembic_version): 16 failures in 8 rounds of 6 processes before."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for round_ in range(2):
        barrier, results = ctx.Barrier(5), ctx.Queue()
        path = str(tmp_path / f"new-{round_}.db")
        procs = [ctx.Process(target=_open_together, args=(path, barrier, results)) for _ in range(5)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [results.get(timeout=10) for _ in procs] == ["ok"] * 5
