"""The backup/restore modules in compose mode and the backup/restore playbooks, against the real demo stack."""
import json
import uuid
import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from backup_helpers import run
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


def record_count(stack):
    return stack.http("/api/v1/records/count")[1]["count"]


def add_records(stack, n):
    for i in range(n):
        status, body = stack.http("/api/v1/records", method="POST", body={"n": i, "text": "ünï; 'x'"})
        assert status == 201, body


def test_compose_mode_round_trip(stack, backup_dir):
    stack.wait_http("/health")
    add_records(stack, 5)
    for options in (dict(format="custom", compression="zstd"), dict(format="directory", compression="gzip", jobs=2)):
        backup = run("pg_backup", compose_params(stack, backup_dir, database="appdb", content_checksums=True, **options))
        assert not backup["failed"], backup["msg"]
        assert backup["manifest"]["tools_location"] == "compose"
        verify = run("pg_backup_verify", compose_params(stack, backup_dir, backup_id=backup["backup_id"]))
        assert verify["verified"] and verify["content_compared"], verify
        target = "appdb_copy_%s_%s" % (options["format"], uuid.uuid4().hex[:6])
        restore = run("pg_backup_restore", compose_params(stack, backup_dir, backup_id=backup["backup_id"],
                                                          target_database=target))
        assert not restore["failed"], restore["msg"]
        with psycopg.connect(host="127.0.0.1", port=stack.postgres_port, user="app", password=stack.password,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(target)))
        with_counts = run("pg_backup_list", compose_params(stack, backup_dir, database="appdb"))
        assert with_counts["latest_verified"]["id"] == backup["backup_id"]
    # Nothing was left behind in the container.
    leftovers = stack.compose("exec", "-T", "postgres", "sh", "-c", "ls -d /tmp/stackops-* 2>/dev/null || true").stdout
    assert leftovers.strip() == ""


def test_backup_playbook(stack, backup_dir, tmp_path):
    shutil.rmtree(backup_dir, ignore_errors=True)
    textfile = tmp_path / "stackops_backup.prom"
    first = run_playbook("backup.yml", inventory=stack.inventory, label="backup-role",
                         extravars={"stackops_backup_textfile": str(textfile)})
    assert first.status == "successful", first.stdout
    sets = [p for p in backup_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(sets) == 1
    manifest = json.loads((sets[0] / "manifest.json").read_text())
    assert any(f["stored"] == "files/compose.yaml" for f in manifest["files_included"])
    assert json.loads((sets[0] / "verification.json").read_text())["verified"] is True
    record = json.loads((backup_dir / "last_backup.json").read_text())
    assert record["backup_id"] == manifest["id"] and record["last_backup_timestamp"]
    assert 'stackops_backup_last_verified{database="appdb"} 1' in textfile.read_text()
    assert stack.password not in first.artifact_text()

    # A verified backup younger than the interval makes the run a no-op.
    second = run_playbook("backup.yml", inventory=stack.inventory, label="backup-role-again",
                          extravars={"stackops_backup_min_interval": 3600})
    assert second.status == "successful", second.stdout
    assert not second.task_results("Take the backup")
    assert len([p for p in backup_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 1


def test_restore_playbook(stack, backup_dir):
    stack.wait_http("/health")
    if not any(p.is_dir() and not p.name.startswith(".") for p in backup_dir.iterdir()):
        assert run_playbook("backup.yml", inventory=stack.inventory).status == "successful"
    backed_up = record_count(stack)
    add_records(stack, 7)
    assert record_count(stack) == backed_up + 7

    refused = run_playbook("restore.yml", inventory=stack.inventory, label="restore-unconfirmed")
    assert refused.status == "failed"
    assert "Require confirmation before replacing a database" in refused.failed_tasks
    assert record_count(stack) == backed_up + 7

    done = run_playbook("restore.yml", inventory=stack.inventory, label="restore-role",
                        extravars={"stackops_restore_confirm": True})
    assert done.status == "successful", done.stdout
    assert done.result("Restore the backup")["action"] == "replace"
    assert record_count(stack) == backed_up
    states = {c["Service"]: c["State"] for c in stack.ps()}
    assert states.get("api") == "running"
    assert stack.password not in done.artifact_text()
