"""PITR test helpers: a writer that remembers what it committed, a `stackops` run stopped at a fault point and killed,
Barman's receiver and what recoveries leave (labelled volumes, scratch containers), and a secret scan of everything a
run leaves (stdout, stderr, the state directory)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

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


def clean_up(server, pitr_dir, bind_siblings=None):
    """Everything PITR left for ``server``: its receiver, scratch containers, recovered volumes (or bind-mount sibling
    directories next to ``bind_siblings``), and its Barman home."""
    stop_receiver(pitr_dir, server)
    for name in scratch_containers(server):
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    for name in labelled_volumes(server):
        subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True, check=False)
    if bind_siblings:
        live = Path(bind_siblings)
        for path in live.parent.glob(live.name + ".pitr-*"):
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(pitr_dir, ignore_errors=True)


def running_module(name, timeout=180):
    """The pid of the AnsiballZ process of module ``name`` once it has stopped itself at its fault point."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if ("AnsiballZ_%s.py" % name).encode() in argv and state == "T":
                return int(entry.name)
        time.sleep(0.05)
    pytest.fail("module %s never reached its fault point" % name)


def descendants(pid):
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def killed_run(args, module, fault, state_dir):
    """`stackops ARGS` stopped at fault point ``fault`` of ``module``, then every process it started (the CLI's
    process group and ansible's own sessions) killed with SIGKILL at once."""
    env = cli_env(state_dir, STACKOPS_FAULT_PAUSE=fault)
    cli = subprocess.Popen([str(STACKOPS)] + [str(arg) for arg in args], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        stopped = running_module(module)
        tree = descendants(cli.pid)
        assert stopped in tree
        for group in {os.getpgid(pid) for pid in tree if os.path.exists("/proc/%d" % pid)}:
            os.killpg(group, signal.SIGKILL)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        cli.kill()
        cli.wait(30)
    wait_for(lambda: not os.path.exists("/proc/%d" % stopped), "the module to die")


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
