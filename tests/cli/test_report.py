"""Pure logic of the operator's report: escaping, redaction, bar geometry, RPO math, the model from events."""
import html.parser
import json

import pytest

from stackops import errors, report, rpo, runmodel, units
from stackops.cli import build_parser


class _Collector(html.parser.HTMLParser):
    """Every start tag (name, attrs) and all text: the page must parse, and scripts must not exist."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(page):
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def _event(counter, kind, created, **data):
    return {"counter": counter, "event": kind, "created": "2026-01-01T10:00:%06.3f+00:00" % created,
            "event_data": data}


def _task(counter, second, name, role="health", action="ansible.builtin.debug", uuid=None):
    return _event(counter, "playbook_on_task_start", second, task=name, role=role, task_action=action,
                  task_uuid=uuid or name)


def _ok(counter, second, name, res=None, host="web1", kind="runner_on_ok", action="ansible.builtin.debug",
        start=None):
    return _event(counter, kind, second, task=name, task_uuid=name, host=host, res=res or {},
                  task_action=action, resolved_action=action,
                  start="2026-01-01T10:00:%06.3f" % (start if start is not None else second - 1),
                  end="2026-01-01T10:00:%06.3f" % second)


HEALTH_REPORT = {"severity": "CRITICAL", "counts": {"ok": 1, "warning": 1, "critical": 1}, "fail_on": "critical",
                 "failed": True, "checks": [
                     {"name": "http api", "severity": "OK", "message": "http api: HTTP 200"},
                     {"name": "disk /", "severity": "WARNING", "message": "disk /: 83% used"},
                     {"name": "service api", "severity": "CRITICAL",
                      "message": "service api: 0/1 running <script>alert(1)</script>"}]}


def _health_events():
    return [
        _event(1, "playbook_on_play_start", 0.0, play="Health of the stack"),
        _task(2, 0.5, "Check the compose services", action="stackops.runbooks.compose_service_info"),
        _ok(3, 4.5, "Check the compose services", action="stackops.runbooks.compose_service_info", start=0.6),
        _task(4, 5.0, "Publish the report as stackops_health_report", action="ansible.builtin.set_fact"),
        _ok(5, 5.5, "Publish the report as stackops_health_report",
            res={"ansible_facts": {"stackops_health_report": HEALTH_REPORT}}, action="ansible.builtin.set_fact"),
        _task(6, 6.0, "Fail when checks reach stackops_health_fail_on", action="ansible.builtin.fail"),
        _ok(7, 10.0, "Fail when checks reach stackops_health_fail_on", kind="runner_on_failed",
            res={"msg": "failing"}, action="ansible.builtin.fail"),
        _event(8, "playbook_on_stats", 10.0),
    ]


# ---------------------------------------------------------------- helpers

@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("90m", 5400), ("2d", 172800), ("3600", 3600),
                                          ("1.5h", 5400), ("30s", 30), ("1w", 604800), (" 12H ", 43200)])
def test_parse_duration(text, seconds):
    assert units.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "24x", "-1h", "0", "1 day", None])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        units.parse_duration(text)


def test_rpo_math():
    within = rpo.rpo_check(3600, 86400)
    assert not within["exceeded"] and within["margin_seconds"] == 82800 and "within" in within["message"]
    over = rpo.rpo_check(90000, 86400)
    assert over["exceeded"] and over["margin_seconds"] == -3600 and "over" in over["message"]
    assert not rpo.rpo_check(86400, 86400)["exceeded"]  # exactly at the RPO is still within it
    none = rpo.rpo_check(None, 3600)
    assert none["exceeded"] and none["age_seconds"] is None and "no verified backup" in none["message"]


def test_latest_verified_age_sources():
    assert rpo.latest_verified_age({"rpo_seconds": 120, "latest_verified": {"age_seconds": 999}}) == 120
    assert rpo.latest_verified_age({"latest_verified": {"id": "a", "age_seconds": 50}}) == 50
    # Without a database: one entry per database; the youngest counts.
    assert rpo.latest_verified_age({"latest_verified": {"a": {"age_seconds": 70}, "b": {"age_seconds": 30}}}) == 30
    assert rpo.latest_verified_age({"backups": [{"verified": False, "age_seconds": 5},
                                                   {"verified": True, "age_seconds": 500}]}) == 500
    assert rpo.latest_verified_age({"backups": [{"verified": None, "age_seconds": 5}]}) is None
    # A backup this run took and verified is the newest verified one.
    assert rpo.latest_verified_age({"rpo_seconds": 999}, {"backup_id": "x", "planned_only": False},
                                      {"verified": True}) == 0.0
    assert rpo.latest_verified_age({"rpo_seconds": 999}, {"backup_id": "x", "planned_only": False},
                                      {"verified": False}) == 999


@pytest.mark.parametrize("start,end,expected", [
    (0, 10, (0.0, 10.0)),
    (50, 100, (50.0, 50.0)),
    (25, 25, (25.0, 0.4)),          # a zero-length step stays visible
    (99.9, 100, (99.6, 0.4)),       # min width pushed back inside the axis
    (-5, 10, (0.0, 15.0)),          # clamped at the origin
    (90, 130, (60.0, 40.0)),        # never past the end
])
def test_bar_geometry(start, end, expected):
    assert report.bar_geometry(start, end, 0, 100) == expected


def test_bar_geometry_offset_origin_and_empty_axis():
    assert report.bar_geometry(1010, 1015, 1000, 20) == (50.0, 25.0)
    assert report.bar_geometry(0, 0, 0, 0) == (0.0, 100.0)


def test_scaled_heights():
    assert report.scaled_heights([10, 5, 0], 100) == [100.0, 50.0, 0.0]
    assert report.scaled_heights([0, 0], 50) == [0.0, 0.0]
    assert report.scaled_heights([], 50) == []


def test_human_units():
    assert units.human_bytes(3500) == "3.4 KiB" and units.human_bytes(12) == "12 B"
    assert units.human_bytes(5 * 1024 ** 3) == "5.0 GiB" and units.human_bytes(None) == "-"
    assert units.human_duration(5.25) == "5.2s" and units.human_duration(125) == "2m05s"
    assert units.human_duration(7260) == "2h01m" and units.human_duration(90000) == "1d01h"


def test_redact_uses_the_secret_names_of_extra_vars():
    redacted = runmodel.redact({"stackops_db_password": "hunter2", "stackops_db_password_file": "/run/s",
                              "nested": [{"api_token": "t0k", "name": "ok"}], "AWX_SECRET": "x", "size": 3})
    assert redacted == {"stackops_db_password": "<redacted>", "stackops_db_password_file": "/run/s",
                        "nested": [{"api_token": "<redacted>", "name": "ok"}], "AWX_SECRET": "<redacted>",
                        "size": 3}


# ---------------------------------------------------------------- the model from events

def test_timeline_from_events():
    timeline = runmodel.build_timeline(_health_events())
    assert timeline["task_count"] == 3 and timeline["duration"] == 10.0
    [phase] = timeline["phases"]
    assert phase["label"] == "health" and phase["status"] == "failed"
    compose, publish, fail = phase["tasks"]
    # A task runs from its start event to the end of its last host result.
    assert (compose["start"] - timeline["start"], compose["duration"]) == (0.5, 4.0)
    assert publish["status"] == "ok" and fail["status"] == "failed"


def test_timeline_phases_follow_roles_and_phase_markers():
    events = [_event(1, "playbook_on_play_start", 0, play="Maintenance"),
              _task(2, 1, "Plan the window", role="maintenance"),
              _task(3, 2, "Phase 1 - pre-checks", role="maintenance", action="ansible.builtin.include_tasks"),
              _task(4, 3, "Check the compose services", role="health"),
              _task(5, 4, "Look at locks", role="maintenance"),
              _task(6, 5, "Phase 2 - pre-maintenance backup", role="maintenance"),
              _task(7, 6, "Take the backup", role="maintenance")]
    labels = [phase["label"] for phase in runmodel.build_timeline(events)["phases"]]
    assert labels == ["maintenance", "maintenance: Phase 1 - pre-checks", "health",
                      "maintenance: Phase 1 - pre-checks", "maintenance: Phase 2 - pre-maintenance backup"]
    # Without host results a task lasts until the next one starts.
    tasks = runmodel.build_timeline(events)["phases"][0]["tasks"]
    assert tasks[0]["duration"] == 1.0


def test_health_from_the_fact_worst_first():
    health = runmodel.find_health(_health_events(), {})
    assert list(health) == ["web1"]
    assert [c["severity"] for c in health["web1"]["checks"]] == ["CRITICAL", "WARNING", "OK"]
    assert health["web1"]["severity"] == "CRITICAL" and health["web1"]["failed"]


def test_health_falls_back_to_the_module_result():
    events = [_task(1, 1, "Aggregate", action="stackops.runbooks.stack_health_report"),
              _ok(2, 2, "Aggregate", res={"report": HEALTH_REPORT}, action="stackops.runbooks.stack_health_report")]
    assert runmodel.find_health(events, {})["web1"]["counts"]["critical"] == 1
    one_module = [_task(1, 1, "Run", action="stackops.runbooks.stack_health"),
                  _ok(2, 2, "Run", res={"report": HEALTH_REPORT}, action="stackops.runbooks.stack_health")]
    assert runmodel.find_health(one_module, {})["web1"]["counts"]["critical"] == 1


CATALOG = {"backups": [
    {"id": "appdb-3", "database": "appdb", "started_at": "2026-01-03T03:00:00Z", "size_bytes": 3000, "verified": True,
     "age_seconds": 7200},
    {"id": "appdb-2", "database": "appdb", "started_at": "2026-01-02T03:00:00Z", "size_bytes": 2000, "verified": False,
     "age_seconds": 93600},
    {"id": "other-1", "database": "other", "started_at": "2026-01-02T04:00:00Z", "size_bytes": 99, "verified": True,
     "age_seconds": 90000},
    {"id": "appdb-1", "database": "appdb", "started_at": "2026-01-01T03:00:00Z", "size_bytes": 1000, "verified": True,
     "age_seconds": 180000}], "latest_verified": {"id": "appdb-3", "age_seconds": 7200}, "rpo_seconds": 7200}


def _backup_events(verified=True):
    action = "stackops.runbooks.pg_backup"
    return [
        _task(1, 1, "Read the backup catalog", role="backup", action="stackops.runbooks.pg_backup_info"),
        _ok(2, 2, "Read the backup catalog", res=CATALOG, action="stackops.runbooks.pg_backup_info"),
        _task(3, 3, "Check the database answers and size the backup", role="backup", action=action),
        _ok(4, 4, "Check the database answers and size the backup", action=action,
            res={"backup_id": "appdb-4", "database_size_bytes": 8000000}),
        _task(5, 5, "Take the backup", role="backup", action=action),
        _ok(6, 9, "Take the backup", action=action, res={
            "backup_id": "appdb-4", "size_bytes": 4000, "duration_seconds": 3.5, "changed": True,
            "manifest": {"database": "appdb", "started_at": "2026-01-04T03:00:00Z"}}),
        _task(7, 10, "Prove the backup restores", role="backup", action="stackops.runbooks.pg_backup_verify"),
        _ok(8, 20, "Prove the backup restores", action="stackops.runbooks.pg_backup_verify",
            res={"verified": verified, "duration_seconds": 9.0,
                 "differences": [] if verified else ["table <b>orders</b>: 10 rows, expected 11"]}),
    ]


def test_backup_model_trend_and_age():
    backups = rpo.find_backups(_backup_events(), {})
    entry = backups["web1"]
    assert entry["backup"]["size_bytes"] == 4000 and not entry["backup"]["planned_only"]
    assert entry["verification"]["verified"] is True
    # Oldest first, only the backed-up database, the new backup (not yet in the catalog) last.
    assert [row["id"] for row in entry["trend"]] == ["appdb-1", "appdb-2", "appdb-3", "appdb-4"]
    assert [row["current"] for row in entry["trend"]] == [False, False, False, True]
    assert entry["latest_verified_age"] == 0.0
    assert [row["id"] for row in rpo.find_backups(_backup_events(), {}, trend_length=2)["web1"]["trend"]] == [
        "appdb-3", "appdb-4"]


def test_backup_failed_verification_and_rpo_from_the_catalog():
    entry = rpo.find_backups(_backup_events(verified=False), {})["web1"]
    assert entry["verification"]["verified"] is False
    assert entry["latest_verified_age"] == 7200  # the catalog's newest verified set
    verdicts = rpo.rpo_from_summary({"hosts": {"web1": {}, "web2": {}}}, _backup_events(verified=False), 3600)
    assert verdicts["web1"]["exceeded"] and verdicts["web1"]["age_seconds"] == 7200
    assert verdicts["web2"]["exceeded"] and "no backup catalog" in verdicts["web2"]["message"]
    assert not rpo.rpo_from_summary({}, _backup_events(verified=False), 86400)["web1"]["exceeded"]


def _verified_by_pg_backup(verified):
    """The backup role since pg_backup proves the set itself: its result carries the verification."""
    action = "stackops.runbooks.pg_backup"
    proof = {"verified": verified, "duration_seconds": 9.0, "during_backup": True,
             "differences": [] if verified else ["trial restore failed: <b>COPY</b> t, line 1"]}
    res = {"backup_id": "appdb-4", "size_bytes": 4000, "duration_seconds": 3.5, "changed": True, "verified": verified,
           "verification": proof, "manifest": {"database": "appdb", "started_at": "2026-01-04T03:00:00Z"}}
    return _backup_events()[:5] + [_ok(6, 9, "Take the backup", action=action, res=res,
                                       kind="runner_on_ok" if verified else "runner_on_failed")]


def test_verification_inside_pg_backup():
    entry = rpo.find_backups(_verified_by_pg_backup(True), {})["web1"]
    assert entry["verification"]["verified"] is True and entry["verification"]["duration_seconds"] == 9.0
    assert entry["backup"]["size_bytes"] == 4000 and entry["latest_verified_age"] == 0.0
    failed = rpo.find_backups(_verified_by_pg_backup(False), {})["web1"]
    assert failed["verification"]["verified"] is False
    assert failed["verification"]["differences"] == ["trial restore failed: <b>COPY</b> t, line 1"]
    assert failed["latest_verified_age"] == 7200  # the catalog's newest verified set, not the one that failed


def test_skipped_verification():
    events = _backup_events()[:6] + [_ok(7, 10, "Prove the backup restores", kind="runner_on_skipped",
                                         action="stackops.runbooks.pg_backup_verify")]
    entry = rpo.find_backups(events, {})["web1"]
    assert entry["verification"] == {"verified": None, "skipped": True}
    assert entry["latest_verified_age"] == 7200


def test_backup_from_stackops_result_only():
    summary = {"result": {"web1": {"procedure": "backup", "backup_id": "b9", "size_bytes": 10,
                                   "duration_seconds": 1.0, "verified": True}}}
    entry = rpo.find_backups([], summary)["web1"]
    assert entry["backup"]["backup_id"] == "b9" and entry["verification"]["verified"] is True
    # The list action's result (roles/backup, stackops_backup_action=list) carries the catalog.
    listing = {"result": {"web1": dict(CATALOG, procedure="backups", action="list")},
               "hosts": {"web1": {"ok": 3}}}
    assert rpo.rpo_from_summary(listing, [], 3600)["web1"]["age_seconds"] == 7200
    assert len(rpo.find_backups([], listing)["web1"]["trend"]) == 4
    skipped = {"result": {"web1": {"procedure": "backup", "status": "skipped", "backup_id": None,
                                   "skipped_reason": "verified backup b8 is 60s old"}}}
    assert rpo.find_backups([], skipped)["web1"]["skipped_reason"] == "verified backup b8 is 60s old"


MAINTENANCE_RESULT = {
    "procedure": "maintenance", "status": "rolled_back", "level": "weekly", "planned": ["vacuum_analyze", "reindex"],
    "done": [{"name": "vacuum_analyze", "changed": True, "tables": ["public.orders", "public.<items>"],
              "reclaimed_bytes": 2048, "reclaimed": "2.00 KB", "duration_seconds": 1.5}],
    "skipped": [{"name": "reindex", "reason": "window deadline reached; not started"}],
    "reclaimed_bytes": 2048, "reclaimed": "2.00 KB", "backup_id": "appdb-7", "warnings": ["slow & steady"],
    "failed": {"step": "reindex", "task": "Run reindex", "message": "deadlock detected"},
    "rollback": {"images_restored": ["api"], "images_failed": [], "database_restored": True, "backup_id": "appdb-7"},
    "maintenance_mode": "off", "health_after": "OK", "duration_seconds": 42.0}


# ---------------------------------------------------------------- rendering

def _summary(**extra):
    summary = {"run_id": "20260101T100000-health-ab12", "procedure": "health", "status": "failed", "exit_code": 1,
               "started": "2026-01-01T10:00:00+00:00", "finished": "2026-01-01T10:00:10+00:00", "duration": 10.0,
               "hosts": {"web1": {"ok": 3, "changed": 0, "failed": 1, "unreachable": 0, "skipped": 0, "rescued": 0,
                                  "ignored": 0}},
               "failed_tasks": [{"host": "web1", "task": "Fail <now>", "message": "a & b \"quoted\""}],
               "extra_vars": {"stackops_health_checks": ["compose"], "vault_password": "hunter2"},
               "result": {"web1": {"note": "<img src=x onerror=alert(1)>", "api_key": "k-123"}}}
    summary.update(extra)
    return summary


def test_page_escapes_everything_and_has_no_script_or_external_asset():
    page = report.render_html(report.build_model(_summary(), _health_events()))
    parsed = _parse(page)
    tags = [tag for tag, _ in parsed.tags]
    assert "script" not in tags and "img" not in tags and "link" not in tags and "iframe" not in tags
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "Fail &lt;now&gt;" in page and "a &amp; b &quot;quoted&quot;" in page
    for _, attrs in parsed.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, value)
            assert "http://" not in (value or "") and "https://" not in (value or "") or name == "xmlns"
    assert "hunter2" not in page and "k-123" not in page and "&lt;redacted&gt;" in page


def test_page_sections_and_severity_classes():
    page = report.render_html(report.build_model(_summary(), _health_events()))
    parsed = _parse(page)
    ids = {attrs.get("id") for _, attrs in parsed.tags}
    assert {"summary", "hosts", "failures", "timeline", "health", "details"} <= ids
    assert "backup" not in ids and "maintenance" not in ids
    rows = [attrs["class"] for tag, attrs in parsed.tags if tag == "tr" and "check" in attrs.get("class", "")]
    assert rows == ["check sev-critical", "check sev-warning", "check sev-ok"]
    bars = [attrs["style"] for tag, attrs in parsed.tags if "bar" in attrs.get("class", "").split()]
    assert bars[0] == "left:5.000%;width:95.000%"     # the phase: 0.5s .. 10s of a 10s run
    assert bars[1] == "left:5.000%;width:40.000%"     # compose: 0.5s .. 4.5s, placed on the run's clock


def test_page_backup_section_and_trend_chart():
    summary = _summary(procedure="backup", status="successful", failed_tasks=[], result={})
    page = report.render_html(report.build_model(summary, _backup_events(verified=False)), rpo_seconds=3600)
    parsed = _parse(page)
    ids = {attrs.get("id") for _, attrs in parsed.tags}
    assert {"backup", "backup-trend", "rpo", "backup-facts"} <= ids
    rects = [attrs for tag, attrs in parsed.tags if tag == "rect"]
    assert len(rects) == 4 and rects[-1]["class"] == "trend-bar current"
    heights = [float(r["height"]) for r in rects]
    assert heights[-1] == max(heights) and heights[0] == pytest.approx(heights[-1] / 4, rel=0.01)
    assert "verification FAILED" in page and "table &lt;b&gt;orders&lt;/b&gt;" in page
    assert 'class="callout bad" id="rpo"' in page and "over the RPO of 1h00m" in page


def test_page_maintenance_section_with_rollback():
    summary = _summary(procedure="maintenance", result={"web1": MAINTENANCE_RESULT}, failed_tasks=[])
    page = report.render_html(report.build_model(summary, []))
    parsed = _parse(page)
    ids = {attrs.get("id") for _, attrs in parsed.tags}
    assert {"maintenance", "rollback"} <= ids and "backup" not in ids
    assert "public.&lt;items&gt;" in page and "slow &amp; steady" in page and "deadlock detected" in page
    assert "database restored from backup appdb-7" in page and "2.00 KB" in page
    assert "No task events were recorded" in page


def test_write_report_from_a_history_dir(tmp_path):
    run_dir = tmp_path / "runs" / "20260101T100000-backup-ab12"
    events_dir = run_dir / "artifacts" / run_dir.name / "job_events"
    events_dir.mkdir(parents=True)
    for event in _backup_events():
        (events_dir / ("%d-x.json" % event["counter"])).write_text(json.dumps(event))
    (run_dir / "summary.json").write_text(json.dumps(_summary(run_id=run_dir.name, procedure="backup")))
    path = report.write_report(run_dir)
    assert path == run_dir / "report.html" and "appdb-4" in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    other = report.write_report(run_dir, output=tmp_path / "out.html", rpo_seconds=60)
    assert 'id="rpo"' in other.read_text()
    with pytest.raises(errors.ReportError):
        report.write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.ReportError):
        report.write_report(tmp_path / "empty")


def test_cli_flags():
    parser = build_parser()
    args = parser.parse_args(["backups", "--rpo", "24h", "--rpo-strict", "--report"])
    assert args.rpo == "24h" and args.rpo_strict and args.report
    # --rpo is a CLI check, not an extra var.
    assert args.procedure.extravars(args) == {"stackops_backup_action": "list"}
    assert parser.parse_args(["health", "--report"]).report
    args = parser.parse_args(["history", "report", "ab12", "--output", "/tmp/x.html", "--rpo", "2d"])
    assert (args.action, args.run_id, args.output, args.rpo) == ("report", "ab12", "/tmp/x.html", "2d")
    with pytest.raises(SystemExit):
        parser.parse_args(["health", "--rpo", "24h"])
