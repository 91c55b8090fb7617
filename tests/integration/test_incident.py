"""The incident runbooks end to end on the real demo stack (playbooks/incident.yml via ansible-runner)."""
import json
import os
import subprocess
import time

import psycopg
import pytest

from support.runner import OUTPUT, run_playbook
from support.wait import sessions_older_than

pytestmark = pytest.mark.stack

BUNDLE = ["compose-ps.json", "logs.txt", "pg-activity.json", "resources.json", "health.json", "report.json"]


def incident(stack, label, tmp_path, **extravars):
    extravars.setdefault("stackops_diagnostics_dir", str(tmp_path / "bundle"))
    # never touch other stacks' leftovers on a shared engine: only images with our own (absent) label
    extravars.setdefault("stackops_incident_prune_filters", {"until": "24h", "label": "stackops.test=%s" % stack.project})
    extravars.setdefault("stackops_incident_prune_builder_cache", False)
    return run_playbook("incident.yml", inventory=stack.inventory, extravars=extravars, label=label)


def report(run):
    results = run.task_results("Build the report")
    assert results, (run.failed_tasks, run.stdout[-4000:])
    return results[-1]["ansible_facts"]["stackops_result"]


def check_bundle(result, tmp_path):
    bundle = tmp_path / "bundle"
    assert result["diagnostics_dir"] == str(bundle.resolve())
    for name in BUNDLE:
        assert (bundle / name).is_file(), name
    assert json.loads((bundle / "pg-activity.json").read_text())["usage"]["max_connections"] > 0
    assert json.loads((bundle / "report.json").read_text())["procedure"] == "incident"
    return bundle


def test_api_not_responding_restarts_behind_a_health_gate(stack, tmp_path):
    stack.compose("stop", "api")
    run = incident(stack, "incident-api", tmp_path, stackops_incident="api_not_responding")
    assert run.status == "successful", (run.failed_tasks, run.stdout[-4000:])
    result = report(run)
    bundle = check_bundle(result, tmp_path)
    assert result["health_before"] == "CRITICAL"
    (action,) = result["actions"]
    assert action["done"] is True and "healthy again" in action["summary"]
    assert stack.http("/health")[0] == 200
    assert "api" in (bundle / "compose-ps.json").read_text()
    # a second run finds the API answering and changes nothing
    again = incident(stack, "incident-api-again", tmp_path, stackops_incident="api_not_responding")
    assert again.status == "successful"
    assert report(again)["actions"][0]["done"] is False and not again.task_results("Restart the API service")


def test_db_connections_exhausted_terminates_only_old_idle_sessions(stack, tmp_path):
    def connect(app):
        return psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                               dbname="appdb", autocommit=True, application_name=app)

    victims = [connect("incident-victim") for _ in range(3)]
    bystander = connect("incident-bystander")  # idle just as long, but not of the application asked for
    with connect("incident-wait") as conn:  # idle longer than stackops_incident_idle_age, by the server's clock
        sessions_older_than(conn, [c.info.backend_pid for c in victims + [bystander]], 2.5)
    try:
        victim_pids = {c.info.backend_pid for c in victims}
        run = incident(stack, "incident-conns", tmp_path, stackops_incident="db_connections_exhausted",
                       stackops_incident_idle_age=2, stackops_incident_applications=["incident-victim"])
        assert run.status == "successful", (run.failed_tasks, run.stdout[-4000:])
        result = report(run)
        check_bundle(result, tmp_path)
        (action,) = result["actions"]
        assert set(action["terminated"]) == victim_pids
        # pg_connections' own summary line.
        assert action["summary"].endswith("terminated 3 session(s) idle > 2 s"), action["summary"]
        assert action["usage_before"]["by_application"]["incident-victim"] == 3
        with connect("incident-check") as check:
            alive = {r[0] for r in check.execute("SELECT pid FROM pg_stat_activity").fetchall()}
        assert not victim_pids & alive and bystander.info.backend_pid in alive
        assert stack.http("/api/v1/db/health")[0] == 200
    finally:
        for conn in victims + [bystander]:
            try:
                conn.close()
            except psycopg.Error:
                pass


def test_disk_space_critical_removes_old_logs_only(stack, tmp_path):
    logs = OUTPUT / ("incident-logs-%s" % stack.project)
    subprocess.run(["rm", "-rf", str(logs)], check=True)
    (logs / "app").mkdir(parents=True)
    old = [logs / "app" / "old.log", logs / "app" / "old.log.1"]
    new = [logs / "app" / "new.log"]
    keep = [logs / "app" / "data.db"]
    month_ago = time.time() - 30 * 86400
    for path in old + new + keep:
        path.write_bytes(b"x" * 50000)
    for path in old + keep:
        os.utime(path, (month_ago, month_ago))
    run = incident(stack, "incident-disk", tmp_path, stackops_incident="disk_space_critical",
                   stackops_incident_log_dirs=[str(logs)], stackops_incident_disk_paths=[str(logs)])
    assert run.status == "successful", (run.failed_tasks, run.stdout[-4000:])
    result = report(run)
    check_bundle(result, tmp_path)
    (action,) = result["actions"]
    assert sorted(action["logs_removed"]) == sorted(str(p) for p in old)
    assert action["logs_reclaimed_bytes"] == 100000
    assert "freed" in action["summary"]
    # host_log_cleanup's own list, in one task instead of a find and a removal per file.
    assert len(run.task_results("Remove logs older than the maximum age in days - 7")) == 1
    assert not any(p.exists() for p in old) and all(p.exists() for p in new + keep)


def test_diagnostics_only_changes_nothing(stack, tmp_path):
    run = incident(stack, "incident-diag", tmp_path)
    assert run.status == "successful", (run.failed_tasks, run.stdout[-4000:])
    result = report(run)
    check_bundle(result, tmp_path)
    assert result["incident"] == "diagnostics" and result["actions"] == []
    # only the bundle on the controller is written; nothing on the stack changes
    bundle_tasks = {"Create the diagnostics directory", "Write the bundle", "Write the report into the bundle"}
    changed = {e["event_data"]["task"] for e in run.events if e.get("event") in ("runner_on_ok", "runner_item_on_ok")
               and e["event_data"].get("res", {}).get("changed")}
    assert changed <= bundle_tasks, changed
