"""examples/shop, the second stack shaped unlike the demo, as a test runs it.

Services db/cache/backend/worker; `-f docker-compose.prod.yml -f docker-compose.local.yml`; two env files (the
example's shop.env and one per test with the project name and ports); the official postgres image's env contract
with the password in a compose secret; databases shop (UTF8) and legacy (SQL_ASCII). The inventory is written by
`stackops init` and never edited. A test file makes one ShopStack under its own project name and ports.
"""
import json
import os
import subprocess

import psycopg
import pytest

from . import cli
from .runner import REPO
from .stack import base_image

SHOP = REPO / "examples" / "shop"
FILES = [SHOP / "docker-compose.prod.yml", SHOP / "docker-compose.local.yml"]
PASSWORD_FILE = SHOP / "secrets" / "db_password"


class ShopStack:
    """One copy of examples/shop under ``project`` with its database on ``db_port`` and backend on
    ``backend_port``; ``work`` holds its env file, inventory, run history (``state``) and backups."""

    def __init__(self, work, project, db_port, backend_port):
        if not PASSWORD_FILE.is_file():
            pytest.fail("%s is missing: run scripts/bootstrap.sh" % PASSWORD_FILE)
        self.work, self.project, self.db_port, self.backend_port = work, project, db_port, backend_port
        self.env_files = [SHOP / "shop.env", work / "local.env"]
        self.inventory = work / "inventory"
        self.state = work / "state"
        self.backup_dir = work / "backups"
        self.password = PASSWORD_FILE.read_text().strip()
        self.state.mkdir(parents=True, exist_ok=True)
        self.env_files[1].write_text("SHOP_PROJECT=%s\nSHOP_DB_PORT=%d\nSHOP_BACKEND_PORT=%d\nSTACKOPS_BASE_IMAGE=%s\n" % (
            project, db_port, backend_port, base_image()))

    def compose(self, *args, check=True):
        argv = ["docker", "compose", "--project-directory", str(SHOP)]
        for path in FILES:
            argv += ["-f", str(path)]
        for path in self.env_files:
            argv += ["--env-file", str(path)]
        return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=300, check=check)

    def up(self, *services):
        """Start from nothing: whatever an earlier run left under this project name is removed first."""
        self.down()
        started = self.compose("up", "-d", "--wait", *services, check=False)
        if started.returncode != 0:
            pytest.fail("the shop stack did not start (run scripts/bootstrap.sh to build its images): %s"
                        % started.stderr)

    def down(self):
        self.compose("down", "-v", "--remove-orphans", check=False)

    def containers(self, service):
        """compose ps rows of ``service``, stopped ones included."""
        out = self.compose("ps", "--all", "--format", "json", service).stdout.strip()
        rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines() if line.strip()]
        return [row for row in rows if row.get("Service") == service]

    def init_args(self):
        """`stackops init` for this copy, exactly as a user with these files would type it."""
        args = ["init", "--project-dir", SHOP]
        for path in FILES:
            args += ["-f", path]
        for path in self.env_files:
            args += ["--env-file", path]
        return args + ["-o", self.inventory, "--backup-dir", self.backup_dir]

    def stackops(self, *args, timeout=400, env=None):
        """``stackops ARGS`` run from the work directory with this copy's run history."""
        return cli.stackops(*args, state_dir=self.state, cwd=self.work, timeout=timeout, env=env)

    def procedure(self, *args, ok=True, timeout=400, env=None):
        """``stackops ARGS -i <the generated inventory> --json``: its summary (support/cli.py procedure)."""
        return cli.procedure(*args, inventory=self.inventory, state_dir=self.state, ok=ok, timeout=timeout,
                             env=env, cwd=self.work)

    def connect(self, dbname="shop", **options):
        conn = psycopg.connect(host="127.0.0.1", port=self.db_port, user="shop", password=self.password,
                               dbname=dbname, autocommit=True, connect_timeout=5, **options)
        # Asked of the server, not of psycopg's codec table, which module_utils/pg.py extends when a test imports it.
        if not options and conn.info.parameter_status("client_encoding") == "SQL_ASCII":
            # An SQL_ASCII server converts nothing: reading its bytes as Latin-1 gives str that round-trip exactly.
            conn.close()
            return self.connect(dbname, client_encoding="LATIN1")
        return conn

    def teardown(self):
        if os.environ.get("STACKOPS_KEEP_STACK") != "1":
            self.down()
