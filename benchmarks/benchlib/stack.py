"""The demo compose stack (examples/stack) under the benchmark's own project name and free ports.

Only this project is ever brought down (`down -v` of BENCH_PROJECT, default stackops-bench); other
engineers' projects and the demo are never touched, and nothing is pruned.
"""
import json
import os
import subprocess
from pathlib import Path

from .pgserver import free_port
from .report import REPO

STACK_DIR = REPO / "examples" / "stack"
PROJECT = os.environ.get("BENCH_PROJECT", "stackops-bench")


class BenchStack:
    def __init__(self, workdir, project=PROJECT):
        self.project = project
        self.workdir = Path(workdir)
        self.postgres_port = free_port()
        self.frontend_port = free_port()
        self.env_file = self.workdir / ("%s.env" % project)
        self.dir = STACK_DIR

    @property
    def frontend_url(self):
        return "http://127.0.0.1:%d" % self.frontend_port

    def write_env(self):
        base = (STACK_DIR / ".env").read_text() if (STACK_DIR / ".env").exists() else ""
        self.env_file.write_text(base + "\nSTACKOPS_PROJECT=%s\nPOSTGRES_PORT=%d\nFRONTEND_PORT=%d\n" % (
            self.project, self.postgres_port, self.frontend_port))

    def compose_argv(self, *args):
        return ["docker", "compose", "--project-directory", str(self.dir), "-p", self.project,
                "--env-file", str(self.env_file)] + list(args)

    def compose(self, *args, check=True, timeout=600):
        return subprocess.run(self.compose_argv(*args), capture_output=True, text=True, check=check, timeout=timeout)

    def down(self):
        self.compose("down", "-v", "--remove-orphans", check=False)

    def group_vars(self):
        return {
            "stackops_compose_project_dir": str(self.dir),
            "stackops_compose_project_name": self.project,
            "stackops_compose_env_files": [str(self.env_file)],
            "stackops_db_service": "postgres",
            "stackops_db_host": "127.0.0.1",
            "stackops_db_port": self.postgres_port,
            "stackops_db_name": "appdb",
            "stackops_db_user": "app",
            "stackops_db_password_file": str(self.dir / "secrets" / "db_password"),
            "stackops_frontend_url": self.frontend_url,
            "stackops_health_urls": [
                {"name": "api", "url": self.frontend_url + "/health", "json": {"status": "healthy"}},
                {"name": "api-db", "url": self.frontend_url + "/api/v1/db/health", "json": {"db.connected": True}},
                {"name": "frontend", "url": self.frontend_url + "/"},
            ],
            "stackops_backup_dir": str(self.workdir / "backups"),
            # The benchmark machine is shared: its load average says nothing about this stack, and a
            # CRITICAL load must not fail the health runs being timed. Every other threshold is the default.
            "stackops_health_load_warning": 100000,
            "stackops_health_load_critical": 100000,
        }

    def write_inventory(self, path, hosts=1, prefix="bench-host", extra_vars=None):
        """An inventory of `hosts` local-connection hosts with distinct names, all pointing at this stack."""
        path = Path(path)
        (path / "group_vars").mkdir(parents=True, exist_ok=True)
        names = [self.project] if hosts == 1 and prefix is None else [
            "%s-%03d" % (prefix, index) for index in range(1, hosts + 1)]
        lines = ["all:", "  children:", "    stacks:", "      hosts:"]
        for name in names:
            lines += ["        %s:" % name, "          ansible_connection: local",
                      "          ansible_python_interpreter: \"{{ ansible_playbook_python }}\""]
        (path / "hosts.yml").write_text("\n".join(lines) + "\n")
        group_vars = self.group_vars()
        group_vars.update(extra_vars or {})
        (path / "group_vars" / "stacks.yml").write_text(json.dumps(group_vars, indent=2))
        return path
