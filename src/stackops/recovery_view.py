"""`stackops drill` and `stackops status` for people: a short summary each (the --json document is unchanged).

The drill: its verdict, the backup it restored, the measured RTO with its phases, each check, and what was torn
down. The status: one table per host, a row per thing that matters for recovery, and the problems below it.
"""
from rich.table import Table
from rich.text import Text

from .units import human_bytes, human_duration

OK_STYLE, BAD_STYLE, NEUTRAL = "green", "bold red", "yellow"


def _mark(ok):
    if ok is None:
        return Text("-", style=NEUTRAL)
    return Text("ok", style=OK_STYLE) if ok else Text("FAIL", style=BAD_STYLE)


def _line(console, text, style=None):
    console.print(Text(text, style=style) if style else text, markup=False, highlight=False)


# ---------------------------------------------------------------- drill

def _phases(phases):
    return ", ".join("%s %s" % (name, human_duration(phases[name]))
                     for name in ("fetch", "restore", "start", "checks") if phases.get(name) is not None)


def _backup_line(backup):
    if not backup:
        return "no backup chosen"
    kind = backup.get("kind") or "logical"
    what = "%s backup %s" % (kind, backup.get("id"))
    if backup.get("database"):
        what += " of %s" % backup["database"]
    if backup.get("target") == "time":
        what += " to %s" % backup.get("target_value")
    if backup.get("size_bytes") is not None:
        what += " (%s)" % human_bytes(backup["size_bytes"])
    return what


def print_drill(console, result):
    """The drill result of every host in ``result``; True when there was one to print."""
    printed = False
    for host, drill in sorted((result or {}).items()):
        if not isinstance(drill, dict) or drill.get("procedure") != "drill":
            continue
        printed = True
        if drill.get("action") == "teardown":
            removed = drill.get("removed") or []
            _line(console, "drill on %s: removed %s" % (host, ", ".join(removed) if removed else "nothing (no drill left)"))
            continue
        verdict = drill.get("drill") or drill.get("status")
        style = OK_STYLE if verdict == "passed" else BAD_STYLE if verdict == "failed" else NEUTRAL
        _line(console, "drill on %s: %s  (%s, project %s)" % (
            host, str(verdict).upper(), _backup_line(drill.get("backup")), drill.get("project") or "-"), style)
        if drill.get("rto_seconds") is not None:
            objective = drill.get("rto_objective_seconds")
            judged = "" if objective is None else ", %s the RTO %s" % (
                "within" if drill.get("rto_met") else "OVER", human_duration(objective))
            _line(console, "  measured RTO %s (%s)%s" % (human_duration(drill["rto_seconds"]),
                                                        _phases(drill.get("phase_seconds") or {}), judged))
        elif drill.get("phase_seconds"):
            _line(console, "  phases: %s" % _phases(drill["phase_seconds"]))
        trend = [human_duration(value) for value in drill.get("rto_trend") or [] if value is not None]
        if len(trend) > 1:
            _line(console, "  RTO trend (newest first): %s" % ", ".join(trend))
        checks = drill.get("checks") or []
        if checks:
            table = Table(show_header=True, box=None, padding=(0, 2))
            for column in ("check", "kind", "result", "detail"):
                table.add_column(column)
            for item in checks:
                table.add_row(str(item.get("name")), str(item.get("kind")), _mark(item.get("ok")),
                              Text(str(item.get("message") or ""), style=None if item.get("ok") else BAD_STYLE))
            console.print(table)
        for url in drill.get("unmapped_urls") or []:
            _line(console, "  not checked in the drill: %s" % url, NEUTRAL)
        for note in drill.get("override_notes") or []:
            _line(console, "  note: %s" % note)
        if drill.get("cleaned_up"):
            _line(console, "  cleaned up first: %s" % "; ".join(drill["cleaned_up"]))
        if drill.get("kept"):
            _line(console, "  kept running for a look as project %s; remove it with `stackops drill --teardown` (or %s)"
                  % (drill.get("project"), drill.get("remove_with")), NEUTRAL)
        elif drill.get("torn_down"):
            _line(console, "  torn down: %d containers, volumes and networks" % len(
                [item for item in drill["torn_down"] if item.split(" ", 1)[0] in ("container", "volume", "network")]))
        if drill.get("teardown_error"):
            _line(console, "  teardown FAILED: %s" % drill["teardown_error"], BAD_STYLE)
    return printed


# ---------------------------------------------------------------- status

def _age(seconds, objective=None):
    if seconds is None:
        return Text("never", style=BAD_STYLE)
    text = human_duration(seconds)
    if objective is not None:
        return Text(text, style=BAD_STYLE if seconds > objective else OK_STYLE)
    return Text(text)


def _status_rows(status):
    """(what, detail, age, verdict) rows of one host's status document."""
    objectives = status.get("objectives") or {}
    rpo, rto, drill_age = objectives.get("rpo"), objectives.get("rto"), objectives.get("drill_max_age")
    rows = []
    for row in status.get("services") or []:
        rows.append(("service %s" % row["service"], row.get("state") or "", Text(""), _mark(row.get("ok"))))
    logical = status.get("logical") or {}
    newest = logical.get("newest_verified")
    rows.append(("logical backup", "%s of %s" % (newest["id"], logical.get("database")) if newest else
                 "no verified backup of %s" % logical.get("database"),
                 _age(newest and newest["age_seconds"], rpo), _mark(bool(newest) and (rpo is None or newest["age_seconds"] <= rpo))))
    pitr = status.get("pitr") or {}
    if pitr.get("enabled"):
        base = pitr.get("newest_verified")
        rows.append(("physical backup", "%s (server %s)" % (base["id"], pitr.get("server")) if base else
                     "no verified base backup", _age(base and base["age_seconds"]), _mark(bool(base))))
        latest_age = pitr.get("latest_recoverable_age_seconds")
        rows.append(("PITR window", "%s .. %s, receiver %s" % (
            pitr.get("earliest_recoverable") or "-", pitr.get("latest_recoverable") or "-",
            "alive" if pitr.get("receiver_alive") else "DOWN"), _age(latest_age, rpo),
            _mark(bool(pitr.get("receiver_alive")) and not pitr.get("problems"))))
    else:
        rows.append(("PITR", "not enabled (stackops pitr enable)", Text(""), _mark(None)))
    for copy in status.get("offsite") or []:
        rows.append(("off-site %s" % copy.get("target"), "%s of %s" % (
            copy.get("newest_verified") or "no verified copy", copy.get("group_id") or copy.get("database") or "-"),
            _age(copy.get("age_seconds"), rpo),
            _mark(copy.get("age_seconds") is not None and (rpo is None or copy["age_seconds"] <= rpo))))
    drills = status.get("drills") or {}
    last = drills.get("last")
    if last:
        detail = "%s %s" % (last.get("id"), last.get("status"))
        if last.get("rto_seconds") is not None:
            detail += ", RTO %s" % human_duration(last["rto_seconds"])
        trend = [human_duration(value) for value in drills.get("rto_trend") or [] if value is not None]
        if trend:
            detail += "; trend %s" % " ".join(trend)
        ok = last.get("status") == "passed" and (drill_age is None or (drills.get("last_success_age_seconds") or 0) <= drill_age) \
            and (rto is None or (last.get("rto_seconds") or 0) <= rto)
        rows.append(("restore drill", detail, _age(drills.get("last_age_seconds"), drill_age), _mark(ok)))
    else:
        rows.append(("restore drill", "none yet (stackops drill)", _age(None), _mark(False if drill_age else None)))
    for schedule in status.get("schedules") or []:
        last_run = schedule.get("last_run")
        detail = "%s %s; last run %s" % (schedule.get("procedure"), schedule.get("when"), (
            "%s %s" % (last_run.get("started"), last_run.get("status"))) if last_run else "none yet")
        rows.append(("schedule %s" % schedule.get("name"), detail, Text(""),
                     _mark(None if not last_run else last_run.get("status") in ("successful", None))))
    return rows


def print_status(console, result):
    """The status table of every host in ``result``; True when there was one to print."""
    printed = False
    for host, status in sorted((result or {}).items()):
        if not isinstance(status, dict) or status.get("procedure") != "status":
            continue
        printed = True
        objectives = status.get("objectives") or {}
        title = "recoverability of %s (project %s; RPO %s, RTO %s, drill every %s)" % (
            host, status.get("project") or "-", human_duration(objectives.get("rpo")),
            human_duration(objectives.get("rto")), human_duration(objectives.get("drill_max_age")))
        table = Table(title=title, title_justify="left")
        for column, justify in (("what", "left"), ("detail", "left"), ("age", "right"), ("", "left")):
            table.add_column(column, justify=justify)
        for row in _status_rows(status):
            table.add_row(*row)
        console.print(table)
        problems = status.get("problems") or []
        if problems:
            _line(console, "%d objective(s) not met on %s:" % (len(problems), host), BAD_STYLE)
            for problem in problems:
                _line(console, "  - %s" % problem, BAD_STYLE)
        else:
            _line(console, "every objective is met on %s" % host, OK_STYLE)
        if status.get("metrics_file"):
            _line(console, "metrics written to %s" % status["metrics_file"])
    return printed
