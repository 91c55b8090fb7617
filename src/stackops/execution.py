"""Runs one procedure's playbook through ansible-runner and turns its events into a summary."""
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import ansible_runner

from . import __version__, exitcodes
from .events import RunTracker
from .history import now
from .wording import cli_words, errors_in_cli_words

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OUTCOME_EXIT = {"successful": exitcodes.OK, "failed": exitcodes.FAILED, "timeout": exitcodes.FAILED,
                "unreachable": exitcodes.UNREACHABLE, "canceled": exitcodes.INTERRUPTED}


def parse_task_list(text):
    """Count the tasks `ansible-playbook --list-tasks` prints (one per line under each play's 'tasks:')."""
    count = 0
    in_tasks = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "tasks:":
            in_tasks = True
        elif stripped.startswith("play #") or not stripped:
            in_tasks = False if stripped.startswith("play #") else in_tasks
        elif in_tasks and "TAGS:" in stripped:
            count += 1
    return count


def _tree_fingerprint(paths):
    """Newest mtime and file count under the given files/directories: changes when a task list can change."""
    newest, files = 0, 0
    for base in paths:
        base = Path(base)
        candidates = [base] if base.is_file() else (base.rglob("*") if base.is_dir() else [])
        for path in candidates:
            try:
                newest = max(newest, path.stat().st_mtime_ns)
            except OSError:
                continue
            files += 1
    return [newest, files]


def task_count_key(playbook, inventory, limit, extravars, check, root):
    """Cache key of a task count: the inputs of --list-tasks and the state of the files it reads (hashed)."""
    material = json.dumps([str(playbook), str(inventory), limit, extravars, bool(check),
                           _tree_fingerprint([root / "playbooks", root / "roles", inventory])],
                          sort_keys=True, default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def _read_count_cache(cache_file):
    try:
        cached = json.loads(Path(cache_file).read_text())
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def count_tasks(playbook, inventory, limit, extravars, envvars, check, cache_file=None):
    """The number of tasks the playbook will start, for done/total progress (None if unknown).

    `ansible-playbook --list-tasks` costs a whole ansible start-up, which on a small controller competes with
    the run it describes; so it runs at low CPU priority and its answer is cached per set of inputs.
    """
    root = Path(playbook).parent.parent
    key = task_count_key(playbook, inventory, limit, extravars, check, root) if cache_file else None
    cached = _read_count_cache(cache_file).get(key) if key else None
    if isinstance(cached, int):
        return cached
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "--list-tasks",
            "-i", str(inventory), str(playbook), "-e", json.dumps(extravars)]
    if limit:
        argv += ["--limit", limit]
    if check:
        argv.append("--check")
    env = dict(os.environ, **envvars)
    try:
        listed = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=str(root),
                                preexec_fn=lambda: os.nice(10))
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    count = parse_task_list(listed.stdout) or None
    if key and count:
        _store_count(cache_file, key, count)
    return count


def _store_count(cache_file, key, count, keep=200):
    cached = _read_count_cache(cache_file)
    cached.pop(key, None)
    cached[key] = count
    # Newest last; old keys (edited playbooks, other inventories) age out.
    cached = dict(list(cached.items())[-keep:])
    cache_file = Path(cache_file)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_name(cache_file.name + ".%d.tmp" % os.getpid())
        temporary.write_text(json.dumps(cached))
        os.replace(temporary, cache_file)
    except OSError:
        pass  # a progress estimate is not worth failing a run for


def _stdout_tail(artifact_dir, lines=20):
    try:
        text = (Path(artifact_dir) / "stdout").read_text(errors="replace")
    except OSError:
        return ""
    tail = [ANSI.sub("", line) for line in text.strip().splitlines()[-lines:]]
    return "\n".join(tail)


def run_procedure(*, procedure, playbook, root, inventory, limit, extravars, check, verbosity, timeout,
                  run_id, run_dir, envvars, progress, task_count_cache=None):
    """Run the playbook; returns the summary document (the --json output)."""
    tracker = RunTracker(words=lambda text: cli_words(text, procedure))
    started = now()
    clock = time.monotonic()

    def total_in_background():
        tracker.tasks_total = count_tasks(playbook, inventory, limit, extravars, envvars, check,
                                          cache_file=task_count_cache)

    threading.Thread(target=total_in_background, daemon=True).start()

    def on_event(event):
        description = tracker.handle(event)
        progress.event(event, description)
        return True  # keep every event in the artifacts

    progress.start(procedure.name, run_id, tracker)
    runner = None
    error = None
    try:
        runner = ansible_runner.run(
            private_data_dir=str(run_dir),
            project_dir=str(root),
            playbook=str(playbook),
            inventory=str(inventory),
            extravars=extravars,
            envvars=envvars,
            cmdline="--check" if check else None,
            limit=limit,
            verbosity=max(0, verbosity - 1) or None,
            ident=run_id,
            quiet=True,
            # Keeps env/extravars, env/envvars, env/cmdline out of the private data dir.
            suppress_env_files=True,
            event_handler=on_event,
            timeout=timeout,
        )
    except Exception as exc:  # ansible-runner configuration errors: report them like a failed run
        error = "ansible-runner could not start the playbook: %s" % exc
    finally:
        progress.stop()

    runner_status = runner.status if runner else "failed"
    outcome = tracker.outcome(runner_status)
    artifact_dir = Path(run_dir) / "artifacts" / run_id
    if outcome == "failed" and not tracker.real_failures and not error:
        # Nothing failed on a host: the playbook did not run (syntax error, bad inventory, missing vars...).
        error = _stdout_tail(artifact_dir) or "ansible-playbook failed with rc %s" % (runner.rc if runner else "?")
    if outcome == "timeout":
        error = "the procedure exceeded --timeout %ss and was stopped" % timeout
    if outcome == "canceled":
        error = "interrupted: the playbook was stopped"
    duration = round(time.monotonic() - clock, 3)
    summary = {
        "stackops_version": __version__,
        "run_id": run_id,
        "procedure": procedure.name,
        "playbook": str(playbook),
        "inventory": str(inventory),
        "limit": limit,
        "check": bool(check),
        "extra_vars": extravars,
        "status": outcome,
        "exit_code": OUTCOME_EXIT[outcome],
        "rc": runner.rc if runner else None,
        "started": started.isoformat(timespec="seconds"),
        "finished": now().isoformat(timespec="seconds"),
        "duration": duration,
        "hosts": tracker.hosts,
        "changed": tracker.changed_total,
        "tasks": {"done": tracker.tasks_done, "total": tracker.tasks_total},
        "failed_tasks": tracker.failed_tasks,
        "unreachable_hosts": tracker.unreachable,
        "result": errors_in_cli_words(tracker.result, procedure),
        "artifacts": str(artifact_dir),
    }
    if error:
        summary["error"] = cli_words(error, procedure)
    return summary
