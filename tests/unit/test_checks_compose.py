"""Pure compose logic: service severity from container states, dependency tiers, Docker timestamps."""
import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import compose
from ansible_collections.stackops.runbooks.plugins.module_utils.checks import CRITICAL, OK, WARNING


def container(name, state="running", health="healthy", restarts=0, exit_code=0, policy="unless-stopped"):
    return {"name": name, "state": state, "health": health, "restart_count": restarts, "exit_code": exit_code,
            "restart_policy": policy}


def test_healthy_service():
    status = compose.service_status("api", [container("api-1")])
    assert status["check"]["severity"] == OK
    assert status["check"]["message"] == "service api: 1/1 containers running and healthy"
    assert (status["running"], status["healthy"], status["expected"]) == (1, 1, 1)


def test_stopped_service_is_critical_and_named():
    status = compose.service_status("api", [container("api-1", state="exited", health="", exit_code=137)])
    assert status["check"]["severity"] == CRITICAL
    assert status["check"]["message"].startswith("service api: 0/1 containers running")


def test_service_without_containers():
    status = compose.service_status("api", [])
    assert status["check"]["severity"] == CRITICAL
    assert "0/1 containers running" in status["check"]["message"] and "docker compose up" in status["check"]["message"]


def test_running_but_unhealthy_is_critical():
    status = compose.service_status("api", [container("api-1", health="unhealthy")])
    assert status["check"]["severity"] == CRITICAL
    assert "1/1 containers running, 0 healthy (api-1 running unhealthy)" in status["check"]["message"]


def test_no_healthcheck_counts_as_ready_when_running():
    assert compose.service_status("worker", [container("w-1", health="")])["check"]["severity"] == OK


def test_degraded_replicas_warn():
    status = compose.service_status("api", [container("api-1"), container("api-2", health="starting"), container("api-3")])
    assert status["check"]["severity"] == WARNING
    assert "degraded, 2/3 containers ready (api-2 running starting)" in status["check"]["message"]


def test_expected_replicas_override():
    status = compose.service_status("api", [container("api-1")], expected=3)
    assert status["check"]["severity"] == WARNING and status["expected"] == 3


def test_restart_loop_warns():
    status = compose.service_status("api", [container("api-1", restarts=4)], restart_warning=3)
    assert status["check"]["severity"] == WARNING and "restarted 4 times" in status["check"]["message"]
    assert compose.service_status("api", [container("api-1", restarts=4)], restart_warning=0)["check"]["severity"] == OK


def test_completed_one_shot_job_is_ok():
    job = container("migrate-1", state="exited", health="", exit_code=0, policy="no")
    assert compose.service_status("migrate", [job])["check"]["severity"] == OK
    failed = container("migrate-1", state="exited", health="", exit_code=1, policy="no")
    assert compose.service_status("migrate", [failed])["check"]["severity"] == CRITICAL


def test_dependency_tiers_from_compose_model():
    config = {"services": {
        "frontend": {"depends_on": {"api": {"condition": "service_healthy"}}},
        "api": {"depends_on": {"postgres": {"condition": "service_healthy"}, "cache": {}}},
        "postgres": {},
        "cache": {"depends_on": []},
        "worker": {"depends_on": ["postgres"]},
    }}
    deps = compose.depends_on_map(config)
    assert deps["api"] == ["cache", "postgres"]
    assert compose.dependency_tiers(deps) == [["cache", "postgres"], ["api", "worker"], ["frontend"]]


def test_dependency_cycle_and_unknown_are_named():
    with pytest.raises(ValueError, match="cycle between services a, b"):
        compose.dependency_tiers({"a": ["b"], "b": ["a"], "c": []})
    with pytest.raises(ValueError, match="api depends on undefined service"):
        compose.dependency_tiers({"api": ["db"]})


@pytest.mark.parametrize("text, expected", [
    ("2026-11-23T14:13:48.057879697Z", 1795443228.057879),
    ("2026-11-23T14:13:48Z", 1795443228.0),
    ("2026-11-23T15:13:48+01:00", 1795443228.0),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    ("garbage", None),
])
def test_parse_docker_time(text, expected):
    result = compose.parse_docker_time(text)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-3)


def test_parse_ps_json_both_formats():
    assert compose.parse_ps_json('[{"Name": "a"}]') == [{"Name": "a"}]
    assert compose.parse_ps_json('{"Name": "a"}\n{"Name": "b"}\n') == [{"Name": "a"}, {"Name": "b"}]
    assert compose.parse_ps_json("") == []
