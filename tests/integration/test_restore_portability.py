"""Dumps that plain pg_restore trips over: functions that find the objects of their own schema through the session's
search_path (used by an expression index and a CHECK constraint), and grants to a role the target server lacks."""
import os
import subprocess

import pytest

from support.backup import cluster_batch, create_db, step
from support.pgcluster import BINDIR

pytestmark = pytest.mark.pg

# What an application schema looks like when its functions were written with `SET search_path = app` in mind: the
# bodies name the schema's own functions and tables unqualified. pg_dump runs every statement with search_path ''.
SEARCH_PATH_SCHEMA = r"""
CREATE SCHEMA app;
SET search_path = app, public;
CREATE TABLE app.stopwords (word text PRIMARY KEY);
INSERT INTO app.stopwords VALUES ('the'), ('a');
CREATE FUNCTION app.squash(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(btrim(t)) $$;
CREATE FUNCTION app.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT squash(t) $$;
CREATE FUNCTION app.not_stopword(t text) RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT NOT EXISTS (SELECT 1 FROM stopwords WHERE word = norm(t)) $$;
CREATE FUNCTION app.is_word(t text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
    AS $$ BEGIN RETURN norm(t) ~ '^[a-z]+$'; END $$;
CREATE TABLE app.t (id int PRIMARY KEY, x text NOT NULL CONSTRAINT x_is_word CHECK (app.is_word(x)));
INSERT INTO app.t SELECT i, 'Word' || chr(97 + i % 26) FROM generate_series(1, 500) AS i;
CREATE INDEX t_norm ON app.t (app.norm(x));
CREATE INDEX t_content ON app.t (x) WHERE app.norm(x) <> 'wordq';
"""


def index_state(cluster, dbname):
    return cluster.sql(
        "SELECT c.relname, x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app' ORDER BY 1", dbname=dbname)


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_functions_that_rely_on_search_path_are_backed_up_and_the_verdict_says_what_to_fix(pg_cluster, tmp_path, fmt):
    """Counting rows plans a query on the table, which inlines the SQL functions of its index expressions with the
    counting session's search_path (pinned to pg_catalog): that failed, ended the snapshot pg_dump was reading, and
    the backup failed with "could not import the requested snapshot". Now the table is counted with the database's
    own search_path and the set is written; its trial restore fails where plain pg_restore fails too (pg_dump
    restores with an empty search_path), and says which function to fix and how. Fixed that way, the next backup
    verifies and restores with valid indexes."""
    source, target = "sp_src_%s" % fmt, "sp_new_%s" % fmt
    create_db(pg_cluster, source, SEARCH_PATH_SCHEMA)
    pg_cluster.sql("ALTER DATABASE %s SET search_path = app, public" % source)
    pg_cluster.sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % target)
    first = cluster_batch(pg_cluster, tmp_path, [
        step("backup", "pg_backup", database=source, format=fmt, verify=True, content_checksums=True),
    ], label="search-path-%s" % fmt)["backup"]
    assert "did NOT verify" in first["msg"], first["msg"]
    assert "relies on search_path" in first["msg"] and "ALTER FUNCTION" in first["msg"], first["msg"]
    tables = dict(("%s.%s" % (t["schema"], t["name"]), t) for t in first["manifest"]["tables"])
    assert tables["app.t"]["rows"] == 500 and tables["app.t"]["search_path"] == "app, public"
    assert "search_path" not in tables["app.stopwords"]
    with pg_cluster.connect(source) as conn:
        for function in ("app.squash(text)", "app.norm(text)", "app.not_stopword(text)", "app.is_word(text)"):
            conn.execute("ALTER FUNCTION %s SET search_path = app, pg_catalog" % function)
    results = cluster_batch(pg_cluster, tmp_path, [
        step("backup", "pg_backup", database=source, format=fmt, verify=True, content_checksums=True),
        step("restore", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database=target),
    ], label="search-path-fixed-%s" % fmt)
    backup, restore = results["backup"], results["restore"]
    assert not backup["failed"] and backup["verified"], backup["msg"]
    assert not restore["failed"], restore["msg"]
    assert index_state(pg_cluster, target) == [
        ("stopwords_pkey", True), ("t_content", True), ("t_norm", True), ("t_pkey", True)]
    with pg_cluster.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM app.t WHERE app.norm(x) = 'wordb'").fetchone()[0] == 20


class SetupModule:
    """What pitr_setup.Pitr asks of its AnsibleModule: the options of pg_pitr, check mode and no_log values. Its
    grants are plain SQL on the cluster, so they are checked here without a compose stack or Barman."""

    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self.no_log_values = params, check_mode, set()


def pitr_grants(cluster, role):
    """{database: [function]} of the EXECUTE grants ``role`` holds, in every database that allows connections."""
    found = {}
    for (dbname,) in cluster.sql("SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1"):
        rows = cluster.sql("SELECT p.oid::regprocedure::text FROM pg_proc p, aclexplode(p.proacl) a "
                           "JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = %s ORDER BY 1",
                           dbname=dbname, params=(role,))
        if rows:
            found[dbname] = [row[0] for row in rows]
    return found


def test_pitr_grants_only_in_the_maintenance_database_and_revokes_old_ones(pg_cluster, tmp_path):
    """Barman's function grants go to the database it connects to (postgres), not the application database the
    playbooks log in to, whose dumps would otherwise carry GRANTs to stackops_pitr; grants an earlier version made
    there are revoked on the next enable, and a second run changes nothing."""
    from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_setup import Pitr
    role = "stackops_pitr_grants"
    pg_cluster.sql("DROP DATABASE IF EXISTS pitr_app WITH (FORCE)")
    pg_cluster.sql("CREATE DATABASE pitr_app")
    for (dbname,) in pg_cluster.sql("SELECT datname FROM pg_database WHERE datallowconn"):
        pg_cluster.sql("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                       "EXECUTE 'DROP OWNED BY %s'; END IF; END $$" % (role, role), dbname=dbname)
    pg_cluster.sql("DROP ROLE IF EXISTS %s" % role)
    # What an earlier version left: the role, with its grants made in the application database.
    pg_cluster.sql("CREATE ROLE %s LOGIN REPLICATION" % role)
    pg_cluster.sql("GRANT EXECUTE ON FUNCTION pg_switch_wal(), pg_backup_stop(boolean) TO %s" % role, dbname="pitr_app")
    from ansible_collections.stackops.runbooks.plugins.module_utils.pg import pg_connection_spec
    params = {name: option.get("default") for name, option in pg_connection_spec().items()}
    params.update(pg_cluster.params(), login_db="pitr_app", role=role, slot="unused", dbname=None, state="enabled",
                  pitr_dir=str(tmp_path), server_name="grants")
    runs = []
    for check in (True, False, False):
        pitr = Pitr(SetupModule(params, check_mode=check))
        try:
            pitr.ensure_role()
        finally:
            pitr.conn.close()
        runs.append(pitr.changes)
    planned, first, second = runs
    assert any("revoke execute on pg_switch_wal() from %s in database pitr_app" % role in c for c in planned), planned
    assert planned == first
    assert second == [], second
    functions = ["pg_backup_start(text,boolean)", "pg_backup_stop(boolean)", "pg_create_restore_point(text)",
                 "pg_switch_wal()"]
    assert pitr_grants(pg_cluster, role) == {"postgres": functions}
    dump = subprocess.run([str(BINDIR / "pg_dump"), "-h", pg_cluster.host, "-p", str(pg_cluster.port), "-U",
                           pg_cluster.user, "-s", "pitr_app"], env=dict(os.environ, PGPASSWORD=pg_cluster.password),
                          capture_output=True, text=True, check=True).stdout
    assert role not in dump


GRANTS_SCHEMA = r"""
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id int PRIMARY KEY, total numeric);
INSERT INTO shop.orders SELECT i, i * 1.5 FROM generate_series(1, 100) AS i;
GRANT USAGE ON SCHEMA shop TO port_reader, "Port Gone";
GRANT SELECT ON shop.orders TO port_reader;
GRANT SELECT, UPDATE ON shop.orders TO "Port Gone" WITH GRANT OPTION;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_switch_wal() TO "Port Gone";
ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO "Port Gone";
"""


def grants_of(cluster, dbname):
    return cluster.sql(
        "SELECT c.relname, r.rolname, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
        "JOIN pg_roles r ON r.oid = a.grantee WHERE c.relname = 'orders' AND r.rolname <> current_user "
        "ORDER BY 1, 2, 3", dbname=dbname)


@pytest.mark.parametrize("streaming", [True, False])
def test_a_database_restores_onto_a_server_without_the_roles_its_grants_name(pg_cluster, tmp_path, streaming):
    """A single database's dump carries grants (like those pitr enable once made on pg_catalog functions) to roles
    that live in globals: on a server without them the restore succeeds, keeps the grants to roles it has, and
    names the missing ones."""
    source, target = "port_src", "port_new_%s" % ("stream" if streaming else "file")
    pg_cluster.sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % target)
    for role in ("port_reader", '"Port Gone"'):
        pg_cluster.sql("DO $$ BEGIN CREATE ROLE %s; EXCEPTION WHEN duplicate_object THEN NULL; END $$" % role)
    create_db(pg_cluster, source, GRANTS_SCHEMA)
    backup = cluster_batch(pg_cluster, tmp_path, [step("backup", "pg_backup", database=source, verify=True)],
                           label="grants-backup")["backup"]
    assert not backup["failed"] and backup["verified"], backup["msg"]
    # The server restored onto has no such role (a fresh server, restoring one database without globals).
    pg_cluster.sql('DROP DATABASE %s WITH (FORCE)' % source)
    pg_cluster.sql('DROP OWNED BY "Port Gone"')
    pg_cluster.sql('DROP ROLE "Port Gone"')
    restore = cluster_batch(pg_cluster, tmp_path, [
        step("restore", "pg_backup_restore", backup_id=backup["backup_id"], target_database=target,
             streaming=streaming)], label="grants-restore")["restore"]
    assert not restore["failed"], restore["msg"]
    assert restore["skipped_roles"] == ["Port Gone"]
    warnings = " ".join(restore.get("warnings") or [])
    assert "Port Gone" in warnings and "do not exist" in warnings, warnings
    assert grants_of(pg_cluster, target) == [("orders", "port_reader", "SELECT")]
    assert pg_cluster.sql("SELECT count(*) FROM shop.orders", dbname=target) == [(100,)]
    assert pg_cluster.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'Port Gone'") == [(0,)]
    assert pg_cluster.sql("SELECT count(*) FROM pg_default_acl", dbname=target) == [(0,)]


def test_a_killed_restores_stand_in_roles_are_dropped_by_the_next_run_and_no_one_elses(pg_cluster, tmp_path):
    from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import LOCK_DIR
    from ansible_collections.stackops.runbooks.plugins.module_utils.pg import pg_connection_spec
    from ansible_collections.stackops.runbooks.plugins.module_utils.restore_roles import create_stand_ins
    from ansible_collections.stackops.runbooks.plugins.module_utils.run_journal import DROP_ROLE, RunJournal
    for role in ("port_stand_in", "port_real"):
        pg_cluster.sql("DROP ROLE IF EXISTS %s" % role)
    with pg_cluster.connect() as conn:
        create_stand_ins(conn, ["port_stand_in"])
    pg_cluster.sql("CREATE ROLE port_real")
    (tmp_path / LOCK_DIR).mkdir()
    journal = RunJournal(str(tmp_path), "port_db")
    for role in ("port_stand_in", "port_real"):
        journal.add(DROP_ROLE, role)
    params = {name: option.get("default") for name, option in pg_connection_spec().items()}
    params.update(pg_cluster.params(), backup_dir=str(tmp_path))
    done = RunJournal(str(tmp_path), "port_db").replay(params)
    assert done == ["dropped stand-in role port_stand_in of a killed restore"]
    assert pg_cluster.sql("SELECT rolname FROM pg_roles WHERE rolname IN ('port_stand_in', 'port_real')") == [
        ("port_real",)]
