"""PITR test helpers: a writer that remembers what it committed, a `stackops` run stopped at a fault point and killed,
Barman's receiver and what recoveries leave (labelled volumes, scratch containers), and a secret scan of everything a
run leaves (stdout, stderr, the state directory)."""
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from . import processes
from .cli import STACKOPS, cli_env

BARMAN = Path(sys.executable).with_name("barman")
# No cron entry on the test machine: the receiver is started by the procedures themselves.
NO_CRON = ("-e", "stackops_pitr_cron_file=")


class Writer(threading.Thread):
    """Commits one row per transaction through ``connect()`` with ``statement`` (returning the new id) and
    remembers every id whose COMMIT returned. ``gate`` is held around each commit, so a test holding it knows no
    commit is in flight."""

    def __init__(self, connect, statement):
        super().__init__(daemon=True)
        self.connect, self.statement = connect, statement
        self.committed = []
        self.gate = threading.Lock()
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            with self.connect() as conn:
                while not self.stop.is_set():
                    with self.gate:
                        self.committed.append(conn.execute(self.statement).fetchone()[0])
                    time.sleep(0.002)
        except Exception as exc:  # the database may be killed under the writer on purpose; halt() judges
            self.error = exc

    def wait_for_commits(self, count, what="the writer to commit"):
        """Synchronise on the writer having committed ``count`` more rows (an event, not a duration)."""
        target = len(self.committed) + count
        wait_for(lambda: len(self.committed) >= target or self.error is not None, what)
        assert self.error is None, "the writer stopped: %s" % self.error

    def halt(self, killed=False):
        self.stop.set()
        self.join(30)
        if not killed:
            assert self.error is None, "the database stopped serving the writer: %s" % self.error


def write_ids(stack):
    """The ids of the rows a test committed to its ``writes`` table, in order (TestStack and ShopStack alike)."""
    with stack.connect() as conn:
        return [row[0] for row in conn.execute("SELECT id FROM writes ORDER BY id")]


def wait_for(predicate, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.05)


def stop_receiver(pitr_dir, server):
    if (Path(pitr_dir) / "barman.conf").exists():
        subprocess.run([str(BARMAN), "-c", str(Path(pitr_dir) / "barman.conf"), "receive-wal", "--stop", server],
                       capture_output=True, check=False)


def labelled_volumes(server):
    out = subprocess.run(["docker", "volume", "ls", "-q", "--filter", "label=stackops.pitr.server=%s" % server],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def scratch_containers(server):
    """Scratch containers of recoveries and verifications of ``server`` that exist (running or not)."""
    names = ("stackops-pitr-check-%s" % server, "stackops-pitr-verify-%s" % server)
    out = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                         check=True).stdout.split()
    return sorted(name for name in out if name in names)


def standby_container(server):
    """The warm standby's container of ``server`` (module_utils/pitr_standby.py names it so)."""
    return "stackops-pitr-standby-%s" % server


def clean_up(server, pitr_dir, bind_siblings=None):
    """Everything PITR left for ``server``: its receiver, warm standby and scratch containers, recovered volumes (or
    bind-mount sibling directories next to ``bind_siblings``), and its Barman home."""
    stop_receiver(pitr_dir, server)
    for name in scratch_containers(server) + [standby_container(server)]:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    for name in labelled_volumes(server):
        subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True, check=False)
    if bind_siblings:
        live = Path(bind_siblings)
        for path in list(live.parent.glob(live.name + ".pitr-*")) + list(live.parent.glob(live.name + ".standby-*")):
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(pitr_dir, ignore_errors=True)


def killed_run(args, module, fault, state_dir):
    """`stackops ARGS` (with its run history in ``state_dir``) stopped at fault point ``fault`` of ``module``, then
    every process it started killed with SIGKILL at once (support/processes.py)."""
    processes.killed_run([STACKOPS] + list(args), fault, module, env=cli_env(state_dir))


def assert_no_secret(secrets, completed, state_dir):
    """None of ``secrets`` in what a run printed (stdout, stderr) or left in its state directory (run history,
    artifacts, events)."""
    places = {"stdout": completed.stdout, "stderr": completed.stderr}
    for path in Path(state_dir).rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("utf-8", "replace")
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        leaks = [where for where, text in places.items() if secret in text]
        assert not leaks, "a secret leaked into %s" % leaks


def result_of(summary, project):
    return summary.get("result", {}).get(project, {})


def dump(value):
    return json.dumps(value, default=str)[:3000]
