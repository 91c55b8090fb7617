"""The stack's lifecycle for people: startup, service (start, stop, restart, shutdown), scale, incident, health,
preflight and prepare, each in a few lines.

The shapes are the roles' stackops_result (roles/startup, service, scaling, incident, health, preflight, prepare).
"""
from rich.text import Text

from .units import human_duration, plain

OK_STYLE, BAD_STYLE, NEUTRAL = "green", "bold red", "yellow"
SEVERITY_STYLE = {"OK": OK_STYLE, "WARNING": NEUTRAL, "CRITICAL": BAD_STYLE}


def _line(console, text, style=None):
    console.print(Text(text, style=style) if style else text, markup=False, highlight=False)


def print_startup(console, host, value):
    tiers = value.get("tiers")
    if not isinstance(tiers, list):
        return False
    started = value.get("changed_services") or []
    _line(console, "startup on %s: %d tier(s) healthy in %s; %s" % (
        host, len(tiers), human_duration(value.get("total_seconds")),
        "started %s" % plain(started) if started else "everything was already running"),
        OK_STYLE if value.get("status") == "ok" else BAD_STYLE)
    for tier in tiers:
        if isinstance(tier, dict):
            _line(console, "  tier %s (%s): %s%s" % (tier.get("tier"), plain(tier.get("services")),
                                                   human_duration(tier.get("seconds")),
                                                   ", gates %s" % plain(tier["gates"]) if tier.get("gates") else ""))
    if value.get("failed_tier"):
        _line(console, "  stopped at tier %s" % plain(value["failed_tier"]), BAD_STYLE)
    return True


def print_service(console, host, value):
    if "changed_services" not in value:
        return False
    changed = value.get("changed_services") or []
    replaced = value.get("replaced") or []
    what = "changed %s" % plain(changed) if changed else "nothing to change"
    if replaced:
        what += "; replaced %s" % plain(replaced)
    _line(console, "%s %s on %s: %s%s" % (
        value["action"], plain(value.get("services")) if value.get("services") else "the stack", host, what,
        " in %s" % human_duration(value["elapsed"]) if isinstance(value.get("elapsed"), (int, float)) else ""))
    return True


def print_scale(console, host, value):
    if "service" not in value or "replicas_requested" not in value:
        return False
    _line(console, "scale %s on %s: %s -> %s replicas (asked %s)" % (
        value["service"], host, plain(value.get("replicas_before")), plain(value.get("replicas_after")),
        value.get("replicas_requested")), OK_STYLE if value.get("status") == "ok" else None)
    for step in value.get("steps") or []:
        _line(console, "  - %s" % plain(step))
    if value.get("restored") is not None:
        _line(console, "  put back to the replicas it had: %s" % plain(value["restored"]), NEUTRAL)
    return True


def print_incident(console, host, value):
    if "incident" not in value:
        return False
    _line(console, "incident %s on %s: evidence in %s (%d file(s))" % (
        value["incident"], host, value.get("diagnostics_dir") or "-", len(value.get("diagnostics_files") or [])))
    before = value.get("health_before")
    if isinstance(before, dict) and before.get("severity"):
        _line(console, "  health before: %s" % before["severity"], SEVERITY_STYLE.get(str(before["severity"])))
    elif before:
        _line(console, "  health before: %s" % plain(before))
    for action in value.get("actions") or []:
        if isinstance(action, dict):
            _line(console, "  %s: %s" % (action.get("name") or "action", plain(action.get("summary")) if action.get(
                "summary") else "done" if action.get("done") else "not done"))
        else:
            _line(console, "  %s" % plain(action))
    return True


def print_health(console, host, value):
    """health and preflight: the severity, the counts and what is not OK."""
    if "severity" not in value:
        return False
    severity = str(value["severity"]).upper()
    counts = value.get("counts") or {}
    _line(console, "%s on %s: %s (%s)" % (
        value.get("procedure") or "health", host, severity,
        ", ".join("%s %s" % (count, name) for name, count in counts.items()) if isinstance(counts, dict) else
        plain(counts)), SEVERITY_STYLE.get(severity))
    for name in value.get("failing") or []:
        _line(console, "  not OK: %s" % plain(name), SEVERITY_STYLE.get(severity))
    if value.get("fail_message"):
        _line(console, "  %s" % value["fail_message"], BAD_STYLE)
    return True


def print_prepare(console, host, value):
    if "python" not in value or value.get("status") == "failed":
        return False
    installed = [name for name, key in (("psycopg", "psycopg_changed"), ("zstd", "zstd_changed")) if value.get(key)]
    _line(console, "prepare on %s: python %s, docker %s, compose %s; %s" % (
        host, value.get("python") or "-", value.get("docker_version") or "-", value.get("compose_version") or "-",
        "installed %s" % ", ".join(installed) if installed else "nothing to install"))
    return True
