"""Killing a run at a known point, the way a crash or `kill -9` would.

A module stops itself with SIGSTOP at the fault point named in STACKOPS_FAULT_PAUSE (plugins/module_utils/fault.py);
the test finds that process in /proc, and kills it, or the whole run it belongs to, with SIGKILL. Waiting is on the
process's state, never on a delay.
"""
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

FAULT_ENV = "STACKOPS_FAULT_PAUSE"


def _processes():
    """(pid, argv as a list of bytes, state letter, parent pid) of every process we can read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        yield int(entry.name), argv, fields[0], int(fields[1])


def stopped_module(name, root=None, timeout=180):
    """The pid of the AnsiballZ process of module ``name`` once it has stopped itself at its fault point. Only
    descendants of ``root`` (this test process by default) count: other checkouts test on the same machine."""
    wanted = ("AnsiballZ_%s.py" % name).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ours = set(process_tree(root or os.getpid()))
        for pid, argv, state, dummy in _processes():
            if pid in ours and state == "T" and any(wanted in arg for arg in argv):
                return pid
        time.sleep(0.05)
    pytest.fail("module %s never reached its fault point" % name)


def pids_of(tool, marker):
    """Our own processes of ``tool`` (pg_dump, ...), found by a marker unique to the test in their argv."""
    ours = set(process_tree(os.getpid()))
    return [pid for pid, argv, dummy, dummy2 in _processes()
            if pid in ours and argv and argv[0].endswith(tool.encode()) and any(marker.encode() in arg for arg in argv)]


def wait_for_process(tool, marker, timeout=60):
    """The pids of ``pids_of(tool, marker)`` once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pids_of(tool, marker)
        if found:
            return found
        time.sleep(0.1)
    pytest.fail("%s (%s) never started" % (tool, marker))


def wait_for_descendant(pid, program, timeout=120):
    """The pid of the first process running ``program`` (its argv names it) among those ``pid`` started."""
    wanted = program.encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = set(process_tree(pid)) - {pid}
        for member, argv, dummy, dummy2 in _processes():
            if member in tree and any(arg.endswith(wanted) for arg in argv):
                return member
        time.sleep(0.05)
    pytest.fail("process %d never started %s" % (pid, program))


def process_tree(pid):
    """``pid`` and every process descended from it."""
    children = {}
    for child, dummy, dummy2, parent in _processes():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def kill_tree(pid):
    """SIGKILL ``pid`` and everything it started, at once: ansible's workers run in sessions of their own, so every
    process group of the tree and then every pid of it."""
    tree = process_tree(pid)
    groups = set()
    for member in tree:
        try:
            groups.add(os.getpgid(member))
        except ProcessLookupError:
            pass
    for group in groups - {os.getpgid(0)}:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return tree


def wait_gone(pid, timeout=60):
    deadline = time.monotonic() + timeout
    while os.path.exists("/proc/%d" % pid):
        if time.monotonic() > deadline:
            pytest.fail("process %d outlived SIGKILL" % pid)
        time.sleep(0.05)


def kill_at(monkeypatch, fault, module, call):
    """Run ``call()`` (which runs module ``module``) in a thread until the module stops at fault point ``fault``,
    SIGKILL the module, and return what ``call`` returned: the killed run's result, which must say it failed."""
    monkeypatch.setenv(FAULT_ENV, fault)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(res=call()))
    worker.start()
    try:
        os.kill(stopped_module(module), signal.SIGKILL)
    finally:
        worker.join(180)
        monkeypatch.delenv(FAULT_ENV)
    assert outcome["res"]["failed"], outcome["res"]
    return outcome["res"]


def pause_at(monkeypatch, fault, module, call, inspect):
    """Run ``call()`` until module ``module`` stops at ``fault``, run ``inspect()`` while it is stopped, let the module
    go on, and return what ``call`` returned."""
    monkeypatch.setenv(FAULT_ENV, fault)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(res=call()))
    worker.start()
    try:
        pid = stopped_module(module)
        try:
            inspect()
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        worker.join(180)
        monkeypatch.delenv(FAULT_ENV)
    return outcome["res"]


def killed_run(argv, fault, module, env=None):
    """Start ``argv`` (a whole run: the stackops CLI, ansible-playbook) with fault point ``fault`` armed, wait until
    ``module`` stops there, then SIGKILL the run and everything it started; returns once the module is gone."""
    run_env = dict(os.environ, **(env or {}))
    run_env[FAULT_ENV] = fault
    proc = subprocess.Popen([str(arg) for arg in argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=run_env, start_new_session=True)
    try:
        stopped = stopped_module(module, root=proc.pid)
        tree = kill_tree(proc.pid)
        assert stopped in tree, "the stopped %s (pid %d) is not part of this run" % (module, stopped)
    finally:
        proc.kill()
        proc.wait(30)
    wait_gone(stopped)
