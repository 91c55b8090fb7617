"""maintenance_mode against the real demo stack: the frontend really serves its maintenance page."""
import urllib.error
import urllib.request

import pytest

from support.runner import run_module

pytestmark = pytest.mark.stack

MODULE = "stackops.runbooks.compose_maintenance_mode"


def failed(res):
    return bool(res["_run"].task_results(event_types=("runner_on_failed",)))


def get(stack, path):
    try:
        with urllib.request.urlopen(stack.frontend_url + path, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def args(stack, **extra):
    base = {"project_dir": str(stack.dir), "project_name": stack.project, "env_files": [str(stack.env_file)], "service": "frontend"}
    base.update(extra)
    return base


def test_maintenance_mode_on_off_idempotent_and_check_mode(stack):
    run_module(MODULE, args(stack, state="off"))
    assert get(stack, "/health")[0] == 200

    check = run_module(MODULE, args(stack, state="on"), check=True)
    assert not failed(check), check
    assert check["changed"] is True and check["previous_state"] == "off"
    assert get(stack, "/health")[0] == 200  # check mode changed nothing

    on = run_module(MODULE, args(stack, state="on", reason="test window"))
    assert not failed(on), on
    assert on["changed"] is True and on["state"] == "on"
    for path in ("/", "/health", "/api/v1/records/count"):
        status, body = get(stack, path)
        assert status == 503 and "Down for maintenance" in body, (path, status, body)
    flag = stack.compose("exec", "-T", "frontend", "cat", "/var/lib/stackops-maintenance/on").stdout
    assert flag.strip() == "test window"

    again = run_module(MODULE, args(stack, state="on"))
    assert not failed(again) and again["changed"] is False and again["previous_state"] == "on"

    off = run_module(MODULE, args(stack, state="off"))
    assert not failed(off) and off["changed"] is True and off["previous_state"] == "on"
    assert get(stack, "/health")[0] == 200
    assert run_module(MODULE, args(stack, state="off"))["changed"] is False


def test_maintenance_mode_unknown_service_fails_with_hint(stack):
    res = run_module(MODULE, args(stack, state="on", service="no-such-service"))
    assert failed(res)
    assert "no-such-service" in res["msg"] and "docker compose ps" in res["msg"]
