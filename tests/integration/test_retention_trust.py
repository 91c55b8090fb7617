"""Retention and the catalog can be trusted (issue 13 items 10-13): verified sets count, directories are what is
acted on, manifest paths stay inside their set, and one broken manifest breaks nothing else."""
import datetime
import hashlib
import json
from pathlib import Path

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    MANIFEST_VERSION, isoformat, new_backup_id)
from support.backup import batch, step

pytestmark = pytest.mark.pg

NOW = datetime.datetime.now(datetime.timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)


def day(days_ago):
    return NOW - datetime.timedelta(days=days_ago)


def write_set(backup_dir, database, started, verified=None, name=None, **overrides):
    """One published set with a real data file (so checksums can be checked); returns its directory name."""
    backup_id = new_backup_id(database, started)
    path = Path(backup_dir) / (name or backup_id)
    path.mkdir(parents=True)
    data = b"data of %s" % backup_id.encode()
    (path / "data.dump").write_bytes(data)
    files = {"data.dump": dict(size=len(data), sha256=hashlib.sha256(data).hexdigest())}
    manifest = dict(manifest_version=MANIFEST_VERSION, id=backup_id, database=database, format="custom",
                    compression=dict(method="none", level=0, where="pg_dump"), data="data.dump",
                    started_at=isoformat(started), finished_at=isoformat(started + datetime.timedelta(seconds=5)),
                    size_bytes=len(data), tables=[dict(schema="public", name="t", rows=1)], checksum="0" * 64,
                    files=files)
    manifest.update(overrides)
    (path / "manifest.json").write_text(json.dumps(manifest))
    if verified is not None:
        (path / "verification.json").write_text(json.dumps(dict(verified=verified, verified_at=isoformat(started))))
    return path.name


def present(backup_dir):
    return sorted(p.name for p in Path(backup_dir).iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def trust(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    dirs = {name: root / name for name in ("verified", "buckets", "foreign", "paths", "broken")}
    # Newest first: day 0, 1, 2 never verified; day 3 verified; day 4 failed its verify; day 5 verified.
    states = [None, None, None, True, False, True]
    verified = [write_set(dirs["verified"], "appdb", day(d), verified=states[d]) for d in range(6)]
    buckets = [write_set(dirs["buckets"], "appdb", day(d), verified=states[d]) for d in range(6)]
    # A hand-copied set: its directory says appdb (oldest), its manifest claims the newest verified set's id.
    keeper = write_set(dirs["foreign"], "appdb", day(0), verified=True)
    older = write_set(dirs["foreign"], "appdb", day(1), verified=True)
    forged = write_set(dirs["foreign"], "appdb", day(9), verified=True, name=new_backup_id("appdb", day(20)), id=keeper)
    # A set whose manifest id is its directory name, but whose database is another one than that name says.
    other_db = write_set(dirs["foreign"], "otherdb", day(9), verified=True, name=new_backup_id("appdb", day(30)),
                         id=new_backup_id("appdb", day(30)))
    # A set whose manifest points its data outside the set, at a file that matches the recorded checksum.
    outside = root / "x.zst"
    outside.write_bytes(b"not yours")
    digest = hashlib.sha256(b"not yours").hexdigest()
    escaping = write_set(dirs["paths"], "appdb", day(0), verified=True, data=str(outside),
                         files={str(outside): dict(size=9, sha256=digest)})
    climbing = write_set(dirs["paths"], "appdb", day(1), verified=True, data="../x.zst",
                         files={"../x.zst": dict(size=9, sha256=digest)})
    # One broken and one hand-made manifest beside good sets of two databases.
    good_app = write_set(dirs["broken"], "appdb", day(0), verified=True)
    good_other = [write_set(dirs["broken"], "otherdb", day(d), verified=True) for d in range(3)]
    broken = dirs["broken"] / new_backup_id("appdb", day(5))
    broken.mkdir()
    (broken / "manifest.json").write_text("[]")
    handmade = dirs["broken"] / new_backup_id("otherdb", day(6))
    handmade.mkdir()
    (handmade / "manifest.json").write_text(json.dumps(dict(manifest_version=MANIFEST_VERSION, id=handmade.name,
                                                            database="otherdb")))
    none = dict(keep_daily=0, keep_weekly=0, keep_monthly=0)
    results = batch([
        step("verified", "pg_backup_retention", backup_dir=str(dirs["verified"]), keep_last=2, **none),
        step("buckets", "pg_backup_retention", backup_dir=str(dirs["buckets"]), keep_last=0, keep_daily=2,
             keep_weekly=0, keep_monthly=0),
        step("foreign_list", "pg_backup_info", backup_dir=str(dirs["foreign"])),
        step("foreign", "pg_backup_retention", backup_dir=str(dirs["foreign"]), keep_last=1, **none),
        step("foreign_verify", "pg_backup_verify", backup_dir=str(dirs["foreign"]), backup_id=forged,
             trial_restore=False),
        step("escaping", "pg_backup_verify", backup_dir=str(dirs["paths"]), backup_id=escaping, trial_restore=False),
        step("climbing", "pg_backup_verify", backup_dir=str(dirs["paths"]), backup_id=climbing, trial_restore=False),
        step("paths_list", "pg_backup_info", backup_dir=str(dirs["paths"])),
        step("broken_list", "pg_backup_info", backup_dir=str(dirs["broken"])),
        step("broken_retention", "pg_backup_retention", backup_dir=str(dirs["broken"]), keep_last=1, **none),
    ], label="retention-trust")
    return dict(dirs=dirs, results=results, verified=verified, buckets=buckets, keeper=keeper, older=older,
                forged=forged, other_db=other_db, outside=outside, good_app=good_app, good_other=good_other,
                broken=broken.name, handmade=handmade.name)


def test_unverified_sets_never_push_out_verified_ones(trust):
    """Item 10: keep_last counts verified sets; unverified sets older than the newest verified one go first."""
    res, ids = trust["results"]["verified"], trust["verified"]
    assert not res["failed"], res["msg"]
    # Verified: day 3 and day 5 (keep_last=2). Waiting for a verify: day 0 and 1. Deleted: day 2 (unverified, beyond
    # keep_last of the waiting ones) and day 4 (failed, older than the newest verified).
    assert present(trust["dirs"]["verified"]) == sorted([ids[0], ids[1], ids[3], ids[5]])
    assert sorted(res["deleted"]) == sorted([ids[2], ids[4]])
    assert "last" in res["kept"][ids[5]] and res["kept"][ids[0]] == ["awaiting verification"]


def test_each_bucket_keeps_its_newest_verified_set(trust):
    res, ids = trust["results"]["buckets"], trust["buckets"]
    assert not res["failed"], res["msg"]
    # keep_daily=2 over verified sets: day 3 and day 5; the newest unverified set still waits for its verify.
    assert present(trust["dirs"]["buckets"]) == sorted([ids[0], ids[3], ids[5]])
    assert res["kept"][ids[5]] == ["daily"]


def test_foreign_sets_are_reported_and_never_acted_on(trust):
    """Item 11: retention deletes by directory name; a manifest that disagrees with its directory is foreign."""
    listing = trust["results"]["foreign_list"]
    assert not listing["failed"], listing["msg"]
    assert [entry["id"] for entry in listing["backups"]] == [trust["keeper"], trust["older"]]
    problems = dict((entry["id"], entry["problem"]) for entry in listing["invalid"])
    assert sorted(problems) == sorted([trust["forged"], trust["other_db"]])
    assert "differs from its directory name" in problems[trust["forged"]]
    assert "does not match its directory name" in problems[trust["other_db"]]
    res = trust["results"]["foreign"]
    assert not res["failed"], res["msg"]
    assert res["deleted"] == [trust["older"]]
    assert present(trust["dirs"]["foreign"]) == sorted([trust["keeper"], trust["forged"], trust["other_db"]])
    verify = trust["results"]["foreign_verify"]
    assert verify["failed"] and "is foreign" in verify["msg"]


def test_manifest_paths_must_stay_inside_the_set(trust):
    """Item 12: a forged set whose data is /tmp/x.zst (or ../x.zst) is refused, and the file is never read."""
    for name, problem in (("escaping", "an absolute path outside the set"), ("climbing", "climbing out of the set")):
        res = trust["results"][name]
        assert res["failed"] and not res.get("verified"), res
        assert problem in res["msg"], res["msg"]
    assert trust["outside"].read_bytes() == b"not yours"
    listing = trust["results"]["paths_list"]
    assert listing["backups"] == [] and len(listing["invalid"]) == 2


def test_one_broken_manifest_breaks_nothing_else(trust):
    """Item 13: the broken and the hand-made manifest are invalid in the listing; retention of both databases runs."""
    listing = trust["results"]["broken_list"]
    assert not listing["failed"], listing["msg"]
    assert sorted(entry["id"] for entry in listing["invalid"]) == sorted([trust["broken"], trust["handmade"]])
    assert sorted(entry["id"] for entry in listing["backups"]) == sorted([trust["good_app"]] + trust["good_other"])
    res = trust["results"]["broken_retention"]
    assert not res["failed"], res["msg"]
    assert sorted(res["deleted"]) == sorted(trust["good_other"][1:])
    assert present(trust["dirs"]["broken"]) == sorted([trust["good_app"], trust["good_other"][0], trust["broken"],
                                                       trust["handmade"]])
