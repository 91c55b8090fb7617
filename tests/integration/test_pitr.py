"""Point-in-time recovery end to end through `stackops`: real PostgreSQL in compose, real Barman (docs/pitr.md).

One isolated copy of examples/stack (project h7-pitr) goes through enable (twice), a physical backup, recovery to a
restore point and to an LSN, a failed maintenance window rolled back to the restore point it took, and disable.
Undoing a DELETE without WHERE and losing the data volume while a writer runs (RPO) run on the stock-image second
stack instead (tests/integration/test_pitr_shop.py): each case once, on one of two differently shaped stacks.
"""
import json
import os
import shutil
import threading
import time

import pytest

from support.cli import procedure
from support.pitr import NO_CRON, assert_no_secret, clean_up, result_of, write_ids
from support.ports import port, project
from support.runner import OUTPUT
from support.stack import TestStack

PROJECT = project("h7-pitr")


@pytest.fixture(scope="module")
def pitr_stack(docker_engine):
    stack = TestStack(project=PROJECT, postgres_port=port(56610), frontend_port=port(56611))
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
        stack.down()
        clean_up(PROJECT, pitr_dir)


def stackops(stack, *args, ok=True):
    summary = procedure(*args, *NO_CRON, "-e", "stackops_pitr_verify_after_restore=false", inventory=stack.inventory,
                        state_dir=stack.state, ok=ok)
    return summary, result_of(summary, PROJECT)


def test_enable_twice_changes_nothing_the_second_time(pitr_stack):
    dummy, planned = stackops(pitr_stack, "pitr", "enable", "--check")
    assert any("replication slot" in change for change in planned["changes"])
    with pitr_stack.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0  # --check changed nothing
        # Every DDL statement goes to the server log: the replication role's password must not be in one.
        conn.execute("ALTER SYSTEM SET log_statement = 'ddl'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        runs = [stackops(pitr_stack, "pitr", "enable", "--yes")]
        first = runs[0][1]
        assert first["receiver_alive"] is True
        assert any("replication slot" in change for change in first["changes"])
        assert oct(os.stat(pitr_stack.pitr_dir / "pgpass").st_mode & 0o777) == "0o600"
        runs.append(stackops(pitr_stack, "pitr", "enable", "--yes"))
        assert runs[1][1]["changes"] == [] and runs[1][0]["changed"] == 0
    finally:
        with pitr_stack.connect() as conn:
            conn.execute("ALTER SYSTEM RESET log_statement")
            conn.execute("SELECT pg_reload_conf()")
    password = (pitr_stack.pitr_dir / "pgpass").read_text().split(":")[-1].strip()
    for summary, dummy in runs:
        assert_no_secret([password, pitr_stack.password], summary["_run"], pitr_stack.state)
    log = pitr_stack.compose("logs", "--no-color", "postgres").stdout
    assert 'CREATE ROLE "stackops_pitr" LOGIN REPLICATION PASSWORD \'SCRAM-SHA-256$4096:' in log  # logged, hashed
    assert password not in log
    with pitr_stack.connect() as conn:
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


def test_recover_to_restore_point_and_to_lsn(pitr_stack):
    with pitr_stack.connect() as conn:
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 10)")
        kept = [row[0] for row in conn.execute("SELECT id FROM writes ORDER BY id")]
    stackops(pitr_stack, "pitr", "mark", "before-cleanup")
    with pitr_stack.connect() as conn:
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 10)")
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        with_lsn = [row[0] for row in conn.execute("SELECT id FROM writes ORDER BY id")]
        conn.execute("TRUNCATE writes")
        conn.execute("SELECT pg_switch_wal()")
    dummy, result = stackops(pitr_stack, "restore", "--to-lsn", lsn, "--yes")
    assert result["swapped"] is True and write_ids(pitr_stack) == with_lsn
    dummy, result = stackops(pitr_stack, "restore", "--to-restore-point", "before-cleanup", "--yes")
    assert result["swapped"] is True and write_ids(pitr_stack) == kept

def test_failed_maintenance_window_rolls_back_to_its_restore_point(pitr_stack):
    """The window takes a restore point before its tasks; data changes after it, a later task fails, and the
    pitr rollback recovers the cluster to the point. The DELETE stands in for a data-changing task (a migration):
    it runs in a transaction that holds a lock on the table the window's first task needs, and commits only once
    the restore point exists, so it falls between the point and the failure on every run."""
    with pitr_stack.connect() as conn:
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 10)")
    before = write_ids(pitr_stack)
    marks = pitr_stack.pitr_dir / "marks.json"
    known = set(json.loads(marks.read_text())) if marks.exists() else set()
    changed = {}

    def change_data_after_the_point():
        with pitr_stack.connect() as conn:
            with conn.transaction():
                # Blocks VACUUM and ANALYZE of the table (self-conflicting), not the pre-checks' reads of its size.
                conn.execute("LOCK TABLE writes IN SHARE UPDATE EXCLUSIVE MODE")
                ready.set()
                while not finished.is_set():
                    if marks.exists() and set(json.loads(marks.read_text())) - known:
                        changed["rows"] = conn.execute("DELETE FROM writes").rowcount
                        break
                    time.sleep(0.05)

    ready, finished = threading.Event(), threading.Event()
    holder = threading.Thread(target=change_data_after_the_point, daemon=True)
    holder.start()
    assert ready.wait(10)
    tasks = [{"name": "vacuum_analyze", "tables": ["public.writes"], "changes_data": True},
             {"name": "reindex", "tables": ["public.no_such_table"]}]
    summary, result = stackops(
        pitr_stack, "maintenance", "-e", json.dumps({
            "stackops_maintenance_tasks": tasks, "stackops_maintenance_rollback": "pitr",
            "stackops_restore_confirm": True, "stackops_maintenance_backup": False, "stackops_maintenance_mode": False,
            "stackops_maintenance_health_checks": ["postgres"]}), ok=False)
    finished.set()
    holder.join(30)
    assert changed.get("rows") == len(before), "the data did not change between the restore point and the failure"
    assert summary["exit_code"] != 0 and result["status"] == "rolled_back", result
    point = result["restore_point"]
    assert point["name"].startswith("stackops-maintenance-") and "/" in point["lsn"], point
    assert result["failed"]["step"] == "reindex", result["failed"]
    assert result["rollback"]["database_restored"] is True and result["rollback"]["database_restored_by"] == "pitr", result["rollback"]
    assert write_ids(pitr_stack) == before


def test_disable_drops_the_slot(pitr_stack):
    dummy, result = stackops(pitr_stack, "pitr", "disable")
    assert any("drop replication slot" in change for change in result["changes"])
    with pitr_stack.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'stackops_pitr'").fetchone()[0] == 0
        hba = conn.execute("SELECT pg_read_file(current_setting('hba_file'))").fetchone()[0]
    assert "stackops-pitr" not in hba
    assert not (pitr_stack.pitr_dir / "pgpass").exists()
