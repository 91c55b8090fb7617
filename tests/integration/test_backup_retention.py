"""pg_backup_retention on real backup-set directories: what it keeps, what it never deletes, and check mode.

The sets are written the way pg_backup publishes them (a directory per id with manifest.json, a data file and, when
verified, verification.json), with start times spread over days, so the policy can be checked without taking
dozens of real dumps. All calls of the file run as one playbook (``batch``); each is a real module run.
"""
import datetime
import json
import os

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_lock import DatabaseLock
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST_VERSION, ensure_backup_dir, isoformat, new_backup_id)
from support.backup import batch, step

pytestmark = pytest.mark.pg

NOW = datetime.datetime.now(datetime.timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)


def write_set(backup_dir, database, started, verified=True, size=1000, group=None, group_databases=()):
    """One published backup set (of the all-databases run ``group``, when given); returns its id."""
    backup_id = new_backup_id(database, started)
    path = backup_dir / backup_id
    path.mkdir(parents=True)
    (path / "data.dump").write_bytes(b"x" * size)
    manifest = dict(manifest_version=MANIFEST_VERSION, id=backup_id, database=database, format="custom",
                    compression=dict(method="none", level=0, where="pg_dump"), data="data.dump",
                    started_at=isoformat(started), finished_at=isoformat(started + datetime.timedelta(seconds=5)),
                    size_bytes=size, tables=[dict(schema="public", name="t", rows=1)], checksum="0" * 64,
                    files={"data.dump": dict(size=size, sha256="0" * 64)})
    if group:
        manifest.update(group=group, group_databases=list(group_databases))
    (path / "manifest.json").write_text(json.dumps(manifest))
    if verified is not None:
        (path / "verification.json").write_text(json.dumps(dict(verified=verified, verified_at=isoformat(started))))
    return backup_id


def day(days_ago, hour):
    return NOW.replace(hour=hour) - datetime.timedelta(days=days_ago)


def sets_in(backup_dir):
    return sorted(p.name for p in backup_dir.iterdir() if not p.name.startswith("."))


def tree(path):
    return sorted((os.path.relpath(os.path.join(root, name), path), os.lstat(os.path.join(root, name)).st_mtime_ns)
                  for root, dirs, files in os.walk(path) for name in dirs + files)


@pytest.fixture(scope="module")
def retention(tmp_path_factory):
    root = tmp_path_factory.mktemp("retention")
    dirs = {name: root / name for name in ("daily_check", "daily", "verified", "busy", "groups")}
    # Two sets a day for five days, all verified.
    daily = {}
    for name in ("daily_check", "daily"):
        daily[name] = [write_set(dirs[name], "appdb", day(d, h), size=1000 + d * 10 + h) for d in range(5) for h in (15, 3)]
    # Only the oldest of five sets is verified; one is unverified-by-failure, the others never verified.
    verified = [write_set(dirs["verified"], "appdb", day(d, 3), verified=(True if d == 4 else False if d == 2 else None))
                for d in range(5)]
    # Two databases: appdb's sets and an abandoned .partial that looks oldest; otherdb is busy (lock held).
    busy_app = [write_set(dirs["busy"], "appdb", day(d, 3)) for d in range(4)]
    busy_other = [write_set(dirs["busy"], "otherdb", day(d, 3)) for d in range(4)]
    partial = dirs["busy"] / (new_backup_id("appdb", day(30, 3)) + ".partial")
    partial.mkdir()
    (partial / "data.dump").write_bytes(b"half")
    before_check = tree(dirs["daily_check"])
    # Three all-databases runs: A proven whole; B's verify of two failed; C not verified yet. Plus sets of one outside
    # any group, which the per-database policy handles.
    both = ("one", "two")
    groups = {}
    for name, days_ago, states in (("all-a", 3, (True, True)), ("all-b", 2, (True, False)), ("all-c", 1, (True, None))):
        groups[name] = [write_set(dirs["groups"], database, day(days_ago, 3), verified=state, group=name,
                                  group_databases=both) for database, state in zip(both, states)]
    loose = [write_set(dirs["groups"], "one", day(days_ago, 9)) for days_ago in (0, 4)]

    policy = dict(keep_last=2, keep_daily=4, keep_weekly=0, keep_monthly=0)
    ensure_backup_dir(str(dirs["busy"]))
    lock = DatabaseLock(str(dirs["busy"]), "otherdb", "backup", 0).acquire()
    try:
        results = batch([
            step("daily_check", "pg_backup_retention", check=True, backup_dir=str(dirs["daily_check"]), **policy),
            step("daily", "pg_backup_retention", backup_dir=str(dirs["daily"]), database="appdb", **policy),
            step("verified", "pg_backup_retention", backup_dir=str(dirs["verified"]), keep_last=1, keep_daily=0,
                 keep_weekly=0, keep_monthly=0),
            step("busy", "pg_backup_retention", backup_dir=str(dirs["busy"]), keep_last=1, keep_daily=0,
                 keep_weekly=0, keep_monthly=0, lock_timeout=1),
            step("negative", "pg_backup_retention", backup_dir=str(dirs["daily"]), keep_last=-1),
            step("groups", "pg_backup_retention", backup_dir=str(dirs["groups"]), keep_last=1, keep_daily=0,
                 keep_weekly=0, keep_monthly=0),
        ], label="retention")
    finally:
        lock.release()
    return dict(dirs=dirs, results=results, daily=daily, verified=verified, busy_app=busy_app, busy_other=busy_other,
                partial=partial, before_check=before_check, groups=groups, loose=loose)


def test_keep_last_and_daily(retention):
    ids = retention["daily"]["daily"]  # newest first: day 0 15:00, day 0 03:00, day 1 15:00, ...
    res = retention["results"]["daily"]
    assert not res["failed"], res["msg"]
    # keep_last=2: both of today; keep_daily=4: the newest (15:00) set of each of the 4 newest days.
    kept = [ids[0], ids[1], ids[2], ids[4], ids[6]]
    assert sets_in(retention["dirs"]["daily"]) == sorted(kept)
    assert sorted(res["deleted"]) == sorted(set(ids) - set(kept)) and res["changed"] is True
    assert "last" in res["kept"][ids[0]] and "daily" in res["kept"][ids[0]]
    assert res["kept"][ids[1]] == ["last"] and res["kept"][ids[6]] == ["daily"]
    sizes = {backup_id: 1000 + d * 10 + h for backup_id, (d, h) in zip(ids, [(d, h) for d in range(5) for h in (15, 3)])}
    assert res["freed_bytes"] == sum(sizes[b] for b in res["deleted"])
    assert not any(p.name.startswith(".deleting-") for p in retention["dirs"]["daily"].iterdir())


def test_check_mode_lists_and_deletes_nothing(retention):
    res = retention["results"]["daily_check"]
    ids = retention["daily"]["daily_check"]
    assert not res["failed"], res["msg"]
    assert sorted(res["deleted"]) == sorted([ids[3], ids[5], ids[7], ids[8], ids[9]])
    assert res["changed"] is True and "would delete 5 backup sets" in res["msg"]
    assert tree(retention["dirs"]["daily_check"]) == retention["before_check"]


def test_newest_verified_is_never_deleted(retention):
    res = retention["results"]["verified"]
    ids = retention["verified"]
    assert not res["failed"], res["msg"]
    # keep_last=1 keeps only the newest; the oldest is the only verified set and survives too.
    assert sets_in(retention["dirs"]["verified"]) == sorted([ids[0], ids[4]])
    # keep_last counts verified sets (issue 13 item 10): it keeps ids[4]; ids[0] is newer and awaits verification.
    assert res["kept"][ids[4]] == ["last", "newest verified"] and sorted(res["deleted"]) == sorted(ids[1:4])
    assert res["kept"][ids[0]] == ["awaiting verification"]


def test_partial_and_locked_sets_are_left_alone(retention):
    res = retention["results"]["busy"]
    assert not res["failed"], res["msg"]
    on_disk = sets_in(retention["dirs"]["busy"])
    # otherdb's lock was held: all its sets stay, and the holder is named.
    assert set(retention["busy_other"]) <= set(on_disk)
    assert "otherdb" in res["busy"] and "backup (pid %d" % os.getpid() in res["busy"]["otherdb"]
    assert "skipped busy databases: otherdb" in res["msg"]
    # appdb: keep_last=1, and the newest is verified; the .partial is never treated as a set.
    assert retention["partial"].is_dir() and retention["partial"].name in on_disk
    assert sorted(res["deleted"]) == sorted(retention["busy_app"][1:])
    assert retention["busy_app"][0] in on_disk


def test_negative_policy_is_refused(retention):
    res = retention["results"]["negative"]
    assert res["failed"] and "must be 0 or more" in res["msg"]


def test_groups_are_kept_or_deleted_whole(retention):
    """issue 20 review 10: retention ran per database and deleted one database's set of the only complete verified
    group (A), leaving no group a disaster recovery could restore. Groups now count as units: A (complete, verified)
    stays whole, C (newer, awaiting its verify) stays whole, B (a failed verify) goes whole."""
    res = retention["results"]["groups"]
    groups = retention["groups"]
    assert not res["failed"], res["msg"]
    on_disk = set(sets_in(retention["dirs"]["groups"]))
    assert set(groups["all-a"]) <= on_disk and set(groups["all-c"]) <= on_disk, on_disk
    assert not set(groups["all-b"]) & on_disk
    assert res["deleted_groups"] == ["all-b"] and res["kept_groups"]["all-a"] == ["last", "newest verified"]
    assert res["kept_groups"]["all-c"] == ["awaiting verification"]
    # Outside groups, per database as before: keep_last=1 keeps the newest loose set of "one".
    assert retention["loose"][0] in on_disk and retention["loose"][1] not in on_disk
    assert sorted(res["deleted"]) == sorted(groups["all-b"] + [retention["loose"][1]])
