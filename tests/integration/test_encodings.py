"""SQL_ASCII and LATIN1 databases through health, backup, verify, restore and maintenance (real PostgreSQL 15).

psycopg returns bytes for text from a SQL_ASCII database; before module_utils/pg.py read them as text, pg_health
failed with "Key of type 'bytes' is not JSON serializable" and pg_backup with "SQL identifier parts must be
strings". The data here has non-ASCII bytes in schema, table, column and index names, and bytes that are not
UTF-8 at all, and the restored copy must hold exactly the same bytes.
"""
import pytest

from support.backup import batch, step

pytestmark = pytest.mark.pg

# Raw bytes as the application wrote them: \xe9 is Latin-1 'é' (invalid UTF-8), \xc3\xa4 is UTF-8 'ä'.
SQL_ASCII_SCHEMA = (
    b'CREATE SCHEMA "sch\xe9ma";'
    b'CREATE TABLE "sch\xe9ma"."t\xc3\xa4b" (id int PRIMARY KEY, "c\xff" text, raw bytea, v varchar(40));'
    b'CREATE INDEX "ix_\xe9" ON "sch\xe9ma"."t\xc3\xa4b" ("c\xff");'
    b'INSERT INTO "sch\xe9ma"."t\xc3\xa4b" SELECT i, chr(65 + i % 26) || \'\xff\xfe\x80\' || i, '
    b'decode(md5(i::text), \'hex\'), \'\xe9t\xe9 \xc3\xa4 \' || i FROM generate_series(1, 400) AS i;'
    # every byte value but NUL, in one row: the script and the COPY stream must carry all of them
    b'INSERT INTO "sch\xe9ma"."t\xc3\xa4b" VALUES (0, \'' + bytes(b for b in range(1, 256) if b not in (39, 92)) +
    b'\', NULL, NULL);'
    b'CREATE TABLE public."caf\xe9" (k text PRIMARY KEY);'
    b'INSERT INTO public."caf\xe9" VALUES (\'cr\xe8me\'), (\'na\xefve\'), (\'\xf0\x9f\x98\x80\');'
)
LATIN1_SCHEMA = (
    'CREATE SCHEMA "Ünïcødé";'
    'CREATE TABLE "Ünïcødé"."Straße" (id int PRIMARY KEY, "Größe" text, n numeric);'
    'CREATE INDEX "ix_größe" ON "Ünïcødé"."Straße" ("Größe");'
    "INSERT INTO \"Ünïcødé\".\"Straße\" SELECT i, 'Größe ÿ£§ ' || i, i * 1.5 FROM generate_series(1, 300) AS i;"
)


def raw_connect(cluster, dbname):
    """A connection outside the code under test: SQL_ASCII text comes back as the stored bytes."""
    return cluster.connect(dbname)


def contents(cluster, dbname):
    """Every user table's name and rows, ordered, as the client sees them without any decoding of ours."""
    with raw_connect(cluster, dbname) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.oid FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        out = {}
        for schema, name, qualified, oid in tables:
            columns = conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 ORDER BY attnum",
                [oid]).fetchall()
            rows = conn.execute(b"SELECT * FROM " + (qualified if isinstance(qualified, bytes) else qualified.encode(conn.info.encoding))
                                + b" ORDER BY 1").fetchall()
            out[(schema, name)] = (columns, rows)
        out["indexes"] = conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg\\_%' "
            "AND n.nspname <> 'information_schema' ORDER BY 1").fetchall()
        out["encoding"] = conn.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
            "WHERE datname = current_database()").fetchone()
    return out


@pytest.fixture(scope="module")
def encoded(pg_cluster, tmp_path_factory):
    """Both databases taken through every module in one playbook run."""
    root = tmp_path_factory.mktemp("encodings")
    databases = dict(sqlascii=("h3_enc_sqlascii", "SQL_ASCII", SQL_ASCII_SCHEMA),
                     latin1=("h3_enc_latin1", "LATIN1", LATIN1_SCHEMA))
    connection = dict((key, value) for key, value in pg_cluster.params().items() if key != "tools_bindir")
    steps, cases = [], {}
    for key, (name, encoding, schema) in databases.items():
        with pg_cluster.connect() as conn:
            for db in (name, name + "_copy", name + "_dircopy"):
                conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
            conn.execute("CREATE DATABASE \"%s\" ENCODING '%s' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
                         % (name, encoding))
        with raw_connect(pg_cluster, name) as conn:
            conn.execute(schema)
            conn.execute("ANALYZE")
        backup_dir = str(root / key)
        tools = dict(pg_cluster.params(), backup_dir=backup_dir)
        cases[key] = dict(name=name, before=contents(pg_cluster, name))
        steps += [
            step("%s_health" % key, "pg_health_info", login_db=name, bloat_min_rows=1, cache_hit_min_blocks=0,
                 checks=["readiness", "connections", "long_queries", "idle_in_transaction", "blocking_locks",
                         "database_sizes", "wraparound", "cache_hit_ratio", "bloat"], **connection),
            step("%s_backup" % key, "pg_backup", database=name, content_checksums=True, **tools),
            step("%s_verify" % key, "pg_backup_verify", backup_id="{{ %s_backup.backup_id | default('none') }}" % key,
                 **tools),
            step("%s_restore" % key, "pg_backup_restore", target_database=name + "_copy",
                 backup_id="{{ %s_backup.backup_id | default('none') }}" % key, **tools),
            step("%s_dirbackup" % key, "pg_backup", database=name, format="directory", compression="gzip",
                 content_checksums=True, **tools),
            step("%s_dirrestore" % key, "pg_backup_restore", target_database=name + "_dircopy", require_verified=False,
                 backup_id="{{ %s_dirbackup.backup_id | default('none') }}" % key, **tools),
            step("%s_vacuum" % key, "pg_maintenance", operation="vacuum_analyze", databases=[name], **connection),
            step("%s_reindex" % key, "pg_maintenance", operation="reindex", databases=[name], **connection),
        ]
    results = batch(steps, label="h3-encodings")
    return dict(cases=cases, results=results)


@pytest.mark.parametrize("key", ["sqlascii", "latin1"])
def test_health_reports_non_ascii_names(encoded, key):
    health = encoded["results"]["%s_health" % key]
    assert not health["failed"], health.get("msg")
    names = {check["name"]: check for check in health["checks"]}
    assert set(names) >= {"postgres readiness", "postgres database sizes", "postgres bloat"}
    assert all(check["severity"] != "CRITICAL" for check in health["checks"]), health["checks"]
    assert encoded["cases"][key]["name"] in health["database_sizes"]
    bloat = names["postgres bloat"]["details"]["tables"]
    relnames = {(table["schemaname"], table["relname"]) for table in bloat}
    expected = {"sqlascii": ("sch\\xe9ma", "t\u00e4b"), "latin1": ("Ünïcødé", "Straße")}[key]
    assert expected in relnames, relnames


@pytest.mark.parametrize("key", ["sqlascii", "latin1"])
def test_backup_verify_restore_keep_every_byte(pg_cluster, encoded, key):
    results, case = encoded["results"], encoded["cases"][key]
    for what in ("backup", "verify", "restore", "dirbackup", "dirrestore"):
        assert not results["%s_%s" % (key, what)]["failed"], (what, results["%s_%s" % (key, what)].get("msg"))
    backup = results["%s_backup" % key]
    tables = {(t["schema"], t["name"]): t for t in backup["manifest"]["tables"]}
    assert all(t["content_checksum"] for t in tables.values())
    assert backup["manifest"]["database_info"]["encoding"] == {"sqlascii": "SQL_ASCII", "latin1": "LATIN1"}[key]
    verify = results["%s_verify" % key]
    assert verify["verified"] is True and verify["content_compared"] is True, verify
    assert results["%s_restore" % key]["content_compared"] is True
    assert results["%s_restore" % key]["restore_method"] == "stream"
    assert results["%s_dirrestore" % key]["restore_method"] == "pg_restore"
    for copy in (case["name"] + "_copy", case["name"] + "_dircopy"):
        after = contents(pg_cluster, copy)
        assert after == case["before"], copy
    if key == "sqlascii":
        # The raw client sees the stored bytes: invalid UTF-8 names and values came back unchanged.
        rows = case["before"][(b"sch\xe9ma", b"t\xc3\xa4b")][1]
        assert len(rows) == 401
        assert rows[0][1] == bytes(b for b in range(1, 256) if b not in (39, 92))
        assert any(b"ix_\xe9" in row[0] for row in case["before"]["indexes"])


@pytest.mark.parametrize("key", ["sqlascii", "latin1"])
def test_maintenance_runs_on_non_ascii_tables(pg_cluster, encoded, key):
    results, case = encoded["results"], encoded["cases"][key]
    for what in ("vacuum", "reindex"):
        res = results["%s_%s" % (key, what)]
        assert not res["failed"], res.get("msg")
        touched = {(action["schema"], action["table"]) for action in res["actions"] if action.get("ran")}
        expected = {"sqlascii": ("sch\\xe9ma", "t\u00e4b"), "latin1": ("Ünïcødé", "Straße")}[key]
        assert expected in touched, (what, res["actions"])
    assert contents(pg_cluster, case["name"]) == case["before"]
