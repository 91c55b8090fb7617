"""The CLI side of `stackops drill` and `stackops status`: scheduling a weekly drill, the schedules' last runs the
status judges, and the human summaries (a short text each, never a Python repr)."""
import io
import json
import re

from rich.console import Console

from cli.conftest import STACKOPS, run_cli
from stackops import history
from stackops.recovery_view import print_drill, print_status
from stackops.schedule import schedule_runs


def _targets(tmp_path):
    return {"STACKOPS_SYSTEMD_UNIT_DIR": tmp_path / "units", "STACKOPS_CRONTAB": tmp_path / "cron.d" / "stackops"}


def test_a_weekly_drill_schedule(state_dir, tmp_path):
    targets = _targets(tmp_path)
    done = run_cli(["schedule", "install", "drill", "--when", "weekly", "--backend", "systemd"], state_dir, **targets)
    assert done.returncode == 0, done.stderr
    service = (targets["STACKOPS_SYSTEMD_UNIT_DIR"] / "stackops-drill.service").read_text()
    timer = (targets["STACKOPS_SYSTEMD_UNIT_DIR"] / "stackops-drill.timer").read_text()
    assert re.search(r"^ExecStart=%s drill$" % re.escape(str(STACKOPS)), service, re.M)
    assert re.search(r"^OnCalendar=weekly$", timer, re.M)
    done = run_cli(["schedule", "install", "drill", "--when", "weekly", "--backend", "cron", "--name", "drill-pitr",
                    "--", "--physical"], state_dir, **targets)
    assert done.returncode == 0, done.stderr
    assert "drill --physical" in targets["STACKOPS_CRONTAB"].read_text()


def _record_run(state_dir, procedure, inventory, status, started, error=None):
    runs = history.History(state_dir)
    run_id = "%s-%s-abcd" % (started, procedure)
    run_dir = runs.create(run_id, {"run_id": run_id, "procedure": procedure, "inventory": str(inventory)})
    runs.finish(run_dir, {"run_id": run_id, "procedure": procedure, "inventory": str(inventory), "status": status,
                          "started": started, "check": False, "error": error})
    return run_id


def test_the_schedules_of_this_inventory_with_their_last_runs(state_dir, tmp_path, monkeypatch):
    targets = _targets(tmp_path)
    inventory, other = tmp_path / "prod", tmp_path / "staging"
    for path in (inventory, other):
        path.mkdir()
        (path / "hosts.yml").write_text("all: {}\n")
    for name, path in (("backup", inventory), ("drill", inventory), ("backup-staging", other)):
        procedure = name.split("-")[0]
        done = run_cli(["schedule", "install", procedure, "--name", name, "--when", "daily", "--backend", "cron",
                        "-i", path], state_dir, **targets)
        assert done.returncode == 0, done.stderr
    _record_run(state_dir, "backup", inventory, "successful", "20261201T020000")
    failed = _record_run(state_dir, "backup", inventory, "failed", "20261202T020000", error="disk full")
    _record_run(state_dir, "backup", other, "successful", "20261203T020000")
    for key, value in targets.items():
        monkeypatch.setenv(key, str(value))
    found = {item["name"]: item for item in schedule_runs(state_dir, inventory.resolve(), tmp_path / "demo")}
    assert set(found) == {"backup", "drill"}  # staging's schedule is another stack's
    assert found["backup"]["last_run"]["run_id"] == failed and found["backup"]["last_run"]["status"] == "failed"
    assert found["backup"]["last_run"]["error"] == "disk full"
    assert found["drill"]["last_run"] is None and found["drill"]["procedure"] == "drill"


def _render(printer, result):
    stream = io.StringIO()
    assert printer(Console(file=stream, no_color=True, width=200), result)
    return stream.getvalue()


DRILL = {"procedure": "drill", "status": "failed", "drill": "failed", "project": "shop-drill",
         "backup": {"id": "shop-20261201T000000000Z", "kind": "logical", "database": "shop", "size_bytes": 3468},
         "rto_seconds": None, "phase_seconds": {"fetch": 0.1, "restore": 12.5, "start": 8.0},
         "checks": [{"name": "backend", "kind": "health", "ok": True, "message": "http backend: HTTP 200 in 3ms"},
                    {"name": "place an order", "kind": "check", "ok": False,
                     "message": "http place an order: ... HTTP 500 (expected 201)"}],
         "failed_checks": ["place an order"], "unmapped_urls": ["check x (https://shop.example.com/): no service"],
         "torn_down": ["container shop-drill-db-1", "volume shop-drill_stackops-drill-data"], "rto_trend": [40.0, 42.5],
         "cleaned_up": ["container shop-drill-db-1"], "override_notes": []}
STATUS = {"procedure": "status", "ok": False, "project": "shop",
          "problems": ["the last restore drill (drill-2) failed its check(s) place an order: HTTP 500"],
          "services": [{"service": "db", "ok": True, "state": "service db: 1/1 containers running and healthy"}],
          "logical": {"database": "shop", "newest_verified": {"id": "shop-1", "age_seconds": 600}},
          "pitr": {"enabled": True, "server": "shop", "receiver_alive": False, "problems": ["receiver down"],
                   "newest_verified": {"id": "20261201T000000", "age_seconds": 7200},
                   "earliest_recoverable": "2026-12-01T00:00:00Z", "latest_recoverable": "2026-12-01T02:00:00Z",
                   "latest_recoverable_age_seconds": 60},
          "offsite": [{"target": "s3-eu", "database": "shop", "newest_verified": "shop-1", "age_seconds": 700}],
          "drills": {"last": {"id": "drill-2", "status": "failed"}, "last_age_seconds": 30, "rto_trend": [40.0]},
          "schedules": [{"name": "backup", "procedure": "backup", "when": "daily",
                         "last_run": {"started": "2026-12-01T02:00:00+00:00", "status": "successful"}}],
          "objectives": {"rpo": 86400, "rto": 1800, "drill_max_age": 691200}}


def test_the_drill_summary_is_short_text():
    text = _render(print_drill, {"web1": DRILL})
    assert "{'" not in text and "[{'" not in text, text
    assert "drill on web1: FAILED  (logical backup shop-20261201T000000000Z of shop (3.4 KiB), project shop-drill)" in text
    assert "place an order" in text and "HTTP 500 (expected 201)" in text
    assert "not checked in the drill: check x" in text and "RTO trend (newest first): 40.0s, 42.5s" in text
    kept = _render(print_drill, {"web1": dict(DRILL, kept=True, remove_with="docker compose -p shop-drill down")})
    assert "stackops drill --teardown" in kept


def test_the_status_table_names_every_row_and_problem():
    text = _render(print_status, {"web1": STATUS})
    assert "{'" not in text and "[{'" not in text, text
    for needle in ("service db", "logical backup", "shop-1 of shop", "physical backup", "PITR window",
                   "receiver DOWN", "off-site s3-eu", "restore drill", "drill-2 failed", "schedule backup",
                   "1 objective(s) not met on web1", "place an order: HTTP 500"):
        assert needle in text, (needle, text)
    assert json.dumps(STATUS)  # the --json document is the result itself, unchanged


def test_the_report_has_a_drill_view_and_a_status_view():
    from stackops.report import render_drill, render_status
    drill = render_drill({"web1": dict(DRILL, error="the application does not work: <script>")})
    assert 'id="drill"' in drill and "shop-20261201T000000000Z" in drill and "place an order" in drill
    assert "&lt;script&gt;" in drill and "<script>" not in drill
    assert drill.count('class="tl-row tl-phase"') == 3  # fetch, restore, start: the checks never finished
    status = render_status({"web1": STATUS})
    assert 'id="status"' in status and "1 problem(s)" in status and "off-site s3-eu" in status
    assert "drill-2 failed" in status and "receiver down" in status
    assert render_drill({}) == "" and render_status({}) == ""
