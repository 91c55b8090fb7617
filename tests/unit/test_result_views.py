"""Each procedure's human summary (src/stackops/result_view.py and the renderer modules it picks).

Every result below is the shape a role publishes as stackops_result (taken from recorded runs and the roles'
report tasks). The summary must be printed by the procedure's own renderer, say what matters, and never show a
Python repr: an operator reads words and tables, not `[{'name': ...`.
"""
import io

import pytest
from rich.console import Console

from stackops.display import print_summary
from stackops.result_view import outline, print_results

REPR_MARKS = ("[{'", "{'", "['")

BACKUP = {
    "procedure": "backup", "action": "backup", "status": "ok", "check_mode": False, "database": "appdb",
    "backup_dir": "/var/backups/demo", "backup_id": "appdb-20261207T194120331Z",
    "path": "/var/backups/demo/appdb-20261207T194120331Z", "size_bytes": 1887436, "duration_seconds": 3.2,
    "throughput_mib_per_second": 0.6, "database_size_bytes": 8388608, "tables": 12, "rows": 120000,
    "verified": True, "verification_duration_seconds": 1.4, "encrypted": False,
    "retention_removed": ["appdb-20261201T030000000Z"], "retention_freed_bytes": 1048576, "retention_busy": {},
    "last_backup_timestamp": "2026-12-07T19:41:24Z",
    "space": {"backup_dir_exists": True, "measured_path": "/var/backups/demo", "free_bytes": 10 ** 10,
              "expected_size_bytes": 2 * 10 ** 6, "needed_bytes": 3 * 10 ** 6},
    "would_create_backup_dir": False, "skipped_reason": None, "latest_verified": None,
    "offsite": [{"target_name": "s3-eu", "target": "s3://bucket/demo", "group_id": "appdb-20261207T194120331Z",
                 "copied": True, "present": True, "uploaded_bytes": 1887436, "resumed_bytes": 0,
                 "throughput_mib_per_second": 9.1, "retention": {"deleted": []}, "msg": None}],
    "error": None, "failed_task": None,
    "notifications": {"events": ["success"], "deliveries": [], "undelivered": [], "duplicates": []},
}

BACKUP_ALL = {
    "procedure": "backup", "action": "backup", "all_databases": True, "status": "ok", "check_mode": False,
    "group_id": "all-20261207T194117Z", "backup_dir": "/var/backups/demo", "databases": ["app", "postgres", "reports"],
    "backups": ["app-20261207T194120331Z", "postgres-20261207T194126449Z", "reports-20261207T194131569Z"],
    "verified": [True, True, True], "encrypted": [False, False, False], "size_bytes": 5906,
    "retention_removed": [], "retention_removed_groups": [], "retention_freed_bytes": 0, "offsite": None,
    "error": None, "failed_task": None,
}

BACKUP_PHYSICAL = {
    "procedure": "backup", "kind": "physical", "status": "ok",
    "backup": {"id": "20261207T194132", "kind": "physical", "status": "DONE", "size_bytes": 4827195,
               "begin_lsn": "0/3000028", "end_lsn": "0/4000000", "verified": True, "age_seconds": 6},
    "backup_id": "20261207T194132",
    "verification": {"verified": True, "manifest": "ok", "scratch": {"databases": 5, "lsn": "0/3000178"},
                     "seconds": 5.553, "backup_id": "20261207T194132"},
    "durations": {"backup": 5.637, "verify": 5.553}, "retention_deleted": [], "cleaned_up": [],
    "window": {"earliest_recoverable": "2026-12-07T19:41:35Z", "latest_recoverable": "2026-12-07T19:41:43Z",
               "receiver_alive": True},
}

RESTORE = {
    "procedure": "restore", "status": "ok", "check_mode": False, "backup_id": "appdb-20261207T194120331Z",
    "database": "appdb", "target_database": "appdb", "mode": "replace", "needs_confirmation": False,
    "would_drop": ["appdb"], "restored": True, "tables_verified": 12, "rows_verified": 120000,
    "tables_to_verify": 12, "rows_to_verify": 120000, "content_compared": True,
    "old_database": "appdb_before_restore_20261207", "duration_seconds": 7.5,
    "services_stopped": ["api", "worker"], "services_restarted": ["api", "worker"],
    "services_would_stop_and_restart": [], "health": {"api": 200}, "health_failed": [], "health_ok": True,
    "from_remote": None, "error": None, "failed_task": None,
}

RESTORE_PITR = {
    "procedure": "restore", "kind": "point-in-time", "status": "ok",
    "plan": {"target": "latest", "target_value": None,
             "backup": {"id": "20261207T194132", "kind": "physical", "size_bytes": 4827195},
             "inside_window": True, "earliest_recoverable": "2026-12-07T19:41:35Z",
             "latest_recoverable": "2026-12-07T19:42:29Z", "wal_first": "000000010000000000000003"},
    "swapped": True, "recovered_volume": "/srv/project/pgroot.pitr-20261207t194229z",
    "previous_data": "/srv/project/pgroot.pitr-20261207t194229z",
    "scratch": {"databases": 5, "lsn": "0/50000C8", "at": "2026-12-08 08:42:33+13"},
    "durations": {"plan": 0.007, "wal": 0.23, "recover": 1.859, "scratch_check": 2.871, "swap": 1.614, "health": 3.281},
    "cleaned_up": [], "window": {"earliest_recoverable": "2026-12-07T19:41:35Z", "receiver_alive": True},
}

MAINTENANCE = {
    "procedure": "maintenance", "status": "ok", "failed_phase": None, "level": "weekly",
    "planned": ["vacuum_analyze", "reindex", "log_cleanup", "docker_prune"],
    "done": [
        {"name": "vacuum_analyze", "changed": True, "tables": ["public.orders", "public.items"], "tables_skipped": 3,
         "reclaimed_bytes": 9109504, "reclaimed": "8.69 MB", "duration_seconds": 1.92, "deadline_reached": False,
         "actions": [{"database": "appdb", "schema": "public", "table": "orders",
                      "statement": 'VACUUM (ANALYZE) "public"."orders"', "duration_seconds": 0.84,
                      "reclaimed_bytes": 9109504, "ran": True}]},
        {"name": "reindex", "changed": True, "tables": ["public.orders"], "tables_skipped": 0,
         "reclaimed_bytes": 0, "reclaimed": "0.00 Bytes", "duration_seconds": 0.4, "deadline_reached": False,
         "actions": []},
        {"name": "log_cleanup", "changed": True, "files_removed": 4, "reclaimed_bytes": 2048,
         "reclaimed": "2.00 KB", "dirs": ["/var/log/app"]},
        {"name": "docker_prune", "changed": False, "containers_removed": 0, "images_removed": 0,
         "reclaimed_bytes": 0, "reclaimed": "0.00 Bytes"},
    ],
    "skipped": [{"name": "vacuum_full", "reason": "window deadline 2026-12-07T04:00:00Z reached; not started"}],
    "deadline": "2026-12-07T04:00:00Z", "deadline_reached": True, "reclaimed_bytes": 9111552,
    "reclaimed": "8.69 MB", "backup_id": "appdb-20261207T030000000Z",
    "restore_point": {"name": "maintenance-20261207", "lsn": "0/5000000", "at": "2026-12-07T03:00:01Z"},
    "images_before": {"api": "sha256:abc"}, "baseline_latency_ms": {"api": 12.5},
    "warnings": [{"task": "reindex", "message": "public.big has an invalid index left by a killed run"}],
    "failed": None, "rollback": None, "maintenance_mode": "off", "maintenance_strategy": "hold_writers",
    "writers_held": [{"service": "worker", "replicas": 1}], "health_after": "OK", "duration_seconds": 12.3,
}

MAINTENANCE_ROLLED_BACK = dict(
    MAINTENANCE, status="rolled_back", failed={"name": "reindex", "task": "Run reindex", "msg": "lock timeout"},
    rollback={"restored_images": {"api": "sha256:abc"}, "maintenance_mode": "off", "health": "OK"})

STARTUP = {
    "procedure": "startup", "status": "ok", "check_mode": False,
    "tiers": [{"tier": 1, "services": ["db"], "seconds": 4.2, "changed_services": ["db"], "gates": ["postgres"],
               "summary": "tier 1 (db): 4.2s, started db"},
              {"tier": 2, "services": ["api", "worker"], "seconds": 3.1, "changed_services": ["api"],
               "gates": ["api"], "summary": "tier 2 (api, worker): 3.1s, started api"}],
    "total_seconds": 7.3, "changed_services": ["db", "api"], "failed_tier": None,
}

SERVICE = {"procedure": "service", "status": "ok", "check_mode": False, "action": "stop", "services": [],
           "changed_services": ["api", "worker", "db"], "replaced": [], "elapsed": 6.1}

SCALE = {"procedure": "scaling", "status": "ok", "backend": "compose", "service": "api", "replicas_requested": 3,
         "replicas_before": 1, "replicas_after": 3,
         "steps": [{"replicas": 3, "healthy": 3, "seconds": 4.0}], "restored": None, "error": None}

INCIDENT = {
    "procedure": "incident", "status": "ok", "incident": "db_connections_exhausted",
    "diagnostics_dir": "/var/backups/demo/incidents/20261207T1942", "diagnostics_files": ["ps.txt", "logs.txt"],
    "actions": [{"name": "terminate idle sessions", "usage_before": {"client_backends": 98, "max_connections": 100},
                 "targets": [{"pid": 41, "state": "idle"}], "terminated": [41],
                 "summary": "connections 98/100, terminated 1 idle session(s)"}],
    "health_before": {"severity": "CRITICAL", "counts": {"OK": 3, "CRITICAL": 1}},
}

HEALTH = {"procedure": "health", "status": "ok", "severity": "WARNING", "counts": {"OK": 7, "WARNING": 1, "CRITICAL": 0},
          "failing": ["disk_backups"]}

PREFLIGHT = {"procedure": "preflight", "status": "ok", "severity": "OK", "counts": {"OK": 9, "WARNING": 0},
             "failing": [], "fail_message": ""}

PREPARE = {"procedure": "prepare", "status": "ok", "check_mode": False, "python": "/usr/bin/python3",
           "psycopg_changed": True, "zstd_changed": False, "docker_version": "27.3.1", "compose_version": "2.29.7",
           "error": None, "failed_task": None}

PITR_ENABLE = {
    "procedure": "pitr", "action": "enable", "status": "ok",
    "changes": ["create replication role stackops_pitr", "create physical replication slot stackops_pitr"],
    "restarted": False, "receiver_alive": True, "pitr_dir": "/var/backups/pitr", "server": "demo",
    "window": {"earliest_recoverable": None, "latest_recoverable": None, "receiver_alive": True},
}

PITR_STATUS = {
    "procedure": "pitr", "action": "status", "status": "OK", "enabled": True, "receiver_alive": True,
    "receiver_lag_bytes": 0, "slot_retained_bytes": 16384, "earliest_recoverable": "2026-12-07T19:41:35Z",
    "latest_recoverable": "2026-12-07T19:42:42Z", "archive_size_bytes": 33554432,
    "backups": [{"id": "20261207T194132", "size_bytes": 4827195}],
    "archive_disk": {"free_bytes": 10 ** 10, "total_bytes": 2 * 10 ** 10}, "receiver_error": None,
    "synchronous": False, "problems": [],
}

PITR_MARK = {"procedure": "pitr", "action": "mark", "status": "ok",
             "restore_point": {"name": "before-migration-42", "lsn": "0/6000090", "at": "2026-12-07T19:50:00Z"}}

# restore --all-databases onto a fresh server (recorded from the disaster recovery of docs/restore.md).
RESTORE_ALL = {
    "procedure": "restore", "all_databases": True, "status": "ok", "check_mode": False,
    "group_id": "all-20261207T203824Z", "databases": ["postgres", "reports"], "would_replace": [],
    "would_replace_empty": ["postgres"], "created_roles": ["shape_reader"], "created_tablespaces": [],
    "restored": ["postgres", "reports"], "error": None, "failed_task": None,
}

# (CLI procedure, stackops_result of one host, words the summary must contain)
CASES = [
    ("backup", BACKUP, ["backup appdb-20261207T194120331Z of appdb", "1.8 MiB", "12 table(s)", "120,000 rows",
                        "took 3.2s", "verified in 1.4s", "retention removed 1 set(s)", "off-site s3-eu: copied"]),
    ("backup", BACKUP_ALL, ["backup group all-20261207T194117Z", "3 database(s)", "reports-20261207T194131569Z  verified"]),
    ("backup", BACKUP_PHYSICAL, ["physical base backup 20261207T194132", "4.6 MiB", "verified in 5.6s",
                                 "recoverable from 2026-12-07T19:41:35Z"]),
    ("restore", RESTORE, ["restore of appdb-20261207T194120331Z", "replaced appdb in 7.5s",
                          "compared 12 table(s), 120,000 rows", "writers stopped for the restore (at least 7.5s): api, worker"]),
    ("restore", RESTORE_ALL, ["restore of group all-20261207T203824Z on demo: 2 database(s) restored",
                              "restored: postgres, reports", "filled (they existed, empty): postgres",
                              "roles created: shape_reader"]),
    ("restore", RESTORE_PITR, ["point-in-time recovery", "to the latest WAL", "base backup 20261207T194132",
                               "swapped in", "kept in /srv/project/pgroot.pitr-20261207t194229z"]),
    ("maintenance", MAINTENANCE, ["maintenance on demo: OK, level weekly, 4 task(s) in 12.3s, 8.7 MiB reclaimed",
                                  "vacuum_analyze", "8.7 MiB", "1.9s", "vacuum_full", "skipped",
                                  "restore point taken first: maintenance-20261207"]),
    ("maintenance", MAINTENANCE_ROLLED_BACK, ["ROLLED BACK", "failed: name reindex", "rollback: restored_images api"]),
    ("startup", STARTUP, ["startup on demo: 2 tier(s) healthy in 7.3s; started db, api", "tier 2 (api, worker): 3.1s"]),
    ("service", SERVICE, ["stop the stack on demo: changed api, worker, db in 6.1s"]),
    ("scale", SCALE, ["scale api on demo: 1 -> 3 replicas (asked 3)", "replicas 3, healthy 3"]),
    ("incident", INCIDENT, ["incident db_connections_exhausted on demo", "2 file(s)", "health before: CRITICAL",
                            "terminate idle sessions: connections 98/100"]),
    ("health", HEALTH, ["health on demo: WARNING (7 OK, 1 WARNING, 0 CRITICAL)", "not OK: disk_backups"]),
    ("preflight", PREFLIGHT, ["preflight on demo: OK"]),
    ("prepare", PREPARE, ["prepare on demo: python /usr/bin/python3, docker 27.3.1", "installed psycopg"]),
    ("pitr", PITR_ENABLE, ["pitr enable on demo: 2 change(s)", "- create physical replication slot stackops_pitr"]),
    ("pitr", PITR_STATUS, ["PITR on demo: OK; recoverable from 2026-12-07T19:41:35Z", "WAL receiver alive",
                           "1 base backup(s)"]),
    ("pitr", PITR_MARK, ["restore point before-migration-42 on demo at LSN 0/6000090"]),
]


def _render(procedure, value, verbose=False):
    stream = io.StringIO()
    console = Console(file=stream, no_color=True, width=200, soft_wrap=True, highlight=False)
    print_results(console, procedure, {"demo": value}, verbose=verbose)
    return stream.getvalue()


def _no_repr(text):
    found = [mark for mark in REPR_MARKS if mark in text]
    assert not found, "a Python repr (%s) in the human output:\n%s" % (found, text)


@pytest.mark.parametrize("procedure,value,expected", CASES, ids=["%s-%d" % (c[0], i) for i, c in enumerate(CASES)])
def test_each_procedure_has_its_own_summary(procedure, value, expected):
    text = _render(procedure, value)
    _no_repr(text)
    assert "result demo:" not in text, "fell back to the outline:\n%s" % text
    for words in expected:
        assert words in text, "%r missing from:\n%s" % (words, text)


@pytest.mark.parametrize("procedure,value,expected", CASES, ids=["%s-%d" % (c[0], i) for i, c in enumerate(CASES)])
def test_verbose_adds_the_whole_result_without_a_repr(procedure, value, expected):
    text = _render(procedure, value, verbose=True)
    _no_repr(text)
    assert "result demo:" in text and expected[0] in text


def test_the_fallback_outlines_nested_data():
    value = {"procedure": "new-thing", "status": "ok", "done": [{"name": "a", "sizes": [1, 2]}, {"name": "b"}],
             "nested": {"inner": {"x": None, "y": True}}, "empty": []}
    text = _render("new-thing", value)
    _no_repr(text)
    assert text.splitlines() == [
        "result demo:", "  procedure: new-thing", "  status: ok", "  done:", "    - name: a", "      sizes:",
        "        - 1", "        - 2", "    - name: b", "  nested:", "    inner:", "      x: -", "      y: true",
        "  empty: (none)"]


def test_the_fallback_is_cut_but_says_where_the_rest_is():
    text = _render("new-thing", {"items": list(range(100))})
    assert "more lines (-v or --json for all of it)" in text and len(text.splitlines()) < 70


def test_outline_of_a_scalar_and_of_a_list_of_lists():
    assert outline(3) == ["3"]
    assert outline([[1, 2], []]) == ["- - 1", "  - 2", "- (none)"]


def test_the_whole_summary_of_a_maintenance_run_has_no_repr():
    summary = {"procedure": "maintenance", "run_id": "r1", "status": "successful", "exit_code": 0, "duration": 14.0,
               "changed": 3, "hosts": {"demo": {"ok": 30, "changed": 3}}, "failed_tasks": [],
               "unreachable_hosts": [], "result": {"demo": MAINTENANCE}}
    stream = io.StringIO()
    print_summary(summary, stream=stream)
    text = stream.getvalue()
    _no_repr(text)
    assert "maintenance on demo: OK" in text and "SUCCESSFUL  maintenance" in text


@pytest.mark.parametrize("procedure,value", [
    ("pitr", {"procedure": "pitr", "kind": None, "action": "status", "status": "failed",
              "error": "cannot read login_password_file /x/db_password", "failed_task": "Read the PITR status"}),
    ("backup", dict(BACKUP, status="failed", backup_id=None, size_bytes=None, verified=None,
                    error="pg_dump: connection refused", failed_task="Take the backup")),
    ("health", {"procedure": "health", "status": "failed", "error": "docker is not running",
                "failed_task": "Check the stack"}),
])
def test_a_failed_procedure_says_where_and_why_and_nothing_it_does_not_know(procedure, value):
    text = _render(procedure, value)
    _no_repr(text)
    assert text.splitlines()[0] == "%s on demo: FAILED at '%s': %s" % (procedure, value["failed_task"], value["error"])
    assert "not enabled" not in text and "result demo:" not in text


def test_a_failed_maintenance_window_still_shows_its_tasks():
    value = dict(MAINTENANCE, status="failed", failed_phase="tasks", error="reindex timed out",
                 failed_task="Run reindex")
    text = _render("maintenance", value)
    assert text.startswith("maintenance on demo: FAILED at 'Run reindex': reindex timed out\n")
    assert "vacuum_analyze" in text
