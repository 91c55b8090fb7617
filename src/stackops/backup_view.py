"""`stackops backup`, `restore` and `pitr` for people: what was written, replaced or recovered, in a few lines.

The shapes are the roles' stackops_result (roles/backup, roles/restore, roles/pitr; docs/backup.md, docs/pitr.md).
"""
from rich.text import Text

from .units import human_bytes, human_duration, plain

OK_STYLE, BAD_STYLE, NEUTRAL = "green", "bold red", "yellow"


def _line(console, text, style=None):
    console.print(Text(text, style=style) if style else text, markup=False, highlight=False)


def _count(value):
    return "-" if value is None else "{:,}".format(int(value))


def _names(items):
    return plain(list(items)) if items else "none"


def _offsite(console, offsite):
    for copy in offsite or []:
        if not isinstance(copy, dict):
            continue
        where = copy.get("target_name") or copy.get("target") or "off-site"
        if copy.get("copied"):
            what = "copied %s" % human_bytes(copy.get("uploaded_bytes"))
        elif copy.get("present"):
            what = "already there"
        else:
            what = plain(copy.get("msg")) if copy.get("msg") else "not copied"
        _line(console, "  off-site %s: %s" % (where, what))


def _retention(console, removed, freed):
    if removed:
        _line(console, "  retention removed %d set(s) (%s), freed %s" % (len(removed), _names(removed),
                                                                       human_bytes(freed)))


def _physical_backup(console, host, value):
    if not value.get("backup_id"):
        return False
    backup = value.get("backup") or {}
    verification = value.get("verification") or {}
    durations = value.get("durations") or {}
    _line(console, "physical base backup %s on %s: %s, took %s" % (
        value.get("backup_id") or backup.get("id") or "-", host, human_bytes(backup.get("size_bytes")),
        human_duration(durations.get("backup"))))
    if verification.get("verified"):
        _line(console, "  verified in %s (restored and started in a scratch instance)" % human_duration(
            verification.get("seconds") or durations.get("verify")), OK_STYLE)
    elif verification:
        _line(console, "  verification FAILED", BAD_STYLE)
    window = value.get("window") or {}
    if window:
        _line(console, "  recoverable from %s to %s" % (window.get("earliest_recoverable") or "-",
                                                      window.get("latest_recoverable") or "-"))
    _retention(console, value.get("retention_deleted"), None)
    _offsite(console, value.get("offsite"))
    return True


def _group_backup(console, host, value):
    backups = value.get("backups") or []
    if not backups:
        return False
    verified = value.get("verified") or []
    _line(console, "backup group %s on %s: %d database(s), %s" % (
        value.get("group_id") or "-", host, len(backups), human_bytes(value.get("size_bytes"))))
    for index, backup_id in enumerate(backups):
        state = verified[index] if index < len(verified) else None
        _line(console, "  %s  %s" % (backup_id or "-", "verified" if state else "NOT verified" if state is False
                                     else "not verified"), None if state else NEUTRAL)
    _retention(console, value.get("retention_removed"), value.get("retention_freed_bytes"))
    _offsite(console, value.get("offsite"))
    return True


def print_backup(console, host, value):
    """The backup just taken (logical, all databases, or physical); True when printed."""
    if value.get("kind") == "physical":
        return _physical_backup(console, host, value)
    if value.get("all_databases"):
        return _group_backup(console, host, value)
    status = value.get("status")
    if status == "skipped":
        _line(console, "backup of %s on %s: not due, %s" % (value.get("database"), host, value.get("skipped_reason")),
              NEUTRAL)
        return True
    if status == "planned":
        space = value.get("space") or {}
        _line(console, "backup of %s on %s: would write %s (expected %s, %s free)" % (
            value.get("database"), host, value.get("backup_id") or "-",
            human_bytes(space.get("expected_size_bytes") or value.get("database_size_bytes")),
            human_bytes(space.get("free_bytes"))))
        return True
    if not value.get("backup_id"):
        return False
    rows = value.get("rows")
    _line(console, "backup %s of %s on %s: %s, %s table(s)%s, took %s" % (
        value["backup_id"], value.get("database"), host, human_bytes(value.get("size_bytes")),
        _count(value.get("tables")), "" if rows is None else ", %s rows" % _count(rows),
        human_duration(value.get("duration_seconds"))))
    if value.get("verified") is True:
        _line(console, "  verified in %s (trial restore)" % human_duration(value.get("verification_duration_seconds")),
              OK_STYLE)
    elif value.get("verified") is False:
        _line(console, "  verification FAILED: the set is kept but not trusted", BAD_STYLE)
    else:
        _line(console, "  not verified (--no-verify)", NEUTRAL)
    if value.get("encrypted"):
        _line(console, "  encrypted at rest")
    _retention(console, value.get("retention_removed"), value.get("retention_freed_bytes"))
    _offsite(console, value.get("offsite"))
    return True


def _pitr_restore(console, host, value):
    plan = value.get("plan") or {}
    backup = plan.get("backup") or {}
    target = plan.get("target")
    to = "the latest WAL" if target == "latest" else "%s %s" % (target, plan.get("target_value"))
    _line(console, "point-in-time recovery on %s to %s from base backup %s: %s" % (
        host, to, backup.get("id") or "-", "swapped in" if value.get("swapped") else "NOT swapped in"),
        None if value.get("swapped") else NEUTRAL)
    durations = value.get("durations") or {}
    if durations:
        _line(console, "  took %s (%s)" % (human_duration(sum(v for v in durations.values() if v)), ", ".join(
            "%s %s" % (name, human_duration(seconds)) for name, seconds in durations.items())))
    scratch = value.get("scratch") or {}
    if scratch:
        _line(console, "  checked in a scratch instance: %s database(s) at %s" % (scratch.get("databases"),
                                                                                 scratch.get("lsn")))
    if value.get("previous_data"):
        _line(console, "  the data it replaced is kept in %s" % value["previous_data"])
    return True


def _group_restore(console, host, value):
    restored = value.get("restored") or []
    if value.get("status") == "planned" or not restored:
        _line(console, "restore of group %s on %s: %s; databases %s, would replace %s, would fill empty %s" % (
            value.get("group_id") or "-", host, value.get("status") or "-", _names(value.get("databases")),
            _names(value.get("would_replace")), _names(value.get("would_replace_empty"))),
            None if value.get("status") in ("ok", "planned") else NEUTRAL)
        return True
    _line(console, "restore of group %s on %s: %d database(s) restored" % (value.get("group_id") or "-", host,
                                                                          len(restored)))
    _line(console, "  restored: %s" % _names(restored), OK_STYLE)
    if value.get("would_replace"):
        _line(console, "  replaced (they had content): %s" % _names(value["would_replace"]))
    if value.get("would_replace_empty"):
        _line(console, "  filled (they existed, empty): %s" % _names(value["would_replace_empty"]))
    _line(console, "  roles created: %s; tablespaces created: %s" % (_names(value.get("created_roles")),
                                                                  _names(value.get("created_tablespaces"))))
    return True


def print_restore(console, host, value):
    """What was restored, replaced and compared, and how long the writers were stopped; True when printed."""
    if value.get("kind") == "point-in-time":
        return "plan" in value and _pitr_restore(console, host, value)
    if value.get("all_databases"):
        return _group_restore(console, host, value)
    if "backup_id" not in value and "restored" not in value:
        return False
    target = value.get("target_database") or value.get("database")
    mode = value.get("mode")
    if value.get("status") == "planned":
        _line(console, "restore of %s into %s on %s (%s): planned; would drop %s, compare %s table(s), %s rows" % (
            value.get("backup_id") or "-", target, host, mode or "-", _names(value.get("would_drop")),
            _count(value.get("tables_to_verify")), _count(value.get("rows_to_verify"))))
        if value.get("services_would_stop_and_restart"):
            _line(console, "  would stop and restart: %s" % _names(value["services_would_stop_and_restart"]))
        return True
    if not value.get("restored"):
        if value.get("needs_confirmation"):
            _line(console, "restore of %s on %s not done: replacing %s needs --yes" % (
                value.get("backup_id") or "-", host, target), NEUTRAL)
            return True
        return False
    what = "replaced %s" % target if mode in ("replace", "replace_empty") else "created %s" % target
    _line(console, "restore of %s on %s: %s in %s" % (value.get("backup_id") or "-", host, what,
                                                     human_duration(value.get("duration_seconds"))))
    compared = "compared %s table(s), %s rows" % (_count(value.get("tables_verified")), _count(value.get("rows_verified")))
    if value.get("content_compared"):
        compared += ", content checksums too"
    _line(console, "  " + compared, OK_STYLE)
    if value.get("old_database"):
        _line(console, "  the previous data is kept as database %s" % value["old_database"])
    stopped = value.get("services_stopped") or []
    if stopped:
        # The role stops the writers before the restore and starts them after it: down for at least its time.
        _line(console, "  writers stopped for the restore (at least %s): %s; restarted: %s" % (
            human_duration(value.get("duration_seconds")), _names(stopped), _names(value.get("services_restarted"))))
    else:
        _line(console, "  no writer had to be stopped")
    failed = value.get("health_failed") or []
    if failed:
        _line(console, "  unhealthy after the restore: %s" % _names(failed), BAD_STYLE)
    elif value.get("health"):
        _line(console, "  healthy after the restore: %s" % _names(value["health"]), OK_STYLE)
    if value.get("from_remote"):
        _line(console, "  fetched from off-site first")
    return True


def print_pitr(console, host, value):
    """pitr enable / disable / mark / status; True when printed."""
    action = value.get("action")
    if action in ("enable", "disable") and "changes" in value:
        changes = value.get("changes") or []
        _line(console, "pitr %s on %s: %s" % (action, host, "%d change(s)" % len(changes) if changes else
                                             "nothing to change"))
        for change in changes:
            _line(console, "  - %s" % change)
        if value.get("restarted"):
            _line(console, "  PostgreSQL was restarted to apply the settings", NEUTRAL)
        if value.get("kept"):
            _line(console, "  kept: %s" % value["kept"])
        return True
    if action == "mark" and value.get("restore_point"):
        point = value.get("restore_point") or {}
        if isinstance(point, dict):
            _line(console, "restore point %s on %s at LSN %s (%s)" % (point.get("name"), host, point.get("lsn"),
                                                                     point.get("at")))
        else:
            _line(console, "restore point %s on %s" % (point, host))
        return True
    if action == "status" and "enabled" in value:
        if not value.get("enabled"):
            _line(console, "PITR on %s: not enabled (stackops pitr enable)" % host, NEUTRAL)
            return True
        _line(console, "PITR on %s: %s; recoverable from %s to %s" % (
            host, str(value.get("status")).upper(), value.get("earliest_recoverable") or "-",
            value.get("latest_recoverable") or "-"), OK_STYLE if value.get("status") == "OK" else NEUTRAL)
        _line(console, "  WAL receiver %s, lag %s, slot keeps %s, archive %s, %d base backup(s)" % (
            "alive" if value.get("receiver_alive") else "DOWN", human_bytes(value.get("receiver_lag_bytes")),
            human_bytes(value.get("slot_retained_bytes")), human_bytes(value.get("archive_size_bytes")),
            len(value.get("backups") or [])))
        for problem in value.get("problems") or []:
            _line(console, "  - %s" % problem, BAD_STYLE)
        return True
    return False
