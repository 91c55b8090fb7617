"""Runs one procedure's playbook through ansible-runner and turns its events into a summary."""
import re
import time
from pathlib import Path

from . import __version__, exitcodes
from .events import RunTracker
from .history import now
from .wording import cli_words, errors_in_cli_words

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OUTCOME_EXIT = {"successful": exitcodes.OK, "failed": exitcodes.FAILED, "timeout": exitcodes.FAILED,
                "unreachable": exitcodes.UNREACHABLE, "canceled": exitcodes.INTERRUPTED}


def _stdout_tail(artifact_dir, lines=20):
    try:
        text = (Path(artifact_dir) / "stdout").read_text(errors="replace")
    except OSError:
        return ""
    tail = [ANSI.sub("", line) for line in text.strip().splitlines()[-lines:]]
    return "\n".join(tail)


# The human summary's modules: loaded on the idle core while ansible-playbook starts (see _preload).
SUMMARY_MODULES = ("rich.console", "rich.table", "rich.text", "stackops.result_view", "stackops.recovery_view",
                   "stackops.backups_table")


def _preload(names):
    """Import ``names`` in a thread: the CLI only waits on ansible-playbook meanwhile, and the summary would import
    them afterwards, after the run, adding their ~0.1 s to every procedure's wall time."""
    import importlib
    import threading

    def load():
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # the summary imports it again and reports what is wrong
                pass
    thread = threading.Thread(target=load, name="stackops-preload", daemon=True)
    thread.start()
    return thread


def _spawn_class(pexpect):
    """pexpect's spawn without the 0.1 s ptyprocess sleeps in close(), which ansible-runner calls once the playbook
    has exited (EOF read, no longer alive): there is no process left to give time to. A child still alive is
    terminated as before."""
    class Spawn(pexpect.spawn):
        def close(self, force=True):
            if not self.isalive():
                self.ptyproc.delayafterclose = 0
            return super(Spawn, self).close(force=force)
    return Spawn


def run_procedure(*, procedure, playbook, root, inventory, limit, extravars, check, verbosity, timeout,
                  run_id, run_dir, envvars, progress, summary_wanted=False):
    """Run the playbook; returns the summary document (the --json output).

    The progress line has no task total: `ansible-playbook --list-tasks` cost a second ansible start-up per run
    and still could not count the tasks of dynamic includes, so the total it gave was often wrong.
    """
    # Imported here: the other commands (history, schedule, init, --help) do not pay for it.
    import ansible_runner
    import pexpect

    tracker = RunTracker(words=lambda text: cli_words(text, procedure))
    started = now()
    clock = time.monotonic()

    def on_event(event):
        description = tracker.handle(event)
        progress.event(event, description)
        return True  # keep every event in the artifacts

    progress.start(procedure.name, run_id, tracker)
    if summary_wanted:
        _preload(SUMMARY_MODULES)
    runner = None
    error = None
    spawn = pexpect.spawn
    pexpect.spawn = _spawn_class(pexpect)  # ansible-runner looks it up on the module at each run
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
        pexpect.spawn = spawn
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
