"""Round trips through pg_backup -> pg_backup_verify -> pg_backup_restore on a real PostgreSQL 15."""
import pytest

from backup_helpers import backup_sets, create_db, db_exists, fingerprint, manifest, module, scratch_databases

pytestmark = pytest.mark.pg

FORMATS = [
    dict(format="custom", compression="zstd"),
    dict(format="custom", compression="gzip"),
    dict(format="directory", compression="gzip", jobs=2),
    dict(format="plain", compression="zstd"),
    dict(format="custom", compression="lz4"),
    dict(format="plain", compression="none"),
]


@pytest.mark.parametrize("options", FORMATS, ids=lambda o: "%s-%s" % (o["format"], o["compression"]))
def test_round_trip_is_identical(pg_cluster, tmp_path, options):
    source = "rt_%s_%s" % (options["format"], options["compression"])
    create_db(pg_cluster, source)
    before = fingerprint(pg_cluster, source)

    backup = module("pg_backup", pg_cluster, tmp_path, database=source, content_checksums=True, **options)
    assert not backup.get("failed"), backup["msg"]
    assert backup["changed"] and backup_sets(tmp_path) == [backup["backup_id"]]
    man = manifest(tmp_path, backup["backup_id"])
    counts = {(t["schema"], t["name"]): t["rows"] for t in man["tables"]}
    assert counts[("Sales Ünïcode", "MixedCase")] == 1500 and counts[("public", "plain")] == 300
    assert all(t["content_checksum"] for t in man["tables"])
    assert man["server_version"].startswith("15") and "pg_dump" in man["tools"]

    verify = module("pg_backup_verify", pg_cluster, tmp_path, backup_id=backup["backup_id"])
    assert verify["verified"] is True, verify
    assert verify["content_compared"] is True
    assert not db_exists(pg_cluster, verify["scratch_database"])

    target = source + "_copy"
    restore = module("pg_backup_restore", pg_cluster, tmp_path, backup_id=backup["backup_id"], target_database=target)
    assert not restore.get("failed"), restore["msg"]
    assert restore["action"] == "create" and restore["content_compared"] is True
    assert fingerprint(pg_cluster, target) == before
    assert scratch_databases(pg_cluster) == []


def test_check_mode_writes_nothing(pg_cluster, tmp_path):
    create_db(pg_cluster, "checkmode_db")
    backup_dir = tmp_path / "never"
    result = module("pg_backup", pg_cluster, backup_dir, check=True, database="checkmode_db")
    assert not result.get("failed"), result["msg"]
    assert result["changed"] and result["tables"] == 3 and "would write" in result["msg"]
    assert not backup_dir.exists()


def test_replace_swaps_in_backup_and_drops_old(pg_cluster, tmp_path):
    create_db(pg_cluster, "live_db")
    backup = module("pg_backup", pg_cluster, tmp_path, database="live_db")
    assert module("pg_backup_verify", pg_cluster, tmp_path, backup_id=backup["backup_id"])["verified"]
    snapshot = fingerprint(pg_cluster, "live_db")
    pg_cluster.sql("DELETE FROM public.plain WHERE id > 10; ALTER DATABASE live_db SET work_mem = '7MB'", dbname="live_db")

    refused = module("pg_backup_restore", pg_cluster, tmp_path, database="live_db")
    assert refused["failed"] and "already exists" in refused["msg"] and "replace=true" in refused["msg"]
    unconfirmed = module("pg_backup_restore", pg_cluster, tmp_path, database="live_db", replace=True)
    assert unconfirmed["failed"] and "confirm=true" in unconfirmed["msg"]
    planned = module("pg_backup_restore", pg_cluster, tmp_path, database="live_db", replace=True, check=True)
    assert planned["changed"] and planned["action"] == "replace" and planned["would_drop"]["database"] == "live_db"
    assert pg_cluster.sql("SELECT count(*) FROM public.plain", dbname="live_db")[0][0] == 10

    # A session open on the target must not block the swap: it is terminated.
    holder = pg_cluster.connect("live_db")
    try:
        done = module("pg_backup_restore", pg_cluster, tmp_path, database="live_db", replace=True, confirm=True, keep_old=True)
    finally:
        holder.close()
    assert not done.get("failed"), done["msg"]
    assert fingerprint(pg_cluster, "live_db") == snapshot
    assert done["old_database"] and pg_cluster.sql(
        "SELECT count(*) FROM public.plain", dbname=done["old_database"])[0][0] == 10
    settings = pg_cluster.sql("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                              "WHERE d.datname = 'live_db'")
    assert settings and "work_mem=7MB" in settings[0][0]
    again = module("pg_backup_restore", pg_cluster, tmp_path, database="live_db", replace=True, confirm=True)
    assert not again.get("failed") and again["old_database"] is None
    assert scratch_databases(pg_cluster) == [done["old_database"]]
    pg_cluster.sql('DROP DATABASE "%s"' % done["old_database"])


def test_selective_restore_of_table_and_schema(pg_cluster, tmp_path):
    create_db(pg_cluster, "sel_db")
    backup = module("pg_backup", pg_cluster, tmp_path, database="sel_db", content_checksums=True)
    module("pg_backup_verify", pg_cluster, tmp_path, backup_id=backup["backup_id"])
    only_table = module("pg_backup_restore", pg_cluster, tmp_path, backup_id=backup["backup_id"],
                        target_database="sel_table", tables=["plain"])
    assert not only_table.get("failed"), only_table["msg"]
    assert only_table["tables"] == 1
    assert pg_cluster.sql("SELECT count(*) FROM public.plain", dbname="sel_table")[0][0] == 300
    assert pg_cluster.sql("SELECT to_regclass('public.v_summary')", dbname="sel_table")[0][0] is None
    only_schema = module("pg_backup_restore", pg_cluster, tmp_path, backup_id=backup["backup_id"],
                         target_database="sel_schema", schemas=["Sales Ünïcode"], no_owner=True)
    assert not only_schema.get("failed"), only_schema["msg"]
    assert pg_cluster.sql('SELECT count(*) FROM "Sales Ünïcode"."MixedCase"', dbname="sel_schema")[0][0] == 1500
    refused = module("pg_backup_restore", pg_cluster, tmp_path, backup_id=backup["backup_id"],
                     target_database="sel_db", tables=["plain"], replace=True, confirm=True)
    assert refused["failed"] and "selective restore" in refused["msg"]
