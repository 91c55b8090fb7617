"""`stackops schedule`: systemd units and cron entries, and one scheduled command run for real."""
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from support.cli import STACKOPS, stackops

STACK_CHECKS = '{"stackops_health_checks": ["compose", "http", "postgres"]}'


@pytest.fixture
def targets(tmp_path):
    return {"unit_dir": tmp_path / "units", "crontab": tmp_path / "cron.d" / "stackops"}


def _schedule(state_dir, targets, *argv):
    if argv[0] == "install":
        args = ["schedule", "install", *argv[1:]]
    else:
        args = ["schedule", *argv, "--unit-dir", targets["unit_dir"], "--crontab", targets["crontab"]]
    return stackops(*args, state_dir=state_dir,
                    env=dict(STACKOPS_SYSTEMD_UNIT_DIR=targets["unit_dir"], STACKOPS_CRONTAB=targets["crontab"]))


def _unit_value(text, key):
    return [m.group(1) for m in re.finditer(r"^%s=(.*)$" % key, text, re.M)]


def test_systemd_units_for_weekly_maintenance_and_daily_backup(state_dir, targets):
    done = _schedule(state_dir, targets, "install", "maintenance", "--when", "Sun 03:00", "--backend", "systemd",
                     "--", "--level", "weekly")
    assert done.returncode == 0, done.stderr
    done = _schedule(state_dir, targets, "install", "backup", "--when", "daily", "--backend", "systemd")
    assert done.returncode == 0, done.stderr
    units = targets["unit_dir"]
    timer = (units / "stackops-maintenance.timer").read_text()
    service = (units / "stackops-maintenance.service").read_text()
    assert _unit_value(timer, "OnCalendar") == ["Sun *-*-* 03:00:00"]
    assert _unit_value(timer, "Unit") == ["stackops-maintenance.service"]
    assert _unit_value(timer, "WantedBy") == ["timers.target"] and _unit_value(timer, "Persistent") == ["true"]
    assert _unit_value(service, "Type") == ["oneshot"]
    assert _unit_value(service, "ExecStart") == ["%s maintenance --level weekly" % STACKOPS]
    assert _unit_value(service, "Environment") == ["STACKOPS_STATE_DIR=%s" % state_dir]
    assert _unit_value((units / "stackops-backup.timer").read_text(), "OnCalendar") == ["daily"]
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.fail("systemd-analyze is missing: run scripts/bootstrap.sh (Debian package systemd)")
    verified = subprocess.run([analyze, "verify"] + [str(p) for p in sorted(units.iterdir())],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    listed = _schedule(state_dir, targets, "list", "--json")
    assert {(s["name"], s["backend"], s["when"]) for s in json.loads(listed.stdout)} == {
        ("maintenance", "systemd", "Sun *-*-* 03:00:00"), ("backup", "systemd", "daily")}
    removed = _schedule(state_dir, targets, "remove", "maintenance")
    assert removed.returncode == 0 and not (units / "stackops-maintenance.timer").exists()
    assert [s["name"] for s in json.loads(_schedule(state_dir, targets, "list", "--json").stdout)] == ["backup"]


def test_cron_entries(state_dir, targets):
    done = _schedule(state_dir, targets, "install", "backup", "--when", "daily", "--backend", "cron")
    assert done.returncode == 0, done.stderr
    done = _schedule(state_dir, targets, "install", "maintenance", "--when", "Sun 03:00", "--backend", "cron",
                     "--", "--level", "weekly")
    assert done.returncode == 0, done.stderr
    lines = targets["crontab"].read_text().splitlines()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    backup = lines[lines.index("# stackops-schedule: backup") + 1]
    maintenance = lines[lines.index("# stackops-schedule: maintenance") + 1]
    assert backup.startswith("0 0 * * * %s STACKOPS_STATE_DIR=%s %s backup >> " % (user, state_dir, STACKOPS))
    assert maintenance.startswith("0 3 * * 0 %s " % user) and "maintenance --level weekly >>" in maintenance
    assert backup.endswith("2>&1")
    # Installing again replaces the entry instead of adding a second one.
    _schedule(state_dir, targets, "install", "backup", "--when", "02:30", "--backend", "cron")
    text = targets["crontab"].read_text()
    assert text.count("# stackops-schedule: backup") == 1 and "\n30 2 * * * " in text
    assert _schedule(state_dir, targets, "remove", "backup").returncode == 0
    assert "backup" not in targets["crontab"].read_text()


@pytest.mark.parametrize("argv,message", [
    (["maintenance", "--when", "Sun 03:00", "--", "--level", "monthly"], "--yes"),
    (["scale", "--when", "daily", "--", "api", "--replicas", "0"], "--yes"),
    (["health", "--when", "someday at noon", "--backend", "systemd"], "not a valid systemd calendar"),
    (["health", "--when", "25:00", "--backend", "cron"], "no such time"),
    (["nosuch", "--when", "daily"], "unknown procedure"),
    (["scale", "--when", "daily"], "not valid"),
])
def test_install_refuses_what_would_fail_later(state_dir, targets, argv, message):
    done = _schedule(state_dir, targets, "install", *argv)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not targets["unit_dir"].exists() or not list(targets["unit_dir"].iterdir())


@pytest.mark.stack
def test_scheduled_command_runs_for_real(stack, state_dir, targets):
    """Run the unit's ExecStart and the cron command by hand, as the timer / cron would."""
    done = _schedule(state_dir, targets, "install", "health", "--name", "health-hourly", "--when", "hourly",
                     "--backend", "systemd", "-i", str(stack.inventory), "--", "-e", STACK_CHECKS)
    assert done.returncode == 0, done.stderr
    service = (targets["unit_dir"] / "stackops-health-hourly.service").read_text()
    argv = shlex.split(_unit_value(service, "ExecStart")[0].replace("$$", "$").replace("%%", "%"))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}  # what systemd gives a system service
    env.update(dict(item.split("=", 1) for item in _unit_value(service, "Environment")))
    ran = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESSFUL  health" in ran.stdout

    done = _schedule(state_dir, targets, "install", "health", "--name", "health-cron", "--when", "hourly",
                     "--backend", "cron", "-i", str(stack.inventory), "--", "-e", STACK_CHECKS)
    assert done.returncode == 0, done.stderr
    lines = targets["crontab"].read_text().splitlines()
    entry = lines[lines.index("# stackops-schedule: health-cron") + 1]
    command = entry.split(None, 6)[6].replace("\\%", "%")
    ran = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")})
    assert ran.returncode == 0, ran.stdout + ran.stderr
    log = state_dir / "schedule-logs" / "health-cron.log"
    assert "SUCCESSFUL  health" in log.read_text()

    runs = json.loads(stackops("history", "--json", state_dir=state_dir).stdout)
    assert [(r["procedure"], r["status"]) for r in runs] == [("health", "successful")] * 2
