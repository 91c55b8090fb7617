"""Stack lifecycle on the real demo stack: preflight, tiered startup, service control, rolling operations, scaling.

The tests run in file order and share the stack fixture; each leaves the stack healthy with one api container.
"""
import collections
import json
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from support.runner import run_playbook
from support.wait import until


def changed_tasks(run):
    return [event["event_data"].get("task") for event in run.events
            if event.get("event") == "runner_on_ok" and event["event_data"].get("res", {}).get("changed")]


def fact(run, task, name):
    return run.result(task)["ansible_facts"][name]


def api_containers(stack):
    return sorted((row["Name"], row["State"], row.get("Health", ""), row["Image"]) for row in stack.ps() if row["Service"] == "api")


def broken_tag(stack):
    return "broken-" + stack.project


@pytest.fixture(scope="module")
def broken_api_image(stack):
    """An api image that exits at once: the stand-in for a bad release."""
    dockerfile = ('FROM stackops-demo/api:1\n'
                  'CMD ["python3", "-c", "import sys; print(\\"api refuses to start: broken build\\"); sys.exit(3)"]\n')
    image = "stackops-demo/api:%s" % broken_tag(stack)
    subprocess.run(["docker", "build", "-q", "-t", image, "-"], input=dockerfile, text=True, check=True, capture_output=True)
    yield image
    subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)


class LoadLoop:
    """GET loop against the frontend on loopback, counting every failure, and noting which container answered when
    the answer names it (the api's /health says its hostname, which is the container's short id)."""

    def __init__(self, url, workers=4, pause=0.02):
        self.url = url
        self.results = collections.Counter()
        self.served_by = set()
        self.errors = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.work, args=(pause,), daemon=True) for _ in range(workers)]

    def work(self, pause):
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=15) as response:
                    self.results[response.status] += 1
                    body = json.loads(response.read() or b"null")
                    if isinstance(body, dict) and body.get("hostname"):
                        self.served_by.add(body["hostname"])
            except Exception as exc:  # every failure counts, whatever its kind
                self.results["error"] += 1
                self.errors.append(repr(exc)[:200])
            time.sleep(pause)

    def wait_served_by(self, containers, what):
        """Until a request was answered by one of ``containers`` (container ids)."""
        until(lambda: any(container.startswith(host) for container in containers for host in list(self.served_by)),
              "a request answered by %s (%s)" % (what, containers), timeout=120)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def started_at(stack, service):
    """When Docker started each container of ``service``, oldest first, as comparable (UTC seconds, nanoseconds):
    State.StartedAt is RFC 3339 with up to nine fraction digits, trailing zeros dropped, so its text does not sort."""
    ids = [row["ID"] for row in stack.ps() if row["Service"] == service]
    inspected = json.loads(subprocess.run(["docker", "inspect"] + ids, capture_output=True, text=True,
                                          check=True).stdout)
    moments = []
    for item in inspected:
        whole, dummy, fraction = item["State"]["StartedAt"].rstrip("Z").partition(".")
        moments.append((whole, int((fraction + "000000000")[:9])))
    return sorted(moments)


# --- preflight ---------------------------------------------------------------------------------

def test_preflight_passes_on_the_running_stack(stack):
    run = run_playbook("preflight.yml", inventory=stack.inventory)
    assert run.status == "successful", run.stdout
    report = fact(run, "Publish the result as stackops_preflight_report", "stackops_preflight_report")
    names = {check["name"] for check in report["checks"]}
    assert {"docker engine", "compose file", "port 127.0.0.1:%d" % stack.frontend_port, "image stackops-demo/api:1"} <= names
    assert report["severity"] == "OK", report["critical"] + report["warnings"]
    assert not changed_tasks(run)


def test_preflight_names_missing_files_and_busy_ports(stack, tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]
    override = tmp_path / "other.env"
    override.write_text("FRONTEND_PORT=%d\nPOSTGRES_PORT=%d\n" % (busy, busy + 1 if busy < 65000 else busy - 1))
    try:
        run = run_playbook("preflight.yml", inventory=stack.inventory, extravars={
            # Another project name: the ports are then not "ours", as on a fresh host.
            "stackops_compose_project_name": stack.project + "-preflight",
            "stackops_compose_env_files": [str(stack.env_file), str(override)],
            "stackops_preflight_required_files": [str(stack.dir / "secrets" / "db_password"), str(tmp_path / "missing.key")],
        })
    finally:
        holder.close()
    assert run.status == "failed"
    report = fact(run, "Publish the result as stackops_preflight_report", "stackops_preflight_report")
    critical = " | ".join(report["critical"])
    assert "port 127.0.0.1:%d: in use by another process" % busy in critical
    assert "missing.key: missing" in critical
    assert stack.password not in run.artifact_text()


# --- startup -----------------------------------------------------------------------------------

def test_cold_startup_by_tiers_then_nothing_to_do(stack):
    stack.compose("down")  # keep the volume: a cold start of containers, not a fresh database
    assert not [row for row in stack.ps() if row["State"] == "running"]
    run = run_playbook("startup.yml", inventory=stack.inventory)
    assert run.status == "successful", run.stdout
    report = fact(run, "Publish the startup report as stackops_startup_report", "stackops_startup_report")
    assert [tier["services"] for tier in report["tiers"]] == [["postgres"], ["api"], ["frontend"]]
    # Tier by tier, in order: each tier's containers started after the previous tier's (Docker's own clock).
    postgres, api, frontend = (started_at(stack, service) for service in ("postgres", "api", "frontend"))
    assert max(postgres) < min(api) and max(api) < min(frontend), (postgres, api, frontend)
    assert float(report["total_seconds"]) == pytest.approx(sum(tier["seconds"] for tier in report["tiers"]), abs=0.01)
    assert sorted(report["changed_services"]) == ["api", "frontend", "postgres"]
    assert report["tiers"][0]["gates"] == ["postgres"]
    assert report["tiers"][2]["gates"] == ["api", "api-db", "frontend"]
    assert {row["Service"]: (row["State"], row["Health"]) for row in stack.ps()} == {
        "postgres": ("running", "healthy"), "api": ("running", "healthy"), "frontend": ("running", "healthy")}

    again = run_playbook("startup.yml", inventory=stack.inventory)
    assert again.status == "successful", again.stdout
    assert changed_tasks(again) == []
    assert fact(again, "Publish the startup report as stackops_startup_report", "stackops_startup_report")["changed_services"] == []


def test_startup_with_a_broken_api_stops_and_shows_its_logs(stack, broken_api_image, tmp_path):
    broken_env = tmp_path / "broken.env"
    broken_env.write_text("API_TAG=%s\n" % broken_tag(stack))
    try:
        run = run_playbook("startup.yml", inventory=stack.inventory,
                           extravars={"stackops_compose_env_files": [str(stack.env_file), str(broken_env)],
                                      "stackops_startup_tier_timeout": 90})
        assert run.status == "failed"
        # The api tier's failure is rescued to collect state and logs, then the run stops on purpose.
        assert run.failed_tasks == ["Bring up api", "Stop the startup, naming the tier and its service"]
        message = run.result("Stop the startup, naming the tier and its service")["msg"]
        assert message.startswith("startup stopped at tier 2 (api): service api not healthy")
        assert "api refuses to start: broken build" in message
        assert "Later tiers were not started" in message
    finally:
        repaired = run_playbook("startup.yml", inventory=stack.inventory)
    assert repaired.status == "successful", repaired.stdout
    assert "api" in fact(repaired, "Publish the startup report as stackops_startup_report", "stackops_startup_report")["changed_services"]


# --- service control ---------------------------------------------------------------------------

def test_stop_start_and_hard_restart(stack):
    stopped = run_playbook("service.yml", inventory=stack.inventory,
                           extravars={"stackops_service_action": "stop", "stackops_service_names": ["api"], "stackops_service_stop_timeout": 10})
    assert stopped.status == "successful", stopped.stdout
    assert [state for _name, state, _health, _image in api_containers(stack)] == ["exited"]

    # Check mode predicts the start and changes nothing.
    preview = run_playbook("startup.yml", inventory=stack.inventory, check=True)
    assert preview.status == "successful", preview.stdout
    assert fact(preview, "Publish the startup report as stackops_startup_report", "stackops_startup_report")["changed_services"] == ["api"]
    assert [state for _name, state, _health, _image in api_containers(stack)] == ["exited"]

    started = run_playbook("service.yml", inventory=stack.inventory,
                           extravars={"stackops_service_action": "start", "stackops_service_names": ["api"]})
    assert started.status == "successful", started.stdout
    assert fact(started, "Publish the result as stackops_service_report", "stackops_service_report")["changed_services"] == ["api"]
    before_id = [row["ID"] for row in stack.ps() if row["Service"] == "api"]

    hard = run_playbook("service.yml", inventory=stack.inventory,
                        extravars={"stackops_service_action": "hard_restart", "stackops_service_names": ["api"]})
    assert hard.status == "successful", hard.stdout
    after = [row for row in stack.ps() if row["Service"] == "api"]
    assert [row["ID"] for row in after] != before_id and after[0]["Health"] == "healthy"


# --- scaling and rolling operations ------------------------------------------------------------

def test_scale_up_roll_restart_under_load_and_update_with_rollback(stack, broken_api_image):
    scaled = run_playbook("scaling.yml", inventory=stack.inventory,
                          extravars={"stackops_scaling_service": "api", "stackops_scaling_replicas": 3})
    assert scaled.status == "successful", scaled.stdout
    report = fact(scaled, "Publish the result as stackops_scaling_report", "stackops_scaling_report")
    assert (int(report["replicas_before"]), int(report["replicas_after"])) == (1, 3)
    assert [step["replicas"] for step in report["steps"]] == [2, 3]
    before = api_containers(stack)
    assert len(before) == 3 and all(state == "running" and health == "healthy" for _n, state, health, _i in before)

    old_ids = [row["ID"] for row in stack.ps() if row["Service"] == "api"]
    # Two loads through the frontend: the database path, and /health, which names the container that answered.
    # The roll starts once an old container has answered and the loads stop once a new one has, so they span it.
    with LoadLoop(stack.frontend_url + "/api/v1/db/health") as load, LoadLoop(stack.frontend_url + "/health") as who:
        who.wait_served_by(old_ids, "an api container from before the roll")
        rolled = run_playbook("service.yml", inventory=stack.inventory,
                              extravars={"stackops_service_action": "rolling_restart", "stackops_service_names": ["api"],
                                         "stackops_service_drain_seconds": 2})
        new_ids = [row["ID"] for row in stack.ps() if row["Service"] == "api"]
        who.wait_served_by(new_ids, "an api container the roll started")
    assert rolled.status == "successful", rolled.stdout
    for loop in (load, who):
        assert loop.results["error"] == 0 and set(loop.results) == {200}, (dict(loop.results), loop.errors[:5])
    after = api_containers(stack)
    assert len(after) == 3 and not {name for name, *_ in before} & {name for name, *_ in after}

    update = run_playbook("service.yml", inventory=stack.inventory,
                          extravars={"stackops_service_action": "rolling_update", "stackops_service_names": ["api"],
                                     "stackops_service_env": {"API_TAG": broken_tag(stack)}, "stackops_service_wait_timeout": 60})
    assert update.status == "failed"
    message = update.result("Roll the containers one at a time")["results"][0]["msg"]
    assert "rolling update of service api" in message and "stopped after 0 of 3 containers" in message
    assert "api refuses to start: broken build" in message and "rolled back" in message
    # The previous containers kept serving, untouched, on the previous image.
    assert api_containers(stack) == after and all(image == "stackops-demo/api:1" for *_x, image in after)


def test_scale_back_down_and_refuse_zero(stack):
    down = run_playbook("scaling.yml", inventory=stack.inventory,
                        extravars={"stackops_scaling_service": "api", "stackops_scaling_replicas": 1, "stackops_scaling_step": 2})
    assert down.status == "successful", down.stdout
    report = fact(down, "Publish the result as stackops_scaling_report", "stackops_scaling_report")
    assert (int(report["replicas_before"]), int(report["replicas_after"])) == (3, 1)
    assert [step["replicas"] for step in report["steps"]] == [1]
    assert len(api_containers(stack)) == 1

    zero = run_playbook("scaling.yml", inventory=stack.inventory,
                        extravars={"stackops_scaling_service": "api", "stackops_scaling_replicas": 0})
    assert zero.status == "failed"
    assert "refusing to scale api to 0" in zero.result("Scale the compose service gradually")["msg"]
    assert len(api_containers(stack)) == 1
    assert stack.http("/health")[0] == 200
