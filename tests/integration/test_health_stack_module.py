"""stack_health: every check group in one module run, on the real demo stack and a real PostgreSQL."""
import json

from support.runner import dump, run_module

# The test host is shared and busy; load is not what these tests are about.
QUIET_HOST = {"load_warning": 100000, "load_critical": 100000, "docker": False}
ALL_PG_CHECKS = ["readiness", "connections", "long_queries", "idle_in_transaction", "blocking_locks", "database_sizes",
                 "wraparound", "cache_hit_ratio", "bloat"]


def failed(res):
    return bool(res["_run"].task_results(event_types=("runner_on_failed",)))


def stack_args(stack, **extra):
    """The module arguments the health role builds from the stack's inventory contract."""
    args = {
        "project_dir": str(stack.dir), "project_name": stack.project, "env_files": [str(stack.env_file)],
        "login_host": "127.0.0.1", "login_port": stack.postgres_port, "login_user": "app", "login_db": "appdb",
        "login_password_file": str(stack.dir / "secrets" / "db_password"),
        "urls": [
            {"name": "api", "url": stack.frontend_url + "/health", "json": {"status": "healthy"}},
            {"name": "api-db", "url": stack.frontend_url + "/api/v1/db/health", "json": {"db.connected": True},
             "after": "api"},  # a startup-role key: ignored here
            {"name": "frontend", "url": stack.frontend_url + "/", "status": 200},
        ],
        "postgres": {"checks": ALL_PG_CHECKS},
        "host": QUIET_HOST,
        "metadata": {"host": "test", "project": stack.project},
    }
    args.update(extra)
    return args


def without_run(res):
    return {key: value for key, value in res.items() if key != "_run"}


def severities(report):
    return {check["name"]: check["severity"] for check in report["checks"]}


def test_stack_health_all_ok_on_a_healthy_stack(stack, tmp_path):
    path = tmp_path / "out" / "health.json"
    res = run_module("stackops.runbooks.stack_health", stack_args(stack, path=str(path)))
    assert not failed(res), res.get("msg")
    report = res["report"]
    assert report["severity"] == "OK", dump(report["critical"] + report["warnings"])
    assert report["failed"] is False and report["project"] == stack.project and report["generated_at"]
    names = list(severities(report))
    # Report order is the group order: compose (dependency order), the URLs as listed, postgres, host.
    assert names[:6] == ["service postgres", "service api", "service frontend", "http api", "http api-db", "http frontend"]
    assert {"postgres readiness", "postgres connections", "postgres bloat", "disk /", "memory", "load"} <= set(names)
    assert [group["name"] for group in res["groups"]] == ["compose", "http api", "http api-db", "http frontend", "postgres", "host"]
    assert all(group["error"] is None and group["checks"] >= 1 for group in res["groups"])
    assert json.loads(path.read_text())["checks"] == report["checks"] and res["changed"] is True
    assert res["summary"][0].startswith("overall OK")
    assert stack.password not in res["_run"].artifact_text()


def test_stack_health_check_mode_writes_no_report(stack, tmp_path):
    path = tmp_path / "health.json"
    res = run_module("stackops.runbooks.stack_health", stack_args(stack, path=str(path), checks=["compose", "host"]), check=True)
    assert not failed(res), res.get("msg")
    assert res["report"]["severity"] == "OK" and not path.exists()
    assert [group["name"] for group in res["groups"]] == ["compose", "host"]


def test_stack_health_as_a_gate_waits_for_health_and_stops_at_the_first_critical(stack):
    """The startup role's last-tier gate: wait for Docker health beside the URL probes, fail fast on a dead container."""
    gate = {"checks": ["compose", "http"], "wait_timeout": 60, "stop_on_critical": True,
            "http": {"wait": True, "wait_timeout": 600, "consecutive_successes": 2, "interval": 0.25}}
    res = run_module("stackops.runbooks.stack_health", stack_args(stack, **gate))
    assert not failed(res), res.get("msg")
    assert {check["severity"] for check in res["report"]["checks"]} == {"OK"}

    stack.compose("stop", "api")
    try:
        res = run_module("stackops.runbooks.stack_health", stack_args(stack, **gate))
        assert failed(res)
        levels = severities(res["report"])
        assert levels["service api"] == "CRITICAL"
        # The API URLs would poll for 600 s; the exited container ended the gate and they are reported unfinished.
        unfinished = [group["name"] for group in res["groups"] if group["error"] == "not finished"]
        assert "http api" in unfinished
        messages = {check["name"]: check["message"] for check in res["report"]["checks"]}
        assert messages["http api"] == "http api: not finished, stopped because compose failed first"
    finally:
        stack.up()
    assert stack.wait_http("/health")[0] == 200


def test_stack_health_names_a_stopped_api(stack):
    api_name = [row["Name"] for row in stack.ps() if row["Service"] == "api"][0]
    stack.compose("stop", "api")
    try:
        res = run_module("stackops.runbooks.stack_health", stack_args(stack))
        assert failed(res)
        assert "health: " in res["msg"] and "service api: 0/1 containers running (%s exited)" % api_name in res["msg"]
        report = res["report"]
        levels = severities(report)
        assert levels["service api"] == "CRITICAL" and levels["http api"] == "CRITICAL" and levels["http api-db"] == "CRITICAL"
        assert levels["service postgres"] == "OK" and levels["postgres readiness"] == "OK"

        relaxed = run_module("stackops.runbooks.stack_health", stack_args(stack, fail_on="never", checks=["compose"]))
        assert not failed(relaxed) and relaxed["report"]["severity"] == "CRITICAL" and relaxed["report"]["failed"] is False
    finally:
        stack.up()
    assert stack.wait_http("/health")[0] == 200


def test_stack_health_unreachable_db_is_critical_while_other_groups_report(stack, pg_cluster):
    args = stack_args(stack, fail_on_unhealthy=False, login_port=pg_cluster.port, login_user=pg_cluster.user,
                      login_db="postgres", login_password="wrong-password")
    res = run_module("stackops.runbooks.stack_health", args)
    assert not failed(res), res.get("msg")
    report = res["report"]
    levels = severities(report)
    assert levels["postgres readiness"] == "CRITICAL" and report["failed"] is True
    readiness = next(check for check in report["checks"] if check["name"] == "postgres readiness")
    assert "cannot connect to postgresql://%s@127.0.0.1:%d/postgres" % (pg_cluster.user, pg_cluster.port) in readiness["message"]
    # The other groups still ran and report normally.
    assert levels["service api"] == "OK" and levels["http api-db"] == "OK" and levels["memory"] == "OK"
    # The password is in the test's own playbook file; the result and the play output must not carry it.
    assert "wrong-password" not in repr(without_run(res)) and "wrong-password" not in res["_run"].stdout


def test_stack_health_groups_that_cannot_run_become_critical_checks(stack, tmp_path):
    args = stack_args(stack, fail_on_unhealthy=False,
                      compose_files=[str(tmp_path / "missing-compose.yml")],
                      login_password_file=str(tmp_path / "no-such-password-file"),
                      urls=[{"name": "broken", "url": stack.frontend_url + "/health", "status": "not-a-code"},
                            {"name": "api", "url": stack.frontend_url + "/health"}],
                      host=dict(QUIET_HOST, disk_warning=95, disk_critical=90))
    res = run_module("stackops.runbooks.stack_health", args)
    assert not failed(res), res.get("msg")
    checks = {check["name"]: check for check in res["report"]["checks"]}
    assert set(checks) == {"compose", "http broken", "http api", "postgres", "host"}, dump(checks)
    assert checks["compose"]["severity"] == "CRITICAL" and "compose: check could not run: docker compose config" in checks["compose"]["message"]
    assert checks["postgres"]["severity"] == "CRITICAL" and "cannot read login_password_file" in checks["postgres"]["message"]
    assert checks["http broken"]["severity"] == "CRITICAL" and "invalid urls entry options" in checks["http broken"]["message"]
    assert checks["host"]["severity"] == "CRITICAL" and "fix disk_warning/disk_critical" in checks["host"]["message"]
    assert checks["http api"]["severity"] == "OK"
    errors = {group["name"]: group["error"] for group in res["groups"]}
    assert errors["http api"] is None and errors["compose"]


def test_stack_health_postgres_group_against_a_cluster(pg_cluster):
    login = {key: value for key, value in pg_cluster.params().items() if key.startswith("login_")}
    res = run_module("stackops.runbooks.stack_health", dict(
        login, checks=["postgres"], postgres={"checks": ALL_PG_CHECKS, "connections_warning": 0, "connections_critical": 100}))
    assert not failed(res), res.get("msg")
    levels = severities(res["report"])
    assert len(levels) == 9 and levels["postgres connections"] == "WARNING" and levels["postgres readiness"] == "OK"
    assert res["report"]["severity"] == "WARNING" and res["report"]["failed"] is False
    warned = run_module("stackops.runbooks.stack_health", dict(
        login, checks=["postgres"], fail_on="warning", postgres={"connections_warning": 0, "connections_critical": 100}))
    assert failed(warned) and "postgres connections" in warned["msg"]
    assert pg_cluster.password not in repr(without_run(warned))
