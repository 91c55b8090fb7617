"""The backup/restore modules in compose mode and the backup/restore playbooks, against the real demo stack."""
import json
import os
import shutil
import subprocess
import uuid

import psycopg
import pytest
from psycopg import sql

from support.backup import batch, stackops_result, step
from support.runner import OUTPUT, run_playbook

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def backup_dir(stack):
    path = OUTPUT / "backups" / stack.project
    shutil.rmtree(path, ignore_errors=True)
    return path


def compose_params(stack, backup_dir, **extra):
    params = dict(login_host="127.0.0.1", login_port=stack.postgres_port, login_user="app",
                  login_password_file=str(stack.dir / "secrets" / "db_password"), tools_location="compose",
                  compose_service="postgres", project_dir=str(stack.dir), project_name=stack.project,
                  env_files=[str(stack.env_file)], backup_dir=str(backup_dir))
    params.update(extra)
    return params


def connect(stack, dbname="postgres"):
    return psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                           dbname=dbname, autocommit=True)


def databases(stack):
    with connect(stack) as conn:
        return sorted(row[0] for row in conn.execute("SELECT datname FROM pg_database"))


def record_count(stack):
    return stack.http("/api/v1/records/count")[1]["count"]


def add_records(stack, n):
    for i in range(n):
        status, body = stack.http("/api/v1/records", method="POST", body={"n": i, "text": "ünï; 'x'"})
        assert status == 201, body


def tree(path):
    """Every file and directory under path with size, mtime and mode: any write shows up as a difference."""
    if not path.exists():
        return None
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            info = os.lstat(full)
            found[os.path.relpath(full, path)] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return found


def started_at(stack, service):
    container = stack.compose("ps", "-q", service).stdout.strip()
    return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", container], check=True,
                          capture_output=True, text=True).stdout.strip()


def backup_sets(backup_dir):
    if not backup_dir.exists():
        return []
    return [p for p in backup_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]


def test_compose_mode_round_trip(stack, backup_dir):
    stack.wait_http("/health")
    add_records(stack, 5)
    formats = (dict(format="custom", compression="zstd"), dict(format="directory", compression="gzip", jobs=2))
    steps, targets = [], []
    # Both formats, each backed up, verified, restored side by side and listed, in one playbook run.
    for index, options in enumerate(formats):
        target = "appdb_copy_%s_%s" % (options["format"], uuid.uuid4().hex[:6])
        targets.append(target)
        backup_id = "{{ b%d.backup_id | default('none') }}" % index
        steps += [step("b%d" % index, "pg_backup", database="appdb", content_checksums=True, **options),
                  step("v%d" % index, "pg_backup_verify", backup_id=backup_id),
                  step("r%d" % index, "pg_backup_restore", backup_id=backup_id, target_database=target),
                  step("l%d" % index, "pg_backup_info", database="appdb")]
    results = batch(steps, common=compose_params(stack, backup_dir), label="compose-round-trip")
    try:
        for index in range(len(formats)):
            backup, verify, restore, listing = (results["%s%d" % (kind, index)] for kind in "bvrl")
            assert not backup["failed"], backup["msg"]
            assert backup["manifest"]["tools_location"] == "compose"
            assert verify["verified"] and verify["content_compared"], verify
            assert not restore["failed"], restore["msg"]
            assert restore["rows"] == sum(t["rows"] for t in backup["manifest"]["tables"])
            assert listing["latest_verified"]["id"] == backup["backup_id"]
    finally:
        with connect(stack) as conn:
            for target in targets:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target)))
    # Nothing was left behind in the container.
    leftovers = stack.compose("exec", "-T", "postgres", "sh", "-c", "ls -d /tmp/stackops-* 2>/dev/null || true").stdout
    assert leftovers.strip() == ""


def test_backup_playbook(stack, backup_dir, tmp_path):
    shutil.rmtree(backup_dir, ignore_errors=True)
    textfile = tmp_path / "stackops_backup.prom"
    first = run_playbook("backup.yml", inventory=stack.inventory, label="backup-role",
                         extravars={"stackops_backup_textfile": str(textfile)})
    assert first.status == "successful", first.stdout
    sets = backup_sets(backup_dir)
    assert len(sets) == 1
    manifest = json.loads((sets[0] / "manifest.json").read_text())
    assert any(f["stored"] == "files/compose.yaml" for f in manifest["files_included"])
    verification = json.loads((sets[0] / "verification.json").read_text())
    assert verification["verified"] is True
    record = json.loads((backup_dir / "last_backup.json").read_text())
    assert record["backup_id"] == manifest["id"] and record["last_backup_timestamp"]
    assert 'stackops_backup_last_verified{database="appdb"} 1' in textfile.read_text()
    # pg_backup writes its own metrics and summary line: no task of the role assembles them.
    taken = first.result("Take the backup")
    assert taken["metrics_file_changed"] is True and textfile.read_text() == taken["metrics"]
    assert (textfile.stat().st_mode & 0o777) == 0o644
    assert taken["summary"].startswith("backup %s of appdb: " % manifest["id"]) and "verified=True" in taken["summary"]
    assert stack.password not in first.artifact_text()

    # The result the CLI and AWX read: playbook_on_stats artifact_data.stackops_result, keyed by host.
    result = stackops_result(first)[stack.project]
    assert result["procedure"] == "backup" and result["status"] == "ok" and result["check_mode"] is False
    assert result["backup_id"] == manifest["id"] and result["path"] == str(sets[0])
    assert result["size_bytes"] == manifest["size_bytes"] and result["duration_seconds"] == manifest["duration_seconds"]
    assert result["throughput_mib_per_second"] > 0
    assert result["verified"] is True and result["verification_duration_seconds"] == verification["duration_seconds"]
    assert result["retention_removed"] == [] and result["last_backup_timestamp"] == manifest["finished_at"]
    # Measured by pg_backup's pre-check, before it created the directory (removed above): the state it found.
    assert result["error"] is None and result["space"]["backup_dir_exists"] is False
    assert str(backup_dir).startswith(result["space"]["measured_path"]) and result["would_create_backup_dir"] is False
    assert (backup_dir.stat().st_mode & 0o777) == 0o700 and record["verified"] is True

    # A verified backup younger than the interval makes the run a no-op, and the result says why.
    second = run_playbook("backup.yml", inventory=stack.inventory, label="backup-role-again",
                          extravars={"stackops_backup_min_interval": 3600})
    assert second.status == "successful", second.stdout
    take = second.result("Take the backup")
    assert take["due"] is False and take["changed"] is False and manifest["id"] in take["skipped_reason"]
    assert "verification" not in take and "retention" not in take  # nothing was dumped, so nothing was proven
    assert len(backup_sets(backup_dir)) == 1
    skipped = stackops_result(second)[stack.project]
    assert skipped["status"] == "skipped" and skipped["backup_id"] is None
    assert manifest["id"] in skipped["skipped_reason"] and skipped["latest_verified"]["id"] == manifest["id"]


def test_backups_list_action(stack, backup_dir):
    """`stackops backups`: backup.yml with stackops_backup_action=list reads the catalog and does nothing else."""
    if not backup_sets(backup_dir):
        assert run_playbook("backup.yml", inventory=stack.inventory).status == "successful"
    before = tree(backup_dir)
    listed = run_playbook("backup.yml", inventory=stack.inventory, label="backups-list",
                          extravars={"stackops_backup_action": "list"})
    assert listed.status == "successful", listed.stdout
    assert tree(backup_dir) == before  # no backup, no lock, no last_backup.json: not one byte written
    ran = {e["event_data"].get("task_action") for e in listed.events if e.get("event") == "runner_on_ok"}
    assert "stackops.runbooks.pg_backup_info" in ran
    writers = ("pg_backup", "pg_backup_verify", "pg_backup_retention", "pg_backup_restore")
    assert not ran & {"stackops.runbooks.%s" % name for name in writers}

    result = stackops_result(listed)[stack.project]
    assert result["procedure"] == "backups" and result["action"] == "list" and result["database"] == "appdb"
    on_disk = sorted(p.name for p in backup_sets(backup_dir))
    assert sorted(b["id"] for b in result["backups"]) == on_disk and result["count"] == len(on_disk)
    for entry in result["backups"]:
        manifest = json.loads((backup_dir / entry["id"] / "manifest.json").read_text())
        assert entry["database"] == "appdb" and entry["size_bytes"] == manifest["size_bytes"]
        assert entry["tables"] == len(manifest["tables"]) and entry["rows"] == sum(t["rows"] for t in manifest["tables"])
        assert entry["verified"] is True and isinstance(entry["age_seconds"], int)
    newest = max(result["backups"], key=lambda b: b["started_at"])
    assert result["latest_verified"]["id"] == newest["id"]
    assert result["latest_verified_age_seconds"] == result["latest_verified"]["age_seconds"]
    assert isinstance(result["latest_verified_age_seconds"], int)


def test_failed_backup_still_reports(stack, backup_dir):
    """The pre-check refuses (no room for 10^9 x the expected size): the run fails, writes nothing, and reports why."""
    if not backup_sets(backup_dir):
        assert run_playbook("backup.yml", inventory=stack.inventory).status == "successful"
    before = tree(backup_dir)
    textfile = backup_dir.parent / "stackops_backup_refused.prom"
    textfile.write_text("# the last good backup's metrics\n")
    refused = run_playbook("backup.yml", inventory=stack.inventory, label="backup-no-room",
                           extravars={"stackops_backup_free_space_factor": 1000000000,
                                      "stackops_backup_textfile": str(textfile)})
    assert refused.status == "failed"
    # The pre-check is part of pg_backup (one task, no extra round of ansible overhead): it refuses before the lock,
    # the dump or any directory is touched.
    assert "Take the backup" in refused.failed_tasks
    assert tree(backup_dir) == before
    assert textfile.read_text() == "# the last good backup's metrics\n"
    result = stackops_result(refused)[stack.project]
    assert result["status"] == "failed" and result["failed_task"] == "Take the backup"
    assert "bytes free in %s" % backup_dir in result["error"] and "free space or point backup_dir" in result["error"]
    assert "nothing was published" in result["error"]
    assert result["backup_id"] is None and result["size_bytes"] is None and result["verified"] is None
    assert result["space"]["needed_bytes"] > result["space"]["free_bytes"] > 0


def test_backup_check_mode_changes_nothing(stack, tmp_path):
    """--check with a backup directory that does not exist yet: a plan, measured on the nearest existing parent."""
    missing = tmp_path / "not" / "yet"
    dbs = databases(stack)
    planned = run_playbook("backup.yml", inventory=stack.inventory, check=True, label="backup-check",
                           extravars={"stackops_backup_dir": str(missing),
                                      "stackops_backup_textfile": str(tmp_path / "stackops_backup.prom")})
    assert planned.status == "successful", planned.stdout
    assert not (tmp_path / "not").exists()
    assert list(tmp_path.iterdir()) == []
    assert databases(stack) == dbs
    result = stackops_result(planned)[stack.project]
    assert result["status"] == "planned" and result["check_mode"] is True
    assert result["would_create_backup_dir"] is True and result["space"]["backup_dir_exists"] is False
    assert result["space"]["measured_path"] == str(tmp_path)
    assert result["space"]["free_bytes"] > 0 and result["space"]["expected_size_bytes"] > 0
    assert result["space"]["needed_bytes"] >= result["space"]["expected_size_bytes"]
    assert result["backup_id"].startswith("appdb-") and result["path"].startswith(str(missing))
    assert result["size_bytes"] is None and result["verified"] is None
    assert planned.result("Take the backup")["msg"].startswith("would write backup set")
    assert planned.result("Take the backup")["summary"].startswith("would take backup appdb-")


def test_restore_check_mode_changes_nothing(stack, backup_dir):
    stack.wait_http("/health")
    if not backup_sets(backup_dir):
        assert run_playbook("backup.yml", inventory=stack.inventory).status == "successful"
    before = dict(tree=tree(backup_dir), dbs=databases(stack), count=record_count(stack),
                  api=started_at(stack, "api"))
    # No stackops_restore_confirm: a check run reports that confirmation is needed instead of failing.
    planned = run_playbook("restore.yml", inventory=stack.inventory, check=True, label="restore-check")
    assert planned.status == "successful", planned.stdout
    after = dict(tree=tree(backup_dir), dbs=databases(stack), count=record_count(stack),
                 api=started_at(stack, "api"))
    assert after == before
    result = stackops_result(planned)[stack.project]
    assert result["status"] == "planned" and result["mode"] == "replace" and result["needs_confirmation"] is True
    assert result["would_drop"]["database"] == "appdb" and result["target_database"] == "appdb"
    assert result["restored"] is False and result["tables_to_verify"] > 0
    assert result["services_stopped"] == [] and result["services_restarted"] == []
    assert result["services_would_stop_and_restart"] == ["api"]
    stop_events = [e["event"] for e in planned.events
                   if (e.get("event_data") or {}).get("task") == "Stop the services that write to the database"
                   and e.get("event", "").startswith("runner_on_")]
    assert stop_events and set(stop_events) <= {"runner_on_start", "runner_on_skipped"}, stop_events


def test_restore_playbook(stack, backup_dir):
    stack.wait_http("/health")
    if not backup_sets(backup_dir):
        assert run_playbook("backup.yml", inventory=stack.inventory).status == "successful"
    backed_up = record_count(stack)
    add_records(stack, 7)
    assert record_count(stack) == backed_up + 7

    refused = run_playbook("restore.yml", inventory=stack.inventory, label="restore-unconfirmed")
    assert refused.status == "failed"
    assert "Require confirmation before replacing a database" in refused.failed_tasks
    assert record_count(stack) == backed_up + 7
    not_done = stackops_result(refused)[stack.project]
    assert not_done["status"] == "failed" and not_done["needs_confirmation"] is True and not_done["restored"] is False
    assert "stackops_restore_confirm=true" in not_done["error"]

    done = run_playbook("restore.yml", inventory=stack.inventory, label="restore-role",
                        extravars={"stackops_restore_confirm": True})
    assert done.status == "successful", done.stdout
    restored = done.result("Restore the backup")
    assert restored["action"] == "replace"
    assert record_count(stack) == backed_up
    states = {c["Service"]: c["State"] for c in stack.ps()}
    assert states.get("api") == "running"
    assert stack.password not in done.artifact_text()

    result = stackops_result(done)[stack.project]
    assert result["status"] == "ok" and result["mode"] == "replace" and result["target_database"] == "appdb"
    assert result["backup_id"] == restored["backup_id"] and result["restored"] is True
    assert result["tables_verified"] == restored["tables"] > 0 and result["rows_verified"] == restored["rows"]
    # The role records row counts only (content checksums are opt-in), so the restore compares row counts.
    assert result["content_compared"] is False and result["duration_seconds"] == restored["duration_seconds"]
    assert result["services_stopped"] == ["api"] and result["services_restarted"] == ["api"]
    assert result["health_ok"] is True and result["health_failed"] == []
    assert sorted(result["health"]) == ["api", "api-db", "frontend"] and set(result["health"].values()) == {200}


def test_restore_into_side_database_keeps_the_app_serving(stack, backup_dir):
    stack.wait_http("/health")
    if not backup_sets(backup_dir):
        assert run_playbook("backup.yml", inventory=stack.inventory).status == "successful"
    api_started = started_at(stack, "api")
    side = "appdb_side_check"
    try:
        done = run_playbook("restore.yml", inventory=stack.inventory, label="restore-side",
                            extravars={"stackops_restore_target_database": side})
        assert done.status == "successful", done.stdout
        result = stackops_result(done)[stack.project]
        assert result["mode"] == "new" and result["target_database"] == side and result["restored"] is True
        # Not the database the api writes to: the writers keep running through it.
        assert result["services_stopped"] == [] and result["services_restarted"] == []
        assert started_at(stack, "api") == api_started
        assert side in databases(stack)
    finally:
        with connect(stack) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(side)))
