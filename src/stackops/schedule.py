"""Scheduling without AWX: a systemd timer + oneshot service, or a cron.d entry where systemd is absent.

The scheduled job is the same `stackops <procedure> ...` command an operator would type, so each
scheduled run lands in the run history (and takes the stack lock) like any other run.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from . import exitcodes, locations
from .errors import UsageError
from .extravars import parse_all
from .parser import build_parser
from .procedures import PROCEDURES

UNIT_PREFIX = "stackops-"
CRON_MARK = "# stackops-schedule: "
SHORTHANDS = {  # systemd shorthand -> the same moment in cron
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 1",
    "monthly": "0 0 1 * *",
}
DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
DAY_SPEC = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
WHEN_WITH_TIME = re.compile(r"^(?:(?P<days>%s(?:(?:\.\.|,)%s)*)\s+)?(?P<hour>\d{1,2}):(?P<minute>\d{2})$" % (
    DAY_SPEC, DAY_SPEC))
CRON_EXPRESSION = re.compile(r"^(\S+\s+){4}\S+$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ScheduleError(ValueError):
    pass


def _normalize_days(days):
    return ",".join(part.capitalize() for part in days.split(",")) if days else None


def on_calendar(when):
    """systemd OnCalendar= for a --when value ('daily', 'Sun 03:00', '02:30', 'Mon..Fri 01:00' or raw)."""
    text = " ".join(when.split())
    if text.lower() in SHORTHANDS:
        return text.lower()
    match = WHEN_WITH_TIME.match(text)
    if match:
        hour, minute = int(match["hour"]), int(match["minute"])
        if hour > 23 or minute > 59:
            raise ScheduleError("--when %r: no such time of day" % when)
        days = match["days"]
        return ("%s *-*-* %02d:%02d:00" % (days, hour, minute)) if days else "*-*-* %02d:%02d:00" % (hour, minute)
    if CRON_EXPRESSION.match(text) and not any(ch in text for ch in ":-"):
        raise ScheduleError("--when %r looks like a cron expression; use e.g. 'Sun 03:00' or an OnCalendar "
                            "expression for systemd" % when)
    return text  # a raw OnCalendar expression; verified with systemd-analyze when available


def _cron_days(days):
    out = []
    for part in days.split(","):
        if ".." in part:
            first, last = part.split("..")
            out.append("%d-%d" % (DAYS.index(first), DAYS.index(last)))
        else:
            out.append(str(DAYS.index(part)))
    return ",".join(out)


def cron_expression(when):
    """The five cron fields for a --when value."""
    text = " ".join(when.split())
    if text.lower() in SHORTHANDS:
        return SHORTHANDS[text.lower()]
    match = WHEN_WITH_TIME.match(text)
    if match:
        hour, minute = int(match["hour"]), int(match["minute"])
        if hour > 23 or minute > 59:
            raise ScheduleError("--when %r: no such time of day" % when)
        days = _cron_days(match["days"]) if match["days"] else "*"
        return "%d %d * * %s" % (minute, hour, days)
    if CRON_EXPRESSION.match(text) and ":" not in text:
        return text
    raise ScheduleError("--when %r cannot be expressed for cron: use hourly/daily/weekly/monthly, 'HH:MM', "
                        "'Sun 03:00', 'Mon..Fri 02:00' or five cron fields" % when)


def verify_calendar(expression):
    """Ask systemd-analyze whether an OnCalendar expression is valid (skipped when it is not installed)."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        return
    checked = subprocess.run([tool, "calendar", expression], capture_output=True, text=True)
    if checked.returncode != 0:
        raise ScheduleError("--when %r is not a valid systemd calendar expression: %s" % (
            expression, checked.stderr.strip() or checked.stdout.strip()))


# ---------------------------------------------------------------- the scheduled command

def stackops_executable():
    beside_python = Path(sys.executable).parent / "stackops"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("stackops")
    if found:
        return os.path.abspath(found)
    raise ScheduleError("cannot find the stackops executable to schedule")


def scheduled_command(procedure, inventory, limit, passthrough):
    argv = [stackops_executable(), procedure]
    if inventory:
        argv += ["-i", str(Path(inventory).expanduser().resolve())]
    if limit:
        argv += ["--limit", limit]
    return argv + list(passthrough)


def systemd_units(name, procedure, when_calendar, argv, environment):
    unit = UNIT_PREFIX + name
    env_lines = "".join("Environment=%s\n" % _systemd_quote("%s=%s" % item) for item in sorted(environment.items()))
    service = (
        "# Written by `stackops schedule install`; remove with `stackops schedule remove %(name)s`.\n"
        "[Unit]\n"
        "Description=stackops %(procedure)s (scheduled)\n"
        "After=network-online.target docker.service\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "%(env)s"
        "ExecStart=%(command)s\n"
    ) % {"name": name, "procedure": procedure, "env": env_lines,
         "command": " ".join(_systemd_quote(arg) for arg in argv)}
    timer = (
        "# Written by `stackops schedule install`; remove with `stackops schedule remove %(name)s`.\n"
        "[Unit]\n"
        "Description=stackops %(procedure)s schedule (%(when)s)\n"
        "\n"
        "[Timer]\n"
        "OnCalendar=%(when)s\n"
        "Persistent=true\n"
        "Unit=%(unit)s.service\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    ) % {"name": name, "procedure": procedure, "when": when_calendar, "unit": unit}
    return {unit + ".service": service, unit + ".timer": timer}


def _systemd_quote(word):
    # systemd splits ExecStart like a shell but expands % specifiers and $VARS: escape them.
    word = word.replace("%", "%%").replace("$", "$$")
    if re.match(r"^[A-Za-z0-9_@%+=:,./-]+$", word):
        return word
    return '"%s"' % word.replace("\\", "\\\\").replace('"', '\\"')


def cron_line(name, cron_fields, argv, environment, user, log_file):
    env_prefix = " ".join(shlex.quote("%s=%s" % item) for item in sorted(environment.items()))
    command = "%s %s >> %s 2>&1" % (env_prefix, " ".join(shlex.quote(arg) for arg in argv), shlex.quote(str(log_file)))
    # cron treats an unescaped % as a newline.
    command = command.replace("%", "\\%")
    return "%s%s\n%s %s %s\n" % (CRON_MARK, name, cron_fields, user, command.strip())


# ---------------------------------------------------------------- backends and where they write

def systemd_running():
    return Path("/run/systemd/system").is_dir()


def default_unit_dir():
    if os.geteuid() == 0:
        return Path("/etc/systemd/system")
    return Path("~/.config/systemd/user").expanduser()


def unit_dir(args):
    given = getattr(args, "unit_dir", None) or os.environ.get("STACKOPS_SYSTEMD_UNIT_DIR")
    return Path(given).expanduser() if given else default_unit_dir()


def crontab_path(args):
    given = getattr(args, "crontab", None) or os.environ.get("STACKOPS_CRONTAB")
    return Path(given).expanduser() if given else Path("/etc/cron.d/stackops")


def backend(args):
    chosen = getattr(args, "backend", None) or os.environ.get("STACKOPS_SCHEDULE_BACKEND")
    return chosen or ("systemd" if systemd_running() else "cron")


def _current_user():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def _systemctl(*argv):
    user = ["--user"] if os.geteuid() != 0 else []
    return subprocess.run(["systemctl"] + user + list(argv), capture_output=True, text=True)


def read_cron_entries(path):
    """{name: (cron line)} for the stackops entries in a cron.d file."""
    entries = {}
    if not path.exists():
        return entries
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith(CRON_MARK) and index + 1 < len(lines):
            entries[line[len(CRON_MARK):].strip()] = lines[index + 1]
    return entries


def _write_cron_entries(path, entries):
    text = "# stackops schedules (managed by `stackops schedule`; cron.d format with a user column)\n"
    text += "SHELL=/bin/sh\n"
    for name, line in sorted(entries.items()):
        text += "%s%s\n%s\n" % (CRON_MARK, name, line)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    tmp.replace(path)


# ---------------------------------------------------------------- commands

def cmd_install(args):
    if args.procedure not in _procedure_names():
        raise ScheduleError("unknown procedure %r; one of %s" % (args.procedure, ", ".join(_procedure_names())))
    passthrough = list(args.command_args or [])
    # The scheduled command must parse now, not fail at 03:00.
    probe = [args.procedure] + passthrough
    try:
        parsed = build_parser().parse_args(probe)
    except SystemExit:
        raise ScheduleError("the scheduled command `stackops %s` is not valid (see above)" % " ".join(probe))
    procedure = parsed.procedure
    if procedure.consent and procedure.consent.needed(_probe_vars(procedure, parsed)) and not parsed.yes:
        raise ScheduleError("`stackops %s` is destructive and a timer has no terminal to confirm on: add --yes "
                            "after -- if that is really meant" % " ".join(probe))
    name = args.name or procedure.name
    if not NAME.match(name):
        raise ScheduleError("schedule name %r: use letters, digits, '.', '_' and '-'" % name)
    argv = scheduled_command(procedure.name, args.inventory, args.limit, passthrough)
    environment = {"STACKOPS_STATE_DIR": str(locations.state_dir())}
    kind = backend(args)
    if kind == "systemd":
        calendar = on_calendar(args.when)
        verify_calendar(calendar)
        directory = unit_dir(args)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for filename, content in systemd_units(name, procedure.name, calendar, argv, environment).items():
            (directory / filename).write_text(content)
            written.append(str(directory / filename))
        enabled = False
        if systemd_running() and directory == default_unit_dir() and not args.no_enable:
            _systemctl("daemon-reload")
            enabled = _systemctl("enable", "--now", UNIT_PREFIX + name + ".timer").returncode == 0
        report = {"name": name, "backend": "systemd", "when": calendar, "files": written, "enabled": enabled,
                  "command": argv}
    else:
        fields = cron_expression(args.when)
        path = crontab_path(args)
        log_dir = locations.state_dir() / "schedule-logs"
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        entries = read_cron_entries(path)
        entry = cron_line(name, fields, argv, environment, _current_user(), log_dir / (name + ".log"))
        entries[name] = entry.splitlines()[1]
        _write_cron_entries(path, entries)
        report = {"name": name, "backend": "cron", "when": fields, "files": [str(path)], "enabled": True,
                  "command": argv}
    if args.json:
        print(json.dumps(report))
    else:
        print("scheduled %s (%s, %s): %s" % (name, report["backend"], report["when"], " ".join(
            shlex.quote(a) for a in argv)))
        for path in report["files"]:
            print("  wrote %s" % path)
        if report["backend"] == "systemd" and not report["enabled"]:
            print("  not enabled here; enable with: systemctl daemon-reload && systemctl enable --now %s.timer"
                  % (UNIT_PREFIX + name))
    return exitcodes.OK


def _probe_vars(procedure, parsed):
    return procedure.extravars(parsed, parse_all(parsed.extra_vars))


def _procedure_names():
    return [p.name for p in PROCEDURES]


def list_schedules(args):
    found = []
    directory = unit_dir(args)
    if directory.is_dir():
        for timer in sorted(directory.glob(UNIT_PREFIX + "*.timer")):
            name = timer.name[len(UNIT_PREFIX):-len(".timer")]
            calendar = re.search(r"^OnCalendar=(.*)$", timer.read_text(), re.M)
            service = timer.with_suffix(".service")
            command = re.search(r"^ExecStart=(.*)$", service.read_text(), re.M) if service.exists() else None
            found.append({"name": name, "backend": "systemd", "when": calendar.group(1) if calendar else "?",
                          "command": command.group(1) if command else "?", "files": [str(timer), str(service)]})
    path = crontab_path(args)
    for name, line in read_cron_entries(path).items():
        fields = line.split(None, 6)
        found.append({"name": name, "backend": "cron", "when": " ".join(fields[:5]),
                      "command": fields[6] if len(fields) > 6 else "", "files": [str(path)]})
    return found


def cmd_list(args):
    found = list_schedules(args)
    if args.json:
        print(json.dumps(found))
        return exitcodes.OK
    if not found:
        print("no stackops schedules in %s or %s" % (unit_dir(args), crontab_path(args)))
    for item in found:
        print("%-20s %-8s %-28s %s" % (item["name"], item["backend"], item["when"], item["command"]))
    return exitcodes.OK


def cmd_remove(args):
    removed = []
    directory = unit_dir(args)
    unit = UNIT_PREFIX + args.name
    timer = directory / (unit + ".timer")
    if timer.exists() and systemd_running() and directory == default_unit_dir():
        _systemctl("disable", "--now", unit + ".timer")
    for path in (timer, directory / (unit + ".service")):
        if path.exists():
            path.unlink()
            removed.append(str(path))
    path = crontab_path(args)
    entries = read_cron_entries(path)
    if args.name in entries:
        del entries[args.name]
        _write_cron_entries(path, entries)
        removed.append("%s (entry %s)" % (path, args.name))
    if not removed:
        raise ScheduleError("no schedule named %r (see `stackops schedule list`)" % args.name)
    if systemd_running() and directory == default_unit_dir():
        _systemctl("daemon-reload")
    for item in removed:
        print("removed %s" % item)
    return exitcodes.OK


def cmd_schedule(args):
    try:
        return {"install": cmd_install, "list": cmd_list, "remove": cmd_remove}[args.schedule_action](args)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from exc


# ---------------------------------------------------------------- the schedules' last runs, for `stackops status`

def _schedule_target(command):
    """(procedure, inventory or None) of a scheduled stackops command line."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None, None
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]  # a cron entry's environment prefix
    procedure = words[1] if len(words) > 1 else None
    inventory = words[words.index("-i") + 1] if "-i" in words[:-1] else None
    return procedure, inventory


def schedule_runs(state_dir, inventory, default_inventory):
    """Each schedule of ``inventory`` with its last recorded run: what the status role judges (a last run that
    failed, was refused or found the stack locked is a schedule that did not do its job)."""
    from .history import History
    records = History(state_dir).records()
    found = []
    for item in list_schedules(argparse_namespace()):
        procedure, target = _schedule_target(item.get("command") or "")
        target = str(Path(target).resolve()) if target else str(default_inventory)
        if target != str(inventory):
            continue
        runs = [record for record in records if record.get("procedure") == procedure
                and record.get("inventory") == target and not record.get("check")]
        last = runs[-1] if runs else None
        found.append({"name": item["name"], "procedure": procedure, "when": item["when"], "backend": item["backend"],
                      "last_run": None if last is None else {
                          "run_id": last.get("run_id"), "started": last.get("started"), "status": last.get("status"),
                          "error": (last.get("error") or "")[:300] or None}})
    return found


def argparse_namespace():
    """Where list_schedules looks by default ($STACKOPS_SYSTEMD_UNIT_DIR, $STACKOPS_CRONTAB, or the system's)."""
    import argparse
    return argparse.Namespace(unit_dir=None, crontab=None)
