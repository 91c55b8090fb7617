"""`stackops drill` and `stackops status` on one copy of the demo stack (issue 23 items 1 and 2), through the CLI.

The tests run in file order and share the stack: a logical drill while a probe keeps hitting the live stack, the
status of the healthy stack, a drill killed with SIGKILL and cleaned up by the next, a physical drill to a time, a
drill of a backup taken after a migration dropped a column the app writes (fails, names the check, leaves nothing),
and the status of the stack with that failed drill, a stale backup and a dead WAL receiver.
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from support.cli import STACKOPS, procedure, stackops
from support.drill import LiveProbe, drill_resources, live_fingerprint
from support.ports import port, project
from support.processes import killed_run
from support.runner import OUTPUT
from support.s3server import S3Server
from support.stack import TestStack

PROJECT = project("h-drill")
DRILL = PROJECT + "-drill"
# A drill check the app fails when the restored schema lacks what it writes (POST inserts a record).
WRITE_CHECK = {"name": "records-write", "url": "{frontend}/api/v1/records", "method": "POST", "status": 201}
NO_CRON = ("-e", "stackops_pitr_cron_file=")
S3_PORT = port(56810)


@pytest.fixture(scope="module")
def live(docker_engine):
    stack = TestStack(project=PROJECT, postgres_port=port(56800), frontend_port=port(56801))
    stack.write_config()
    stack.down()
    drop_drill_project()
    stack.state = OUTPUT / ("state-%s" % PROJECT)
    stack.backup_dir = OUTPUT / "backups" / PROJECT
    stack.pitr_dir = OUTPUT / "backups" / ("%s-pitr" % PROJECT)
    for path in (stack.state, stack.backup_dir, stack.pitr_dir):
        shutil.rmtree(path, ignore_errors=True)
    stack.up()
    stack.checks = json.dumps({"stackops_drill_checks": [
        dict(WRITE_CHECK, url=WRITE_CHECK["url"].format(frontend=stack.frontend_url)),
        {"name": "records table", "sql": "select count(*) >= 0 from records", "expect": True}]})
    yield stack
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        barman = [str(Path(sys.executable).with_name("barman")), "-c", str(stack.pitr_dir / "barman.conf")]
        subprocess.run(barman + ["receive-wal", "--stop", PROJECT], capture_output=True, check=False)
        stack.down()
        drop_drill_project()
        shutil.rmtree(stack.pitr_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def s3():
    server = S3Server(S3_PORT, "s3-secret-" + secrets.token_hex(12)).start()
    yield server
    server.stop()


def drop_drill_project():
    subprocess.run(["docker", "compose", "-p", DRILL, "down", "--volumes", "--remove-orphans"], capture_output=True)


def run(stack, *args, ok=True, timeout=900):
    return procedure(*args, inventory=stack.inventory, state_dir=stack.state, ok=ok, timeout=timeout)


def result_of(summary, stack):
    return summary["result"][stack.project]


def connect(stack):
    return psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                           dbname="appdb", autocommit=True, connect_timeout=5)


def assert_no_repr(text):
    assert "{'" not in text and "[{'" not in text, "human output holds a Python repr:\n%s" % text


def test_logical_drill_brings_the_app_up_while_the_live_stack_serves(live):
    run(live, "backup")
    before = live_fingerprint(live.project)
    planned = result_of(run(live, "drill", "--check"), live)  # says what it would drill, creates nothing
    assert planned["status"] == "planned" and planned["backup"]["kind"] == "logical", planned
    assert drill_resources(DRILL) == [] and not (live.backup_dir / ".drills" / "records").exists()
    with LiveProbe(live.frontend_url + "/api/v1/db/health") as probe:
        human = stackops("drill", "-i", live.inventory, "-e", live.checks, state_dir=live.state, timeout=900)
    probe.assert_served()
    assert human.returncode == 0, human.stdout[-3000:] + human.stderr[-2000:]
    assert_no_repr(human.stdout)
    assert "drill on %s: PASSED" % PROJECT in human.stdout and "measured RTO" in human.stdout
    runs = json.loads(stackops("history", "--last", "1", "--json", state_dir=live.state).stdout)
    record = json.loads(stackops("history", "show", runs[-1]["run_id"], "--json", state_dir=live.state).stdout)
    drill = result_of(record, live)
    assert drill["drill"] == "passed" and drill["backup"]["kind"] == "logical", drill
    assert set(drill["services"]) == {"postgres", "api", "frontend"}
    checks = {item["name"]: item for item in drill["checks"]}
    # The inventory's three health URLs and both drill checks ran against the drill's containers and passed.
    assert set(checks) == {"api", "api-db", "frontend", "records-write", "records table"}, checks
    assert all(item["ok"] for item in checks.values()), checks
    assert isinstance(drill["rto_seconds"], float) and set(drill["phase_seconds"]) == {"fetch", "restore", "start", "checks"}
    assert sum(drill["phase_seconds"].values()) == pytest.approx(drill["rto_seconds"], abs=0.05), drill
    assert drill_resources(DRILL) == [], "the drill left %s" % drill_resources(DRILL)
    assert live_fingerprint(live.project) == before
    records = list((live.backup_dir / ".drills" / "records").glob("drill-*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["status"] == "passed"


def test_status_of_the_healthy_stack_exits_0(live):
    summary = run(live, "status")
    status = result_of(summary, live)
    assert status["ok"] is True and status["problems"] == [], status["problems"]
    assert status["drills"]["last"]["status"] == "passed" and len(status["drills"]["rto_trend"]) == 1
    assert {row["service"] for row in status["services"]} == {"postgres", "api", "frontend"}
    metrics = live.state / "status.prom"
    human = stackops("status", "-i", live.inventory, "--prometheus", metrics, state_dir=live.state)
    assert human.returncode == 0, human.stdout[-3000:]
    assert_no_repr(human.stdout)
    assert "every objective is met" in human.stdout
    text = metrics.read_text()
    assert 'stackops_status_ok{stack="%s"} 1' % PROJECT in text
    assert 'stackops_drill_rto_seconds{stack="%s"}' % PROJECT in text
    assert "stackops_drill_last_success_timestamp" in text


def test_a_drill_killed_with_sigkill_is_cleaned_up_by_the_next(live):
    before = live_fingerprint(live.project)
    # kill -9 of the whole run (the CLI, ansible-playbook, its workers, the module) while the drill's app is up.
    killed_run([STACKOPS, "drill", "-i", live.inventory, "--json"], "drill-application", "compose_drill",
               env={"STACKOPS_STATE_DIR": str(live.state), "NO_COLOR": "1"})
    left = drill_resources(DRILL)
    assert left, "the killed drill left nothing to clean up, so this test proves nothing"
    summary = run(live, "drill")
    drill = result_of(summary, live)
    assert drill["drill"] == "passed", drill
    assert any("had not finished" in item for item in drill["cleaned_up"]), drill["cleaned_up"]
    assert all(any(name in item for item in drill["cleaned_up"]) for name in left), (left, drill["cleaned_up"])
    assert drill_resources(DRILL) == []
    assert live_fingerprint(live.project) == before


def test_physical_drill_to_a_time(live):
    run(live, "pitr", "enable", "--yes", *NO_CRON)
    with connect(live) as conn:
        conn.execute("CREATE TABLE drill_marks (id int PRIMARY KEY)")
        conn.execute("INSERT INTO drill_marks SELECT generate_series(1, 100)")
    run(live, "backup", "--physical", *NO_CRON)
    with connect(live) as conn:
        conn.execute("INSERT INTO drill_marks SELECT generate_series(101, 150)")
        # After the commit of rows 101-150 and before the next one: the recovery ends between the two.
        target = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
        conn.execute("INSERT INTO drill_marks SELECT generate_series(151, 200)")
        conn.execute("SELECT pg_switch_wal()")
    checks = json.dumps({"stackops_drill_checks": [
        {"name": "marks at the target", "sql": "select count(*) from drill_marks", "expect": 150}]})
    before = live_fingerprint(live.project)
    with LiveProbe(live.frontend_url + "/api/v1/db/health") as probe:
        summary = run(live, "drill", "--physical", "--to-time", target, "-e", checks, *NO_CRON)
    probe.assert_served()
    drill = result_of(summary, live)
    assert drill["drill"] == "passed" and drill["backup"]["kind"] == "physical", drill
    assert {item["name"]: item["ok"] for item in drill["checks"]}["marks at the target"] is True
    assert drill_resources(DRILL) == [] and live_fingerprint(live.project) == before
    with connect(live) as conn:
        assert conn.execute("SELECT count(*) FROM drill_marks").fetchone()[0] == 200  # live untouched


def test_physical_drill_from_remote_to_a_time(live, s3):
    """The base backup and WAL come back from a real S3 server into the drill's own Barman directory, the drill
    recovers to a time from them alone, and removes them afterwards; the live archive is neither read nor written."""
    offsite = json.dumps({"stackops_offsite_targets": [dict(s3.target("drill-remote"), name="remote")]})
    run(live, "pitr", "enable", "--yes", *NO_CRON)
    with connect(live) as conn:
        conn.execute("CREATE TABLE remote_marks (id int PRIMARY KEY)")
        conn.execute("INSERT INTO remote_marks SELECT generate_series(1, 100)")
    first = result_of(run(live, "backup", "--physical", "-e", offsite, *NO_CRON), live)
    with connect(live) as conn:
        conn.execute("INSERT INTO remote_marks SELECT generate_series(101, 150)")
        target = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
        conn.execute("INSERT INTO remote_marks SELECT generate_series(151, 200)")
    # The next base backup closes the segments after the target; its copy ships that WAL.
    second = result_of(run(live, "backup", "--physical", "-e", offsite, *NO_CRON), live)
    assert [item["copied"] for item in first["offsite"] + second["offsite"]] == [
        [first["backup_id"]], [second["backup_id"]]], (first["offsite"], second["offsite"])
    home = live.pitr_dir / "home" / live.project
    archive = sorted(str(path.relative_to(home)) for sub in ("base", "meta") for path in (home / sub).rglob("*"))
    checks = json.dumps({"stackops_drill_checks": [
        {"name": "marks at the target", "sql": "select count(*) from remote_marks", "expect": 150}]})
    planned = result_of(run(live, "drill", "--physical", "--from-remote", "--to-time", target, "--check",
                            "-e", offsite, *NO_CRON), live)
    assert planned["status"] == "planned" and planned["backup"]["from_remote"] is True, planned
    before = live_fingerprint(live.project)
    with LiveProbe(live.frontend_url + "/api/v1/db/health") as probe:
        summary = run(live, "drill", "--physical", "--from-remote", "--to-time", target, "-e", checks,
                      "-e", offsite, *NO_CRON)
    probe.assert_served()
    drill = result_of(summary, live)
    assert drill["drill"] == "passed", drill
    # The base backup that ends before the target, from off-site.
    assert drill["backup"]["kind"] == "physical" and drill["backup"]["from_remote"] is True, drill["backup"]
    assert drill["backup"]["id"] == first["backup_id"], drill["backup"]
    assert {item["name"]: item["ok"] for item in drill["checks"]}["marks at the target"] is True, drill["checks"]
    assert "fetch" in drill["phase_seconds"], drill["phase_seconds"]
    assert drill_resources(DRILL) == [] and live_fingerprint(live.project) == before
    assert not (live.backup_dir / ".drills" / "remote-pitr").exists(), "the fetched copy was left behind"
    assert sorted(str(path.relative_to(home)) for sub in ("base", "meta") for path in (home / sub).rglob("*")) == archive
    with connect(live) as conn:
        assert conn.execute("SELECT count(*) FROM remote_marks").fetchone()[0] == 200  # live untouched


def test_drill_of_a_backup_that_breaks_the_app_fails_and_names_the_check(live):
    with connect(live) as conn:
        conn.execute("ALTER TABLE records DROP COLUMN payload")  # the migration the app cannot live with
    broken = result_of(run(live, "backup"), live)["backup_id"]
    with connect(live) as conn:
        conn.execute("ALTER TABLE records ADD COLUMN payload jsonb NOT NULL DEFAULT '{}'")
    before = live_fingerprint(live.project)
    summary = run(live, "drill", "--backup-id", broken, "-e", live.checks, "-e", "stackops_drill_http_timeout=5", ok=False)
    drill = result_of(summary, live)
    assert summary["exit_code"] == 1 and drill["drill"] == "failed", drill
    assert drill["failed_checks"] == ["records-write"], drill["checks"]
    assert "records-write" in drill["error"] and "HTTP 503" in drill["error"], drill["error"]
    assert drill["backup"]["id"] == broken
    assert drill_resources(DRILL) == [], "the failed drill left %s" % drill_resources(DRILL)
    assert live_fingerprint(live.project) == before


def test_status_names_a_stale_backup_a_dead_receiver_and_the_failed_drill(live):
    barman = [str(Path(sys.executable).with_name("barman")), "-c", str(live.pitr_dir / "barman.conf")]
    stopped = subprocess.run(barman + ["receive-wal", "--stop", PROJECT], capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stderr
    completed = stackops("status", "-i", live.inventory, "-e", "stackops_rpo=1s", state_dir=live.state)
    assert completed.returncode == 1, completed.stdout[-3000:]
    assert_no_repr(completed.stdout)
    summary = run(live, "status", "-e", "stackops_rpo=1s", ok=False)
    problems = result_of(summary, live)["problems"]
    assert summary["exit_code"] == 1
    assert any("newest verified logical backup of appdb" in text and "older than the RPO 1s" in text
               for text in problems), problems
    assert any("WAL receiver of %s is not running" % PROJECT in text for text in problems), problems
    assert any("last restore drill" in text and "records-write" in text for text in problems), problems
    # The table names the same problems (the ages moved on between the two runs).
    for fragment in ("newest verified logical backup of appdb", "older than the RPO 1s",
                     "WAL receiver of %s is not running" % PROJECT, "failed its check(s) records-write"):
        assert fragment in completed.stdout, (fragment, completed.stdout[-3000:])
