"""Notifications of procedures other than backup, through their real playbooks, to a real HTTP receiver on loopback.

Every procedure pings the start of its run and pages its failure, also when it fails half-way: health against a
stopped HTTP service, a service action on a project that cannot start, a maintenance window whose health pre-check
fails (one page for the window, none for the health check it runs inside). A retry of the same run does not page or
ping again; the next good run says "recovered"; no payload carries a secret.
"""
import json
import secrets

import pytest

from support.backup import stackops_result
from support.inventory import write_inventory
from support.ports import port, project
from support.receiver import Receiver, assert_closed
from support.runner import run_playbook

RECEIVER = port(56690)
SERVICE = port(56691)  # the "api" the health checks probe: closed until the test starts it


@pytest.fixture
def receiver():
    assert_closed(SERVICE, "the test starts its own service there")
    with Receiver(RECEIVER) as server:
        yield server


def inventory(tmp_path, secret):
    """A stack with no compose file and one HTTP health URL; a DB password that must never leave the host."""
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    return write_inventory(tmp_path / "inventory", "notify-procs", {
        "stackops_compose_project_dir": str(project_dir), "stackops_compose_project_name": project("h-notify-procs"),
        "stackops_db_host": "127.0.0.1", "stackops_db_port": port(56689), "stackops_db_password": secret,
        "stackops_backup_dir": str(tmp_path / "backups"), "stackops_writer_services": [],
        "stackops_health_checks": ["http"], "stackops_maintenance_health_checks": ["http"],
        "stackops_health_urls": [{"name": "api", "url": "http://127.0.0.1:%d/health" % SERVICE}],
    })


def paths(requests):
    return sorted(path for dummy, path, dummy2 in requests)


def hooks(requests):
    return [json.loads(body) for dummy, path, body in requests if path == "/hook"]


def test_every_procedure_pings_its_start_and_pages_its_failure_once(receiver, tmp_path):
    secret = "pw-" + secrets.token_hex(8)
    slack_token = "T00000000/B00000000/" + secrets.token_hex(12)
    base = "http://127.0.0.1:%d" % RECEIVER
    notify = {
        "stackops_notify_webhook_urls": [base + "/hook"],
        "stackops_notify_slack_webhook_urls": [base + "/services/" + slack_token],
        "stackops_notify_ping_urls": {"health": base + "/ping/health"},
        "stackops_notify_ping_url": base + "/ping/all",  # every other procedure
        "stackops_notify_state_dir": str(tmp_path / "notify-state"),
    }
    hosts = inventory(tmp_path, secret)
    runs, payloads = [], []

    def run(playbook, run_id, label, **extra):
        result = run_playbook(playbook, inventory=hosts, extravars=dict(notify, stackops_run_id=run_id, **extra),
                              label=label)
        got = receiver.take()
        runs.append(result)
        payloads.extend(body.decode() for dummy, dummy2, body in got)
        return result, stackops_result(result)["notify-procs"], got

    # health against a stopped service: start ping, failure page, failure ping.
    first, result, got = run("health.yml", "health-1", "procs-health-fail")
    assert first.rc != 0 and result["status"] == "failed" and result["notifications"]["events"] == ["failure"]
    assert paths(got) == ["/hook", "/ping/health/fail", "/ping/health/start", "/services/" + slack_token]
    (hook,) = hooks(got)
    assert (hook["event"], hook["procedure"], hook["run_id"]) == ("failure", "health", "health-1")
    assert hook["stackops_result"]["failing"] == ["http api"]
    slack = json.loads(next(body for dummy, path, body in got if path.startswith("/services/")))
    assert "stackops health on notify-procs FAILED" in slack["text"]

    # The same run retried: neither a second page nor a second start or failure ping.
    again, result, got = run("health.yml", "health-1", "procs-health-retry")
    assert again.rc != 0 and result["notifications"]["duplicates"] == ["failure"] and got == []

    # A service action that fails half-way (no compose file to act on) pages under its own name.
    service, result, got = run("service.yml", "service-1", "procs-service-fail", stackops_service_action="restart")
    assert service.rc != 0 and result["status"] == "failed" and result["failed_task"].startswith("Start, stop, restart")
    assert paths(got) == ["/hook", "/ping/all/fail", "/ping/all/start", "/services/" + slack_token]
    (hook,) = hooks(got)
    assert (hook["event"], hook["procedure"]) == ("failure", "service") and hook["stackops_result"]["error"]

    # A maintenance window whose health pre-check fails: nothing changed, one page for the window, none for the
    # health check inside it.
    window, result, got = run("maintenance.yml", "maint-1", "procs-maint-fail", stackops_maintenance_backup=False,
                              stackops_maintenance_tasks=[{"name": "analyze"}])
    assert window.rc != 0 and "Fail when checks reach stackops_health_fail_on" in window.failed_tasks
    assert (result["procedure"], result["status"], result["failed_phase"]) == ("maintenance", "failed", "pre-checks")
    assert result["done"] == [] and result["notifications"]["events"] == ["failure"]
    assert paths(got) == ["/hook", "/ping/all/fail", "/ping/all/start", "/services/" + slack_token]
    assert [(h["event"], h["procedure"]) for h in hooks(got)] == [("failure", "maintenance")]

    # The service is back: the next health run says "recovered" and pings success.
    api = Receiver(SERVICE)
    try:
        good, result, got = run("health.yml", "health-2", "procs-health-ok")
    finally:
        api.stop()
    assert good.rc == 0, good.stdout[-3000:]
    assert result["status"] == "ok" and result["notifications"]["events"] == ["recovered"]
    assert paths(got) == ["/hook", "/ping/health", "/ping/health/start", "/services/" + slack_token]
    assert [(h["event"], h["procedure"], h["status"]) for h in hooks(got)] == [("recovered", "health", "ok")]

    # No secret in any payload nor in anything the runs recorded (env/ holds only the test's own input).
    everything = "".join(payloads) + "".join(
        p.read_text(errors="replace") for r in runs for p in (r.private_data_dir / "artifacts").rglob("*") if p.is_file())
    assert secret not in everything and slack_token not in everything
