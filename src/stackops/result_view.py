"""The end of a run for people: each procedure's own short summary, else a readable outline (never a Python repr).

One renderer module per concern (backups_table, recovery_view, backup_view, maintenance_view, lifecycle_view); this
module only picks the one for the procedure. The --json document is unchanged and always complete; with -v the
outline of the whole result follows the summary.
"""
from rich.text import Text

OUTLINE_LINES = 60


def _scalar(value):
    if value is None:
        return "-"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def outline(value, indent=0):
    """Lines of ``value`` as indented text: dicts as `key: value`, lists as `- item`, nested ones below their key."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        if not value:
            return [pad + "(none)"]
        for key, inner in value.items():
            if isinstance(inner, (dict, list)) and inner:
                lines.append("%s%s:" % (pad, key))
                lines.extend(outline(inner, indent + 1))
            else:
                lines.append("%s%s: %s" % (pad, key, "(none)" if isinstance(inner, (dict, list)) else _scalar(inner)))
        return lines
    if isinstance(value, list):
        if not value:
            return [pad + "(none)"]
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = outline(item, indent + 1)
                # "- first: line" then the rest aligned under it, as YAML writes a list of mappings.
                lines.append("%s- %s" % (pad, inner[0].lstrip()))
                lines.extend(inner[1:])
            else:
                lines.append("%s- %s" % (pad, "(none)" if isinstance(item, (dict, list)) else _scalar(item)))
        return lines
    return [pad + _scalar(value)]


def print_outline(console, host, value, limit=OUTLINE_LINES):
    """The generic fallback: the host's result as an outline, cut after ``limit`` lines (None: all of it)."""
    lines = outline(value, 1)
    if not lines:
        return
    console.print(Text("result %s:" % host, style="bold"))
    shown = lines if limit is None else lines[:limit]
    for line in shown:
        console.print(line, markup=False, highlight=False)
    if len(shown) < len(lines):
        console.print("  ... %d more lines (-v or --json for all of it)" % (len(lines) - len(shown)),
                      markup=False, highlight=False)


def _renderers():
    """{procedure: render(console, host, value) -> True when it printed a summary}, imported when a run ends."""
    from . import backup_view, lifecycle_view, maintenance_view
    return {
        "backup": backup_view.print_backup,
        "restore": backup_view.print_restore,
        "pitr": backup_view.print_pitr,
        "maintenance": maintenance_view.print_maintenance,
        "startup": lifecycle_view.print_startup,
        "service": lifecycle_view.print_service,
        "scale": lifecycle_view.print_scale,
        "scaling": lifecycle_view.print_scale,
        "incident": lifecycle_view.print_incident,
        "health": lifecycle_view.print_health,
        "preflight": lifecycle_view.print_health,
        "prepare": lifecycle_view.print_prepare,
    }


def _notifications(console, host, value):
    notes = value.get("notifications") if isinstance(value, dict) else None
    if not isinstance(notes, dict):
        return
    undelivered = notes.get("undelivered") or []
    if undelivered:
        console.print(Text("  notifications not delivered from %s: %s" % (host, "; ".join(
            item.get("error") or item.get("msg") or item.get("url") or "?" if isinstance(item, dict) else str(item)
            for item in undelivered)), style="yellow"), markup=False, highlight=False)


def print_results(console, procedure, result, verbose=False):
    """Each host's summary of ``procedure``'s result; a host no renderer knows gets the outline.

    A failed procedure says so first, with the task and the reason its role recorded; the renderer then adds what
    the result still holds (a maintenance window's tasks, a startup's tiers), and nothing when it holds no more.
    """
    renderers = _renderers()
    for host, value in (result or {}).items():
        render = renderers.get(procedure)
        if isinstance(value, dict) and value.get("procedure") in renderers:
            render = renderers[value["procedure"]]
        failed = isinstance(value, dict) and value.get("status") == "failed" and bool(value.get("error"))
        if failed:
            console.print(Text("%s on %s: FAILED%s: %s" % (
                value.get("procedure") or procedure, host,
                " at '%s'" % value["failed_task"] if value.get("failed_task") else "", value["error"]),
                style="bold red"), markup=False, highlight=False)
        printed = bool(render and isinstance(value, dict) and render(console, host, value))
        if printed and value.get("error") and not failed:
            console.print(Text("  error: %s" % value["error"], style="bold red"), markup=False, highlight=False)
        if printed or failed:
            _notifications(console, host, value)
        if verbose or not (printed or failed):
            print_outline(console, host, value, limit=None if verbose else OUTLINE_LINES)
