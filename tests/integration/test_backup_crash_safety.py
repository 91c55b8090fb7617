"""kill -9 at any step loses nothing (issue 13 items 5-9): each phase of backup, verify and restore is stopped at
a fault point (module_utils/fault.py), killed with SIGKILL, and the next run must find the database intact and
connectable, clean up every orphan under its lock and say so, and leave no set that looks complete but is not."""
import json
import os
from pathlib import Path

import pytest

from support import processes
from support.backup import backup_sets, cluster_batch, create_db, fingerprint, module, scratch_databases, step

pytestmark = pytest.mark.pg

DB = "crash_db"


def kill_at(monkeypatch, phase, name, cluster, backup_dir, **args):
    """Run module ``name`` until it stops at fault point ``phase``, SIGKILL it, and return its (failed) result."""
    return processes.kill_at(monkeypatch, phase, name, lambda: module(name, cluster, backup_dir, **args))


def connectable(cluster, name):
    return cluster.sql("SELECT datallowconn FROM pg_database WHERE datname = %s", params=(name,)) == [(True,)]


def work_dirs(backup_dir):
    return sorted(p.name for p in Path(backup_dir).iterdir() if p.name.startswith(".stackops-restore-"))


CRASH_SCHEMA = r"""
CREATE TABLE parent (id int PRIMARY KEY, note text);
CREATE TABLE child (id bigserial PRIMARY KEY, parent_id int REFERENCES parent, at timestamptz DEFAULT now());
CREATE INDEX child_parent ON child (parent_id);
INSERT INTO parent SELECT i, 'note ' || i FROM generate_series(1, 300) AS i;
INSERT INTO child (parent_id, at) SELECT 1 + i % 300, '2026-01-01'::timestamptz + i * interval '1 minute'
FROM generate_series(1, 2000) AS i;
"""


@pytest.fixture(scope="module")
def crash(pg_cluster, tmp_path_factory):
    backup_dir = tmp_path_factory.mktemp("crash")
    create_db(pg_cluster, DB, CRASH_SCHEMA)
    results = cluster_batch(pg_cluster, backup_dir, [
        step("backup", "pg_backup", database=DB, content_checksums=True),
        step("verify", "pg_backup_verify", backup_id="{{ backup.backup_id }}"),
    ], label="crash-setup")
    assert results["verify"]["verified"], results["verify"]
    return dict(dir=backup_dir, first=results["backup"]["backup_id"], before=fingerprint(pg_cluster, DB))


def assert_intact(cluster, crash):
    assert connectable(cluster, DB)
    assert fingerprint(cluster, DB) == crash["before"]
    assert scratch_databases(cluster) == []
    assert work_dirs(crash["dir"]) == []
    assert not [name for name in backup_sets(crash["dir"]) if name.endswith(".partial")]


def test_backup_killed_at_each_phase(pg_cluster, crash, monkeypatch):
    """Killed while dumping, while counting rows, and with the set complete but not yet renamed into place."""
    for phase in ("dump", "count", "publish"):
        kill_at(monkeypatch, phase, "pg_backup", pg_cluster, crash["dir"], database=DB)
        assert connectable(pg_cluster, DB)
        # What the killed run left (each run removes the partial of the one killed before it).
        partials = sorted(name for name in backup_sets(crash["dir"]) if name.endswith(".partial"))
        assert len(partials) == 1, partials
    assert (Path(crash["dir"]) / partials[0] / "manifest.json").is_file()  # complete, but never listed as a set
    results = cluster_batch(pg_cluster, crash["dir"], [
        step("listing", "pg_backup_info", database=DB),
        step("again", "pg_backup", database=DB),
        step("verify", "pg_backup_verify", backup_id="{{ again.backup_id }}"),
    ], label="after-backup-kills")
    listing = results["listing"]
    assert [entry["id"] for entry in listing["backups"]] == [crash["first"]]
    assert sorted(entry["id"] + ".partial" for entry in listing["in_progress"]) == partials
    assert sorted(results["again"]["removed_stale_partials"]) == partials
    assert results["verify"]["verified"], results["verify"]
    assert_intact(pg_cluster, crash)


def test_verified_backup_killed_at_each_phase(pg_cluster, crash, monkeypatch):
    """pg_backup with verify (the trial restore reads the dump while it is written), killed with the set and its
    verdict complete but not renamed into place, while the trial builds indexes (the dump is complete), and with its
    scratch database just created: never a set that looks verified, and the next run cleans up every orphan."""
    published = sorted(name for name in backup_sets(crash["dir"]) if not name.endswith(".partial"))
    seen = []
    for phase in ("publish", "index-build", "verify"):
        kill_at(monkeypatch, phase, "pg_backup", pg_cluster, crash["dir"], database=DB, verify=True)
        assert connectable(pg_cluster, DB)
        partials = sorted(name for name in backup_sets(crash["dir"]) if name.endswith(".partial"))
        assert len(partials) == 1, partials
        scratch = scratch_databases(pg_cluster)
        if phase == "publish":
            # Verified and complete, but a .partial: nothing lists it, and the scratch database is already gone.
            assert (Path(crash["dir"]) / partials[0] / "verification.json").is_file() and scratch == []
        else:
            # Only this run's: each run drops the scratch database of the one killed before it.
            assert len(scratch) == 1 and "_verify_" in scratch[0] and scratch[0] not in seen, (scratch, seen)
            seen.append(scratch[0])
        if phase == "index-build":
            assert (Path(crash["dir"]) / partials[0] / "data.dump.zst").is_file() and len(work_dirs(crash["dir"])) == 1
    results = cluster_batch(pg_cluster, crash["dir"], [
        step("listing", "pg_backup_info", database=DB),
        step("again", "pg_backup", database=DB, verify=True),
    ], label="after-verified-backup-kills")
    assert sorted(entry["id"] for entry in results["listing"]["backups"]) == published  # none of the killed runs'
    again = results["again"]
    assert not again["failed"] and again["verified"] is True and again["verification"]["during_backup"], again
    assert again["removed_stale_partials"] == partials
    assert "dropped scratch database %s" % seen[-1] in again["cleaned_up"]
    assert_intact(pg_cluster, crash)


def test_verify_killed_with_its_scratch_database(pg_cluster, crash, monkeypatch):
    kill_at(monkeypatch, "verify", "pg_backup_verify", pg_cluster, crash["dir"], backup_id=crash["first"])
    left = scratch_databases(pg_cluster)
    assert len(left) == 1 and "_verify_" in left[0]
    res = module("pg_backup_verify", pg_cluster, crash["dir"], backup_id=crash["first"])
    assert res["verified"], res
    assert "dropped scratch database %s" % left[0] in res["cleaned_up"]
    assert_intact(pg_cluster, crash)


def test_restore_killed_at_each_phase(pg_cluster, crash, monkeypatch):
    """Killed loading rows, building indexes, and in the swap. Each run cleans up after the one killed before it;
    the last kill (in the swap) leaves the target blocked, and the next run allows connections again."""
    args = dict(backup_id=crash["first"], replace=True, confirm=True)
    for phase in ("restore-load", "index-build", "swap"):
        kill_at(monkeypatch, phase, "pg_backup_restore", pg_cluster, crash["dir"], **args)
        left = scratch_databases(pg_cluster)
        assert len(left) == 1 and "_restore_" in left[0], left  # the previous run's orphan is gone
        if phase == "swap":
            # Killed between blocking connections and the renames: the renames rolled back, the block did not.
            assert not connectable(pg_cluster, DB)
        else:
            assert connectable(pg_cluster, DB) and fingerprint(pg_cluster, DB) == crash["before"]
        if phase == "index-build":
            assert len(work_dirs(crash["dir"])) == 1
    res = module("pg_backup_restore", pg_cluster, crash["dir"], **args)
    assert not res["failed"], res["msg"]
    assert "dropped scratch database %s" % left[0] in res["cleaned_up"]
    assert "allowed connections to %s again (a killed restore had blocked them)" % DB in res["cleaned_up"]
    assert_intact(pg_cluster, crash)


def test_restore_killed_after_the_renames_commit(pg_cluster, crash, monkeypatch):
    """Killed once the swap's renames committed, before its bookkeeping: the restored content is the database now,
    the replaced copy waits under its scratch name, and the next run drops it and says so."""
    pg_cluster.sql("INSERT INTO parent VALUES (100001, 'written after the backup')", dbname=DB)
    changed = fingerprint(pg_cluster, DB)
    assert changed != crash["before"]  # so the restored content can be told from the replaced one
    kill_at(monkeypatch, "swapped", "pg_backup_restore", pg_cluster, crash["dir"], backup_id=crash["first"],
            replace=True, confirm=True)
    assert connectable(pg_cluster, DB) and fingerprint(pg_cluster, DB) == crash["before"]
    (old,) = scratch_databases(pg_cluster)
    assert "_old_" in old
    pg_cluster.sql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % old)  # blocked before the renames
    assert fingerprint(pg_cluster, old) == changed  # nothing of the replaced content is lost yet
    res = module("pg_backup_verify", pg_cluster, crash["dir"], backup_id=crash["first"], trial_restore=False)
    assert res["verified"], res
    assert "dropped scratch database %s" % old in res["cleaned_up"]
    assert_intact(pg_cluster, crash)


def test_retention_killed_mid_delete(pg_cluster, tmp_path, monkeypatch):
    """Killed between renaming a doomed set out of the catalog and removing it: the set is never listed again (not
    even as damaged), the newer set is untouched, and the next run removes the rest and says so."""
    create_db(pg_cluster, "crash_retention", "CREATE TABLE t AS SELECT generate_series(1, 10) AS i")
    results = cluster_batch(pg_cluster, tmp_path, [
        step("b1", "pg_backup", database="crash_retention"),
        step("v1", "pg_backup_verify", backup_id="{{ b1.backup_id }}", trial_restore=False),
        step("b2", "pg_backup", database="crash_retention"),
        step("v2", "pg_backup_verify", backup_id="{{ b2.backup_id }}", trial_restore=False),
    ], label="retention-kill-setup")
    older, newer = results["b1"]["backup_id"], results["b2"]["backup_id"]
    assert results["v2"]["verified"], results["v2"]
    kill_at(monkeypatch, "retention-delete", "pg_backup_retention", pg_cluster, tmp_path, database="crash_retention",
            keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    doomed = tmp_path / (".deleting-" + older)
    assert doomed.is_dir() and backup_sets(tmp_path) == [newer]
    after = cluster_batch(pg_cluster, tmp_path, [
        step("listing", "pg_backup_info", database="crash_retention"),
        step("verify", "pg_backup_verify", backup_id=newer, trial_restore=False),
    ], label="retention-kill-after")
    listing = after["listing"]
    assert [entry["id"] for entry in listing["backups"]] == [newer]
    assert not listing.get("invalid") and not listing.get("in_progress"), listing
    assert after["verify"]["verified"], after["verify"]
    assert "removed %s, a set a killed retention run had started to delete" % doomed.name in after["verify"]["cleaned_up"]
    assert not doomed.exists() and backup_sets(tmp_path) == [newer]


def test_stale_temp_files_never_make_a_set_unrestorable(pg_cluster, crash):
    """Item 6: what a write_json killed before its rename leaves, in a set and beside the locks."""
    set_dir = Path(crash["dir"]) / crash["first"]
    (set_dir / "verification.json.tmp-999999").write_text("{")
    res = module("pg_backup_verify", pg_cluster, crash["dir"], backup_id=crash["first"], trial_restore=False)
    assert res["verified"] and res["checksums_ok"], res
    assert "removed unfinished temporary file %s" % (set_dir / "verification.json.tmp-999999") in res["cleaned_up"]
    assert not (set_dir / "verification.json.tmp-999999").exists()


def test_partials_of_other_databases_are_left_alone(pg_cluster, tmp_path):
    """Item 7: a backup of 'crash' must not take 'crash-prod-...partial' (or 'crash_db-...') for its own."""
    create_db(pg_cluster, "crash", "CREATE TABLE t (x int)")
    running = tmp_path / "crash-prod-20260101T000000000Z.partial"
    lookalike = tmp_path / "crash_db-20260101T000000000Z.partial"
    own = tmp_path / "crash-20260101T000000000Z.partial"
    for path in (running, lookalike, own):
        path.mkdir()
        (path / "data.dump").write_bytes(b"half")
    res = module("pg_backup", pg_cluster, tmp_path, database="crash")
    assert not res["failed"], res["msg"]
    assert res["removed_stale_partials"] == [own.name]
    assert running.is_dir() and lookalike.is_dir() and not own.exists()


def test_counts_hold_locks_until_done(pg_cluster, tmp_path, monkeypatch):
    """Item 8: while rows are counted, a TRUNCATE waits; it could otherwise make the manifest say 0 rows for a dump
    that has them (TRUNCATE is not MVCC-safe)."""
    create_db(pg_cluster, "count_db", "CREATE TABLE a (x int); CREATE TABLE z (x int);"
              "INSERT INTO a SELECT generate_series(1, 100); INSERT INTO z SELECT generate_series(1, 100)")
    def truncate_waits():
        with pg_cluster.connect("count_db") as conn:
            conn.execute("SET lock_timeout = '300ms'")
            with pytest.raises(Exception, match="lock timeout"):
                conn.execute("TRUNCATE z")

    res = processes.pause_at(monkeypatch, "count", "pg_backup",
                             lambda: module("pg_backup", pg_cluster, tmp_path, database="count_db"), truncate_waits)
    assert not res["failed"], res["msg"]
    assert [(t["name"], t["rows"]) for t in res["manifest"]["tables"]] == [("a", 100), ("z", 100)]


def test_publish_error_after_the_rename_says_the_set_is_published(tmp_path, monkeypatch):
    """Item 9: the rename succeeded, the directory fsync failed: the set is there, and the error must say so."""
    from ansible_collections.stackops.runbooks.plugins.module_utils import backup_set
    partial, final = tmp_path / "db-20260101T000000000Z.partial", tmp_path / "db-20260101T000000000Z"
    partial.mkdir()
    (partial / "manifest.json").write_text(json.dumps({}))
    real = backup_set.fsync_path

    def failing(path):
        if os.path.abspath(path) == str(tmp_path):
            raise OSError(5, "Input/output error")
        real(path)

    monkeypatch.setattr(backup_set, "fsync_path", failing)
    with pytest.raises(backup_set.PublishedNotDurable) as caught:
        backup_set.publish(str(partial), str(final))
    assert final.is_dir() and not partial.exists()
    assert "is published" in str(caught.value) and "nothing was published" not in str(caught.value)
