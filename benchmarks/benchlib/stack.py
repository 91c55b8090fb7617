"""The demo compose stack (examples/stack) under the benchmark's own project name and free ports.

Only this project is ever brought down (`down -v` of BENCH_PROJECT, default stackops-bench); other
engineers' projects and the demo are never touched, and nothing is pruned.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

from .pgserver import free_port
from .report import REPO

# One definition of the stack's env file and inventory contract, shared with the test harness.
sys.path.insert(0, str(REPO / "tests"))
from support.stack import STACK_DIR, stack_env_text, stack_group_vars  # noqa: E402  pylint: disable=wrong-import-position
PROJECT = os.environ.get("BENCH_PROJECT", "stackops-bench")


class BenchStack:
    def __init__(self, workdir, project=PROJECT, postgres_port=None, frontend_port=None):
        self.project = project
        self.workdir = Path(workdir)
        self.postgres_port = postgres_port or free_port()
        self.frontend_port = frontend_port or free_port()
        self.env_file = self.workdir / ("%s.env" % project)
        self.dir = STACK_DIR

    @property
    def frontend_url(self):
        return "http://127.0.0.1:%d" % self.frontend_port

    def write_env(self):
        self.env_file.write_text(stack_env_text(self.project, self.postgres_port, self.frontend_port))

    def compose_argv(self, *args):
        return ["docker", "compose", "--project-directory", str(self.dir), "-p", self.project,
                "--env-file", str(self.env_file)] + list(args)

    def compose(self, *args, check=True, timeout=600):
        return subprocess.run(self.compose_argv(*args), capture_output=True, text=True, check=check, timeout=timeout)

    def down(self):
        self.compose("down", "-v", "--remove-orphans", check=False)

    def group_vars(self):
        group_vars = stack_group_vars(self.project, self.env_file, self.postgres_port, self.frontend_port,
                                      self.workdir / "backups")
        group_vars.update({
            # The benchmark machine is shared: its load average says nothing about this stack, and a
            # CRITICAL load must not fail the health runs being timed. Every other threshold is the default.
            "stackops_health_load_warning": 100000,
            "stackops_health_load_critical": 100000,
        })
        return group_vars

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
