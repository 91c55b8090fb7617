"""The stackops command: each procedure subcommand runs one stackops.runbooks playbook through ansible-runner.

The command line itself is declared in parser.py; this module runs what it parsed.
"""
import argparse
import json
import os
import sys
from pathlib import Path

# Only what every command needs is imported here; the rest where it is used, because each import is paid on every
# run, also by read-only listings that should start as fast as ansible itself (docs/cli.md, "Fixed cost").
from . import __version__, exitcodes, history, locations
from .errors import ReportError, UsageError
from .extravars import ExtraVarsError, parse_all
from .locking import LockHeld, StackLock, describe_holder
from .parser import build_parser
from .procedures import BY_NAME
from .units import human_duration, parse_duration

# ---------------------------------------------------------------- procedures

def _resolve_inventory(root, given):
    inventory = Path(given).expanduser() if given else locations.default_inventory(root)
    inventory = inventory.resolve()
    if not inventory.exists():
        raise UsageError("inventory %s does not exist" % inventory)
    return inventory


def _ask_consent(reason):
    """Ask on the terminal; True when the operator typed yes."""
    prompt = "%s.\nType 'yes' to continue: " % reason
    try:
        # Separate handles: a terminal is not seekable, so one "r+" file object cannot be used.
        with open("/dev/tty", "w") as tty_out, open("/dev/tty") as tty_in:
            tty_out.write(prompt)
            tty_out.flush()
            answer = tty_in.readline()
    except OSError:
        return False
    return answer.strip().lower() in ("yes", "y")


def _emit(summary, args):
    if args.json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
        sys.stdout.flush()
    else:
        from .display import print_summary
        print_summary(summary, verbose=args.verbose > 0)


def _emit_refusal(summary, args, error):
    """A run that never started: the JSON document, or one line on stderr."""
    if args.json:
        _emit(summary, args)
    else:
        print("stackops: %s" % error, file=sys.stderr)


def _record_refusal(runs, run_id, base, status, exit_code, error):
    summary = dict(base, status=status, exit_code=exit_code, error=error, duration=0.0,
                   finished=base["started"], hosts={}, changed=0, failed_tasks=[], unreachable_hosts=[], result={})
    run_dir = runs.create(run_id, dict(base, pid=None))
    runs.finish(run_dir, summary)
    return summary


def cmd_procedure(args):
    procedure = args.procedure
    try:
        root = locations.collection_root()
        playbook = locations.playbook_path(root, procedure.playbook)
    except locations.LocationError as exc:
        raise UsageError(str(exc)) from exc
    inventory = _resolve_inventory(root, args.inventory)
    try:
        extravars = procedure.extravars(args, parse_all(args.extra_vars))
    except ExtraVarsError as exc:
        raise UsageError(str(exc)) from exc
    rpo_seconds = _parse_rpo(args)

    state = locations.state_dir()
    if procedure.name == "status":
        from . import schedule
        # The schedules are the CLI's own (timers or cron entries it installed), their runs are in its history.
        extravars.setdefault("stackops_status_schedules", schedule.schedule_runs(
            state, inventory, _resolve_inventory(root, None)))
    runs = history.History(state)
    started = history.now()
    run_id = history.new_run_id(procedure.name, started)
    base = {"stackops_version": __version__, "run_id": run_id, "procedure": procedure.name,
            "playbook": str(playbook), "inventory": str(inventory), "limit": args.limit, "check": args.check,
            "extra_vars": extravars, "started": started.isoformat(timespec="seconds"), "pid": os.getpid()}

    reason = procedure.consent.needed(extravars) if procedure.consent else None
    if reason:
        # A dry run changes nothing, so it may plan the destructive variant without asking.
        consented = args.check or args.yes or (sys.stdin.isatty() and _ask_consent(reason))
        if not consented:
            how = "answered no" if sys.stdin.isatty() else "no terminal to ask on; pass --yes to consent"
            error = "not confirmed: %s (%s)" % (reason, how)
            summary = _record_refusal(runs, run_id, base, "refused", exitcodes.REFUSED, error)
            _emit_refusal(summary, args, error)
            return exitcodes.REFUSED
        extravars[procedure.consent.variable] = True

    lock = StackLock(state, inventory, args.limit) if procedure.locks else None
    if lock:
        def announce(holder):
            print("stackops: waiting for %s to finish" % describe_holder(holder), file=sys.stderr)
        try:
            lock.acquire({k: base[k] for k in ("pid", "procedure", "run_id", "started", "inventory", "limit")},
                         wait=args.wait, timeout=args.wait_timeout, on_wait=announce)
        except LockHeld as held:
            error = "the stack is busy: %s holds the lock %s; retry later or use --wait" % (held, held.path)
            summary = _record_refusal(runs, run_id, base, "locked", exitcodes.LOCKED, error)
            summary["lock_holder"] = held.holder
            _emit_refusal(summary, args, error)
            return exitcodes.LOCKED
    from .display import make_progress
    from .execution import run_procedure
    try:
        run_dir = runs.create(run_id, base)
        summary = run_procedure(
            procedure=procedure, playbook=playbook, root=root, inventory=inventory, limit=args.limit,
            extravars=extravars, check=args.check, verbosity=args.verbose, timeout=args.timeout,
            run_id=run_id, run_dir=run_dir, envvars=dict(locations.runner_envvars(root), STACKOPS_RUN_ID=run_id),
            progress=make_progress(args.json, args.verbose), summary_wanted=not args.json)
        if rpo_seconds is not None:
            _apply_rpo(summary, run_dir, rpo_seconds, getattr(args, "rpo_strict", False))
        if getattr(args, "report", False):
            from .report import REPORT_NAME
            summary["report"] = str(Path(run_dir) / REPORT_NAME)
        runs.finish(run_dir, summary)
    finally:
        if lock:
            lock.release()
    if getattr(args, "report", False) and not _write_report(run_dir, rpo_seconds=rpo_seconds):
        summary.pop("report", None)
    _emit(summary, args)
    _print_rpo(summary.get("rpo"), args)
    if summary.get("report") and not args.json:
        print("report: %s" % summary["report"])
    return summary["exit_code"]


def _print_rpo(rpo, args):
    """Exceeded: a warning on stderr (also with --json). Within: one line on stdout without --json."""
    for host, verdict in sorted(((rpo or {}).get("hosts") or {}).items()):
        if verdict["exceeded"]:
            print("stackops: WARNING: RPO exceeded on %s: %s" % (host, verdict["message"]), file=sys.stderr)
        elif not args.json:
            print("RPO ok on %s: %s" % (host, verdict["message"]))


def _parse_rpo(args):
    if getattr(args, "rpo_strict", False) and not getattr(args, "rpo", None):
        raise UsageError("--rpo-strict needs --rpo DURATION")
    if not getattr(args, "rpo", None):
        return None
    try:
        return parse_duration(args.rpo)
    except ValueError as exc:
        raise UsageError("--rpo: %s" % exc) from exc


def _apply_rpo(summary, run_dir, rpo_seconds, strict):
    """Judge the newest verified backup per host against the RPO; with strict, exceeding it exits 1."""
    from . import rpo, runmodel
    events = runmodel.load_events(Path(run_dir) / "artifacts" / summary["run_id"])
    verdicts = rpo.rpo_from_summary(summary, events, rpo_seconds)
    exceeded = sorted(host for host, verdict in verdicts.items() if verdict["exceeded"])
    summary["rpo"] = {"rpo_seconds": rpo_seconds, "strict": bool(strict), "exceeded": bool(exceeded),
                      "hosts": verdicts}
    if exceeded and strict and summary["exit_code"] == exitcodes.OK:
        summary["exit_code"] = exitcodes.FAILED
        summary["error"] = "RPO %s exceeded on %s (--rpo-strict)" % (human_duration(rpo_seconds),
                                                                    ", ".join(exceeded))


def _write_report(run_dir, rpo_seconds=None):
    """The report of a finished run; a failure is a warning, never the run's exit code."""
    from . import report
    try:
        return report.write_report(run_dir, rpo_seconds=rpo_seconds)
    except (OSError, ReportError) as exc:
        print("stackops: could not write the report: %s" % exc, file=sys.stderr)
        return None


# ---------------------------------------------------------------- history

def cmd_history(args):
    runs = history.History(locations.state_dir())
    if args.action == "report":
        return _history_report(runs, args)
    if args.action == "show":
        if not args.run_id:
            raise UsageError("history show needs a run id (see `stackops history`)")
        found, matches = runs.find(args.run_id)
        if not found:
            raise UsageError("no run matches %r%s" % (args.run_id, (
                "; candidates: " + ", ".join(matches[:10])) if matches else ""))
        record = runs.load(found)
        if args.json:
            print(json.dumps(record, default=str))
        else:
            record.setdefault("exit_code", -1)
            record.setdefault("duration", None)
            from .display import print_summary
            print_summary(record)
            print("artifacts: %s" % (runs.runs_dir / found))
        return exitcodes.OK
    records = runs.records()
    if args.last:
        records = records[-args.last:]
    rows = [{"run_id": r["run_id"], "procedure": r.get("procedure"), "status": r.get("status"),
             "exit_code": r.get("exit_code"), "started": r.get("started"), "duration": r.get("duration"),
             "check": r.get("check", False), "inventory": r.get("inventory"), "limit": r.get("limit")}
            for r in records]
    if args.json:
        print(json.dumps(rows, default=str))
        return exitcodes.OK
    if not rows:
        print("no runs recorded in %s" % runs.runs_dir)
        return exitcodes.OK
    from rich.console import Console
    from rich.table import Table
    console = Console() if sys.stdout.isatty() else Console(no_color=True, width=200)
    table = Table(title="stackops runs (%s)" % runs.runs_dir, title_justify="left")
    for column in ("id", "procedure", "status", "start", "duration"):
        table.add_column(column)
    for row in rows:
        status = row["status"] + (" (check)" if row["check"] else "")
        table.add_row(row["run_id"], row["procedure"], status, row["started"] or "-", human_duration(row["duration"]))
    console.print(table)
    return exitcodes.OK


def _history_report(runs, args):
    if not args.run_id:
        raise UsageError("history report needs a run id (see `stackops history`)")
    found, matches = runs.find(args.run_id)
    if not found:
        raise UsageError("no run matches %r%s" % (args.run_id, (
            "; candidates: " + ", ".join(matches[:10])) if matches else ""))
    rpo_seconds = _parse_rpo(args)
    from . import report
    try:
        path = report.write_report(runs.run_dir(found), output=args.output, rpo_seconds=rpo_seconds)
    except ReportError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        print("stackops history: cannot write the report: %s" % exc, file=sys.stderr)
        return exitcodes.FAILED
    if args.json:
        print(json.dumps({"run_id": found, "report": str(path)}))
    else:
        print(path)
    return exitcodes.OK


# ---------------------------------------------------------------- demo

def cmd_demo(args):
    import subprocess
    root = locations.collection_root()
    if args.action == "up":
        startup = argparse.Namespace(
            procedure=BY_NAME["startup"], inventory=None, extra_vars=[], limit=None, check=False, json=args.json,
            verbose=args.verbose, yes=False, wait=True, wait_timeout=None, timeout=None, services=None)
        return cmd_procedure(startup)
    stack_dir = root / "examples" / "stack"
    compose = ["docker", "compose", "--project-directory", str(stack_dir), "-p", "stackops-demo"]
    if args.action == "status":
        return subprocess.call(compose + ["ps", "--all"])
    return subprocess.call(compose + ["down"] + (["--volumes"] if args.volumes else []))


# ---------------------------------------------------------------- entry point

def _cmd_schedule(args):
    from . import schedule
    return schedule.cmd_schedule(args)


def _cmd_init(args):
    from . import init
    return init.cmd_init(args)


# The handler of each non-procedure command declared in parser.build_parser().
COMMANDS = {
    "history": cmd_history,
    "demo": cmd_demo,
    "schedule": _cmd_schedule,
    "init": _cmd_init,
}


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = []
    if argv[:2] == ["schedule", "install"] and "--" in argv:
        # Everything after "--" is the scheduled procedure's own command line.
        split = argv.index("--")
        argv, passthrough = argv[:split], argv[split + 1:]
    args = parser.parse_args(argv)
    if passthrough:
        args.command_args = passthrough
    handler = COMMANDS.get(args.command, cmd_procedure)
    try:
        return handler(args)
    except UsageError as exc:
        print("stackops %s: error: %s" % (args.command, exc), file=sys.stderr)
        return exitcodes.USAGE
    except KeyboardInterrupt:
        print("stackops: interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
