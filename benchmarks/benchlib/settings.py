"""Benchmark settings (environment variables), the scratch work directory and the stackops entry points."""
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .report import REPO

VENV_BIN = Path(sys.executable).parent


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name, default):
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


REPEAT = env_int("BENCH_REPEAT", 3)
# A contender whose first run takes longer than this is not repeated (its single run is reported,
# with n=1 in the table), which keeps the slow seed pipelines from dominating the total runtime.
SLOW_SECONDS = env_float("BENCH_SLOW_SECONDS", 60.0)
DB_MB = env_int("BENCH_DB_MB", 1024)
JOBS = env_int("BENCH_JOBS", 2)
KEEP = os.environ.get("BENCH_KEEP", "") not in ("", "0")


def log(message):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


class Workdir:
    """A scratch directory (BENCH_WORKDIR or a new /var/tmp/stackops-bench-*), removed at the end unless BENCH_KEEP=1."""

    def __init__(self, name):
        root = os.environ.get("BENCH_WORKDIR")
        if root:
            self.path = Path(root) / name
            if self.path.exists():
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True)
        else:
            self.path = Path(tempfile.mkdtemp(prefix="stackops-bench-%s-" % name, dir="/var/tmp"))
        os.chmod(self.path, 0o755)  # the postgres user must reach its cluster and pgBackRest repo below it

    def __truediv__(self, other):
        return self.path / other

    def cleanup(self):
        if KEEP:
            log("keeping work directory %s (BENCH_KEEP=1)" % self.path)
            return
        shutil.rmtree(self.path, ignore_errors=True)


def tool(name):
    """A command from the venv first (stackops, ansible-playbook, ansible-runner), else PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def ansible_env(state_dir=None):
    """Environment for every ansible/stackops contender: the repo's ansible.cfg and collections path,
    a private stackops state dir (run history and locks stay out of the developer's .state)."""
    env = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""),
    }
    if state_dir:
        env["STACKOPS_STATE_DIR"] = str(state_dir)
    return env


def stackops_missing(*playbooks):
    """None when the `stackops` CLI and the named playbooks exist, else why not."""
    if not tool("stackops"):
        return "the stackops CLI is not installed in the venv"
    missing = [p for p in playbooks if not (REPO / "playbooks" / p).is_file()]
    if missing:
        return "playbooks/%s does not exist yet" % ", playbooks/".join(missing)
    return None
