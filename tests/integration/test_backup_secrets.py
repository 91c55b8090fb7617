"""Secrets at rest (issue 13 item 14): copied config and env files are private, restores write with umask 077, and
the example stack's entrypoint keeps the password off psql's command line."""
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support import processes
from support.backup import create_db, module
from support.pgcluster import BINDIR, free_port

pytestmark = pytest.mark.pg

ENTRYPOINT = Path(__file__).resolve().parents[2] / "examples" / "stack" / "postgres" / "entrypoint.sh"


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_copied_files_are_private_and_restores_write_with_umask_077(pg_cluster, tmp_path, monkeypatch):
    create_db(pg_cluster, "secret_db", "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 10)")
    env_file = tmp_path / "app.env"
    env_file.write_text("DB_PASSWORD=hunter2\n")
    env_file.chmod(0o644)
    config = tmp_path / "conf"
    (config / "sub").mkdir(parents=True)
    (config / "sub" / "settings.ini").write_text("token = abc\n")
    config.chmod(0o755)
    (config / "sub").chmod(0o755)
    (config / "sub" / "settings.ini").chmod(0o664)
    backup_dir = tmp_path / "backups"
    res = module("pg_backup", pg_cluster, backup_dir, database="secret_db", include_files=[str(env_file), str(config)])
    assert not res["failed"], res["msg"]
    stored = backup_dir / res["backup_id"] / "files"
    assert mode(stored / "app.env") == 0o600
    assert mode(stored / "conf") == 0o700 and mode(stored / "conf" / "sub") == 0o700
    assert mode(stored / "conf" / "sub" / "settings.ini") == 0o600

    # A verify from a decompressed copy (streaming=false), stopped once the copy is staged: everything it wrote so
    # far is readable by the owner only.
    def owner_only():
        work = [p for p in backup_dir.iterdir() if p.name.startswith(".stackops-restore-")]
        assert len(work) == 1 and mode(work[0]) == 0o700
        staged = list(work[0].iterdir())
        assert staged and all(mode(p) == 0o600 for p in staged), [(p.name, oct(mode(p))) for p in staged]

    verified = processes.pause_at(monkeypatch, "verify", "pg_backup_verify", lambda: module(
        "pg_backup_verify", pg_cluster, backup_dir, backup_id=res["backup_id"], streaming=False), owner_only)
    assert verified["verified"], verified


def test_globals_are_dumped_without_role_passwords(pg_cluster, tmp_path):
    """A backup with globals holds the roles and their memberships and settings, never a password or its hash: the
    backup directory is not a secret store, and off-site copies of it even less."""
    secret = "globals-pw-" + os.urandom(6).hex()
    pg_cluster.sql("DROP ROLE IF EXISTS globals_reader")
    pg_cluster.sql("CREATE ROLE globals_reader LOGIN PASSWORD '%s' CONNECTION LIMIT 7" % secret)
    pg_cluster.sql("ALTER ROLE globals_reader SET statement_timeout = '41s'")
    create_db(pg_cluster, "globals_db", "CREATE TABLE t (x int)")
    backup_dir = tmp_path / "backups"
    res = module("pg_backup", pg_cluster, backup_dir, database="globals_db", include_globals=True)
    assert not res["failed"], res["msg"]
    script = (backup_dir / res["backup_id"] / "globals.sql").read_text()
    assert "CREATE ROLE globals_reader" in script and "CONNECTION LIMIT 7" in script
    assert "statement_timeout TO '41s'" in script
    assert "PASSWORD" not in script.upper() and "SCRAM-SHA-256$" not in script and secret not in script


def test_entrypoint_keeps_the_password_off_the_command_line():
    """Run the example stack's entrypoint on the host, with a psql shim that records its argv. The copy run listens
    on 127.0.0.1 instead of '*' (this machine binds loopback only); its psql call is the file's, unchanged."""
    root = Path(tempfile.mkdtemp(prefix="h4-entrypoint-"))  # postgres must reach it: pytest's tmp_path is 0700
    os.chmod(root, 0o755)
    script = root / "entrypoint.sh"
    script.write_text(ENTRYPOINT.read_text().replace("listen_addresses = '*'", "listen_addresses = '127.0.0.1'"))
    password = "pw-entry-%d" % os.getpid()
    (root / "password").write_text(password + "\n")
    shim = root / "bin"
    shim.mkdir(mode=0o755)
    argv_log = root / "psql-argv"
    (shim / "psql").write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> %s\nexec %s/psql "$@"\n' % (argv_log, BINDIR))
    (shim / "psql").chmod(0o755)
    argv_log.touch()
    argv_log.chmod(0o666)
    port = free_port()
    env = dict(os.environ, PATH="%s:%s:%s" % (shim, BINDIR, os.environ["PATH"]), PGDATA=str(root / "data"),
               PGPORT=str(port), POSTGRES_PASSWORD_FILE=str(root / "password"), POSTGRES_USER="entry",
               POSTGRES_DB="entrydb")
    server = subprocess.Popen(["sh", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        import psycopg
        deadline = time.monotonic() + 90
        while True:
            try:
                with psycopg.connect(host="127.0.0.1", port=port, user="entry", password=password,
                                     dbname="entrydb", connect_timeout=2) as conn:
                    assert conn.execute("SELECT current_user").fetchone()[0] == "entry"
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the entrypoint did not start a server: %s" % server.stdout.read().decode())
                time.sleep(0.3)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
        recorded = argv_log.read_text()
        shutil.rmtree(root, ignore_errors=True)
    assert "-U postgres" in recorded  # the shim saw the call
    assert password not in recorded
