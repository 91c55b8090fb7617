"""A restore gives back what was backed up: database properties and settings, session-independent checksums,
and selective restores that bring along everything that belongs to the selection (issue 13 items 1-3)."""
import os
import subprocess

import pytest

from support.backup import cluster_batch, create_db, fingerprint, step
from support.pgcluster import BINDIR

pytestmark = pytest.mark.pg

PROPERTIES_SCHEMA = r"""
CREATE SCHEMA app;
CREATE TABLE app.items (id int PRIMARY KEY, at timestamptz, span interval, raw bytea, ratio float8, price money,
                        day date);
INSERT INTO app.items SELECT i, '2026-03-08 01:30:00+00'::timestamptz + i * interval '37 minutes',
       i * interval '1 day 3 hours', decode(md5(i::text), 'hex'), 1.0 / i, i * 1.25, date '2026-01-01' + i
FROM generate_series(1, 200) AS i;
"""


def database_facts(cluster, name):
    """Everything pg_restore without --create leaves out, read straight from the catalog."""
    row = cluster.sql(
        "SELECT pg_get_userbyid(d.datdba), d.datconnlimit, d.datlocprovider, d.daticulocale, "
        "shobj_description(d.oid, 'pg_database'), "
        "ARRAY(SELECT a::text FROM unnest(coalesce(d.datacl, '{}')) AS a ORDER BY 1) "
        "FROM pg_database d WHERE d.datname = %s", params=(name,))[0]
    settings = cluster.sql(
        "SELECT coalesce(r.rolname, '-'), ARRAY(SELECT c FROM unnest(s.setconfig) AS c ORDER BY 1) "
        "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole "
        "WHERE d.datname = %s ORDER BY 1", params=(name,))
    return dict(owner=row[0], connlimit=row[1], provider=row[2], icu=row[3], comment=row[4], acl=row[5],
                settings=settings)


@pytest.fixture(scope="module")
def fidelity(pg_cluster, tmp_path_factory):
    backup_dir = tmp_path_factory.mktemp("fidelity")
    for role in ("fid_owner", "fid_reader", "fid_app"):
        pg_cluster.sql("DO $$ BEGIN CREATE ROLE %s; EXCEPTION WHEN duplicate_object THEN NULL; END $$" % role)
    for name in ("fid_src", "fid_new", "fid_empty", "fid_full"):
        pg_cluster.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    # What a fresh server's image leaves: an empty database with default properties; and one that has content.
    pg_cluster.sql("CREATE DATABASE fid_empty")
    pg_cluster.sql("CREATE DATABASE fid_full")
    with pg_cluster.connect("fid_full") as conn:
        conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)")
    pg_cluster.sql("ALTER DATABASE fid_full SET TimeZone = 'UTC'")
    pg_cluster.sql("CREATE DATABASE fid_src OWNER fid_owner TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    with pg_cluster.connect("fid_src") as conn:
        conn.execute(PROPERTIES_SCHEMA)
    for statement in (
            "ALTER DATABASE fid_src SET search_path = app, public",
            "ALTER DATABASE fid_src SET TimeZone = 'America/New_York'",
            "ALTER DATABASE fid_src SET DateStyle = 'SQL, DMY'",
            "ALTER DATABASE fid_src SET IntervalStyle = 'sql_standard'",
            "ALTER DATABASE fid_src SET bytea_output = 'escape'",
            "ALTER DATABASE fid_src SET extra_float_digits = -3",
            "ALTER ROLE fid_app IN DATABASE fid_src SET search_path = \"$user\", \"Odd, Name\", app",
            "ALTER ROLE fid_app IN DATABASE fid_src SET work_mem = '8MB'",
            "ALTER DATABASE fid_src CONNECTION LIMIT 7",
            "COMMENT ON DATABASE fid_src IS 'orders; and \"quotes\"'",
            "REVOKE CONNECT, TEMPORARY ON DATABASE fid_src FROM PUBLIC",
            "GRANT CONNECT ON DATABASE fid_src TO fid_reader",
            "GRANT CREATE ON DATABASE fid_src TO fid_app WITH GRANT OPTION"):
        pg_cluster.sql(statement)
    before = database_facts(pg_cluster, "fid_src")
    results = cluster_batch(pg_cluster, backup_dir, [
        step("backup", "pg_backup", database="fid_src", content_checksums=True),
        step("verify", "pg_backup_verify", backup_id="{{ backup.backup_id }}"),
        step("new", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="fid_new",
             require_verified=False),
        step("replace", "pg_backup_restore", backup_id="{{ backup.backup_id }}", replace=True, confirm=True,
             require_verified=False),
        # Disaster recovery: the empty database needs no consent and gets the backup's properties, not its own.
        step("into_empty", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="fid_empty",
             require_verified=False),
        step("refused_full", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="fid_full",
             require_verified=False, option_variables=CALLER),
        step("dr_full", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="fid_full",
             replace=True, confirm=True, properties_from="backup", require_verified=False),
    ], label="fidelity")
    return dict(results=results, before=before)


CALLER = {"replace": "stackops_restore_replace", "confirm": "stackops_restore_confirm",
          "target_database": "stackops_restore_target_database"}


def test_properties_survive_restore_to_a_new_target(pg_cluster, fidelity):
    res = fidelity["results"]["new"]
    assert not res["failed"], res["msg"]
    assert database_facts(pg_cluster, "fid_new")["settings"] and fidelity["before"]["settings"]
    after = database_facts(pg_cluster, "fid_new")
    assert after == fidelity["before"]
    # The list-valued setting is two schemas again, not one schema named "app, public".
    with pg_cluster.connect("fid_new") as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == "app, public"
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 200


def test_properties_survive_replace(pg_cluster, fidelity):
    res = fidelity["results"]["replace"]
    assert not res["failed"], res["msg"]
    assert res["action"] == "replace"
    assert database_facts(pg_cluster, "fid_src") == fidelity["before"]
    with pg_cluster.connect("fid_src") as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == "app, public"
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 200


def test_an_empty_database_is_restored_into_without_consent_and_gets_the_backups_properties(pg_cluster, fidelity):
    """A fresh server's image creates its databases empty: restoring over one needs no replace/confirm, and the
    copy gets the owner, settings, ACL, connection limit, comment and ICU locale the backup recorded (issue 20,
    failed 2 and 3: DR was refused, and with --replace lost search_path and TimeZone)."""
    res = fidelity["results"]["into_empty"]
    assert not res["failed"], res["msg"]
    assert res["action"] == "replace_empty" and res["target_content"] == []
    assert database_facts(pg_cluster, "fid_empty") == fidelity["before"]
    with pg_cluster.connect("fid_empty") as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == "app, public"
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 200


def test_a_database_with_content_is_refused_in_the_callers_words_and_replaced_with_the_backups_properties(
        pg_cluster, fidelity):
    refused = fidelity["results"]["refused_full"]
    assert refused["failed"] and refused["action"] == "replace"
    assert "objects table public.kept" in refused["msg"] and "1 database or role setting rows" in refused["msg"], refused["msg"]
    assert "set stackops_restore_replace=true and stackops_restore_confirm=true" in refused["msg"], refused["msg"]
    assert "stackops_restore_target_database=NAME" in refused["msg"] and " replace=" not in refused["msg"]
    done = fidelity["results"]["dr_full"]
    assert not done["failed"], done["msg"]
    assert database_facts(pg_cluster, "fid_full") == fidelity["before"]


def test_what_counts_as_content(pg_cluster):
    """database_content() against the catalog: extension members, initdb's comment and temporary schemas are not
    content; a user object, a large object, a setting, a grant, a comment or another session is."""
    from ansible_collections.stackops.runbooks.plugins.module_utils.pg_database import database_content
    pg_cluster.sql("DROP DATABASE IF EXISTS fid_probe WITH (FORCE)")
    pg_cluster.sql("CREATE DATABASE fid_probe")
    with pg_cluster.connect("fid_probe") as conn:
        assert database_content(conn) == []
        conn.execute("CREATE EXTENSION citext; CREATE TEMP TABLE scratch (x int)")
        assert database_content(conn) == [], "an extension's own objects and a temporary table are not content"
        for statement, reason in (
                ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "function public.f()"),
                ("CREATE TYPE mood AS ENUM ('ok')", "type public.mood"),
                ("CREATE SCHEMA s", "schema s"),
                ("SELECT lo_create(4242)", "large object 4242"),
                ("CREATE TABLE t (id serial PRIMARY KEY)", "table public.t")):
            conn.execute(statement)
            assert reason in database_content(conn)[0], (statement, database_content(conn))
    pg_cluster.sql("DROP DATABASE fid_probe WITH (FORCE)")
    pg_cluster.sql("CREATE DATABASE fid_probe")
    for statement, reason in (("ALTER DATABASE fid_probe SET work_mem = '8MB'", "setting rows"),
                              ("COMMENT ON DATABASE fid_probe IS 'mine'", "a comment on the database"),
                              ("REVOKE TEMPORARY ON DATABASE fid_probe FROM PUBLIC", "privileges granted")):
        pg_cluster.sql(statement)
        with pg_cluster.connect("fid_probe") as conn:
            assert any(reason in item for item in database_content(conn)), (statement, database_content(conn))
    pg_cluster.sql("DROP DATABASE fid_probe WITH (FORCE)")
    pg_cluster.sql("CREATE DATABASE fid_probe")
    with pg_cluster.connect("fid_probe") as other, pg_cluster.connect("fid_probe") as conn:
        assert other.execute("SELECT 1").fetchone() == (1,)
        assert database_content(conn) == ["1 other sessions connected"]
    with pg_cluster.connect("postgres") as conn:
        comment = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                               "WHERE datname = 'postgres'").fetchone()[0]
        assert comment in (None, "default administrative connection database")
    pg_cluster.sql("DROP DATABASE fid_probe WITH (FORCE)")


def test_checksums_do_not_depend_on_database_settings(fidelity):
    """The scratch database of a verify has none of the source's settings: the checksums must still match."""
    backup, verify = fidelity["results"]["backup"], fidelity["results"]["verify"]
    assert not backup["failed"], backup["msg"]
    assert all(t.get("content_checksum") for t in backup["manifest"]["tables"])
    assert verify["verified"] and verify["content_compared"], verify.get("msg")
    assert fidelity["results"]["new"]["content_compared"] and fidelity["results"]["replace"]["content_compared"]


SELECTION_SCHEMA = r"""
DO $$ BEGIN CREATE ROLE sel_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE SCHEMA shop;
GRANT USAGE ON SCHEMA shop TO sel_reader;
CREATE TABLE shop.orders (id serial PRIMARY KEY, owner text NOT NULL, total numeric CHECK (total >= 0),
                          ident int GENERATED ALWAYS AS IDENTITY);
CREATE INDEX orders_owner ON shop.orders (owner);
ALTER TABLE shop.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON shop.orders USING (owner = current_user);
CREATE TABLE shop.events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE shop.events_2025 PARTITION OF shop.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE shop.events_2026 PARTITION OF shop.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX events_at ON shop.events (at);
CREATE RULE no_delete AS ON DELETE TO shop.orders DO INSTEAD NOTHING;
CREATE STATISTICS shop.orders_stats ON owner, total FROM shop.orders;
CREATE MATERIALIZED VIEW shop.totals AS SELECT owner, sum(total) AS total FROM shop.orders GROUP BY owner;
CREATE PROCEDURE shop.noop() LANGUAGE sql AS $$ SELECT 1 $$;
CREATE AGGREGATE shop.mysum(int) (sfunc = int4pl, stype = int);
INSERT INTO shop.orders (owner, total) SELECT 'u' || i, i FROM generate_series(1, 50) AS i;
INSERT INTO shop.events SELECT date '2025-06-01' + i, 'e' || i FROM generate_series(1, 400) AS i;
REFRESH MATERIALIZED VIEW shop.totals;
CREATE TABLE public.unrelated (x int);
CREATE TYPE shop.status AS ENUM ('new', 'paid', 'shipped');
CREATE DOMAIN shop.positive AS numeric CHECK (VALUE > 0);
CREATE TABLE shop.store (id int PRIMARY KEY, manager int, state shop.status DEFAULT 'new', budget shop.positive);
CREATE TABLE shop.staff (id int PRIMARY KEY, store int NOT NULL REFERENCES shop.store);
ALTER TABLE shop.store ADD FOREIGN KEY (manager) REFERENCES shop.staff DEFERRABLE INITIALLY DEFERRED;
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.budget := NEW.budget + 1; RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON shop.store FOR EACH ROW EXECUTE FUNCTION shop.touch();
BEGIN;
INSERT INTO shop.store SELECT i, i, 'paid', i * 10 FROM generate_series(1, 20) AS i;
INSERT INTO shop.staff SELECT i, i FROM generate_series(1, 20) AS i;
COMMIT;
"""


def selection_facts(cluster, name, whole_schema):
    with cluster.connect(name) as conn:
        one = lambda query: conn.execute(query).fetchone()[0]  # noqa: E731
        facts = dict(
            rls=one("SELECT relrowsecurity FROM pg_class WHERE oid = 'shop.orders'::regclass"),
            policies=one("SELECT count(*) FROM pg_policy WHERE polrelid = 'shop.orders'::regclass"),
            partitions=one("SELECT count(*) FROM pg_inherits WHERE inhparent = 'shop.events'::regclass"),
            leaf_rows=one("SELECT count(*) FROM shop.events"),
            checks=one("SELECT count(*) FROM pg_constraint WHERE conrelid = 'shop.orders'::regclass AND contype = 'c'"),
            rules=one("SELECT count(*) FROM pg_rewrite WHERE ev_class = 'shop.orders'::regclass AND rulename = 'no_delete'"),
            statistics=one("SELECT count(*) FROM pg_statistic_ext WHERE stxname = 'orders_stats'"),
            indexes=one("SELECT count(*) FROM pg_indexes WHERE schemaname = 'shop' AND tablename IN "
                        "('orders', 'events', 'events_2025', 'events_2026')"),
            schema_acl=one("SELECT nspacl::text LIKE '%sel_reader=U/%' FROM pg_namespace WHERE nspname = 'shop'"),
            serial_next=one("SELECT nextval('shop.orders_id_seq')"),
            identity_next=one("SELECT nextval(pg_get_serial_sequence('shop.orders', 'ident'))"),
            unrelated=one("SELECT to_regclass('public.unrelated') IS NOT NULL"),
        )
        if whole_schema:
            facts.update(
                matview=one("SELECT count(*) FROM shop.totals"),
                procedure=one("SELECT to_regprocedure('shop.noop()') IS NOT NULL"),
                aggregate=one("SELECT to_regprocedure('shop.mysum(integer)') IS NOT NULL"))
    return facts


@pytest.fixture(scope="module")
def selection(pg_cluster, tmp_path_factory):
    backup_dir = tmp_path_factory.mktemp("selection")
    create_db(pg_cluster, "sel_src", SELECTION_SCHEMA)
    for name in ("sel_schema", "sel_tables", "sel_whole"):
        pg_cluster.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    results = cluster_batch(pg_cluster, backup_dir, [
        step("backup", "pg_backup", database="sel_src", content_checksums=True),
        step("schemas", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="sel_schema",
             schemas=["shop"], require_verified=False),
        step("tables", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="sel_tables",
             tables=["shop.orders", "shop.events"], require_verified=False),
        step("whole", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="sel_whole",
             require_verified=False),
    ], label="selection")
    return results


def test_schema_selection_brings_everything_in_the_schema(pg_cluster, selection):
    res = selection["schemas"]
    assert not res["failed"], res["msg"]
    assert selection_facts(pg_cluster, "sel_schema", True) == dict(
        rls=True, policies=1, partitions=2, leaf_rows=400, checks=1, rules=1, statistics=1, indexes=5,
        schema_acl=True, serial_next=51, identity_next=51, unrelated=False, matview=50, procedure=True, aggregate=True)


def schema_only(cluster, name):
    """pg_dump --schema-only of ``name``, without the per-run random key of psql's \\restrict lines."""
    out = subprocess.run([str(BINDIR / "pg_dump"), "--schema-only", "-h", cluster.host, "-p", str(cluster.port),
                          "-U", cluster.user, "-d", name], env=dict(os.environ, PGPASSWORD=cluster.password),
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))]


def test_whole_round_trip_is_identical(pg_cluster, selection):
    """Partitions, an enum, a domain, a trigger, a circular foreign key and a populated materialized view: the
    restore checks the content checksums against the manifest, and the schema dumps are identical."""
    res = selection["whole"]
    assert not res["failed"], res["msg"]
    assert res["content_compared"] and res["restore_method"] == "stream"
    assert schema_only(pg_cluster, "sel_whole") == schema_only(pg_cluster, "sel_src")
    assert fingerprint(pg_cluster, "sel_whole") == fingerprint(pg_cluster, "sel_src")
    with pg_cluster.connect("sel_whole") as conn:
        assert conn.execute("SELECT count(*) FROM shop.totals").fetchone()[0] == 50


def test_table_selection_brings_what_belongs_to_the_tables(pg_cluster, selection):
    res = selection["tables"]
    assert not res["failed"], res["msg"]
    # orders and both partitions of events are restored and counted (a partitioned table has no rows itself).
    assert res["tables"] == 3 and res["rows"] == 450
    assert selection_facts(pg_cluster, "sel_tables", False) == dict(
        rls=True, policies=1, partitions=2, leaf_rows=400, checks=1, rules=1, statistics=1, indexes=5,
        schema_acl=True, serial_next=51, identity_next=51, unrelated=False)


def test_round_trip_of_a_schema_nobody_here_wrote(pg_cluster, tmp_path):
    """pgbench's own schema, as PostgreSQL's pgbench creates it: a hash-partitioned accounts table, foreign keys
    between all four tables, filled by pgbench itself. Content checksums and schema dumps come back identical."""
    for name in ("bench_src", "bench_copy"):
        pg_cluster.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    pg_cluster.sql("CREATE DATABASE bench_src")
    subprocess.run([str(BINDIR / "pgbench"), "-i", "-q", "-s", "1", "--partitions", "4", "--partition-method", "hash",
                    "--foreign-keys", "-h", pg_cluster.host, "-p", str(pg_cluster.port), "-U", pg_cluster.user,
                    "bench_src"], env=dict(os.environ, PGPASSWORD=pg_cluster.password), check=True,
                   capture_output=True, text=True)
    # A few transactions of pgbench's own TPC-B-like script, so history has rows and balances moved.
    subprocess.run([str(BINDIR / "pgbench"), "-t", "200", "-c", "2", "-n", "-h", pg_cluster.host, "-p",
                    str(pg_cluster.port), "-U", pg_cluster.user, "bench_src"],
                   env=dict(os.environ, PGPASSWORD=pg_cluster.password), check=True, capture_output=True, text=True)
    results = cluster_batch(pg_cluster, tmp_path, [
        step("backup", "pg_backup", database="bench_src", content_checksums=True),
        step("verify", "pg_backup_verify", backup_id="{{ backup.backup_id }}"),
        step("copy", "pg_backup_restore", backup_id="{{ backup.backup_id }}", target_database="bench_copy"),
    ], label="pgbench-round-trip")
    assert not results["backup"]["failed"], results["backup"].get("msg")
    assert not results["verify"]["failed"] and results["verify"]["verified"], results["verify"].get("msg")
    assert not results["copy"]["failed"], results["copy"].get("msg")
    assert results["copy"]["content_compared"]
    assert schema_only(pg_cluster, "bench_copy") == schema_only(pg_cluster, "bench_src")
    assert fingerprint(pg_cluster, "bench_copy") == fingerprint(pg_cluster, "bench_src")
    with pg_cluster.connect("bench_copy") as conn:
        assert conn.execute("SELECT count(*) FROM pgbench_history").fetchone()[0] == 400
        assert conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'pgbench_accounts'::regclass"
                            ).fetchone()[0] == 4
