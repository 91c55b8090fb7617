"""The operator's report of real runs, rendered by real headless Chromium: screenshot and DOM."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from support.cli import stackops

pytestmark = pytest.mark.stack
CHROMIUM = Path("/usr/bin/chromium")


def _chromium(tmp_path, page, *mode):
    """Run Debian chromium headless on a local file; returns the completed process."""
    if not CHROMIUM.exists():
        pytest.fail("%s missing: apt-get install -y chromium (scripts/bootstrap.sh installs it)" % CHROMIUM)
    profile = tmp_path / ("profile-%d" % len(list(tmp_path.glob("profile-*"))))
    profile.mkdir()
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=%s" % profile, *mode, Path(page).as_uri()]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _render(tmp_path, page, name):
    """Screenshot (a real PNG of some substance) and the DOM after rendering."""
    png = tmp_path / ("%s.png" % name)
    shot = _chromium(tmp_path, page, "--screenshot=%s" % png, "--window-size=1200,1600")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot.stderr[-2000:]
    assert png.stat().st_size > 20000, "suspiciously small screenshot: %d bytes" % png.stat().st_size
    dom = _chromium(tmp_path, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<html" in dom.stdout and "</html>" in dom.stdout
    return dom.stdout


def test_health_report_renders_in_chromium(stack, health_json_run, tmp_path):
    completed, state_dir = health_json_run
    summary = json.loads(completed.stdout)
    made = stackops("history", "report", summary["run_id"][-4:], "--json", state_dir=state_dir)
    assert made.returncode == 0, made.stderr
    page = Path(json.loads(made.stdout)["report"])
    assert page == state_dir / "runs" / summary["run_id"] / "report.html" and page.exists()
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert stack.password not in text

    dom = _render(tmp_path, page, "health")
    for marker in ('id="summary"', 'id="timeline"', 'class="tl-row tl-phase"', 'class="bar st-',
                   'id="health"', 'class="health-table"', 'class="check sev-ok"', 'id="hosts"'):
        assert marker in dom, marker
    # Every check of the real run is in the table, with its severity as the row's class.
    for check in ("service postgres", "service api", "http api", "postgres readiness"):
        assert check in dom
    assert summary["run_id"] in dom and "stackops health" in dom


def test_backup_report_and_rpo(stack, state_dir, tmp_path):
    """A real backup with --report, then `backups --rpo --rpo-strict` judging the newest verified backup."""
    backup_dir = tmp_path / "backups"
    where = ["-e", json.dumps({"stackops_backup_dir": str(backup_dir)})]
    completed = stackops("backup", "-i", stack.inventory, *where, "--report", "--json", state_dir=state_dir)
    summary = json.loads(completed.stdout)
    assert completed.returncode == 0, summary
    page = Path(summary["report"])
    assert page == state_dir / "runs" / summary["run_id"] / "report.html" and page.exists()
    assert stack.password not in page.read_text()

    dom = _render(tmp_path, page, "backup")
    for marker in ('id="backup"', 'id="backup-facts"', 'class="badge verified-yes"', 'id="backup-trend"',
                   'class="trend-bar current"', 'id="timeline"', 'Take the backup',
                   # pg_backup's own trial restore (its verification result), not a separate task, is reported.
                   'verification took'):
        assert marker in dom, marker

    # `backups` lists (the role's stackops_backup_action=list); --check keeps this test from depending on
    # that: the catalog is read either way and nothing is written.
    # An RPO of a millisecond: the listing runs after the backup above finished, so its newest verified backup is
    # older than that (an order, not a clock); exceeded, and --rpo-strict turns that into exit 1.
    listed = stackops("backups", "-i", stack.inventory, *where, "--check", "--rpo", "0.001s", "--rpo-strict", "--json",
                      state_dir=state_dir)
    listing = json.loads(listed.stdout)
    verdict = listing["rpo"]["hosts"][stack.project]
    assert listed.returncode == 1 and listing["exit_code"] == 1, listing
    assert listing["status"] == "successful" and listing["rpo"]["exceeded"] is True and verdict["exceeded"] is True
    assert verdict["age_seconds"] is not None and "over the RPO" in verdict["message"] and "RPO" in listing["error"]
    assert "RPO exceeded on %s" % stack.project in listed.stderr

    # The same listing judged against a 24h RPO in its report: within.
    again = stackops("history", "report", listing["run_id"], "--rpo", "24h", "--output", tmp_path / "b.html",
                     state_dir=state_dir)
    assert again.returncode == 0, again.stderr
    rendered = (tmp_path / "b.html").read_text()
    assert 'class="callout good" id="rpo"' in rendered and "within the RPO of 1d00h" in rendered
    assert stackops("backups", "-i", stack.inventory, "--rpo", "soon", state_dir=state_dir).returncode == 2
    assert stackops("backups", "-i", stack.inventory, "--rpo-strict", state_dir=state_dir).returncode == 2
