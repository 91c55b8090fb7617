"""The health procedure end to end on the real demo stack: healthy, then with the api stopped."""
import json

import pytest

from support.runner import dump, run_module, run_playbook

# The test host is shared and busy; load is not what these tests are about.
QUIET_LOAD = {"stackops_health_load_warning": 100000, "stackops_health_load_critical": 100000}


def failed(res):
    return bool(res["_run"].task_results(event_types=("runner_on_failed",)))


def report_of(run):
    facts = run.result("Publish the report as stackops_health_report and stackops_result")["ansible_facts"]
    return facts["stackops_health_report"]


def compose_args(stack, **extra):
    args = {"project_dir": str(stack.dir), "project_name": stack.project, "env_files": [str(stack.env_file)]}
    args.update(extra)
    return args


def test_compose_status_reports_every_service(stack):
    res = run_module("stackops.runbooks.compose_service_info", compose_args(stack))
    assert not failed(res), res.get("msg")
    assert set(res["services"]) == {"postgres", "api", "frontend"}
    assert res["ready"] is True and res["changed"] is False
    api = res["services"]["api"]
    assert (api["running"], api["healthy"], api["expected"]) == (1, 1, 1)
    container = api["containers"][0]
    assert container["state"] == "running" and container["health"] == "healthy"
    assert container["image_id"].startswith("sha256:") and container["restart_count"] == 0
    assert isinstance(container["uptime_seconds"], (int, float)) and container["started_at"]
    assert [check["severity"] for check in res["checks"]] == ["OK", "OK", "OK"]


def test_compose_status_waits_and_rejects_unknown_services(stack):
    res = run_module("stackops.runbooks.compose_service_info", compose_args(stack, services=["api"], wait=True, wait_timeout=30))
    assert not failed(res) and res["ready"] is True and list(res["services"]) == ["api"]
    missing = run_module("stackops.runbooks.compose_service_info", compose_args(stack, services=["nope"]))
    assert failed(missing) and "service(s) nope not defined" in missing["msg"]
    too_many = run_module("stackops.runbooks.compose_service_info", compose_args(stack, services=["api"], replicas=2, wait=True,
                                                                              wait_timeout=3, interval=1))
    assert failed(too_many) and "api not healthy after" in too_many["msg"] and too_many["not_ready"] == ["api"]


def test_health_playbook_on_a_healthy_stack(stack, tmp_path):
    report_path = tmp_path / "reports" / "health.json"
    run = run_playbook("health.yml", inventory=stack.inventory,
                       extravars=dict(QUIET_LOAD, stackops_health_report_path=str(report_path)))
    assert run.status == "successful", run.stdout
    report = report_of(run)
    assert report["severity"] == "OK", dump(report["critical"] + report["warnings"])
    assert report["failed"] is False and report["counts"]["critical"] == 0
    names = {check["name"] for check in report["checks"]}
    assert {"service postgres", "service api", "service frontend", "http api", "http api-db", "http frontend",
            "postgres readiness", "postgres connections", "disk /", "memory", "load"} <= names
    for check in report["checks"]:
        assert set(check) == {"name", "severity", "message", "details"}
    connections = next(check for check in report["checks"] if check["name"] == "postgres connections")
    assert connections["details"]["max_connections"] == 100
    written = json.loads(report_path.read_text())
    assert written["checks"] == report["checks"] and written["project"] == stack.project
    assert stack.password not in run.artifact_text()


def test_health_playbook_check_mode_writes_nothing(stack, tmp_path):
    report_path = tmp_path / "health.json"
    run = run_playbook("health.yml", inventory=stack.inventory, check=True,
                       extravars=dict(QUIET_LOAD, stackops_health_report_path=str(report_path)))
    assert run.status == "successful", run.stdout
    assert report_of(run)["severity"] == "OK"
    assert not report_path.exists()


def test_health_playbook_fails_naming_a_stopped_api(stack, tmp_path):
    report_path = tmp_path / "health.json"
    # Earlier rolling operations renumber containers: read the name instead of assuming api-1.
    api_name = [row["Name"] for row in stack.ps() if row["Service"] == "api"][0]
    stack.compose("stop", "api")
    try:
        run = run_playbook("health.yml", inventory=stack.inventory,
                           extravars=dict(QUIET_LOAD, stackops_health_report_path=str(report_path)))
        assert run.status == "failed"
        assert run.failed_tasks == ["Fail when checks reach stackops_health_fail_on"]
        report = report_of(run)
        assert report["severity"] == "CRITICAL"
        assert "service api: 0/1 containers running (%s exited)" % api_name in report["critical"]
        critical_names = {check["name"] for check in report["checks"] if check["severity"] == "CRITICAL"}
        assert {"service api", "http api", "http api-db"} <= critical_names
        assert "service frontend" not in critical_names and "postgres readiness" not in critical_names
        failure = run.result("Fail when checks reach stackops_health_fail_on")["msg"]
        assert "service api: 0/1 containers running" in failure and "stackops_health_fail_on=never" in failure
        assert json.loads(report_path.read_text())["severity"] == "CRITICAL"

        # Report-only mode still publishes the report but lets the play succeed.
        relaxed = run_playbook("health.yml", inventory=stack.inventory, extravars=dict(QUIET_LOAD, stackops_health_fail_on="never"))
        assert relaxed.status == "successful"
        assert report_of(relaxed)["severity"] == "CRITICAL"
    finally:
        stack.up()
    assert stack.wait_http("/health")[0] == 200
