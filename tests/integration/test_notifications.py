"""Notifications of real backup runs (playbooks/backup.yml on a real PostgreSQL) to a real HTTP receiver on loopback.

Failure pages (generic webhook, Slack payload, failure ping), a retry of the same run does not page again, the next
good run says "recovered" (and pings start and success), no payload carries a secret, and an unreachable receiver
does not fail the procedure but is reported in its result.
"""
import json
import secrets

import pytest

from support.backup import create_db, stackops_result
from support.inventory import write_inventory
from support.ports import port
from support.receiver import Receiver, assert_closed
from support.runner import run_playbook

PORT = port(56730)
UNREACHABLE = port(56739)  # nothing listens here


@pytest.fixture(scope="module")
def receiver():
    assert_closed(UNREACHABLE, "the unreachable-receiver case needs it refused")
    with Receiver(PORT) as server:
        yield server


def inventory(tmp_path, pg_cluster, port):
    """A stack whose database is the test cluster (pg_dump on the host), port given so a run can be made to fail."""
    (tmp_path / "project").mkdir(exist_ok=True)
    return write_inventory(tmp_path / ("inventory-%d" % port), "notify-host", {
        "stackops_compose_project_dir": str(tmp_path / "project"), "stackops_db_host": "127.0.0.1",
        "stackops_db_port": port, "stackops_db_name": "notify_db", "stackops_db_user": pg_cluster.user,
        "stackops_db_password": pg_cluster.password, "stackops_backup_dir": str(tmp_path / "backups"),
        "stackops_backup_tools_location": "host", "stackops_backup_config_files": [],
        "stackops_writer_services": [], "stackops_db_service": "postgres",
    })


def test_failure_retry_recovery_and_unreachable_receiver(pg_cluster, receiver, tmp_path):
    create_db(pg_cluster, "notify_db", schema_sql="CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    slack_token = "T00000000/B00000000/" + secrets.token_hex(12)
    base = "http://127.0.0.1:%d" % PORT
    notify = {
        "stackops_notify_webhook_urls": [base + "/hook"],
        "stackops_notify_slack_webhook_urls": [base + "/services/" + slack_token],
        "stackops_notify_ping_urls": {"backup": base + "/ping/backup-uuid"},
        "stackops_notify_apprise_urls": ["json://127.0.0.1:%d/apprise" % PORT],  # apprise's generic JSON service
        "stackops_notify_state_dir": str(tmp_path / "notify-state"),
    }
    closed = inventory(tmp_path, pg_cluster, UNREACHABLE)  # the database is down: the backup fails
    failing = dict(notify, stackops_run_id="run-1")

    first = run_playbook("backup.yml", inventory=closed, extravars=failing, label="notify-fail")
    assert first.rc != 0
    result = stackops_result(first)["notify-host"]
    assert result["status"] == "failed" and result["notifications"]["events"] == ["failure"]
    got = receiver.take()
    paths = [path for dummy, path, dummy2 in got]
    assert paths.count("/hook") == 1 and paths.count("/services/" + slack_token) == 1
    assert "/ping/backup-uuid/start" in paths and "/ping/backup-uuid/fail" in paths and "/apprise" in paths
    assert "FAILED" in json.loads(next(body for dummy, path, body in got if path == "/apprise"))["message"]
    hook = json.loads(next(body for dummy, path, body in got if path == "/hook"))
    assert hook["event"] == "failure" and hook["procedure"] == "backup" and hook["status"] == "failed"
    assert hook["stackops_result"]["error"] and hook["stackops_result"]["database"] == "notify_db"
    slack = json.loads(next(body for dummy, path, body in got if path.startswith("/services/")))
    assert "FAILED" in slack["text"] and "notify-host" in slack["text"]

    # The same run retried (same run id): no second page, no second failure ping.
    again = run_playbook("backup.yml", inventory=closed, extravars=failing, label="notify-retry")
    assert again.rc != 0
    assert stackops_result(again)["notify-host"]["notifications"]["duplicates"] == ["failure"]
    assert [path for dummy, path, dummy2 in receiver.take() if not path.endswith("/start")] == []

    # The next good run: "recovered", the success ping; a dead extra receiver is reported, the run still succeeds.
    good = dict(notify, stackops_run_id="run-2")
    good["stackops_notify_webhook_urls"] = [base + "/hook", "http://127.0.0.1:%d/hook" % UNREACHABLE]
    ok = run_playbook("backup.yml", inventory=inventory(tmp_path, pg_cluster, pg_cluster.port), extravars=good,
                      label="notify-recover")
    assert ok.rc == 0, ok.stdout
    result = stackops_result(ok)["notify-host"]
    assert result["status"] == "ok" and result["notifications"]["events"] == ["recovered"]
    undelivered = result["notifications"]["undelivered"]
    assert len(undelivered) == 1 and undelivered[0]["kind"] == "webhook" and "Connection refused" in undelivered[0]["error"]
    got = receiver.take()
    bodies = [json.loads(body) for dummy, path, body in got if path == "/hook"]
    assert [body["event"] for body in bodies] == ["recovered"]
    assert "/ping/backup-uuid" in [path for dummy, path, dummy2 in got]

    # No secret in any payload or recorded output: the DB password, the Slack token.
    everything = b"".join(body for dummy, dummy2, body in got).decode() + json.dumps(result)
    for run in (first, again, ok):
        everything += "\n".join(p.read_text(errors="replace") for p in (run.private_data_dir / "artifacts").rglob("*")
                                if p.is_file())
    assert pg_cluster.password not in everything and slack_token not in everything
