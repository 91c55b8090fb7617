"""The opt-in warm standby (`stackops_pitr_standby: true`, docs/pitr.md "Warm standby") end to end through `stackops`:
real PostgreSQL in compose, real Barman, the standby a real hot standby streaming over the project's network.

One isolated copy of examples/stack (project h7-standby), the standby with a one-hour apply delay, goes through:
enable (twice: the second run changes nothing), a recovery to a time inside the delay window (the standby stops
there and is promoted), a recovery to the latest point (promotion ends the delay: rows committed just before are
there), the standby stopped (status says so, the restore takes the base-backup path and still works), a recovery
killed with SIGKILL right after the promotion (the next run removes the promoted standby, the live data untouched),
and the database's volume lost: `--to-latest` promotes the standby, which has what streamed to it.
"""
import json
import os
import shutil
import subprocess

import pytest

from support.cli import procedure
from support.pitr import NO_CRON, clean_up, killed_run, result_of, standby_container, wait_for, write_ids
from support.ports import port, project
from support.runner import OUTPUT
from support.stack import TestStack

PROJECT = project("h7-standby")
STANDBY = ("-e", "stackops_pitr_standby=true", "-e", "stackops_pitr_standby_delay=1h",
           "-e", "stackops_pitr_verify_after_restore=false")


@pytest.fixture(scope="module")
def standby_stack(docker_engine):
    stack = TestStack(project=PROJECT, postgres_port=port(56760), frontend_port=port(56761))
    stack.write_config()
    clean_up(PROJECT, OUTPUT / "backups" / ("%s-pitr" % PROJECT))
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
        clean_up(PROJECT, pitr_dir)
        stack.down()


def stackops(stack, *args, ok=True):
    summary = procedure(*args, *NO_CRON, *STANDBY, inventory=stack.inventory, state_dir=stack.state, ok=ok)
    return summary, result_of(summary, PROJECT)


def insert(stack, rows):
    with stack.connect() as conn:
        return [row[0] for row in conn.execute(
            "INSERT INTO writes SELECT FROM generate_series(1, %s) RETURNING id" % int(rows))]


def container_state(name):
    completed = subprocess.run(["docker", "inspect", "--format", "{{.State.Status}}", name], capture_output=True,
                               text=True, check=False)
    return completed.stdout.strip() if completed.returncode == 0 else "missing"


def healthy_standby(stack):
    dummy, status = stackops(stack, "pitr", "status")
    standby = status["standby"]
    assert standby and standby["healthy"] is True, json.dumps(status, default=str)[:3000]
    return status


def test_enable_seeds_the_standby_and_a_second_run_changes_nothing(standby_stack):
    dummy, first = stackops(standby_stack, "pitr", "enable", "--yes")
    assert any("seed the warm standby" in change for change in first["changes"]), first["changes"]
    with standby_stack.connect() as conn:
        conn.execute("CREATE TABLE writes (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        conn.execute("INSERT INTO writes SELECT FROM generate_series(1, 100)")
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'stackops_pitr_standby' "
                            "AND active").fetchone()[0] == 1
    dummy, second = stackops(standby_stack, "pitr", "enable", "--yes")
    assert second["changes"] == [], second["changes"]
    assert container_state(standby_container(PROJECT)) == "running"
    inspect = json.loads(subprocess.run(["docker", "inspect", standby_container(PROJECT)], capture_output=True,
                                        text=True, check=True).stdout)[0]
    assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert not inspect["HostConfig"]["PortBindings"]  # no host port: nothing reaches it but docker exec
    dummy, backup = stackops(standby_stack, "backup", "--physical")
    assert backup["backup"]["verified"] is True
    status = healthy_standby(standby_stack)
    standby = status["standby"]
    assert standby["delay"] == "1h" and standby["in_recovery"] is True and standby["receiver"] == "streaming"
    # The hour's delay holds back the table made after the seed: replay lags the primary.
    assert standby["lag_bytes"] > 0 and status["status"] == "ok", standby


def test_to_time_inside_the_delay_window_promotes_the_standby(standby_stack):
    insert(standby_stack, 10)
    before = write_ids(standby_stack)
    with standby_stack.connect() as conn:
        target = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
    insert(standby_stack, 10)
    dummy, result = stackops(standby_stack, "restore", "--to-time", target, "--yes")
    assert result["method"] == "standby", json.dumps(result, default=str)[:3000]
    assert result["swapped"] is True and "promote" in result["durations"] and "health" in result["durations"]
    assert write_ids(standby_stack) == before  # rows before the target there, rows after it absent
    healthy_standby(standby_stack)  # the role seeded a new one after the swap


def test_to_latest_promotes_the_standby_with_every_commit(standby_stack):
    insert(standby_stack, 25)
    before = write_ids(standby_stack)  # committed just before the run, an hour inside the standby's delay
    dummy, result = stackops(standby_stack, "restore", "--to-latest", "--yes")
    assert result["method"] == "standby", json.dumps(result, default=str)[:3000]
    assert result["swapped"] is True and result["previous_data"]
    assert write_ids(standby_stack) == before
    healthy_standby(standby_stack)


def test_standby_down_is_reported_and_restore_takes_the_base_backup_path(standby_stack):
    subprocess.run(["docker", "stop", standby_container(PROJECT)], capture_output=True, check=True)
    dummy, status = stackops(standby_stack, "pitr", "status")
    assert status["standby"]["state"] == "exited" and status["standby"]["healthy"] is False, status["standby"]
    assert any("warm standby" in problem for problem in status["problems"]), status["problems"]
    assert status["status"] == "warning"
    # `stackops status` knows about it too (stack_status_info, from standby.json and one docker inspect).
    dummy, overview = stackops(standby_stack, "status", ok=False)
    assert overview["pitr"]["standby"]["state"] == "exited", overview["pitr"]
    assert any("warm standby" in problem for problem in overview["problems"]), overview["problems"]
    insert(standby_stack, 10)
    before = write_ids(standby_stack)
    dummy, result = stackops(standby_stack, "restore", "--to-latest", "--yes")
    assert result["method"] == "base_backup" and "exited" in result["method_reason"], result
    assert result["swapped"] is True and write_ids(standby_stack) == before
    healthy_standby(standby_stack)  # the stale standby was seeded again from the recovered primary


def test_killed_mid_promote_is_cleaned_up_by_the_next_run(standby_stack):
    insert(standby_stack, 10)
    before = write_ids(standby_stack)
    killed_run(["restore", "--to-latest", "--yes", "-i", standby_stack.inventory, "--json", *NO_CRON, *STANDBY],
               "pg_pitr_restore", "pitr-standby-promote", standby_stack.state)
    journal = json.loads((standby_stack.pitr_dir / "recovery.json").read_text())
    assert journal["phase"] == "standby-promote", journal
    assert write_ids(standby_stack) == before  # the live data was never touched
    dummy, result = stackops(standby_stack, "restore", "--to-latest", "--yes")
    cleaned = "\n".join(result["cleaned_up"])
    assert "remove the warm standby container %s" % standby_container(PROJECT) in cleaned, cleaned
    assert journal["storage"] in cleaned, cleaned
    assert result["method"] == "base_backup" and result["swapped"] is True, result
    assert write_ids(standby_stack) == before
    assert not (standby_stack.pitr_dir / "recovery.json").exists()
    healthy_standby(standby_stack)


def standby_received(stack, lsn):
    done = subprocess.run(["docker", "exec", standby_container(PROJECT), "psql", "-X", "-h", "/tmp", "-U", "app", "-d",
                           "postgres", "-Atc", "SELECT pg_last_wal_receive_lsn() >= '%s'::pg_lsn" % lsn],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() == "t"


def test_lost_volume_promotes_the_standby_with_what_streamed(standby_stack):
    insert(standby_stack, 10)
    before = write_ids(standby_stack)
    with standby_stack.connect() as conn:
        lsn = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0]
    # Streaming is asynchronous: the commits are the standby's once it has received them (an event, not a sleep).
    wait_for(lambda: standby_received(standby_stack, lsn), "the standby to receive %s" % lsn)
    standby_stack.compose("kill", "postgres")
    standby_stack.compose("rm", "-f", "postgres")
    subprocess.run(["docker", "volume", "rm", "%s_pgdata" % PROJECT], check=True, capture_output=True)
    dummy, result = stackops(standby_stack, "restore", "--to-latest", "--yes")
    assert result["method"] == "standby" and "unreachable" in result["method_reason"], result
    assert result["swapped"] is True and write_ids(standby_stack) == before
    healthy_standby(standby_stack)
