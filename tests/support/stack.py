"""The demo compose stack, run under its own project name and ports for tests."""
import json
import os
import subprocess
import time
import urllib.request

import psycopg

from .inventory import write_inventory
from .ports import port, project as slot_project
from .runner import OUTPUT, REPO

STACK_DIR = REPO / "examples" / "stack"


def base_image():
    """The base image scripts/bootstrap.sh chose for this machine's locally built images (examples/stack/.env)."""
    env = STACK_DIR / ".env"
    for line in (env.read_text().splitlines() if env.exists() else []):
        if line.startswith("STACKOPS_BASE_IMAGE="):
            return line.split("=", 1)[1]
    return "debian:bookworm-slim"


def stack_env_text(project, postgres_port, frontend_port):
    """A compose env file for one isolated copy of examples/stack: the bootstrap's .env plus name and ports."""
    base_env = (STACK_DIR / ".env").read_text() if (STACK_DIR / ".env").exists() else ""
    return base_env + "\nSTACKOPS_PROJECT=%s\nPOSTGRES_PORT=%d\nFRONTEND_PORT=%d\n" % (project, postgres_port, frontend_port)


def stack_group_vars(project, env_file, postgres_port, frontend_port, backup_dir):
    """The inventory contract (docs/development.md) for one isolated copy of examples/stack."""
    frontend_url = "http://127.0.0.1:%d" % frontend_port
    return {
        "stackops_compose_project_dir": str(STACK_DIR),
        "stackops_compose_project_name": project,
        "stackops_compose_env_files": [str(env_file)],
        "stackops_compose_files": [],
        "stackops_compose_profiles": [],
        # Nothing in the roles defaults to the demo's service names: the inventory says them.
        "stackops_writer_services": ["api"],
        "stackops_maintenance_page_service": "frontend",
        "stackops_incident_api_service": "api",
        "stackops_incident_api_url": frontend_url + "/health",
        "stackops_db_service": "postgres",
        "stackops_db_host": "127.0.0.1",
        "stackops_db_port": postgres_port,
        "stackops_db_name": "appdb",
        "stackops_db_user": "app",
        "stackops_db_password_file": str(STACK_DIR / "secrets" / "db_password"),
        "stackops_frontend_url": frontend_url,
        "stackops_health_urls": [
            {"name": "api", "url": frontend_url + "/health", "json": {"status": "healthy"}},
            {"name": "api-db", "url": frontend_url + "/api/v1/db/health", "json": {"db.connected": True}},
            {"name": "frontend", "url": frontend_url + "/"},
        ],
        "stackops_backup_dir": str(backup_dir),
    }


class TestStack:
    """A compose project of examples/stack isolated from the demo by name and ports."""

    def __init__(self, project=None, postgres_port=None, frontend_port=None):
        # Overridable so parallel test sessions can each run their own isolated copy.
        self.project = project or os.environ.get("STACKOPS_TEST_PROJECT", slot_project("stackops-test"))
        self.postgres_port = postgres_port or int(os.environ.get("STACKOPS_TEST_PG_PORT", port(55442)))
        self.frontend_port = frontend_port or int(os.environ.get("STACKOPS_TEST_FRONTEND_PORT", port(58090)))
        self.dir = STACK_DIR
        self.env_file = OUTPUT / ("%s.env" % self.project)
        self.inventory = OUTPUT / ("inventory-%s" % self.project)
        self.password = (STACK_DIR / "secrets" / "db_password").read_text().strip()

    def connect(self, dbname="appdb"):
        """The app's own login to its database, through the published port."""
        return psycopg.connect(host="127.0.0.1", port=self.postgres_port, user="app", password=self.password,
                               dbname=dbname, autocommit=True, connect_timeout=5)

    @property
    def frontend_url(self):
        return "http://127.0.0.1:%d" % self.frontend_port

    def write_config(self):
        OUTPUT.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text(stack_env_text(self.project, self.postgres_port, self.frontend_port))
        write_inventory(self.inventory, self.project, stack_group_vars(
            self.project, self.env_file, self.postgres_port, self.frontend_port, OUTPUT / "backups" / self.project))

    def compose(self, *args, check=True, timeout=300, env=None):
        argv = ["docker", "compose", "--project-directory", str(self.dir), "-p", self.project,
                "--env-file", str(self.env_file)] + list(args)
        run_env = dict(os.environ)
        run_env.update(env or {})
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout, env=run_env)

    def up(self, *services):
        started = self.compose("up", "-d", "--wait", *services, check=False)
        if started.returncode != 0:
            raise RuntimeError("docker compose up -d --wait failed for project %s (rc %s): %s" % (
                self.project, started.returncode, (started.stderr or started.stdout).strip()[-3000:]))

    def down(self):
        self.compose("down", "-v", "--remove-orphans", check=False)

    def ps(self):
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return []
        return json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines()]

    def http(self, path, method="GET", body=None, timeout=5):
        request = urllib.request.Request(self.frontend_url + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")

    def wait_http(self, path, deadline=60):
        end = time.monotonic() + deadline
        while True:
            try:
                return self.http(path)
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)
