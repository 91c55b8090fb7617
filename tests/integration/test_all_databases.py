"""All databases in one run: every database of a server plus its globals backed up as one group, then restored onto
a fresh, empty server (real PostgreSQL 15 clusters, real modules)."""
import pytest

from support.backup import batch, manifest, stackops_result, step
from support.groups import cluster_on, create_group, group_digests, roles
from support.inventory import host_inventory
from support.runner import run_playbook

pytestmark = pytest.mark.pg

SOURCE_SQL = {
    "h3_all_app": """
        CREATE SCHEMA app AUTHORIZATION h3_owner;
        CREATE TABLE app.orders (id serial PRIMARY KEY, note text);
        ALTER TABLE app.orders OWNER TO h3_owner;
        INSERT INTO app.orders (note) SELECT 'order ' || i FROM generate_series(1, 500) AS i;
        GRANT SELECT ON app.orders TO h3_reader;
    """,
    "h3_all_reports": """
        CREATE TABLE public.daily (day date PRIMARY KEY, total numeric);
        ALTER TABLE public.daily OWNER TO h3_owner;
        INSERT INTO public.daily SELECT DATE '2026-01-01' + i, i * 3.5 FROM generate_series(0, 99) AS i;
    """,
}


SETTINGS = ["TimeZone=Pacific/Auckland", "search_path=app, public"]


def settings(cluster, name):
    return sorted(row[0] for row in cluster.sql(
        "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = %s AND s.setrole = 0", params=(name,)))


@pytest.fixture(scope="module")
def source_server():
    """A server of its own: --all-databases takes every database on it, and the session's shared cluster holds other
    tests' databases (one of them deliberately unrestorable)."""
    cluster = cluster_on()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def empty_server():
    cluster = cluster_on()
    yield cluster
    cluster.stop()


def inventory(tmp_path, cluster, name, backup_dir):
    return host_inventory(tmp_path, cluster, name, backup_dir, "h3_all_app")


def test_all_databases_back_up_as_a_group_and_restore_onto_an_empty_server(source_server, empty_server, tmp_path):
    create_group(source_server, "h3_", SOURCE_SQL)
    source_server.sql("ALTER DATABASE h3_all_app SET search_path = app, public")
    source_server.sql("ALTER DATABASE h3_all_app SET TimeZone = 'Pacific/Auckland'")
    before = dict((name, group_digests(source_server, name)) for name in SOURCE_SQL)
    before_roles = roles(source_server, "h3_")
    backup_dir = str(tmp_path / "backups")
    connection = dict((k, v) for k, v in source_server.params().items() if k != "tools_bindir")

    # stackops backup --all-databases
    backup = run_playbook("backup.yml", inventory=inventory(tmp_path, source_server, "source", backup_dir),
                          extravars={"stackops_backup_all_databases": True}, label="h3-all-backup")
    assert backup.status == "successful", backup.stdout
    report = stackops_result(backup)["node-source"]
    names = report["databases"]
    assert set(SOURCE_SQL) <= set(names) and "postgres" in names
    assert not {"template0", "template1"} & set(names)
    assert report["all_databases"] is True and report["status"] == "ok"
    assert len(report["backups"]) == len(names) and report["verified"] == [True] * len(names)
    group_id = report["group_id"]
    for backup_id in report["backups"]:
        man = manifest(backup_dir, backup_id)
        assert man["group"] == group_id and sorted(man["group_databases"]) == sorted(names)
        assert "globals.sql" in man["files"]

    source = dict(source_server.params(), backup_dir=backup_dir)
    checks = batch([
        step("listed", "pg_databases_info", exclude=["postgres"], **connection),
        # a run whose backup of one database failed: its group is incomplete and refused
        step("partial", "pg_backup", database="h3_all_app", group_id="h3-partial",
             group_databases=["h3_all_app", "h3_all_lost"], **source),
        step("partial_group", "pg_backup_group_info", group_id="h3-partial", require_verified=False,
             backup_dir=backup_dir),
        step("newest_group", "pg_backup_group_info", backup_dir=backup_dir),
    ], label="h3-all-checks")
    assert "postgres" not in checks["listed"]["names"]
    assert {"name": "template0", "reason": "template"} in checks["listed"]["left_out"]
    assert not checks["partial"]["failed"], checks["partial"].get("msg")
    assert checks["partial_group"]["failed"] and "incomplete: no set of h3_all_lost" in checks["partial_group"]["msg"]
    assert checks["newest_group"]["group"]["id"] == group_id, "an incomplete group is never the default"

    # stackops restore --all-databases onto a fresh server. Its image made postgres and the POSTGRES_DB database
    # (here h3_all_app), both empty: they are restored into without consent (issue 20, failed 2), and the database
    # settings come from the backup, not from the empty database (failed 3).
    empty_server.sql("DROP DATABASE IF EXISTS h3_all_app WITH (FORCE)")
    empty_server.sql("CREATE DATABASE h3_all_app")
    target_inventory = inventory(tmp_path, empty_server, "target", backup_dir)
    restore = run_playbook("restore.yml", inventory=target_inventory, label="h3-all-restore",
                           extravars={"stackops_restore_all_databases": True, "stackops_restore_replace": False})
    assert restore.status == "successful", restore.stdout
    restored = stackops_result(restore)["node-target"]
    assert restored["group_id"] == group_id and sorted(restored["restored"]) == sorted(names)
    assert {"h3_owner", "h3_reader"} <= set(restored["created_roles"])
    assert restored["would_replace"] == [] and {"h3_all_app", "postgres"} <= set(restored["would_replace_empty"])
    assert settings(empty_server, "h3_all_app") == settings(source_server, "h3_all_app") == SETTINGS

    # A second disaster recovery finds content: refused in the playbook user's words, and nothing is touched.
    empty_server.sql("INSERT INTO public.daily VALUES ('2030-01-01', 1)", dbname="h3_all_reports")
    refused = run_playbook("restore.yml", inventory=target_inventory, label="h3-all-refused",
                           extravars={"stackops_restore_all_databases": True, "stackops_restore_confirm": False})
    assert refused.status == "failed"
    # The group holds every database of the session's cluster, whatever earlier tests left there: each named alone.
    assert "replaces databases that are not empty: " in refused.stdout, refused.stdout
    assert "h3_all_app (objects schema app, table app.orders, 1 database or role setting rows)" in refused.stdout
    assert "h3_all_reports (objects table public.daily)" in refused.stdout
    assert "set stackops_restore_replace=true and stackops_restore_confirm=true to go ahead" in refused.stdout
    assert "confirm=true" not in refused.stdout.replace("stackops_restore_confirm=true", ""), refused.stdout
    assert empty_server.sql("SELECT count(*) FROM public.daily", dbname="h3_all_reports") == [(101,)]
    empty_server.sql("DELETE FROM public.daily WHERE day = '2030-01-01'", dbname="h3_all_reports")

    assert roles(empty_server, "h3_") == before_roles
    assert [tuple(row) for row in roles(empty_server, "h3_")] == [("h3_owner", True, True, ["h3_reader"]),
                                                                  ("h3_reader", False, False, [])]
    for name in SOURCE_SQL:
        assert empty_server.sql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                params=(name,)) == [("h3_owner",)]
        assert group_digests(empty_server, name) == before[name], name

    # replaying the globals again changes nothing; check mode says what exists
    target = dict(empty_server.params(), backup_dir=backup_dir)
    globals_id = checks["newest_group"]["group"]["globals_backup_id"]
    again = batch([step("plan", "pg_globals_restore", check=True, backup_id=globals_id, **target),
                   step("again", "pg_globals_restore", backup_id=globals_id, **target)], label="h3-all-again")
    assert again["plan"]["created_roles"] == [] and {"h3_owner", "postgres"} <= set(again["plan"]["existing_roles"])
    assert not again["again"]["failed"] and again["again"]["changed"] is False
