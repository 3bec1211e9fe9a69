"""Secrets never leave the URL (issue 14, part 1).

Every command runs against a real password-protected PostgreSQL (a user with a scram-sha-256
password on loopback), with the URL given in the spec and with ``--storage``; then every file
written, every line printed or logged, and the whole database (``pg_dump``: every study and
trial attribute of every study) are searched for the password. Expected hits: none.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml
from conftest import tiny_spec
from servers import PG_BIN, PostgresServer, postgres_server  # noqa: F401 - fixture

from tuneops._secrets import mask_secrets, mask_url
from tuneops.export import write_json


@dataclass
class SecretDatabase:
    """A database of its own, owned by a user who logs in with a password."""

    server: PostgresServer
    user: str
    password: str
    database: str

    def url(self, password: str | None = None) -> str:
        return (f"postgresql://{self.user}:{password or self.password}@127.0.0.1:"
                f"{self.server.port}/{self.database}")

    def dump(self) -> str:
        """The database's whole content as SQL text (schema and every row)."""
        return subprocess.run(
            [str(PG_BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.server.port),
             "-U", "postgres", "--no-owner", "-d", self.database],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout


def _admin(server: PostgresServer) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=server.port, user="postgres", dbname="postgres",
                           autocommit=True)


def make_secret_database(server: PostgresServer) -> SecretDatabase:
    """A password user and its database; pg_hba asks that user (only) for the password.

    The session's server trusts every loopback login; one line placed before the trust lines
    makes this user authenticate with scram-sha-256, so a wrong password is refused for real.
    """
    tag = uuid.uuid4().hex[:8]
    db = SecretDatabase(server, f"tuneops_secret_{tag}", f"pw-{secrets.token_hex(12)}-unique",
                        f"secret_{tag}")
    hba = server.data / "pg_hba.conf"
    hba.write_text(f"host all {db.user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    with _admin(server) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(f"CREATE USER {db.user} PASSWORD '{db.password}'")
        conn.execute(f"CREATE DATABASE {db.database} OWNER {db.user}")
        conn.execute("SELECT pg_reload_conf()")
    return db


@pytest.fixture
def secret_db(postgres_server) -> SecretDatabase:  # noqa: F811 - the fixture imported above
    return make_secret_database(postgres_server)


def test_mask_secrets_walks_documents() -> None:
    doc = {"spec": {"storage": "postgresql://ann:s3cr@t/x@db:5/t"}, "urls": ("redis://:pw@h/0",),
           "n": 3, "text": "plain"}
    assert mask_secrets(doc) == {"spec": {"storage": "postgresql://ann:***@db:5/t"},
                                 "urls": ("redis://:***@h/0",), "n": 3, "text": "plain"}
    assert mask_url("postgresql://ann@db/t") == "postgresql://ann@db/t"  # no password: unchanged


def test_written_documents_are_masked_and_keep_one_record_per_line(tmp_path: Path) -> None:
    trials = [{"number": i, "storage": "redis://:pw@h/0", "values": [i / 7]} for i in range(30)]
    doc = {"spec": {"storage": "postgresql://ann:s3cr@db/t"}, "trials": trials, "few": [{"a": 1}]}
    text = write_json(tmp_path / "r.json", doc).read_text()
    assert "s3cr" not in text and ":pw@" not in text
    assert json.loads(text) == mask_secrets(doc)
    lines = text.splitlines()
    assert sum(line.startswith('    {"number": ') for line in lines) == 30  # a record per line
    assert '      "a": 1' in lines  # a short list stays indented


@pytest.mark.postgres
def test_wrong_password_is_refused_for_real(secret_db: SecretDatabase) -> None:
    """The fixture's user really needs its password (else the leak test would prove little)."""
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=secret_db.server.port, user=secret_db.user,
                        password="wrong", dbname=secret_db.database).close()
    psycopg.connect(host="127.0.0.1", port=secret_db.server.port, user=secret_db.user,
                    password=secret_db.password, dbname=secret_db.database).close()


@pytest.mark.postgres
def test_password_appears_in_no_file_output_log_or_stored_attribute(
    secret_db: SecretDatabase, workdir: Path, cli, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = secret_db.url()
    wrong = f"wrong-{secrets.token_hex(8)}-pw"
    (workdir / "in-spec.yaml").write_text(yaml.safe_dump(tiny_spec(study="in-spec", storage=url)))
    (workdir / "by-flag.yaml").write_text(yaml.safe_dump(tiny_spec(study="by-flag")))

    outputs: list[tuple[tuple[str, ...], int, str]] = []

    def run(*args: str, expect: int = 0) -> str:
        code, out, err = cli(*args)
        outputs.append((args, code, out + err))
        assert code == expect, (args, code, (out + err).replace(secret_db.password, "<PASSWORD>"))
        return out + err

    run("run", "in-spec.yaml")                        # the URL from the spec
    run("run", "by-flag.yaml", "--storage", url)      # the URL from --storage
    for study in ("in-spec", "by-flag"):
        run("show", study, "--storage", url, "--json")
        run("show", study, "--storage", url, "--trials")
        run("select", study, "--storage", url)
        run("report", study, "--storage", url, "--out", f"reports/{study}.html")
    run("export", "by-flag", "--storage", url, "--out", "exported")
    run("deploy", "in-spec", "--storage", url, "--artifacts", "artifacts")
    run("deploy", "by-flag", "--storage", url, "--artifacts", "artifacts")
    run("registry", "list", "--storage", url)
    run("registry", "show", "--model", "in-spec", "--json", "--storage", url)
    run("kb", "list", "--storage", url)
    out = run("show", "no-such-study", "--storage", url, expect=2)
    assert "***" in out and "no study 'no-such-study'" in out
    out = run("show", "in-spec", "--storage", secret_db.url(wrong), expect=2)
    assert "authentication failed" in out

    inputs = {workdir / "in-spec.yaml", workdir / "by-flag.yaml"}  # the user's own files
    written = sorted(p for p in workdir.rglob("*") if p.is_file() and p not in inputs)
    names = {p.name for p in written}
    # the run wrote everything the test searches
    expected = {"results.json", "model.json", "model.joblib", "report.html", "in-spec.html"}
    assert expected <= names, names

    leaks: list[str] = []
    for secret in (secret_db.password, wrong):
        needle = secret.encode()
        leaks += [f"file {p.relative_to(workdir)}" for p in written if needle in p.read_bytes()]
        leaks += [f"output of tuneops {' '.join(a)}" for a, _, text in outputs if secret in text]
        leaks += [f"log record {r.name}: {r.getMessage()[:120]}" for r in caplog.records
                  if secret in r.getMessage()]
        leaks += [f"database row: {line[:160]}" for line in secret_db.dump().splitlines()
                  if secret in line]
    leaks = [re.sub(re.escape(secret_db.password) + "|" + re.escape(wrong), "<PASSWORD>", leak)
             for leak in leaks]
    assert not leaks, "the password leaked into:\n" + "\n".join(leaks)


@pytest.mark.postgres
def test_a_password_given_as_a_query_parameter_is_masked_too(
    secret_db: SecretDatabase, workdir: Path, cli
) -> None:
    """libpq (and redis-py) also take the password as ?password=: it was written to
    results.json, model.json, the report and the registry as it was."""
    url = (f"postgresql://{secret_db.user}@127.0.0.1:{secret_db.server.port}/"
           f"{secret_db.database}?password={secret_db.password}")
    (workdir / "q.yaml").write_text(yaml.safe_dump(tiny_spec(study="q", storage=url)))
    texts = []
    for args in (("run", "q.yaml"), ("show", "q", "--storage", url, "--json"),
                 ("deploy", "q", "--storage", url, "--artifacts", "artifacts"),
                 ("registry", "show", "--model", "q", "--json", "--storage", url)):
        code, out, err = cli(*args)
        assert code == 0, (args, err.replace(secret_db.password, "<PASSWORD>"))
        texts.append(out + err)
    texts.append(cli("show", "q", "--storage", url.replace("password=", "password=x"))[2])
    written = [p for p in workdir.rglob("*") if p.is_file() and p.name != "q.yaml"]
    assert {"results.json", "model.json", "report.html"} <= {p.name for p in written}
    needle = secret_db.password
    assert not [p.name for p in written if needle.encode() in p.read_bytes()]
    assert not [t for t in texts if needle in t]
    assert not [line for line in secret_db.dump().splitlines() if needle in line]
    assert "password=***" in texts[1]


def test_query_passwords_are_masked_in_every_form_drivers_take() -> None:
    """pymysql's ?passwd= went unmasked, and a quoted password was masked up to its space."""
    assert mask_url("mysql+pymysql://u@h/db?passwd=hunter2&x=1") == "mysql+pymysql://u@h/db?passwd=***&x=1"
    assert mask_url('postgresql://h/db?password="a b"&sslmode=require') == (
        "postgresql://h/db?password=***&sslmode=require")
    assert mask_url("redis://h:6379/0?PASSWORD=s3cret") == "redis://h:6379/0?PASSWORD=***"
    assert mask_secrets({"u": "postgresql://h/db?sslpassword=k3y"}) == {
        "u": "postgresql://h/db?sslpassword=***"}
