"""Pure logic of the backup module_utils: retention math, names, TOC selection, comparisons."""
import datetime

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import (
    backup_lock, backup_retention, backup_set, pg, pg_database, restore_selection)

UTC = datetime.timezone.utc


def make_sets(times, verified=()):
    sets = [dict(id="db-%02d" % i, started_at=backup_set.isoformat(t), verified=(i in verified))
            for i, t in enumerate(times)]
    return sorted(sets, key=lambda s: s["started_at"], reverse=True)


def daily(n, hour=3):
    start = datetime.datetime(2026, 3, 31, hour, tzinfo=UTC)
    return [start - datetime.timedelta(days=d) for d in range(n)]


def test_keep_last_only():
    sets = make_sets(daily(10))
    keep, delete = backup_retention.retention_plan(sets, keep_last=3, keep_daily=0, keep_weekly=0, keep_monthly=0)
    assert sorted(keep) == ["db-00", "db-01", "db-02"]
    assert len(delete) == 7


def test_daily_uses_newest_of_each_day():
    times = daily(5) + [t.replace(hour=1) for t in daily(5)]
    sets = make_sets(times)
    keep, delete = backup_retention.retention_plan(sets, keep_last=0, keep_daily=2, keep_weekly=0, keep_monthly=0)
    assert sorted(keep) == ["db-00", "db-01"]  # the 03:00 sets of the two newest days
    assert len(delete) == 8


def test_weekly_and_monthly_buckets():
    sets = make_sets(daily(70))
    keep, delete = backup_retention.retention_plan(sets, keep_last=1, keep_daily=0, keep_weekly=3, keep_monthly=3)
    reasons = dict(keep)
    assert "last" in reasons["db-00"] and "weekly" in reasons["db-00"] and "monthly" in reasons["db-00"]
    months = sorted({s["started_at"][:7] for s in sets if "monthly" in keep.get(s["id"], [])})
    assert months == ["2026-01", "2026-02", "2026-03"]
    assert sum("weekly" in r for r in keep.values()) == 3
    assert len(keep) + len(delete) == 70


def test_newest_verified_is_never_deleted():
    sets = make_sets(daily(6), verified={4})
    keep, delete = backup_retention.retention_plan(sets, keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    # keep_last counts verified sets (issue 13 item 10), so db-04 is also the one "last" keeps.
    assert keep["db-04"] == ["last", "newest verified"]
    assert "db-04" not in delete


def test_zero_policy_still_keeps_newest_verified():
    sets = make_sets(daily(3), verified={1, 2})
    keep, delete = backup_retention.retention_plan(sets, 0, 0, 0, 0)
    assert list(keep) == ["db-01"] and sorted(delete) == ["db-00", "db-02"]


@pytest.mark.parametrize("name", ['appdb', 'we"ird; name', 'ünï cødé', '../../etc', '.hidden', 'a' * 63])
def test_slug_is_safe_and_distinct(name):
    s = backup_set.slug(name)
    assert "/" not in s and not s.startswith(".") and len(s) <= 60
    assert s != backup_set.slug(name + "x")
    assert backup_set.valid_backup_id(backup_set.new_backup_id(name, datetime.datetime(2026, 1, 1, tzinfo=UTC)))


@pytest.mark.parametrize("bad", ["", "..", ".", "../x", "a/b", ".locks"])
def test_invalid_backup_ids(bad):
    assert not backup_set.valid_backup_id(bad)


def test_scratch_name_fits_postgres_limit():
    name = backup_set.scratch_name("ü" * 63, "restore")
    assert len(name.encode("utf-8")) <= 63 and "_restore_" in name


@pytest.mark.parametrize("text,expected", [
    ("plain", ("public", "plain")),
    ("s.t", ("s", "t")),
    ('"my.schema"."T ; x"', ("my.schema", "T ; x")),
    ('"a""b".c', ('a"b', "c")),
])
def test_parse_table_name(text, expected):
    assert restore_selection.parse_table_name(text) == expected


@pytest.mark.parametrize("bad", ["a.b.c", '"open', ".x", "x."])
def test_parse_table_name_rejects(bad):
    with pytest.raises(backup_set.BackupError):
        restore_selection.parse_table_name(bad)


TOC = """;
; Archive created at 2026-01-01
;
215; 1259 16390 TABLE public plain postgres
216; 1259 16391 TABLE public plain_other postgres
3; 3079 16385 EXTENSION - citext
4; 0 0 COMMENT - EXTENSION citext
6; 2615 16389 SCHEMA - Sales Ünïcode postgres
217; 1259 16392 TABLE Sales Ünïcode MixedCase postgres
3340; 0 16390 TABLE DATA public plain postgres
3341; 0 16391 TABLE DATA public plain_other postgres
3342; 0 16392 TABLE DATA Sales Ünïcode MixedCase postgres
3190; 2606 16400 CONSTRAINT Sales Ünïcode MixedCase MixedCase_pkey postgres
"""


def test_select_toc_tables_match_whole_names():
    kept = restore_selection.select_toc(TOC, [("public", "plain")], [])
    assert [line.split(";")[0] for line in kept] == ["215", "3", "4", "3340"]


def test_select_toc_schema_with_spaces():
    kept = restore_selection.select_toc(TOC, [], ["Sales Ünïcode"])
    assert [line.split(";")[0] for line in kept] == ["3", "4", "6", "217", "3342", "3190"]


def test_compare_tables_reports_every_kind_of_difference():
    expected = [dict(schema="s", name="a", rows=2, content_checksum="x"), dict(schema="s", name="b", rows=1),
                dict(schema="s", name="c", rows=5, content_checksum="y")]
    actual = [dict(schema="s", name="a", rows=2, content_checksum="z"), dict(schema="s", name="c", rows=4),
              dict(schema="s", name="d", rows=0)]
    diffs = pg_database.compare_tables(expected, actual)
    assert diffs == ["s.a: content checksum differs from the manifest", "s.b: missing after restore",
                     "s.c: 4 rows after restore, manifest says 5", "s.d: present after restore but not in the manifest"]


def test_conninfo_dbname_escapes():
    assert pg.conninfo_dbname("a'b\\c=d") == "dbname='a\\'b\\\\c=d'"


def test_lock_names_holder(tmp_path):
    backup_set.ensure_backup_dir(str(tmp_path))
    first = backup_lock.DatabaseLock(str(tmp_path), "db", "restore", 0).acquire()
    try:
        with pytest.raises(backup_lock.LockTimeout) as info:
            backup_lock.DatabaseLock(str(tmp_path), "db", "backup", 0).acquire()
        assert "restore (pid" in str(info.value) and "lock_timeout" in str(info.value)
        assert backup_lock.DatabaseLock(str(tmp_path), "other", "backup", 0).acquire()
    finally:
        first.release()
    assert not backup_lock.DatabaseLock(str(tmp_path), "db", "list", 0).is_held_elsewhere()


def test_backup_metrics_are_one_gauge_each_with_the_database_escaped():
    from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import backup_metrics
    manifest = {"database": 'shop "eu"\\1', "finished_at": "2026-01-02T03:04:05.000000Z", "size_bytes": 1234,
                "duration_seconds": 2.5}
    text = backup_metrics(manifest, verified=True)
    label = '{database="shop \\"eu\\"\\\\1"}'
    assert "stackops_backup_last_success_timestamp_seconds%s 1767323045\n" % label in text
    assert "stackops_backup_last_size_bytes%s 1234\n" % label in text
    assert "stackops_backup_last_duration_seconds%s 2.5\n" % label in text
    assert "stackops_backup_last_verified%s 1\n" % label in text
    assert text.count("# TYPE ") == 4 and backup_metrics(manifest, verified=False).endswith("%s 0\n" % label)


def test_backups_listing_merges_both_kinds_and_says_where_each_set_lives():
    from ansible_collections.stackops.runbooks.plugins.filter.backups import FilterModule
    listing = FilterModule().filters()["backups_listing"]
    catalog = {"backups": [{"id": "a-2", "age_seconds": 50, "size_bytes": 10, "verified": True},
                           {"id": "a-1", "age_seconds": 500, "size_bytes": 20, "verified": True}],
               "total_size_bytes": 30, "rpo_seconds": 50, "in_progress": [{"id": "a-3"}], "latest": {"id": "a-2"},
               "latest_verified": {"id": "a-2"}}
    pitr = {"enabled": True, "server": "pg", "pitr_dir": "/p", "receiver_alive": True, "earliest_recoverable": "e",
            "latest_recoverable": "l", "backups": [{"id": "b1", "kind": "physical", "age_seconds": 20, "size_bytes": 100,
                                                   "verified": True, "begin_time": "t0", "end_time": "t1"}]}
    result = listing(catalog, pitr, {"remote_ids": ["a-1", "a-0"], "targets": ["s3"], "rpo_seconds": 900})
    assert [b["id"] for b in result["backups"]] == ["b1", "a-2", "a-1"]
    assert result["backups"][0]["database"] == "(cluster)" and result["backups"][0]["started_at"] == "t0"
    assert result["backups"][1]["kind"] == "logical" and result["count"] == 3 and result["total_size_bytes"] == 130
    assert result["physical"] == {"server": "pg", "pitr_dir": "/p", "receiver_alive": True, "earliest_recoverable": "e",
                                  "latest_recoverable": "l"}
    assert result["in_progress"] == ["a-3"] and result["latest_verified_age_seconds"] == 20
    assert (result["rpo_seconds"], result["rpo_kind"], result["rpo_source"]) == (20, "physical", "local")
    assert result["locations"] == {"a-2": "local", "a-0": "remote", "a-1": "both"} and result["offsite"] == ["s3"]
    judged_offsite = listing(catalog, {"enabled": False}, {"remote_ids": [], "rpo_seconds": 900}, True)
    assert (judged_offsite["rpo_seconds"], judged_offsite["rpo_kind"], judged_offsite["rpo_source"]) == (900, None, "offsite")
    assert judged_offsite["physical"] is None and judged_offsite["count"] == 2 and judged_offsite["offsite"] is None
    empty = listing(dict(catalog, backups=[], rpo_seconds=None, total_size_bytes=0), {"enabled": False})
    assert (empty["rpo_seconds"], empty["rpo_kind"], empty["locations"]) == (None, None, {})
