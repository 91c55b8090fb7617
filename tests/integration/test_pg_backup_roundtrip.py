"""Round trips through pg_backup (with its own trial restore) -> pg_backup_verify -> pg_backup_restore on a real
PostgreSQL 15.

Sequential module calls without checks in between run as one ansible-runner playbook (``batch``): each is still a
real module run, only the ansible-playbook start-up is shared.
"""
import json

import pytest

from support.backup import (backup_sets, cluster_batch, create_db, db_exists, fingerprint, manifest, scratch_databases,
                            step)

pytestmark = pytest.mark.pg

FORMATS = [
    dict(format="custom", compression="zstd"),
    dict(format="custom", compression="gzip"),
    dict(format="directory", compression="gzip", jobs=2),
    dict(format="plain", compression="zstd"),
    dict(format="custom", compression="lz4"),
    dict(format="plain", compression="none"),
]


def format_id(options):
    return "%s-%s" % (options["format"], options["compression"])


@pytest.fixture(scope="module")
def round_trips(pg_cluster, tmp_path_factory):
    """Every format backed up, verified and restored in one playbook run, plus the check-mode backup."""
    root = tmp_path_factory.mktemp("round_trips")
    cases, steps = {}, []
    for index, options in enumerate(FORMATS):
        source = "rt_%s_%s" % (options["format"], options["compression"])
        create_db(pg_cluster, source)
        backup_dir = root / format_id(options)
        cases[format_id(options)] = dict(source=source, target=source + "_copy", backup_dir=backup_dir,
                                         before=fingerprint(pg_cluster, source), prefix="f%d" % index)
        steps += [
            step("f%d_backup" % index, "pg_backup", backup_dir=str(backup_dir), database=source, content_checksums=True,
                 verify=True, **options),
            step("f%d_verify" % index, "pg_backup_verify", backup_dir=str(backup_dir),
                 backup_id="{{ f%d_backup.backup_id | default('none') }}" % index),
            step("f%d_restore" % index, "pg_backup_restore", backup_dir=str(backup_dir),
                 backup_id="{{ f%d_backup.backup_id | default('none') }}" % index, target_database=source + "_copy"),
        ]
    create_db(pg_cluster, "checkmode_db")
    never = root / "never"
    steps.append(step("check_backup", "pg_backup", check=True, backup_dir=str(never), database="checkmode_db"))
    results = cluster_batch(pg_cluster, root, steps, label="round-trips")
    return dict(cases=cases, results=results, never=never)


@pytest.mark.parametrize("options", FORMATS, ids=format_id)
def test_round_trip_is_identical(pg_cluster, round_trips, options):
    case = round_trips["cases"][format_id(options)]
    results = round_trips["results"]
    backup, verify, restore = (results["%s_%s" % (case["prefix"], what)] for what in ("backup", "verify", "restore"))
    backup_dir = case["backup_dir"]

    assert not backup.get("failed"), backup["msg"]
    assert backup["changed"] and backup_sets(backup_dir) == [backup["backup_id"]]
    man = manifest(backup_dir, backup["backup_id"])
    counts = {(t["schema"], t["name"]): t["rows"] for t in man["tables"]}
    assert counts[("Sales Ünïcode", "MixedCase")] == 1500 and counts[("public", "plain")] == 300
    assert all(t["content_checksum"] for t in man["tables"])
    assert man["server_version"].startswith("15") and "pg_dump" in man["tools"]

    # pg_backup proved the set before publishing it: a custom-format dump while it was written, the others from the
    # written set; pg_backup_verify, run afterwards on the published set, agrees.
    proof = backup["verification"]
    assert backup["verified"] is True and proof["verified"] is True and proof["content_compared"] is True, proof
    assert proof["during_backup"] is (options["format"] == "custom")
    assert json.loads((backup_dir / backup["backup_id"] / "verification.json").read_text())["verified"] is True
    assert not db_exists(pg_cluster, proof["scratch_database"])
    assert verify["verified"] is True, verify
    assert verify["content_compared"] is True
    assert not db_exists(pg_cluster, verify["scratch_database"])

    assert not restore.get("failed"), restore["msg"]
    assert restore["action"] == "create" and restore["content_compared"] is True
    # A whole custom-format dump is streamed; the others restore from a file (the way the trial restore did too).
    method = {"custom": "stream", "directory": "pg_restore", "plain": "psql"}[options["format"]]
    assert restore["restore_method"] == method and verify["restore_method"] == method
    assert proof["restore_method"] == method
    if method == "stream":
        assert sorted(restore["phase_seconds"]) == ["checksums", "compare", "data", "post-data", "pre-data", "swap",
                                                    "toc"]
        # The streamed load TOAST-compresses with lz4 (the server has it); the values read back the same.
        assert pg_cluster.sql('SELECT DISTINCT pg_column_compression(big) FROM "Sales Ünïcode"."MixedCase"',
                              dbname=case["target"]) == [("lz4",)]
    assert restore["rows"] == sum(counts.values()) and restore["tables"] == len(counts)
    assert fingerprint(pg_cluster, case["target"]) == case["before"]
    assert scratch_databases(pg_cluster) == []


def test_check_mode_writes_nothing(round_trips):
    result = round_trips["results"]["check_backup"]
    assert not result.get("failed"), result["msg"]
    assert result["changed"] and result["tables"] == 3 and "would write" in result["msg"]
    assert not round_trips["never"].exists()


def test_replace_swaps_in_backup_and_drops_old(pg_cluster, tmp_path):
    create_db(pg_cluster, "live_db")
    first = cluster_batch(pg_cluster, tmp_path, [
        step("backup", "pg_backup", database="live_db"),
        step("verify", "pg_backup_verify", backup_id="{{ backup.backup_id }}"),
    ], label="replace-backup")
    assert first["verify"]["verified"], first["verify"]
    snapshot = fingerprint(pg_cluster, "live_db")
    pg_cluster.sql("DELETE FROM public.plain WHERE id > 10; ALTER DATABASE live_db SET work_mem = '7MB'", dbname="live_db")

    # A session open on the target must not block the swap: it is terminated.
    holder = pg_cluster.connect("live_db")
    try:
        results = cluster_batch(pg_cluster, tmp_path, [
            step("refused", "pg_backup_restore", database="live_db"),
            step("unconfirmed", "pg_backup_restore", database="live_db", replace=True),
            step("planned", "pg_backup_restore", check=True, database="live_db", replace=True),
            step("done", "pg_backup_restore", database="live_db", replace=True, confirm=True, keep_old=True),
            step("again", "pg_backup_restore", database="live_db", replace=True, confirm=True),
        ], label="replace")
    finally:
        holder.close()
    refused, unconfirmed, planned, done, again = (
        results[name] for name in ("refused", "unconfirmed", "planned", "done", "again"))
    assert refused["failed"] and "already exists" in refused["msg"] and "replace=true" in refused["msg"]
    assert unconfirmed["failed"] and "confirm=true" in unconfirmed["msg"]
    assert planned["changed"] and planned["action"] == "replace" and planned["would_drop"]["database"] == "live_db"
    assert planned["would_drop"]["sessions"] >= 1 and planned["tables"] == 3

    assert not done.get("failed"), done["msg"]
    # The database the refusals and the plan left alone is the one `done` swapped out: still 10 rows.
    assert done["old_database"] and pg_cluster.sql(
        "SELECT count(*) FROM public.plain", dbname=done["old_database"])[0][0] == 10
    assert not again.get("failed"), again["msg"]
    assert again["old_database"] is None
    assert fingerprint(pg_cluster, "live_db") == snapshot
    settings = pg_cluster.sql("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                              "WHERE d.datname = 'live_db'")
    assert settings and "work_mem=7MB" in settings[0][0]
    assert scratch_databases(pg_cluster) == [done["old_database"]]
    pg_cluster.sql('DROP DATABASE "%s"' % done["old_database"])


def test_selective_restore_of_table_and_schema(pg_cluster, tmp_path):
    create_db(pg_cluster, "sel_db")
    # Names of this test's own (test_restore_fidelity.py restores into sel_schema on the same session cluster).
    for name in ("rt_sel_table", "rt_sel_schema"):
        pg_cluster.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    results = cluster_batch(pg_cluster, tmp_path, [
        step("backup", "pg_backup", database="sel_db", content_checksums=True),
        step("verify", "pg_backup_verify", backup_id="{{ backup.backup_id }}"),
        step("only_table", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="rt_sel_table",
             tables=["plain"]),
        step("only_schema", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="rt_sel_schema",
             schemas=["Sales Ünïcode"], no_owner=True),
        step("refused", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="sel_db",
             tables=["plain"], replace=True, confirm=True),
    ], label="selective")
    assert results["verify"]["verified"], results["verify"]
    only_table = results["only_table"]
    assert not only_table.get("failed"), only_table["msg"]
    assert only_table["tables"] == 1 and only_table["rows"] == 300
    assert only_table["restore_method"] == "pg_restore"  # a selection needs the table of contents (-L)
    assert pg_cluster.sql("SELECT count(*) FROM public.plain", dbname="rt_sel_table")[0][0] == 300
    assert pg_cluster.sql("SELECT to_regclass('public.v_summary')", dbname="rt_sel_table")[0][0] is None
    only_schema = results["only_schema"]
    assert not only_schema.get("failed"), only_schema["msg"]
    assert pg_cluster.sql('SELECT count(*) FROM "Sales Ünïcode"."MixedCase"', dbname="rt_sel_schema")[0][0] == 1500
    refused = results["refused"]
    assert refused["failed"] and "selective restore" in refused["msg"]


def test_streaming_off_restores_from_a_decompressed_file(pg_cluster, tmp_path):
    """The escape hatch: streaming=false takes the classic path (decompress into work_dir, pg_restore -j)."""
    create_db(pg_cluster, "classic_src")
    before = fingerprint(pg_cluster, "classic_src")
    results = cluster_batch(pg_cluster, tmp_path, [
        step("backup", "pg_backup", database="classic_src"),
        step("verify", "pg_backup_verify", backup_id="{{ backup.backup_id }}", streaming=False),
        step("restore", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="classic_copy",
             streaming=False, jobs=2),
    ], label="classic")
    assert results["verify"]["verified"] and results["verify"]["restore_method"] == "pg_restore"
    restore = results["restore"]
    assert not restore.get("failed"), restore["msg"]
    assert restore["restore_method"] == "pg_restore" and sorted(restore["phase_seconds"]) == ["compare", "swap"]
    assert fingerprint(pg_cluster, "classic_copy") == before
    assert scratch_databases(pg_cluster) == []
    assert not [p for p in tmp_path.rglob(".stackops-restore-*")], "the decompressed copy was left behind"
