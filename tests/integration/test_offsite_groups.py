"""Off-site copies of --all-databases groups and S3 Object Lock, on a real S3 server (SeaweedFS on loopback) with
real PostgreSQL 15 clusters and the real playbooks.

Covers: `stackops backup --all-databases` sends every set of the group (each with the globals) off-site; remote
retention keeps or deletes whole groups (the newest verified group stays) and single-set retention leaves group
copies alone; `stackops restore --all-databases --from-remote` rebuilds an empty server with the local backup
directory deleted; copies to an Object Lock bucket are locked, and retention keeps a locked copy and says so
instead of failing, while an unlocked copy in the same versioned bucket is deleted with every version.
"""
import datetime
import secrets
import shutil

import pytest

from support.backup import stackops_result, step
from support.offsite import output_text, run_steps
from support.ports import port
from support.runner import run_playbook
from support.s3server import S3Server
from support.groups import cluster_on, group_digests, group_inventory

pytestmark = pytest.mark.pg

S3_PORT = port(56740)
SOURCE_PORT = port(56660)
EMPTY_PORT = port(56661)
DATABASES = {
    "h_offg_app": """
        CREATE TABLE public.orders (id serial PRIMARY KEY, note text);
        ALTER TABLE public.orders OWNER TO h_offg_owner;
        INSERT INTO public.orders (note) SELECT 'order ' || i FROM generate_series(1, 300) AS i;
        GRANT SELECT ON public.orders TO h_offg_reader;
    """,
    "h_offg_reports": """
        CREATE TABLE public.daily (day date PRIMARY KEY, total numeric);
        ALTER TABLE public.daily OWNER TO h_offg_owner;
        INSERT INTO public.daily SELECT DATE '2026-01-01' + i, i * 2.5 FROM generate_series(0, 49) AS i;
    """,
}


def roles(cluster):
    return cluster.sql(
        "SELECT r.rolname, r.rolcanlogin, coalesce(array_agg(g.rolname ORDER BY g.rolname) FILTER (WHERE g.rolname IS "
        "NOT NULL), '{}') FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid LEFT JOIN pg_roles g ON "
        "g.oid = m.roleid WHERE r.rolname LIKE 'h\\_offg\\_%' GROUP BY 1, 2 ORDER BY 1")


@pytest.fixture(scope="module")
def s3():
    server = S3Server(S3_PORT, "s3-secret-" + secrets.token_hex(12)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def servers():
    source, empty = cluster_on(SOURCE_PORT), cluster_on(EMPTY_PORT)
    yield source, empty
    source.stop()
    empty.stop()


def test_groups_go_off_site_whole_and_restore_from_remote(servers, s3, tmp_path):
    source, empty = servers
    source.sql("CREATE ROLE h_offg_owner LOGIN CREATEDB")
    source.sql("CREATE ROLE h_offg_reader NOLOGIN")
    source.sql("GRANT h_offg_reader TO h_offg_owner")
    for name, schema in DATABASES.items():
        source.sql('CREATE DATABASE "%s" OWNER h_offg_owner' % name)
        with source.connect(name) as conn:
            conn.execute(schema)
    before = dict((name, group_digests(source, name)) for name in DATABASES)
    before_roles = roles(source)
    backup_dir = tmp_path / "backups"
    target = dict(s3.target("groups"), name="offsite-a",
                  retention=dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0))
    source_inventory = group_inventory(tmp_path, source, "source", "h_offg_app", backup_dir, [target])

    groups = []
    for run in range(2):
        backup = run_playbook("backup.yml", inventory=source_inventory, label="h-offg-backup-%d" % run,
                              extravars={"stackops_backup_all_databases": True})
        assert backup.status == "successful", backup.stdout
        report = stackops_result(backup)["node-source"]
        assert report["verified"] == [True] * len(report["databases"])
        offsite = report["offsite"][0]
        assert offsite["group_id"] == report["group_id"] and sorted(offsite["copied"]) == sorted(report["backups"])
        groups.append(report)
        assert s3.secret_key not in output_text(backup)
    first, second = groups
    assert sorted(first["databases"]) == sorted(DATABASES)

    # keep_last=1 counts groups: the older group went as a whole, every set of the newer one stays.
    retention = second["offsite"][0]["retention"]
    assert retention["deleted"] == [first["group_id"]] and sorted(retention["deleted_sets"]) == sorted(first["backups"])
    assert list(retention["kept"]) == [second["group_id"]]
    for backup_id in first["backups"]:
        assert s3.keys("groups/%s/" % backup_id) == []
    for backup_id in second["backups"]:
        assert "groups/%s/stackops-copy.json" % backup_id in s3.keys("groups/%s/" % backup_id)

    # A single-set run with its own retention never breaks the group: grouped copies are not its to prune.
    single = run_steps(source, backup_dir, [
        step("b", "pg_backup", database="h_offg_app"),
        step("v", "pg_backup_verify", backup_id="{{ b.backup_id }}"),
        step("copy", "offsite_copy", database="h_offg_app", backup_id="{{ b.backup_id }}",
             retention=dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0), **s3.target("groups")),
        step("info", "offsite_info", **s3.target("groups")),
    ], "h-offg-single")
    assert not single["copy"]["failed"], single["copy"].get("msg")
    assert single["copy"]["retention"]["deleted"] == []
    remote = dict((entry["id"], entry) for entry in single["info"]["backups"])
    assert set(second["backups"]) <= set(remote) and remote[second["backups"][0]]["group"] == second["group_id"]

    # Disaster: the local backup directory is gone; an empty server is rebuilt from the off-site group.
    shutil.rmtree(backup_dir)
    target_inventory = group_inventory(tmp_path, empty, "target", "h_offg_app", backup_dir, [target])
    restore = run_playbook("restore.yml", inventory=target_inventory, label="h-offg-restore",
                           extravars={"stackops_restore_all_databases": True, "stackops_restore_from_remote": True,
                                      "stackops_restore_confirm": True})
    assert restore.status == "successful", restore.stdout
    restored = stackops_result(restore)["node-target"]
    assert restored["group_id"] == second["group_id"]
    assert sorted(restored["restored"]) == sorted(second["databases"])
    assert roles(empty) == before_roles
    for name in DATABASES:
        assert group_digests(empty, name) == before[name], name
    assert sorted(p.name for p in (backup_dir / ".from-remote").iterdir() if not p.name.startswith(".")) == sorted(
        second["backups"])
    assert s3.secret_key not in output_text(restore)


def test_object_lock_copies_are_locked_and_retention_keeps_them(servers, s3, tmp_path):
    source, dummy = servers
    client = s3.client()
    client.create_bucket(Bucket="h-offg-locked", ObjectLockEnabledForBucket=True)
    source.sql('DROP DATABASE IF EXISTS h_offg_lock WITH (FORCE)')
    source.sql('CREATE DATABASE h_offg_lock')
    with source.connect("h_offg_lock") as conn:
        conn.execute("CREATE TABLE t AS SELECT i FROM generate_series(1, 100) AS i")
    backup_dir = tmp_path / "backups"
    locked = s3.target("lock", bucket="h-offg-locked", object_lock_mode="GOVERNANCE", object_lock_days=1)
    unlocked = s3.target("free", bucket="h-offg-locked")
    policy = dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    results = run_steps(source, backup_dir, [
        step("b1", "pg_backup", database="h_offg_lock"),
        step("v1", "pg_backup_verify", backup_id="{{ b1.backup_id }}"),
        step("c1", "offsite_copy", database="h_offg_lock", **locked),
        step("u1", "offsite_copy", database="h_offg_lock", **unlocked),
        step("b2", "pg_backup", database="h_offg_lock"),
        step("v2", "pg_backup_verify", backup_id="{{ b2.backup_id }}"),
        step("c2", "offsite_copy", database="h_offg_lock", retention=policy, **locked),
        step("u2", "offsite_copy", database="h_offg_lock", retention=policy, **unlocked),
        step("info", "offsite_info", database="h_offg_lock", **s3.target("lock", bucket="h-offg-locked")),
    ], "h-offg-lock")
    failed = {name: res.get("msg") for name, res in results.items() if res["failed"]}
    assert not failed, failed
    first, second = results["b1"]["backup_id"], results["b2"]["backup_id"]

    # Every object of a locked copy, the completion marker included, carries the retention.
    keys = sorted(entry["Key"] for entry in client.list_objects_v2(
        Bucket="h-offg-locked", Prefix="lock/%s/" % first).get("Contents") or [])
    assert "lock/%s/stackops-copy.json" % first in keys
    now = datetime.datetime.now(datetime.timezone.utc)
    for key in keys:
        retention = client.get_object_retention(Bucket="h-offg-locked", Key=key)["Retention"]
        assert retention["Mode"] == "GOVERNANCE" and retention["RetainUntilDate"] > now + datetime.timedelta(hours=23)

    # Retention wants the older copy gone: it is kept whole and reported, and the run succeeds.
    kept = results["c2"]["retention"]
    assert kept["deleted"] == [] and kept["refused"] == []
    assert [entry["id"] for entry in kept["locked"]] == [first] and kept["locked"][0]["mode"] == "GOVERNANCE"
    assert kept["locked"][0]["objects"] == len(keys) and kept["locked"][0]["until"]
    assert any(reason.startswith("object lock until") for reason in kept["kept"][first])
    assert [entry["id"] for entry in results["info"]["backups"]] == [second, first]
    # The unlocked copy in the same (versioned) bucket is deleted with every version: nothing stays hidden.
    assert results["u2"]["retention"]["deleted"] == [first] and results["u2"]["retention"]["locked"] == []
    versions = client.list_object_versions(Bucket="h-offg-locked", Prefix="free/%s/" % first)
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")
