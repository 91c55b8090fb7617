"""Pure logic of the CLI: extra vars, the procedure table, event tracking, schedules, the stack lock."""
import argparse
import json
import multiprocessing
import re
import shutil
import subprocess

import pytest

from stackops import extravars, schedule
from stackops.cli import build_parser
from stackops.events import RunTracker, failure_message
from stackops.history import History, scrub_environment
from stackops.locking import LockHeld, StackLock
from stackops.procedures import BY_NAME, PROCEDURES
from support.runner import REPO


# ---------------------------------------------------------------- extra vars

def test_extra_vars_key_value_json_and_file(tmp_path):
    varfile = tmp_path / "vars.yml"
    varfile.write_text("stackops_backup_label: from-file\nnested: {a: 1}\n")
    parsed = extravars.parse_all(["a=1 b='two words'", '{"c": [1, 2]}', "@%s" % varfile, "a=override"])
    assert parsed == {"a": "override", "b": "two words", "c": [1, 2], "stackops_backup_label": "from-file",
                      "nested": {"a": 1}}


@pytest.mark.parametrize("bad", ["novalue", "{not json", "@/nonexistent/file.yml", "1abc=x", ""])
def test_extra_vars_rejects_malformed(bad):
    with pytest.raises(extravars.ExtraVarsError):
        extravars.parse_all([bad])


@pytest.mark.parametrize("name", ["stackops_db_password", "api_token", "DB_SECRET", "private_key"])
def test_extra_vars_refuse_secrets(name):
    with pytest.raises(extravars.ExtraVarsError, match="run history"):
        extravars.parse_all(["%s=hunter2" % name])


def test_extra_vars_allow_secret_file_paths():
    assert extravars.parse_all(["stackops_db_password_file=/run/secrets/db"]) == {
        "stackops_db_password_file": "/run/secrets/db"}


def test_as_bool():
    assert extravars.as_bool("yes") and extravars.as_bool(True) and extravars.as_bool("True")
    assert not extravars.as_bool("no") and not extravars.as_bool(None) and not extravars.as_bool("0")


# ---------------------------------------------------------------- the procedure table

def _parse(*argv):
    return build_parser().parse_args(list(argv))


def test_flags_map_to_extra_vars():
    args = _parse("restore", "--backup-id", "B1", "--target-db", "appdb", "--replace")
    assert args.procedure.extravars(args) == {"stackops_restore_backup_id": "B1",
                                             "stackops_restore_target_database": "appdb",
                                             "stackops_restore_replace": True}
    args = _parse("restore", "--target-db", "appdb_check")
    assert args.procedure.extravars(args) == {"stackops_restore_target_database": "appdb_check",
                                             "stackops_restore_replace": False}
    args = _parse("scale", "api", "--replicas", "3")
    assert args.procedure.extravars(args) == {"stackops_scaling_service": "api", "stackops_scaling_replicas": 3}
    args = _parse("service", "restart", "api")
    assert args.procedure.extravars(args) == {"stackops_service_action": "restart", "stackops_service_names": ["api"]}
    args = _parse("service", "rolling_restart", "api,frontend")
    assert args.procedure.extravars(args) == {"stackops_service_action": "rolling_restart", "stackops_service_names": ["api", "frontend"]}
    args = _parse("maintenance", "--level", "weekly", "--tasks", "vacuum_analyze,reindex")
    assert args.procedure.extravars(args) == {"stackops_maintenance_level": "weekly",
                                             "stackops_maintenance_tasks": ["vacuum_analyze", "reindex"]}
    args = _parse("backup", "--no-verify")
    assert args.procedure.extravars(args) == {"stackops_backup_verify": False}
    args = _parse("backups")
    assert args.procedure.extravars(args) == {"stackops_backup_action": "list"}


def test_unset_flags_leave_role_defaults_alone():
    args = _parse("maintenance")
    assert args.procedure.extravars(args) == {}


@pytest.mark.parametrize("argv,destructive", [
    (["restore", "--backup-id", "x", "--target-db", "appdb", "--replace"], True),
    (["restore", "--backup-id", "x", "--target-db", "appdb_copy"], False),
    (["restore", "--replace"], True),
    (["restore", "-e", "stackops_restore_replace=yes"], True),
    (["scale", "api", "--replicas", "0"], True),
    (["scale", "api", "--replicas", "2"], False),
    (["maintenance", "--level", "monthly"], True),
    (["maintenance", "--level", "quarterly"], True),
    (["maintenance", "--level", "weekly"], False),
    (["maintenance", "--tasks", "vacuum_full"], True),
    (["maintenance", "-e", '{"stackops_maintenance_tasks": ["analyze", "vacuum_full"]}'], True),
])
def test_destructive_variants_need_consent(argv, destructive):
    args = _parse(*argv)
    variables = args.procedure.extravars(args, extravars.parse_all(args.extra_vars))
    consent = args.procedure.consent
    assert bool(consent and consent.needed(variables)) is destructive


def test_every_procedure_has_a_playbook_name_examples_and_documented_variables():
    doc = (REPO / "docs" / "cli.md").read_text()
    for procedure in PROCEDURES:
        assert procedure.playbook.endswith(".yml")
        assert procedure.examples, procedure.name
        assert all(example.startswith("stackops ") for example in procedure.examples)
        assert "`%s`" % procedure.name in doc, "docs/cli.md does not list %s" % procedure.name
        for option in procedure.options:
            assert "`%s`" % option.variable in doc, "docs/cli.md misses %s" % option.variable
        if procedure.consent:
            assert "`%s`" % procedure.consent.variable in doc


def test_usage_errors_exit_2(capsys):
    parser = build_parser()
    for argv in (["nosuchcommand"], ["scale", "api"], ["health", "--bogus"], ["maintenance", "--level", "yearly"]):
        with pytest.raises(SystemExit) as raised:
            parser.parse_args(argv)
        assert raised.value.code == 2


# ---------------------------------------------------------------- events -> summary

def _event(kind, **data):
    return {"event": kind, "event_data": data}


def test_tracker_progress_failures_and_result():
    tracker = RunTracker()
    tracker.handle(_event("playbook_on_play_start", play="Health"))
    tracker.handle(_event("playbook_on_task_start", task="Check", role="health"))
    tracker.handle(_event("runner_on_start", host="h1"))
    assert (tracker.task, tracker.host, tracker.tasks_done) == ("Check", "h1", 1)
    tracker.handle(_event("runner_on_ok", host="h1", res={"changed": True, "ansible_facts": {
        "stackops_result": {"status": "ok"}}}))
    tracker.handle(_event("playbook_on_task_start", task="Fail"))
    tracker.handle(_event("runner_on_failed", host="h1", task="Fail", res={"msg": "boom"}))
    tracker.handle(_event("runner_on_failed", host="h1", task="Tolerated", ignore_errors=True, res={"msg": "x"}))
    tracker.handle(_event("runner_on_unreachable", host="h2", task="Check", res={"msg": "ssh refused"}))
    tracker.handle(_event("playbook_on_stats", ok={"h1": 1}, changed={"h1": 1}, failures={"h1": 1},
                          dark={"h2": 1}, processed={"h1": 1, "h2": 1},
                          artifact_data={"stackops_result": {"h1": {"checks": 3}}}))
    assert tracker.hosts["h1"]["failed"] == 1 and tracker.hosts["h2"]["unreachable"] == 1
    assert [f["message"] for f in tracker.failed_tasks] == ["boom"]
    assert tracker.result == {"h1": {"status": "ok", "checks": 3}}
    assert tracker.outcome("failed") == "unreachable"
    assert tracker.changed_total == 1


def test_tracker_outcomes():
    ok = RunTracker()
    ok.handle(_event("playbook_on_stats", ok={"h": 2}, processed={"h": 1}))
    assert ok.outcome("successful") == "successful"
    assert ok.outcome("canceled") == "canceled"
    never_ran = RunTracker()
    assert never_ran.outcome("failed") == "failed"
    rescued = RunTracker()
    rescued.handle(_event("runner_on_failed", host="h", task="t", res={"msg": "m"}))
    rescued.handle(_event("playbook_on_stats", ok={"h": 2}, rescued={"h": 1}, processed={"h": 1}))
    assert rescued.outcome("successful") == "successful" and rescued.failed_tasks[0]["rescued"]


def test_result_without_host_key_is_kept_for_the_run():
    tracker = RunTracker()
    tracker.handle(_event("playbook_on_stats", ok={"h": 1}, processed={"h": 1},
                          artifact_data={"stackops_result": {"backup_id": "b1"}}))
    assert tracker.result == {"_run": {"backup_id": "b1"}}


def test_failure_message_from_loops_and_commands():
    assert failure_message({"msg": "One or more items failed", "results": [
        {"failed": True, "msg": "a broke"}, {"failed": False}, {"failed": True, "stderr": "b broke"}]}) == \
        "a broke; b broke"
    assert failure_message({"rc": 3, "stderr": ""}) == "exited with rc 3"
    assert failure_message({"msg": "non-zero return code", "rc": 1, "stderr": "df: /x: No such file\n"}) == \
        "non-zero return code: df: /x: No such file"


def test_progress_hides_argument_validation_and_shows_no_guessed_total():
    """One line per procedure task; ansible's argument check of each role is not one, and no total is made up."""
    import io

    from stackops.display import PlainProgress
    stream = io.StringIO()
    tracker = RunTracker()
    progress = PlainProgress(stream, 0)
    progress.start("backups", "run-1", tracker)
    for task, action in (("Validating arguments against arg spec 'main' - Take backups", "validate_argument_spec"),
                         ("Read the backup catalog", "stackops.runbooks.pg_backup_info"),
                         ("Check the role's arguments", "ansible.builtin.validate_argument_spec"),
                         ("Build the report", "ansible.builtin.set_fact")):
        event = _event("playbook_on_task_start", task=task, task_action=action)
        progress.event(event, tracker.handle(event))
    assert stream.getvalue().splitlines() == [
        "stackops backups: run run-1", "[1/?] Read the backup catalog", "[2/?] Build the report"]
    assert tracker.tasks_done == 2 and tracker.tasks_total is None


def test_verbose_progress_shows_no_result_of_a_hidden_argument_check():
    """With -v each task's per-host result follows its line; an argument check has no line, so its result is not
    shown either (a stray "ok: host" under the previous task); a failed one still is."""
    import io

    from stackops.display import PlainProgress
    stream = io.StringIO()
    tracker = RunTracker()
    progress = PlainProgress(stream, 1)
    progress.start("status", "run-1", tracker)
    for event in (_event("playbook_on_task_start", task="Validating arguments against arg spec 'main' - Status",
                         task_action="ansible.builtin.validate_argument_spec"),
                  _event("runner_on_ok", host="h1", res={}),
                  _event("playbook_on_task_start", task="Read the status", task_action="stackops.runbooks.x"),
                  _event("runner_on_ok", host="h1", res={}),
                  _event("playbook_on_task_start", task="Validating arguments against arg spec 'start' - Ping",
                         task_action="ansible.builtin.validate_argument_spec"),
                  _event("runner_on_failed", host="h1", res={"msg": "missing required arguments: x"})):
        progress.event(event, tracker.handle(event))
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["stackops status: run run-1", "[1/?] Read the status", "  ok: h1"], lines
    assert len(lines) == 4 and lines[3].startswith("  FAILED: h1"), lines


# ---------------------------------------------------------------- history

def test_history_rotation_and_scrubbing(tmp_path, monkeypatch):
    runs = History(tmp_path)
    monkeypatch.setenv("STACKOPS_HISTORY_KEEP", "3")
    for number in range(5):
        run_dir = runs.create("2026010%dT000000-health-abcd" % number, {"procedure": "health", "pid": None})
        artifact = run_dir / "artifacts" / run_dir.name
        artifact.mkdir(parents=True)
        (artifact / "command").write_text(json.dumps({"command": ["ansible-playbook"], "env": {
            "PATH": "/usr/bin", "PGPASSWORD": "s3cret", "ANSIBLE_CONFIG": "/x/ansible.cfg"}}))
        runs.finish(run_dir, {"procedure": "health", "status": "successful"})
    names = [record["run_id"] for record in runs.records()]
    assert names == ["2026010%dT000000-health-abcd" % n for n in (2, 3, 4)]
    recorded = json.loads((runs.runs_dir / names[-1] / "artifacts" / names[-1] / "command").read_text())
    assert recorded["env"] == {"PATH": "/usr/bin", "PGPASSWORD": "<redacted>", "ANSIBLE_CONFIG": "/x/ansible.cfg"}
    assert runs.find("20260104")[0] == names[-1]


# ---------------------------------------------------------------- the stack lock

def _hold_lock(state_dir, inventory, ready, release):
    lock = StackLock(state_dir, inventory, None).acquire({"pid": 1234, "procedure": "backup", "run_id": "r1",
                                                          "started": "2026-01-01T00:00:00"})
    ready.set()
    release.wait(30)
    lock.release()


def test_lock_fails_fast_naming_the_holder_then_waits(tmp_path):
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(tmp_path, tmp_path / "inv", ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockHeld) as held:
            StackLock(tmp_path, tmp_path / "inv", None).acquire({"pid": 1})
        assert "backup (pid 1234, run r1" in str(held.value)
        # A different limit is a different stack part: not blocked.
        StackLock(tmp_path, tmp_path / "inv", "other").acquire({"pid": 1}).release()
        release.set()
        StackLock(tmp_path, tmp_path / "inv", None).acquire({"pid": 1}, wait=True, timeout=10).release()
    finally:
        release.set()
        holder.join(10)


# ---------------------------------------------------------------- schedules

@pytest.mark.parametrize("when,calendar,cron", [
    ("daily", "daily", "0 0 * * *"),
    ("Sun 03:00", "Sun *-*-* 03:00:00", "0 3 * * 0"),
    ("02:30", "*-*-* 02:30:00", "30 2 * * *"),
    ("Mon..Fri 01:15", "Mon..Fri *-*-* 01:15:00", "15 1 * * 1-5"),
    ("Mon,Thu 04:05", "Mon,Thu *-*-* 04:05:00", "5 4 * * 1,4"),
])
def test_when_to_calendar_and_cron(when, calendar, cron):
    assert schedule.on_calendar(when) == calendar
    assert schedule.cron_expression(when) == cron
    schedule.verify_calendar(calendar)


def systemd_analyze():
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.fail("systemd-analyze is missing: run scripts/bootstrap.sh (Debian package systemd)")
    return tool


@pytest.mark.parametrize("when", ["25:00", "Sun 03:61", "every tuesday", "Mon..Fri 24:00"])
def test_bad_when_is_refused(when):
    """Refused for cron and, separately, for systemd (each call in its own raises: the second must run too)."""
    systemd_analyze()
    with pytest.raises(schedule.ScheduleError):
        schedule.cron_expression(when)
    with pytest.raises(schedule.ScheduleError):
        schedule.verify_calendar(schedule.on_calendar(when))


@pytest.mark.parametrize("when", ["daily", "hourly", "weekly", "monthly", "00:00", "23:59", "Sun 03:00",
                                  "Mon..Fri 01:15", "Mon,Thu 04:05", "Sat..Sun 12:30"])
def test_own_calendar_forms_are_what_systemd_accepts(when):
    """verify_calendar lets on_calendar's own forms through without asking systemd: systemd must agree."""
    calendar = schedule.on_calendar(when)
    assert schedule.OWN_CALENDAR.match(calendar), calendar
    checked = subprocess.run([systemd_analyze(), "calendar", calendar], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_raw_calendar_without_systemd_analyze_is_refused(tmp_path, monkeypatch):
    """Without systemd-analyze a raw expression is refused, never written unchecked; own forms still pass."""
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no systemd-analyze on PATH
    assert shutil.which("systemd-analyze") is None
    with pytest.raises(schedule.ScheduleError, match="systemd-analyze is not installed"):
        schedule.verify_calendar(schedule.on_calendar("Mon *-*-* 00:00:00 UTC"))
    with pytest.raises(schedule.ScheduleError, match="systemd-analyze is not installed"):
        schedule.verify_calendar(schedule.on_calendar("every tuesday"))
    schedule.verify_calendar(schedule.on_calendar("Sun 03:00"))


def test_cron_line_escapes_percent():
    line = schedule.cron_line("backup", "0 0 * * *", ["/bin/stackops", "backup", "--label", "50%"],
                              {"STACKOPS_STATE_DIR": "/s"}, "root", "/s/log")
    assert line.startswith("# stackops-schedule: backup\n0 0 * * * root STACKOPS_STATE_DIR=/s /bin/stackops")
    assert "50\\%" in line


def test_subcommand_help_has_examples():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        assert re.search(r"examples:\n\s+stackops ", sub.format_help()), name
