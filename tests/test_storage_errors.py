"""Storage errors say what is actually wrong (issue 14, part 5, the storage half).

A missing directory, a path without write permission, a malformed URL, a bad port, a refused
connection and a failed login each get their own message (never the generic "check that the
server is running ... user, password"), with the password masked. Real PostgreSQL for the
login; a port nothing listens on for the refusal; a real unprivileged user for permissions.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import RedisServer, free_port, postgres_server, unavailable  # noqa: F401 - fixture
from test_security import SecretDatabase, make_secret_database

from tuneops.errors import StorageUnavailable
from tuneops.storage import get_storage

GENERIC = ("server is running and reachable", "user, password")
NOBODY = 65534


def refused(url: str) -> str:
    with pytest.raises(StorageUnavailable) as info:
        get_storage(url)
    message = str(info.value)
    assert not any(g in message for g in GENERIC), message
    return message


def test_missing_sqlite_directory_names_the_directory(workdir: Path) -> None:
    message = refused(f"sqlite:///{workdir}/no-such-dir/study.db")
    assert f"directory '{workdir}/no-such-dir' does not exist; create it first" in message
    assert not (workdir / "no-such-dir").exists()


def test_missing_journal_directory_names_the_directory(workdir: Path) -> None:
    message = refused("missing/dir/study.journal")
    assert "directory 'missing/dir' does not exist" in message


def test_directory_given_as_journal(workdir: Path) -> None:
    (workdir / "d").mkdir()
    assert "is a directory; expected a file path" in refused("d")


def _as_unprivileged(fn, *args: str) -> str:
    """``fn(*args)`` run by a user without root's override of file permissions; its message.

    Root may write anywhere, so under root a forked child drops to ``nobody`` first (the
    kernel then checks permissions for real); otherwise the test's own user is unprivileged.
    """
    if os.geteuid() != 0:
        return fn(*args)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                text = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - sent to the parent
                text = f"{type(exc).__name__}: {exc}"
            os.write(write, text.encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A directory every user may enter (pytest's own tmp is private to the test's user)."""
    path = Path(tempfile.mkdtemp(prefix="tuneops-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _open(url: str) -> str:
    try:
        get_storage(url)
    except StorageUnavailable as exc:
        return str(exc)
    return "opened"


def test_journal_in_a_directory_without_write_permission(reachable: Path) -> None:
    locked = reachable / "locked"
    locked.mkdir(mode=0o755)  # others may enter, not write
    message = _as_unprivileged(_open, str(locked / "study.journal"))
    assert "no permission to write in directory" in message and str(locked) in message, message
    assert not any(g in message for g in GENERIC)
    assert not (locked / "study.journal").exists()


def test_path_behind_a_directory_that_cannot_be_entered(reachable: Path) -> None:
    private = reachable / "private"
    private.mkdir(mode=0o700)
    message = _as_unprivileged(_open, str(private / "sub" / "study.journal"))
    assert "no permission to reach" in message and "cannot be entered" in message, message


def test_journal_file_without_write_permission(reachable: Path) -> None:
    shared = reachable / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    journal = shared / "study.journal"
    get_storage(str(journal))  # created by this user, 0644: others may read, not write
    journal.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    message = _as_unprivileged(_open, str(journal))
    assert "no permission to read and write file" in message and str(journal) in message, message


def test_sqlite_in_a_directory_without_write_permission(reachable: Path) -> None:
    locked = reachable / "locked"
    locked.mkdir(mode=0o755)
    message = _as_unprivileged(_open, f"sqlite:///{locked}/study.db")
    assert "no permission to write in directory" in message, message


@pytest.mark.parametrize("url, expected", [
    ("postgresql:/db.example/tune",
     r"'postgresql:' must be followed by two slashes; expected postgresql://"),
    ("postgres:db.example/tune", r"'postgres:' must be followed by two slashes"),
    ("redis:/127.0.0.1:6379/0", r"'redis:' must be followed by two slashes; expected redis://"),
    ("sqlite:/study.db", r"'sqlite:' must be followed by two slashes; expected sqlite:///"),
    ("sqlite://study.db", r"not a valid SQLite URL: after 'sqlite:' come three slashes"),
    ("postgresql://u@[::1/tune", r"IPv6 host '\[::1' has no closing '\]'"),
])
def test_malformed_url_is_named_not_taken_for_a_path(
    workdir: Path, url: str, expected: str
) -> None:
    with pytest.raises(StorageUnavailable, match=expected) as info:
        get_storage(url)
    assert "does not exist" not in str(info.value)  # not read as a journal path
    assert list(workdir.iterdir()) == []  # nothing created


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql//ann:s3cret@127.0.0.1:5432/tune",
     "storage 'postgresql//ann:***@127.0.0.1:5432/tune' is not a valid URL: the ':' after "
     "'postgresql' is missing (it would be read as a file path); expected postgresql://"),
    ("redis//:s3cret@127.0.0.1:6379/0", "the ':' after 'redis' is missing"),
    ("postgresql://ann:s3c@ret@127.0.0.1:5432/tune",
     "storage 'postgresql://ann:***@127.0.0.1:5432/tune': the password holds '@', which ends "
     "it for the database driver (the rest would be read as the host name); write '@' in a "
     "password as %40, as in postgresql://USER:pass%40word@HOST:PORT/DATABASE."),
    ("mysql://ann:s3c@ret@127.0.0.1:3306/tune", "the password holds '@'"),
])
def test_a_mistyped_url_never_shows_its_password(workdir: Path, url: str, expected: str) -> None:
    """'postgresql//...' was read as a file path and printed whole, password and all; a raw '@'
    in a password made the driver read the rest as the host name and print it (found by a
    security review)."""
    with pytest.raises(StorageUnavailable) as info:
        get_storage(url)
    message = str(info.value)
    assert expected in message
    assert "s3c" not in message and "ret@" not in message
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("port", ["abc", "5432x", "0", "70000", ""])
def test_bad_port_says_which_port_and_what_is_expected(port: str) -> None:
    with pytest.raises(StorageUnavailable) as info:
        get_storage(f"postgresql://ann:s3cret@127.0.0.1:{port}/tune")
    message = str(info.value)
    assert f"port {port!r} is not a port number; expected an integer from 1 to 65535" in message
    assert "invalid literal" not in message and "s3cret" not in message


def test_bad_redis_port() -> None:
    with pytest.raises(StorageUnavailable, match=r"port 'six' is not a port number"):
        get_storage("redis://:pw@127.0.0.1:six/0")


def test_refused_connection_says_nothing_listens() -> None:
    message = refused(f"postgresql://ann:s3cret@127.0.0.1:{free_port()}/tune")
    assert ("connection refused: no server is running (or listening) on that host and port"
            in message)
    assert "start the server, or fix the host and port" in message
    assert "s3cret" not in message and "ann:***@" in message
    assert "password" not in message  # not a login problem


@pytest.mark.postgres
def test_authentication_failure_says_so(postgres_server) -> None:  # noqa: F811
    db: SecretDatabase = make_secret_database(postgres_server)
    message = refused(db.url("not-the-password-42"))
    assert ("authentication failed: the server refused the user name or password in the URL"
            in message)
    assert "not-the-password-42" not in message and db.password not in message
    assert "connection refused" not in message
    get_storage(db.url())  # the right password opens it


@pytest.mark.postgres
def test_unknown_user_and_unknown_database(postgres_server) -> None:  # noqa: F811
    base = f"127.0.0.1:{postgres_server.port}"
    message = refused(f"postgresql://nosuchuser@{base}/postgres")
    assert "the user in the URL does not exist" in message
    message = refused(f"postgresql://postgres:pw@{base}/no_such_db")
    assert "the database named in the URL does not exist" in message and "createdb" in message


@pytest.mark.postgres
def test_a_url_without_the_password_the_server_asks_for_says_so(postgres_server) -> None:  # noqa: F811
    db: SecretDatabase = make_secret_database(postgres_server)
    message = refused(f"postgresql://{db.user}@127.0.0.1:{postgres_server.port}/{db.database}")
    assert "authentication failed: the server asks for a password, and the URL has none" in message
    assert "put the password in the URL, as in postgresql://USER:PASSWORD@HOST:PORT" in message


@pytest.mark.redis
def test_a_redis_server_that_asks_for_a_password_says_so() -> None:
    """redis-py's first command to a server with requirepass and no password in the URL is
    HELLO, refused with 'HELLO must be called with the client already authenticated ...': the
    message gave the driver's words and 'check the URL' instead of naming the login."""
    server = RedisServer(password="pw-redis-secret-7")
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported as skip/fail
        unavailable(f"redis-server could not start: {exc}")
    try:
        message = refused(server.url.replace(":pw-redis-secret-7@", ""))
        assert "authentication failed: the server asks for a password, and the URL has none" in message
        assert "as in redis://[:PASSWORD@]HOST:PORT/DB" in message
        message = refused(server.url.replace("pw-redis-secret-7", "not-it-42"))
        assert "authentication failed: the server refused the user name or password" in message
        assert "not-it-42" not in message
        get_storage(server.url)  # the right password opens it
    finally:
        server.stop()


def _cluster_pids(server) -> list[int]:  # noqa: ANN001 - servers.PostgresServer
    """The postmaster and every process it forked (the backends that hold our connections)."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat_line = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat_line.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry))
    return pids


@pytest.mark.postgres
def test_a_server_that_stops_answering_is_reported_not_waited_on_in_silence(
    postgres_server, monkeypatch, caplog  # noqa: F811
) -> None:
    """A stopped server keeps its connections open: the driver waits with no timeout to end
    it. tuneops says so while it waits, and again when the answer comes."""
    import logging
    import signal
    import threading
    import time

    import optuna

    monkeypatch.setenv("TUNEOPS_STORAGE_STALL_S", "0.4")
    storage = get_storage(postgres_server.url)
    study = optuna.create_study(storage=storage, study_name=f"stall-{os.getpid()}")
    pids = _cluster_pids(postgres_server)
    caplog.set_level(logging.WARNING, logger="tuneops.storage")
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        reader = threading.Thread(target=study.get_trials)
        reader.start()
        deadline = time.monotonic() + 20
        while "has not answered" not in caplog.text:
            assert time.monotonic() < deadline, "no word of the stall"
            time.sleep(0.1)
        assert reader.is_alive()  # still waiting: nothing was interrupted
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    reader.join(timeout=30)
    assert not reader.is_alive()
    stalled = [r.getMessage() for r in caplog.records if "has not answered" in r.getMessage()]
    assert len(stalled) == 1 and "postgresql://postgres@127.0.0.1" in stalled[0]
    assert "cut off by the network" in stalled[0] and "Ctrl-C stops" in stalled[0]
    assert any("answered" in m and "going on" in m for m in (r.getMessage() for r in caplog.records))


def _journal_of_five_trials(path: Path) -> list[bytes]:
    """A journal file holding one study of five complete trials; its lines."""
    import optuna

    study = optuna.create_study(storage=get_storage(str(path)), study_name="five")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    return path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("damage, reason", [
    (b"{\"op_code\": 5, \"worker_id\": \"w\", \"tr\n", "not a journal entry: JSONDecodeError"),
    (b"\xe9\xff{}\n", "not a journal entry: UnicodeDecodeError"),  # a byte flipped on disk
    (b"{\"op_code\": 5}\n", "an entry Optuna cannot replay: KeyError: 'trial_id'"),
    (b"[1, 2]\n", "not a journal entry: TypeError: a JSON list"),
])
def test_a_damaged_journal_line_is_named_with_the_entries_that_can_be_kept(
    workdir: Path, cli, damage: bytes, reason: str
) -> None:
    path = workdir / "study.journal"
    lines = _journal_of_five_trials(path)
    at = len(lines) // 2
    path.write_bytes(b"".join(lines[:at] + [damage] + lines[at + 1 :]))
    code, _, err = cli("show", "five", "--storage", path)
    assert code == 2 and "Traceback" not in err
    text = " ".join(err.split())
    assert f"journal file '{path}' is damaged at line {at + 1} ({reason}" in text, text
    assert f"Its first {at} entries are whole" in text and "restore the file from a backup" in text
    assert f"head -n {at} {path} > {path}.kept" in text
    assert "not an Optuna journal file" not in text
    # the advice works: the entries before the damaged line open as a journal
    (workdir / "study.journal.kept").write_bytes(b"".join(lines[:at]))
    code, out, err = cli("show", "five", "--storage", workdir / "study.journal.kept")
    assert code == 0, err


def test_a_file_whose_first_line_is_no_entry_is_not_called_a_damaged_journal(workdir: Path) -> None:
    path = workdir / "results.json"
    path.write_text('{\n  "study": "five"\n}\n')
    message = refused(str(path))
    assert "not an Optuna journal file" in message and "damaged" not in message


def test_a_journal_damaged_while_a_run_reads_it_stops_the_read_with_the_line_named(
    workdir: Path,
) -> None:
    """A line damaged after the storage opened (another writer's, a disk's) raised a bare
    JSONDecodeError from the read that met it: a traceback that ended the run."""
    import optuna

    path = workdir / "study.journal"
    lines = _journal_of_five_trials(path)
    study = optuna.load_study(study_name="five", storage=get_storage(str(path)))
    with path.open("ab") as f:
        f.write(b"garbage\n" + lines[-1])  # a damaged line, then another writer's entry
    with pytest.raises(StorageUnavailable) as caught:
        study.get_trials()
    text = str(caught.value)
    assert f"journal file '{path}' is damaged at line {len(lines) + 1} (not a journal" in text
    assert f"head -n {len(lines)} {path}" in text


def test_what_optunas_replay_tells_a_writer_is_not_called_damage(workdir: Path) -> None:
    """Optuna's replay raises to the writer of an entry it applies: a second create of the same
    study (two runs or deploys starting together) is a DuplicatedStudyError that tuneops
    catches to open the study instead. Read as a damaged journal, two deploys at the same
    moment both failed."""
    import optuna
    from optuna.study import StudyDirection

    path = str(workdir / "s.journal")
    first, second = get_storage(path), get_storage(path)
    optuna.create_study(storage=first, study_name="same")
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        second.create_new_study(directions=[StudyDirection.MINIMIZE], study_name="same")
    assert len(optuna.get_all_study_summaries(get_storage(path))) == 1  # the file reads whole
