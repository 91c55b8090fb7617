"""What happens at 3 a.m.: killed dumps, full disks, corrupt files, failing restores, contention, hostile names."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import DatabaseLock
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import ensure_backup_dir
from support import processes
from support.backup import (backup_sets, batch, cluster_batch, create_db, db_exists, fingerprint, module, run,
                            scratch_databases, step)

pytestmark = pytest.mark.pg


def verified_backup(cluster, backup_dir, database, **options):
    """pg_backup then pg_backup_verify, in one playbook run."""
    results = cluster_batch(cluster, backup_dir, [
        step("backup", "pg_backup", database=database, **options),
        step("verify", "pg_backup_verify", backup_id="{{ backup.backup_id }}"),
    ], label="verified-backup")
    backup = results["backup"]
    assert not backup["failed"], backup["msg"]
    assert results["verify"]["verified"], results["verify"]
    return backup


@pytest.mark.parametrize("verify", [False, True], ids=["no-verify", "verify-while-dumping"])
def test_killed_pg_dump_publishes_nothing(pg_cluster, tmp_path, verify):
    """With verify, the trial restore waiting for the dump's first bytes fails with it and leaves nothing either."""
    create_db(pg_cluster, "kill_db")
    previous = verified_backup(pg_cluster, tmp_path, "kill_db")
    # An exclusive lock parks pg_dump on LOCK TABLE, so it is surely mid-backup when we kill it.
    blocker = pg_cluster.connect("kill_db")
    blocker.autocommit = False
    blocker.execute("LOCK TABLE public.plain IN ACCESS EXCLUSIVE MODE")
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(
        res=module("pg_backup", pg_cluster, tmp_path, database="kill_db", verify=verify)))
    worker.start()
    try:
        for pid in processes.wait_for_process("pg_dump", "kill_db"):
            os.kill(pid, signal.SIGKILL)
    finally:
        blocker.rollback()
        blocker.close()
        worker.join(120)
    res = outcome["res"]
    assert res["failed"] and "pg_dump was killed by signal 9" in res["msg"] and "nothing was published" in res["msg"]
    assert backup_sets(tmp_path) == [previous["backup_id"]]
    assert scratch_databases(pg_cluster) == [] and "verified" not in res
    after = cluster_batch(pg_cluster, tmp_path, [
        step("listing", "pg_backup_info", database="kill_db"),
        step("verify", "pg_backup_verify", backup_id=previous["backup_id"]),
    ], label="after-kill")
    listing = after["listing"]
    assert [b["id"] for b in listing["backups"]] == [previous["backup_id"]] and listing["in_progress"] == []
    assert after["verify"]["verified"]


# pg_dump's scripts run with an empty search_path, so a CHECK on a function whose body finds another function only
# through the search_path holds here and fails on every restored row: a backup that cannot be restored as it is.
UNRESTORABLE_SCHEMA = r"""
CREATE FUNCTION public.plus_one(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i + 1';
CREATE FUNCTION public.checked(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT plus_one(i)';
CREATE TABLE public.t (x int CHECK (public.checked(x) > 0));
INSERT INTO public.t SELECT generate_series(1, 1000);
"""


def test_backup_that_does_not_restore_is_published_unverified(pg_cluster, tmp_path):
    """verify: the trial restore fails while the dump itself succeeds. The set is published with its verdict
    (verified false, so no restore takes it by default), the task fails saying so, nothing is left behind."""
    create_db(pg_cluster, "unrestorable_db", UNRESTORABLE_SCHEMA)
    res = module("pg_backup", pg_cluster, tmp_path, database="unrestorable_db", verify=True, record_last_backup=True)
    assert res["failed"] and "did NOT verify" in res["msg"] and "plus_one" in res["msg"], res["msg"]
    assert res["verified"] is False and res["verification"]["during_backup"] is True
    assert any(d.startswith("trial restore failed") for d in res["verification"]["differences"])
    assert backup_sets(tmp_path) == sorted([res["backup_id"], "last_backup.json"])
    set_dir = tmp_path / res["backup_id"]
    assert json.loads((set_dir / "verification.json").read_text())["verified"] is False
    assert json.loads((tmp_path / "last_backup.json").read_text())["verified"] is False
    listing = run("pg_backup_info", dict(backup_dir=str(tmp_path), database="unrestorable_db"))  # only the catalog
    assert listing["backups"][0]["verified"] is False and listing["latest_verified"] is None
    assert scratch_databases(pg_cluster) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".stackops-restore-")]


def test_stream_the_trial_cannot_read_is_proven_from_the_written_set(pg_cluster, tmp_path):
    """A sequence whose name holds ';' and a newline cuts the streamed restore's statement in two (it meets it
    while the dump is written and cannot start over): the trial restore then restores the written set with
    pg_restore, before anything is published."""
    create_db(pg_cluster, "odd_seq_db", 'CREATE SEQUENCE public."seq;\nname" START 5; SELECT nextval(\'public."seq;\nname"\');'
              "CREATE TABLE public.t AS SELECT generate_series(1, 100) AS x")
    res = module("pg_backup", pg_cluster, tmp_path, database="odd_seq_db", verify=True)
    assert not res["failed"], res["msg"]
    assert res["verified"] is True and res["verification"]["during_backup"] is False
    assert res["verification"]["restore_method"] == "pg_restore"
    assert any("proving it with a trial restore of the written set" in w for w in res.get("warnings", [])), res
    assert scratch_databases(pg_cluster) == []


@pytest.fixture
def tiny_fs(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_fails_cleanly(pg_cluster, tiny_fs):
    create_db(pg_cluster, "full_db", schema_sql="CREATE TABLE noise AS SELECT gen_random_uuid()::text || "
              "gen_random_uuid()::text AS junk FROM generate_series(1, 40000)")
    res = module("pg_backup", pg_cluster, tiny_fs, database="full_db", compression="none")
    assert res["failed"] and "no space left on device" in res["msg"]
    assert "nothing was published" in res["msg"]
    assert backup_sets(tiny_fs) == []


def test_corrupt_byte_fails_verify_and_restore_refuses(pg_cluster, tmp_path):
    create_db(pg_cluster, "corrupt_db")
    backup = verified_backup(pg_cluster, tmp_path, "corrupt_db")
    data = tmp_path / backup["backup_id"] / "data.dump.zst"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    data.write_bytes(bytes(blob))
    pg_cluster.sql("INSERT INTO public.plain VALUES (100000, 'after backup')", dbname="corrupt_db")
    before = fingerprint(pg_cluster, "corrupt_db")

    results = cluster_batch(pg_cluster, tmp_path, [
        step("verify", "pg_backup_verify", backup_id=backup["backup_id"]),
        step("listing", "pg_backup_info", database="corrupt_db"),
        step("restore", "pg_backup_restore", backup_id=backup["backup_id"], replace=True, confirm=True),
        step("restore_unverified", "pg_backup_restore", backup_id=backup["backup_id"], replace=True, confirm=True,
             require_verified=False),
    ], label="corrupt")
    verify = results["verify"]
    assert verify["failed"] and verify["verified"] is False and verify["checksums_ok"] is False
    assert any("data.dump.zst: sha256" in d for d in verify["differences"])
    listing = results["listing"]
    assert listing["backups"][0]["verified"] is False and listing["latest_verified"] is None

    assert results["restore"]["failed"] and "has not been verified" in results["restore"]["msg"]
    restore = results["restore_unverified"]
    assert restore["failed"]
    assert "does not match its manifest" in restore["msg"] and "was not touched" in restore["msg"]
    assert fingerprint(pg_cluster, "corrupt_db") == before
    assert scratch_databases(pg_cluster) == []


def test_restore_failing_halfway_leaves_original_serving(pg_cluster, tmp_path):
    # The backup needs a role the server will no longer have, so pg_restore dies part-way through.
    pg_cluster.sql("DROP ROLE IF EXISTS ghost_owner; CREATE ROLE ghost_owner")
    create_db(pg_cluster, "ghost_src")
    pg_cluster.sql("ALTER TABLE public.plain OWNER TO ghost_owner", dbname="ghost_src")
    backup = verified_backup(pg_cluster, tmp_path, "ghost_src")
    pg_cluster.sql("DROP DATABASE ghost_src WITH (FORCE)")
    pg_cluster.sql("DROP ROLE ghost_owner")
    create_db(pg_cluster, "serving_db")
    before = fingerprint(pg_cluster, "serving_db")
    client = pg_cluster.connect("serving_db")
    try:
        restore = module("pg_backup_restore", pg_cluster, tmp_path, backup_id=backup["backup_id"],
                         target_database="serving_db", replace=True, confirm=True)
        assert restore["failed"]
        assert 'role "ghost_owner" does not exist' in restore["msg"]
        assert "the original database serving_db is untouched" in restore["msg"]
        # The application's session was never interrupted: the swap was not reached.
        assert client.execute("SELECT count(*) FROM public.plain").fetchone()[0] == 300
    finally:
        client.close()
    assert fingerprint(pg_cluster, "serving_db") == before
    assert scratch_databases(pg_cluster) == []


def test_restore_connection_terminated_midway(pg_cluster, tmp_path):
    create_db(pg_cluster, "term_src", schema_sql="CREATE TABLE big AS SELECT i, repeat(md5(i::text), 20) AS pad "
              "FROM generate_series(1, 100000) i; CREATE INDEX ON big (pad)")
    backup = verified_backup(pg_cluster, tmp_path, "term_src", compression="gzip")
    create_db(pg_cluster, "term_target")
    before = fingerprint(pg_cluster, "term_target")
    stop = threading.Event()

    def terminator():
        # Every restoring session is terminated until the module returns: a streamed restore that loses a COPY
        # connection may start over the classic way, and that attempt must meet the same fault.
        while not stop.is_set():
            pg_cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname LIKE 'term\\_target\\_restore\\_%' "
                           "AND application_name IN ('pg_restore', 'stackops-restore-copy')")
            time.sleep(0.05)

    thread = threading.Thread(target=terminator)
    thread.start()
    try:
        restore = module("pg_backup_restore", pg_cluster, tmp_path, backup_id=backup["backup_id"],
                         target_database="term_target", replace=True, confirm=True, jobs=1)
    finally:
        stop.set()
        thread.join()
    assert restore["failed"] and "term_target is untouched" in restore["msg"]
    assert fingerprint(pg_cluster, "term_target") == before
    assert scratch_databases(pg_cluster) == []


def test_concurrent_operations_wait_or_fail_naming_holder(pg_cluster, tmp_path, monkeypatch):
    create_db(pg_cluster, "busy_db")
    ensure_backup_dir(str(tmp_path))
    lock = DatabaseLock(str(tmp_path), "busy_db", "restore", 0).acquire()
    try:
        refused = module("pg_backup", pg_cluster, tmp_path, database="busy_db", lock_timeout=1)
        assert refused["failed"] and "is locked by restore (pid %d" % os.getpid() in refused["msg"]
        assert backup_sets(tmp_path) == []
        # The backup finds the lock held and waits (it stops at the lock-wait fault point, so the wait is seen,
        # not timed); the lock is released and only then does the backup go on, and it succeeds.
        waited = processes.pause_at(
            monkeypatch, "lock-wait", "pg_backup",
            lambda: module("pg_backup", pg_cluster, tmp_path, database="busy_db", lock_timeout=120), lock.release)
    finally:
        lock.release()
    assert not waited["failed"], waited["msg"]

    # A real backup and a real restore of the same database at once: both end well, one after the other.
    backup_id = waited["backup_id"]
    module("pg_backup_verify", pg_cluster, tmp_path, backup_id=backup_id)
    results = {}
    jobs = [threading.Thread(target=lambda: results.update(backup=module("pg_backup", pg_cluster, tmp_path, database="busy_db"))),
            threading.Thread(target=lambda: results.update(restore=module(
                "pg_backup_restore", pg_cluster, tmp_path, backup_id=backup_id, replace=True, confirm=True)))]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(300)
    assert not results["backup"]["failed"], results["backup"]["msg"]
    assert not results["restore"]["failed"], results["restore"]["msg"]


HOSTILE = "we\"ird; DROP DATABASE postgres; -- 'x' = y"


def test_hostile_names_are_quoted(pg_cluster, tmp_path):
    create_db(pg_cluster, HOSTILE, schema_sql='CREATE SCHEMA "s;\'x"; CREATE TABLE "s;\'x"."t""; --" (v text); '
              'INSERT INTO "s;\'x"."t""; --" VALUES (\'a\'), (\'b\')')
    backup = verified_backup(pg_cluster, tmp_path, HOSTILE, content_checksums=True)
    assert backup_sets(tmp_path) == [backup["backup_id"]] and "/" not in backup["backup_id"]
    target = "restored \"db\"; DROP TABLE x; ="
    results = cluster_batch(pg_cluster, tmp_path, [
        step("restore", "pg_backup_restore", database=HOSTILE, target_database=target),
        step("bad", "pg_backup_restore", backup_id="../../etc"),
    ], label="hostile")
    restore = results["restore"]
    assert not restore["failed"], restore["msg"]
    assert pg_cluster.sql('SELECT count(*) FROM "s;\'x"."t""; --"', dbname=target)[0][0] == 2
    assert db_exists(pg_cluster, "postgres")
    bad = results["bad"]
    assert bad["failed"] and "is not a backup id" in bad["msg"]


def test_password_never_leaks(pg_cluster, tmp_path):
    create_db(pg_cluster, "secret_db")
    password_file = tmp_path / "pw"
    password_file.write_text(pg_cluster.password + "\n")
    backup_dir = tmp_path / "sets"
    # The password only in a file: the playbook and module arguments never hold it.
    common = pg_cluster.params(backup_dir=str(backup_dir), login_password_file=str(password_file))
    del common["login_password"]
    results = batch([
        step("backup", "pg_backup", database="secret_db"),
        step("verify", "pg_backup_verify", backup_id="{{ backup.backup_id }}"),
        step("restore", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="secret_copy"),
        # A failing run prints error output too: it must not carry the password either.
        step("failing", "pg_backup", database="no_such_db"),
    ], common=common, label="password")
    runs = [results[name] for name in ("backup", "verify", "restore", "failing")]
    for res in runs:
        assert pg_cluster.password not in res["_run"].artifact_text()
    assert not any(r["failed"] for r in runs[:3]), [r["msg"] for r in runs[:3]]
    assert runs[3]["failed"]
    for path in backup_dir.rglob("*"):
        if path.is_file():
            assert pg_cluster.password.encode() not in path.read_bytes()


KEEP_ONE = dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)


def test_precheck_min_interval_and_last_backup_record(pg_cluster, tmp_path):
    """pg_backup's own pre-checks: no room refuses before anything is written (also in check mode, measured on the
    nearest existing parent); a verified backup younger than min_interval makes it a no-op; last_backup.json follows
    the newest set and its verification; compose files of project_dir come along; retention after publishing."""
    create_db(pg_cluster, "pre_db")
    project = tmp_path / "project"
    project.mkdir()
    (project / "compose.yaml").write_text("services: {}\n")
    (project / "compose.override.yml").write_text("services: {}\n")
    (project / "notes.txt").write_text("not a compose file\n")
    backup_dir = tmp_path / "backups" / "not-yet"
    results = cluster_batch(pg_cluster, backup_dir, [
        step("refused_check", "pg_backup", check=True, database="pre_db", free_space_factor=1e15),
        step("refused", "pg_backup", database="pre_db", free_space_factor=1e15),
        step("planned", "pg_backup", check=True, database="pre_db", free_space_factor=1.5),
        step("taken", "pg_backup", database="pre_db", free_space_factor=1.5, include_compose_files=True,
             project_dir=str(project), record_last_backup=True, backup_dir_mode="0700"),
        step("verify", "pg_backup_verify", backup_id="{{ taken.backup_id }}"),
        step("again", "pg_backup", database="pre_db", min_interval=3600, record_last_backup=True),
        # Retention inside pg_backup: the newest verified set survives until a newer one is verified.
        step("second", "pg_backup", database="pre_db", retention=KEEP_ONE),
        step("verify_second", "pg_backup_verify", backup_id="{{ second.backup_id }}"),
        step("third_planned", "pg_backup", check=True, database="pre_db", retention=KEEP_ONE),
        step("third", "pg_backup", database="pre_db", retention=KEEP_ONE),
    ], label="precheck")
    for name in ("refused_check", "refused"):
        res = results[name]
        assert res["failed"] and "bytes free in %s," % tmp_path in res["msg"], res["msg"]
        assert "nothing was published" in res["msg"]
        assert res["space"]["measured_path"] == str(tmp_path) and res["space"]["backup_dir_exists"] is False
    planned = results["planned"]
    assert not planned["failed"] and planned["would_create_backup_dir"] is True
    assert planned["space"]["expected_size_bytes"] == planned["database_size_bytes"]
    assert planned["space"]["needed_bytes"] == int(planned["space"]["expected_size_bytes"] * 1.5)

    taken = results["taken"]
    assert not taken["failed"], taken["msg"]
    assert taken["space"]["measured_path"] == str(tmp_path) and taken["would_create_backup_dir"] is True
    stored = sorted(f["stored"] for f in taken["manifest"]["files_included"])
    assert stored == ["files/compose.override.yml", "files/compose.yaml"]
    assert (backup_dir.stat().st_mode & 0o777) == 0o700
    assert all(t["rows"] >= 0 and "content_checksum" not in t for t in taken["manifest"]["tables"])
    record = json.loads((backup_dir / "last_backup.json").read_text())
    assert (backup_dir / "last_backup.json").stat().st_mode & 0o777 == 0o600
    assert record["backup_id"] == taken["backup_id"] and record["verified"] is True
    assert record["last_backup_timestamp"] == taken["manifest"]["finished_at"]

    again = results["again"]
    assert not again["failed"] and again["due"] is False and again["changed"] is False
    assert again["latest_verified"]["id"] == taken["backup_id"] and taken["backup_id"] in again["skipped_reason"]
    second, third = results["second"], results["third"]
    assert not second["failed"] and second["retention"]["deleted"] == [], second
    assert sorted(second["retention"]["kept"]) == sorted([taken["backup_id"], second["backup_id"]])
    assert results["third_planned"]["retention"]["deleted"] == [taken["backup_id"]]
    assert not third["failed"] and third["retention"]["deleted"] == [taken["backup_id"]]
    assert third["retention"]["freed_bytes"] == taken["size_bytes"] and third["retention"]["busy"] == {}
    assert [name for name in backup_sets(backup_dir) if name != "last_backup.json"] == sorted(
        [second["backup_id"], third["backup_id"]])
