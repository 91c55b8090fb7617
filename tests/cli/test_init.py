"""`stackops init` on a real compose project whose password is only in the environment, with a profile.

The second stack (tests/integration/test_second_stack.py) covers a password from a compose secret; this one
covers POSTGRES_PASSWORD from an env file, POSTGRES_DB, --profile and the 0600 password file init writes.
Its compose project uses the shop's db image, built by scripts/bootstrap.sh.
"""
import json
import os
import secrets
import stat
import subprocess
import sys

import pytest
import yaml

from .conftest import run_cli
from support.ports import port, project

PROJECT = project("h2-init-envpw")
DB_PORT = port(56233)
COMPOSE = """\
name: %s
services:
  database:
    image: stackops-shop/db:1
    environment:
      POSTGRES_USER: owner
      POSTGRES_DB: app
      POSTGRES_PASSWORD: ${APP_DB_PASSWORD}
    ports: ["127.0.0.1:${APP_DB_PORT}:5432"]
    healthcheck:
      test: ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-U", "owner", "-d", "app"]
      interval: 1s
      retries: 60
  toolbox:
    image: stackops-shop/app:1
    command: ["sleep", "infinity"]
    init: true  # sleep as PID 1 ignores SIGTERM; with an init, down does not wait 10 s for it
    profiles: [ops]
    environment:
      PGHOST: database
"""


@pytest.fixture(scope="module")
def project(docker_engine, tmp_path_factory):
    if subprocess.run(["docker", "image", "inspect", "stackops-shop/db:1"], capture_output=True).returncode != 0:
        pytest.fail("image stackops-shop/db:1 is missing: run scripts/bootstrap.sh")
    work = tmp_path_factory.mktemp("init-envpw")
    password = secrets.token_urlsafe(18)
    (work / "compose.yaml").write_text(COMPOSE % PROJECT)
    (work / "app.env").write_text("APP_DB_PASSWORD=%s\nAPP_DB_PORT=%d\n" % (password, DB_PORT))
    base = ["docker", "compose", "--project-directory", str(work), "--env-file", str(work / "app.env"),
            "--profile", "ops"]
    subprocess.run(base + ["down", "-v"], capture_output=True)
    started = subprocess.run(base + ["up", "-d", "--wait"], capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        pytest.fail("the test project did not start: %s" % started.stderr)
    yield dict(dir=work, password=password)
    if os.environ.get("STACKOPS_KEEP_STACK") != "1":
        subprocess.run(base + ["down", "-v"], capture_output=True)


def test_init_keeps_an_environment_password_in_a_private_file(project, state_dir):
    inventory = project["dir"] / "inventory"
    args = ["init", "--project-dir", project["dir"], "--env-file", project["dir"] / "app.env", "--profile", "ops",
            "-o", inventory]
    written = run_cli(args + ["--json"], state_dir)
    assert written.returncode == 0, written.stdout + written.stderr
    document = json.loads(written.stdout)
    password_file = inventory / "db_password"
    assert sorted(document["written"]) == sorted(str(path) for path in (
        inventory / "hosts.yml", inventory / "group_vars" / "stacks.yml", password_file))
    assert password_file.read_text().strip() == project["password"]
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    group_vars_text = (inventory / "group_vars" / "stacks.yml").read_text()
    for text in (written.stdout, written.stderr, group_vars_text):
        assert project["password"] not in text
    group_vars = yaml.safe_load(group_vars_text)
    assert (group_vars["stackops_db_service"], group_vars["stackops_db_user"], group_vars["stackops_db_name"],
            group_vars["stackops_db_port"]) == ("database", "owner", "app", DB_PORT)
    assert group_vars["stackops_db_password_file"] == "{{ inventory_dir }}/db_password"
    assert group_vars["stackops_compose_profiles"] == ["ops"]
    assert group_vars["stackops_writer_services"] == ["toolbox"]
    # No password ever reached the run's recorded artifacts either.
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert project["password"] not in path.read_text(errors="replace"), path

    health = run_cli(["health", "-i", inventory, "--json"], state_dir)
    assert health.returncode == 0, health.stdout[-3000:] + health.stderr[-2000:]
    assert json.loads(health.stdout)["result"][PROJECT]["counts"]["critical"] == 0

    refused = run_cli(args, state_dir)
    assert refused.returncode == 2 and "pass --force" in refused.stderr
    assert password_file.read_text().strip() == project["password"]
    (inventory / "hosts.yml").write_text("# edited by hand\n")
    forced = run_cli(args + ["--force"], state_dir)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "edited by hand" not in (inventory / "hosts.yml").read_text()


def test_init_check_writes_nothing_and_reports_problems(project, state_dir, tmp_path):
    checked = run_cli(["init", "--project-dir", project["dir"], "--env-file", project["dir"] / "app.env",
                       "-o", tmp_path / "inv", "--check"], state_dir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "password: POSTGRES_PASSWORD in the compose environment" in checked.stdout
    assert "databases: app (UTF8" in checked.stdout
    assert not (tmp_path / "inv").exists()

    wrong = run_cli(["init", "--project-dir", project["dir"], "--env-file", project["dir"] / "app.env",
                     "--db-service", "toolbox", "-o", tmp_path / "inv2"], state_dir)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "PROBLEM" in wrong.stdout and "nothing written" in wrong.stderr
    assert not (tmp_path / "inv2" / "hosts.yml").exists() and not (tmp_path / "inv2" / "db_password").exists()


HOSTILE = "x\nstackops_db_service: \"{{ lookup('pipe', 'id') }}\""
ODD = ("it's \"quoted\" # not: a comment", "{% if true %}j{% endif %}")
INVENTORY_KEYS = {
    "ansible_connection", "ansible_python_interpreter", "stackops_compose_project_dir",
    "stackops_compose_project_name", "stackops_compose_files", "stackops_compose_env_files", "stackops_compose_profiles",
    "stackops_db_service", "stackops_db_host", "stackops_db_port", "stackops_db_name", "stackops_db_user",
    "stackops_db_password_file", "stackops_maintenance_databases", "stackops_writer_services",
    "stackops_not_rollable_services", "stackops_health_urls", "stackops_backup_dir"}


def test_init_writes_hostile_database_names_literally(project, state_dir, tmp_path):
    """issue 20 review 5: a real database named with a newline and Jinja, listed in a comment and a value, adds no
    key to the inventory and is never templated (Ansible itself reads and templates the inventory here)."""
    import psycopg
    from psycopg import sql
    names = (HOSTILE,) + ODD
    with psycopg.connect(host="127.0.0.1", port=DB_PORT, user="owner", password=project["password"], dbname="app",
                         autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        inventory = tmp_path / "inventory"
        written = run_cli(["init", "--project-dir", project["dir"], "--env-file", project["dir"] / "app.env",
                           "-o", inventory], state_dir)
        assert written.returncode == 0, written.stdout + written.stderr
        bin_dir = os.path.dirname(sys.executable)
        listed = subprocess.run([os.path.join(bin_dir, "ansible-inventory"), "-i", str(inventory), "--host", PROJECT],
                                capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        host_vars = json.loads(listed.stdout)
        assert set(host_vars) == INVENTORY_KEYS, set(host_vars) ^ INVENTORY_KEYS
        assert host_vars["stackops_db_service"] == "database"
        assert set(names) <= set(host_vars["stackops_maintenance_databases"])
        shown = subprocess.run([os.path.join(bin_dir, "ansible"), "-i", str(inventory), PROJECT, "-m",
                                "ansible.builtin.debug", "-a", "var=stackops_maintenance_databases", "-o"],
                               capture_output=True, text=True, timeout=120, cwd=str(project["dir"]))
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "lookup('pipe', 'id')" in shown.stdout and "uid=" not in shown.stdout, shown.stdout
        assert "{% if true %}j{% endif %}" in shown.stdout
    finally:
        with psycopg.connect(host="127.0.0.1", port=DB_PORT, user="owner", password=project["password"],
                             dbname="app", autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
