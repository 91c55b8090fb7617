"""`stackops maintenance` for people: the window's verdict and a table of its tasks, time and space reclaimed.

The shape is roles/maintenance's stackops_result: `done` holds one entry per task run (pg_maintenance's RV(summary)
for the database tasks; docker_prune, log_cleanup and rolling_update add their own), `skipped` the tasks the
window's deadline left out.
"""
from rich.table import Table
from rich.text import Text

from .units import human_bytes, human_duration, plain

OK_STYLE, BAD_STYLE, NEUTRAL = "green", "bold red", "yellow"


def _line(console, text, style=None):
    console.print(Text(text, style=style) if style else text, markup=False, highlight=False)


def task_detail(task):
    """What one task did, in a few words."""
    parts = []
    if isinstance(task.get("tables"), list):
        parts.append("%d table(s)" % len(task["tables"]))
    if task.get("tables_skipped"):
        parts.append("%s skipped" % task["tables_skipped"])
    for key, label in (("containers_removed", "container(s) removed"), ("images_removed", "image(s) removed"),
                       ("files_removed", "log file(s) removed")):
        if task.get(key):
            parts.append("%s %s" % (task[key], label))
    if task.get("replaced"):
        parts.append("replaced %s" % plain(task["replaced"]))
    elif task.get("services"):
        parts.append("services %s" % plain(task["services"]))
    if task.get("deadline_reached"):
        parts.append("stopped at the deadline")
    return "; ".join(parts) or ("changed" if task.get("changed") else "nothing to do")


def maintenance_rows(value):
    """[(task, result, time, reclaimed, detail)] of the tasks run, then those skipped."""
    rows = []
    for task in value.get("done") or []:
        if not isinstance(task, dict):
            continue
        seconds = task.get("duration_seconds")
        rows.append((str(task.get("name") or "-"), "changed" if task.get("changed") else "ok",
                     human_duration(seconds) if seconds is not None else "-",
                     human_bytes(task.get("reclaimed_bytes") or 0), task_detail(task)))
    for task in value.get("skipped") or []:
        name = task.get("name") if isinstance(task, dict) else task
        reason = task.get("reason") if isinstance(task, dict) else ""
        rows.append((str(name), "skipped", "-", "-", str(reason or "")))
    return rows


def print_maintenance(console, host, value):
    """The window on ``host``; True when printed."""
    if "done" not in value and "planned" not in value:
        return False
    status = str(value.get("status") or "-")
    style = OK_STYLE if status == "ok" else NEUTRAL if status == "skipped" else BAD_STYLE
    _line(console, "maintenance on %s: %s, level %s, %d task(s) in %s, %s reclaimed" % (
        host, status.upper().replace("_", " "), value.get("level") or "-", len(value.get("done") or []),
        human_duration(value.get("duration_seconds")), human_bytes(value.get("reclaimed_bytes") or 0)), style)
    rows = maintenance_rows(value)
    if rows:
        table = Table(show_header=True, box=None, padding=(0, 2))
        for column, justify in (("task", "left"), ("result", "left"), ("time", "right"), ("reclaimed", "right"),
                                ("detail", "left")):
            table.add_column(column, justify=justify)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    if value.get("backup_id"):
        _line(console, "  backup taken first: %s" % value["backup_id"])
    point = value.get("restore_point")
    if isinstance(point, dict):
        _line(console, "  restore point taken first: %s at LSN %s" % (point.get("name"), point.get("lsn")))
    if value.get("maintenance_mode") not in (None, "untouched"):
        _line(console, "  frontend maintenance mode: %s" % value["maintenance_mode"])
    if value.get("deadline_reached"):
        _line(console, "  the window deadline %s was reached" % (value.get("deadline") or ""), NEUTRAL)
    if value.get("health_after"):
        _line(console, "  health after the window: %s" % value["health_after"],
              OK_STYLE if value["health_after"] == "OK" else NEUTRAL)
    for warning in value.get("warnings") or []:
        _line(console, "  warning: %s" % plain(warning), NEUTRAL)
    if value.get("failed"):
        _line(console, "  failed: %s" % plain(value["failed"]), BAD_STYLE)
        if value.get("rollback"):
            _line(console, "  rollback: %s" % plain(value["rollback"]), NEUTRAL)
    return True
