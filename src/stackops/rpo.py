"""Backups seen in a run and the RPO verdict on them: the logic behind `--rpo` / `--rpo-strict` exit codes.

The report shows the same model (report.render_backups), but nothing here renders.
"""
from .runmodel import _host_results, _is_action, redact
from .units import human_duration

TREND_LENGTH = 10


def find_backups(events, summary, trend_length=TREND_LENGTH):
    """Per host: the backup taken (size, duration), its verification, retention, the catalog trend and the RPO age."""
    hosts = {}

    def slot(host):
        return hosts.setdefault(host, {"backup": None, "verification": None, "retention": None, "catalog": None,
                                       "skipped_reason": None})

    for event in events:
        kind = event.get("event")
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        host = data.get("host") or "?"
        if kind in ("runner_on_ok", "runner_on_failed") and _is_action(data, "pg_backup") and res.get("verification"):
            # pg_backup proves the set itself (its trial restore runs while it dumps): ok, or failed as unverified.
            slot(host)["verification"] = dict(res["verification"], skipped=False,
                                              verified=bool(res["verification"].get("verified")))
        if kind == "runner_on_ok" and _is_action(data, "pg_backup") and res.get("backup_id"):
            real = res.get("size_bytes") is not None and res.get("duration_seconds") is not None
            if real or slot(host)["backup"] is None:
                slot(host)["backup"] = dict(res, planned_only=not real)
        elif _is_action(data, "pg_backup_verify"):
            if kind == "runner_on_skipped":
                slot(host)["verification"] = {"verified": None, "skipped": True}
            elif kind in ("runner_on_ok", "runner_on_failed"):
                slot(host)["verification"] = dict(res, skipped=False, verified=bool(res.get("verified")))
        elif kind == "runner_on_ok" and _is_action(data, "pg_backup_retention"):
            slot(host)["retention"] = res
        elif kind == "runner_on_ok" and (_is_action(data, "pg_backup_info") or _is_action(data, "pg_backup_list")):
            slot(host)["catalog"] = res
        elif kind == "runner_on_ok" and data.get("task") == "Report the skip":
            slot(host)["skipped_reason"] = res.get("msg")
    for host, value in _host_results(summary).items():
        # Another procedure's result (maintenance names its pre-maintenance backup_id) is not a backup result.
        if value.get("procedure") not in (None, "backup", "backups"):
            continue
        if "backup_id" in value or "backups" in value or "latest_verified" in value:
            entry = slot(host)
            # `backups --offsite` publishes the off-site RPO: it, not the local listing, is what --rpo judges.
            offsite = value.get("rpo_source") == "offsite"
            if isinstance(value.get("backups"), list) and (entry["catalog"] is None or offsite):
                entry["catalog"] = value
            if value.get("backup_id") and entry["backup"] is None:
                entry["backup"] = {"backup_id": value.get("backup_id"), "size_bytes": value.get("size_bytes"),
                                   "duration_seconds": value.get("duration_seconds"), "planned_only": False}
            if value.get("skipped_reason") and not entry["skipped_reason"]:
                entry["skipped_reason"] = value["skipped_reason"]
            if entry["verification"] is None and "verified" in value:
                entry["verification"] = {"verified": value.get("verified"), "skipped": value.get("verified") is None}
    model = {}
    for host, entry in hosts.items():
        if not any(entry.values()):
            continue
        entry["trend"] = backup_trend(entry["catalog"], entry["backup"], entry["verification"], trend_length)
        entry["latest_verified_age"] = latest_verified_age(entry["catalog"], entry["backup"], entry["verification"])
        model[host] = entry
    return model


def backup_trend(catalog, backup, verification, length=TREND_LENGTH):
    """The last `length` backups, oldest first: [{id, size_bytes, started_at, verified, current}]."""
    rows = []
    current_id = (backup or {}).get("backup_id") if backup and not backup.get("planned_only") else None
    database = ((backup or {}).get("manifest") or {}).get("database")
    for item in (catalog or {}).get("backups") or []:
        if not isinstance(item, dict):
            continue
        if database and item.get("database") and item.get("database") != database:
            continue
        rows.append({"id": item.get("id"), "size_bytes": item.get("size_bytes") or 0,
                     "started_at": item.get("started_at"), "verified": item.get("verified"),
                     "current": item.get("id") == current_id})
    # The catalog is read before the new backup is taken: add it, newest first like the catalog.
    if current_id and not any(row["current"] for row in rows):
        rows.insert(0, {"id": current_id, "size_bytes": backup.get("size_bytes") or 0,
                        "started_at": (backup.get("manifest") or {}).get("started_at"),
                        "verified": (verification or {}).get("verified"), "current": True})
    rows.sort(key=lambda row: str(row.get("started_at") or row.get("id") or ""), reverse=True)
    return list(reversed(rows[:length]))


def latest_verified_age(catalog, backup=None, verification=None):
    """Seconds since the newest verified backup (None when none is verified).

    A backup this run took and verified counts as age 0 (relative to the run).
    """
    if backup and not backup.get("planned_only") and (verification or {}).get("verified"):
        return 0.0
    catalog = catalog or {}
    if catalog.get("rpo_source") == "offsite":
        return float(catalog["rpo_seconds"]) if catalog.get("rpo_seconds") is not None else None
    if catalog.get("rpo_seconds") is not None:
        return float(catalog["rpo_seconds"])
    latest = catalog.get("latest_verified")
    if isinstance(latest, dict):
        if latest.get("age_seconds") is not None:
            return float(latest["age_seconds"])
        ages = [v.get("age_seconds") for v in latest.values() if isinstance(v, dict) and v.get("age_seconds") is not None]
        if ages:
            return float(min(ages))
    ages = [b.get("age_seconds") for b in catalog.get("backups") or []
            if isinstance(b, dict) and b.get("verified") and b.get("age_seconds") is not None]
    return float(min(ages)) if ages else None


def rpo_check(age_seconds, rpo_seconds):
    """Compare the age of the newest verified backup with the RPO.

    age_seconds None means there is no verified backup at all: always exceeded.
    """
    if age_seconds is None:
        return {"rpo_seconds": rpo_seconds, "age_seconds": None, "exceeded": True, "margin_seconds": None,
                "message": "no verified backup exists (RPO %s)" % human_duration(rpo_seconds)}
    age = float(age_seconds)
    exceeded = age > rpo_seconds
    return {"rpo_seconds": rpo_seconds, "age_seconds": age, "exceeded": exceeded,
            "margin_seconds": round(rpo_seconds - age, 3),
            "message": "newest verified backup is %s old, %s the RPO of %s" % (
                human_duration(age), "over" if exceeded else "within", human_duration(rpo_seconds))}


def rpo_from_summary(summary, events, rpo_seconds):
    """Per host RPO verdicts for a backups/backup run (hosts without any backup data: none verified)."""
    backups = find_backups(redact(events or []), redact(summary or {}))
    verdicts = {}
    for host in sorted(set(backups) | set((summary or {}).get("hosts") or {})):
        entry = backups.get(host)
        verdicts[host] = rpo_check((entry or {}).get("latest_verified_age"), rpo_seconds)
        if not entry or (entry.get("catalog") is None and entry.get("backup") is None):
            verdicts[host]["message"] = ("the run read no backup catalog for this host: RPO %s unknown, "
                                         "counted as exceeded" % human_duration(rpo_seconds))
    return verdicts
