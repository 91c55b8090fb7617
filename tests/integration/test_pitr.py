"""Point-in-time recovery end to end through `stackops`: real PostgreSQL in compose, real Barman (docs/pitr.md).

One isolated copy of examples/stack (project h7-pitr) goes through enable (twice), a physical backup, undoing a
DELETE without WHERE, recovery to a restore point and to an LSN, losing the data volume while a writer runs
(recover to latest, report the rows lost), and disable.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from support.runner import OUTPUT
from support.stack import TestStack

PROJECT = "h7-pitr"
STACKOPS = Path(sys.executable).with_name("stackops")


@pytest.fixture(scope="module")
def pitr_stack(docker_engine):
    stack = TestStack(project=PROJECT, postgres_port=56610, frontend_port=56611)
    stack.write_config()
    stack.down()
    state = OUTPUT / ("state-%s" % PROJECT)
    pitr_dir = OUTPUT / "backups" / ("%s-pitr" % PROJECT)
    for path in (state, pitr_dir):
        shutil.rmtree(path, ignore_errors=True)
    stack.up("postgres")
    stack.state = state
    stack.pitr_dir = pitr_dir
    yield stack
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        barman = [str(Path(sys.executable).with_name("barman")), "-c", str(pitr_dir / "barman.conf")]
        subprocess.run(barman + ["receive-wal", "--stop", PROJECT], capture_output=True, check=False)
        stack.down()
        for line in subprocess.run(["docker", "volume", "ls", "-q", "--filter", "label=stackops.pitr.server=%s" % PROJECT],
                                   capture_output=True, text=True).stdout.split():
            subprocess.run(["docker", "volume", "rm", "-f", line], capture_output=True)
        shutil.rmtree(pitr_dir, ignore_errors=True)


def stackops(stack, *args, ok=True, timeout=400):
    if not STACKOPS.exists():
        pytest.fail("%s missing: install the package (pip install -e .)" % STACKOPS)
    env = dict(os.environ, STACKOPS_STATE_DIR=str(stack.state), COLUMNS="160", NO_COLOR="1")
    completed = subprocess.run(
        [str(STACKOPS)] + list(args) + ["-i", str(stack.inventory), "--json", "-e", "stackops_pitr_cron_file=",
                         "-e", "stackops_pitr_verify_after_restore=false"],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    try:
        summary = json.loads(completed.stdout)
    except ValueError:
        pytest.fail("stackops %s printed no JSON (rc %s): %s %s" % (" ".join(args), completed.returncode,
                                                                    completed.stdout[-2000:], completed.stderr[-2000:]))
    if ok:
        assert completed.returncode == 0, "stackops %s failed: %s; failed tasks: %s" % (
            " ".join(args), summary.get("error"), json.dumps(summary.get("failed_tasks"))[:3000])
    return summary, summary.get("result", {}).get(PROJECT, {})


def connect(stack):
    return psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                           dbname="appdb", autocommit=True, connect_timeout=5)


def ids(stack):
    with connect(stack) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM writes ORDER BY id")]


class Writer(threading.Thread):
    """Commits one row per transaction as fast as it can; remembers every id whose COMMIT returned."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack = stack
        self.committed = []
        self.gate = threading.Lock()
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            with connect(self.stack) as conn:
                while not self.stop.is_set():
                    with self.gate:
                        row = conn.execute("INSERT INTO writes DEFAULT VALUES RETURNING id").fetchone()
                        self.committed.append(row[0])
                    time.sleep(0.002)
        except psycopg.Error as exc:
            self.error = exc  # expected when the database is killed under the writer

    def halt(self):
        self.stop.set()
        self.join(30)


def test_enable_twice_changes_nothing_the_second_time(pitr_stack):
    dummy, planned = stackops(pitr_stack, "pitr", "enable", "--check")
    assert any("replication slot" in change for change in planned["changes"])
    with connect(pitr_stack) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0  # --check changed nothing
    dummy, first = stackops(pitr_stack, "pitr", "enable", "--yes")
    assert first["receiver_alive"] is True
    assert any("replication slot" in change for change in first["changes"])
    assert oct(os.stat(pitr_stack.pitr_dir / "pgpass").st_mode & 0o777) == "0o600"
    summary, second = stackops(pitr_stack, "pitr", "enable", "--yes")
    assert second["changes"] == [] and summary["changed"] == 0
    password = (pitr_stack.pitr_dir / "pgpass").read_text().split(":")[-1].strip()
    assert password not in json.dumps(summary)
    with connect(pitr_stack) as conn:
        conn.execute("CREATE TABLE writes (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 1000)")


def test_physical_backup_is_verified_and_listed(pitr_stack):
    dummy, result = stackops(pitr_stack, "backup", "--physical")
    assert result["kind"] == "physical" and result["backup"]["verified"] is True
    assert result["verification"]["scratch"]["databases"] >= 3
    dummy, status = stackops(pitr_stack, "pitr", "status")
    assert status["receiver_alive"] is True
    assert [b["id"] for b in status["backups"]] == [result["backup_id"]]
    assert status["earliest_recoverable"] and status["latest_recoverable"] >= status["earliest_recoverable"]


def test_undo_a_delete_without_where(pitr_stack):
    writer = Writer(pitr_stack)
    writer.start()
    time.sleep(1.5)
    with writer.gate:  # no commit is in flight at T: every row is clearly before or after it
        before = list(writer.committed)
        with connect(pitr_stack) as conn:
            target = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
    time.sleep(0.2)
    with connect(pitr_stack) as conn:
        conn.execute("DELETE FROM writes")
    time.sleep(1)
    writer.halt()
    assert writer.error is None and len(writer.committed) > len(before)
    live = ids(pitr_stack)
    dummy, plan = stackops(pitr_stack, "restore", "--to-time", target, "--check")
    assert plan["plan"]["inside_window"] is True and plan["swapped"] is False
    assert ids(pitr_stack) == live  # --check changed nothing
    dummy, result = stackops(pitr_stack, "restore", "--to-time", target, "--yes")
    assert result["swapped"] is True
    assert ids(pitr_stack) == list(range(1, 1001)) + before


def test_recover_to_restore_point_and_to_lsn(pitr_stack):
    with connect(pitr_stack) as conn:
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 10)")
        kept = [row[0] for row in conn.execute("SELECT id FROM writes ORDER BY id")]
    stackops(pitr_stack, "pitr", "mark", "before-cleanup")
    with connect(pitr_stack) as conn:
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 10)")
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        with_lsn = [row[0] for row in conn.execute("SELECT id FROM writes ORDER BY id")]
        conn.execute("TRUNCATE writes")
        conn.execute("SELECT pg_switch_wal()")
    dummy, result = stackops(pitr_stack, "restore", "--to-lsn", lsn, "--yes")
    assert result["swapped"] is True and ids(pitr_stack) == with_lsn
    dummy, result = stackops(pitr_stack, "restore", "--to-restore-point", "before-cleanup", "--yes")
    assert result["swapped"] is True and ids(pitr_stack) == kept

def test_rpo_lose_the_volume_while_writing(pitr_stack):
    writer = Writer(pitr_stack)
    writer.start()
    time.sleep(2)
    pitr_stack.compose("kill", "postgres")
    writer.halt()
    pitr_stack.compose("rm", "-f", "postgres")
    subprocess.run(["docker", "volume", "rm", "%s_pgdata" % PROJECT], check=True, capture_output=True)
    committed = writer.committed
    dummy, result = stackops(pitr_stack, "restore", "--to-latest", "--yes")
    assert result["swapped"] is True
    recovered = [i for i in ids(pitr_stack) if i >= committed[0]]
    assert recovered == committed[:len(recovered)], "recovery left a gap in the committed rows"
    lost = len(committed) - len(recovered)
    print("RPO: %d of %d committed rows lost" % (lost, len(committed)))
    assert len(recovered) > 0


def test_disable_drops_the_slot(pitr_stack):
    dummy, result = stackops(pitr_stack, "pitr", "disable")
    assert any("drop replication slot" in change for change in result["changes"])
    with connect(pitr_stack) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'stackops_pitr'").fetchone()[0] == 0
        hba = conn.execute("SELECT pg_read_file(current_setting('hba_file'))").fetchone()[0]
    assert "stackops-pitr" not in hba
    assert not (pitr_stack.pitr_dir / "pgpass").exists()
