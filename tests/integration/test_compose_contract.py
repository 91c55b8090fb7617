"""The whole compose contract on a project shaped unlike the demo (issue #12 items 2, 3, 6, 7).

A tiny compose project in a temp dir: `-f docker-compose.prod.yml -f docker-compose.ops.yml`, a service that
only exists with `--profile jobs`, other service names, a service on a fixed host port (56102, from this
file's port range 56100-56199) and no maintenance page. Images are the locally built demo images.
"""
import json
import subprocess

import pytest

from support.cli import procedure
from support.inventory import write_inventory
from support.ports import port, project
from support.runner import run_playbook

pytestmark = pytest.mark.stack

PROJECT = project("h1-contract")
DB_PORT = port(56101)
EDGE_PORT = port(56102)

PROD = """\
services:
  db:
    image: stackops-demo/postgres:1
    environment:
      POSTGRES_DB: shopdb
      POSTGRES_USER: shop
      POSTGRES_PASSWORD_FILE: /run/secrets/db_password
    secrets: [db_password]
    ports: ["127.0.0.1:%(db_port)d:5432"]
    healthcheck:
      test: ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-U", "shop", "-d", "shopdb"]
      interval: 1s
      retries: 60
  # Rollable: an ephemeral host port per container. Its readiness file is interpolated, so a test can give
  # new containers a healthcheck that never passes.
  web:
    image: stackops-demo/api:1
    command: ["python3", "-m", "http.server", "8000"]
    init: true
    ports: ["127.0.0.1::8000"]
    depends_on:
      db:
        condition: service_healthy
    healthcheck:
      test: ["CMD", "test", "-e", "${H1_WEB_READY_FILE:-/etc/hostname}"]
      interval: 1s
      retries: 2
    stop_grace_period: 2s
  # A fixed host port: one container at most.
  edge:
    image: stackops-demo/api:1
    command: ["python3", "-m", "http.server", "8000"]
    init: true
    ports: ["127.0.0.1:%(edge_port)d:8000"]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8000/"]
      interval: 1s
      retries: 30
    stop_grace_period: 2s

secrets:
  db_password:
    file: ./secrets/db_password
"""

OPS = """\
services:
  web:
    labels:
      h1.compose-file: ops
  jobs:
    image: stackops-demo/api:1
    profiles: [jobs]
    command: ["sleep", "infinity"]
    init: true
    stop_grace_period: 1s
"""


def compose(project_dir, *args, check=True):
    argv = ["docker", "compose", "--project-directory", str(project_dir), "-p", PROJECT,
            "-f", str(project_dir / "docker-compose.prod.yml"), "-f", str(project_dir / "docker-compose.ops.yml"),
            "--profile", "jobs"] + list(args)
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=300)


def containers(project_dir):
    """Every container of the project (also created and exited ones), from the engine's labels."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=%s" % PROJECT],
                         check=True, capture_output=True, text=True).stdout.split()
    if not ids:
        return []
    inspected = json.loads(subprocess.run(["docker", "inspect"] + ids, check=True, capture_output=True, text=True).stdout)
    return [dict(id=item["Id"][:12], service=item["Config"]["Labels"]["com.docker.compose.service"],
                 state=item["State"]["Status"], started=item["State"]["StartedAt"], labels=item["Config"]["Labels"])
            for item in inspected]


def of(project_dir, service):
    return [item for item in containers(project_dir) if item["service"] == service]


@pytest.fixture(scope="module")
def project(docker_engine, tmp_path_factory):
    base = tmp_path_factory.mktemp("h1-contract")
    project_dir = base / "app"
    (project_dir / "secrets").mkdir(parents=True)
    (project_dir / "secrets" / "db_password").write_text("h1-contract-secret\n")
    (project_dir / "docker-compose.prod.yml").write_text(PROD % dict(db_port=DB_PORT, edge_port=EDGE_PORT))
    (project_dir / "docker-compose.ops.yml").write_text(OPS)
    # The default compose file name holds something else entirely: only the -f files may be read.
    (project_dir / "compose.yaml").write_text("services:\n  wrong:\n    image: stackops-demo/api:1\n")
    (base / "unready.env").write_text("H1_WEB_READY_FILE=/nonexistent\n")
    inventory = write_inventory(base / "inventory", PROJECT, {
        "stackops_compose_project_dir": str(project_dir),
        "stackops_compose_project_name": PROJECT,
        "stackops_compose_files": [str(project_dir / "docker-compose.prod.yml"), str(project_dir / "docker-compose.ops.yml")],
        "stackops_compose_profiles": ["jobs"],
        "stackops_compose_env_files": [],
        "stackops_writer_services": ["web"],
        "stackops_db_service": "db",
        "stackops_db_host": "127.0.0.1",
        "stackops_db_port": DB_PORT,
        "stackops_db_name": "shopdb",
        "stackops_db_user": "shop",
        "stackops_db_password_file": str(project_dir / "secrets" / "db_password"),
        "stackops_health_urls": [{"name": "edge", "url": "http://127.0.0.1:%d/" % EDGE_PORT}],
        "stackops_backup_dir": str(base / "backups"),
        "stackops_health_checks": ["compose", "http", "postgres"],
    })
    yield dict(dir=project_dir, inventory=inventory, unready_env=base / "unready.env", state=base / "state")
    compose(project_dir, "down", "-v", "--remove-orphans", "-t", "1", check=False)


def cli(project, *args):
    summary = procedure(*args, inventory=project["inventory"], state_dir=project["state"], ok=False)
    return summary["_run"], summary


def test_startup_reads_the_compose_files_and_profiles_and_reports(project):
    completed, summary = cli(project, "startup")
    assert completed.returncode == 0, (summary, completed.stderr[-3000:])
    result = summary["result"][PROJECT]
    assert result["procedure"] == "startup" and result["status"] == "ok"
    started = sorted(name for tier in result["tiers"] for name in tier["services"])
    # The profile's service is part of the project; the default compose.yaml's service is not.
    assert started == ["db", "edge", "jobs", "web"], result
    # The second -f file applied: its label is on the web container.
    (web,) = of(project["dir"], "web")
    assert web["labels"].get("h1.compose-file") == "ops" and web["state"] == "running"
    assert not of(project["dir"], "wrong")


def test_scaling_a_fixed_port_service_is_refused_before_acting(project):
    before = of(project["dir"], "edge")
    completed, summary = cli(project, "scale", "edge", "--replicas", "2")
    assert completed.returncode == 1
    result = summary["result"][PROJECT]
    assert result["procedure"] == "scaling" and result["status"] == "failed"
    assert "fixed host port 127.0.0.1:%d" % EDGE_PORT in result["error"] and "nothing was changed" in result["error"]
    assert result["replicas_before"] == 1 and result["replicas_after"] == 1
    # Nothing left behind: the same single container, and no container of the project in state created.
    assert of(project["dir"], "edge") == before and before[0]["state"] == "running"
    assert not [item for item in containers(project["dir"]) if item["state"] == "created"]


def test_a_failed_scale_returns_to_the_previous_count(project):
    (before,) = of(project["dir"], "web")
    run = run_playbook("scaling.yml", inventory=project["inventory"], label="h1-scale-fail", extravars={
        "stackops_scaling_service": "web", "stackops_scaling_replicas": 3, "stackops_scaling_step": 2,
        "stackops_scaling_wait_timeout": 30,
        # New containers get a readiness file that never exists; the running one keeps its configuration.
        "stackops_compose_env_files": [str(project["unready_env"])]})
    assert run.status == "failed"
    result = run.result("Build the report")["ansible_facts"]["stackops_result"]
    assert result["status"] == "failed" and result["restored"] is True, result
    assert result["replicas_before"] == 1 and result["replicas_after"] == 1
    assert "unhealthy" in result["error"] and "Returned to 1 container(s)" in result["error"]
    after = of(project["dir"], "web")
    assert [item["id"] for item in after] == [before["id"]] and after[0]["state"] == "running"
    assert not [item for item in containers(project["dir"]) if item["state"] == "created"]


@pytest.mark.parametrize("mode", ["stop_writers", "pause_writers"])
def test_maintenance_without_a_page_holds_the_writers(project, mode):
    (web_before,) = of(project["dir"], "web")
    (edge_before,) = of(project["dir"], "edge")
    run = run_playbook("maintenance.yml", inventory=project["inventory"], label="h1-maint-" + mode, extravars={
        "stackops_maintenance_tasks": ["analyze"], "stackops_maintenance_backup": False,
        "stackops_maintenance_without_page": mode, "stackops_maintenance_pg_checks": ["readiness"]})
    assert run.status == "successful", (run.failed_tasks, run.stdout[-4000:])
    result = run.result("Build the report")["ansible_facts"]["stackops_result"]
    assert result["status"] == "ok" and result["maintenance_strategy"] == mode
    assert result["writers_held"] == ["web"] and result["maintenance_mode"] == "off"
    assert [d["name"] for d in result["done"]] == ["analyze"]
    held = run.result("Stop or pause the writer services for the window")
    assert held["changed_services"] == ["web"]
    (web_after,) = of(project["dir"], "web")
    assert web_after["id"] == web_before["id"] and web_after["state"] == "running"
    # Stopped writers start again (a new start time); paused ones just continue. Other services are untouched.
    assert (web_after["started"] != web_before["started"]) == (mode == "stop_writers")
    assert of(project["dir"], "edge") == [edge_before]


def test_maintenance_without_a_page_or_writers_refuses_naming_the_variables(project):
    run = run_playbook("maintenance.yml", inventory=project["inventory"], label="h1-maint-refused", extravars={
        "stackops_maintenance_tasks": ["analyze"], "stackops_writer_services": None})
    assert run.status == "failed"
    message = run.result("Require the writer services when the window runs without a page")["msg"]
    assert "stackops_writer_services" in message and "stackops_maintenance_page_service" in message
    assert "Nothing was changed" in message
    assert not run.task_results("Stop or pause the writer services for the window")
