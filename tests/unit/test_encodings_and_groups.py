"""Pure logic of SQL_ASCII text handling (module_utils/pg.py), backup groups and the globals replay plan.

The same paths run against real PostgreSQL in tests/integration/test_encodings.py and test_all_databases.py.
"""
import importlib
import json

from ansible_collections.stackops.runbooks.plugins.module_utils import pg

group_info = importlib.import_module("ansible_collections.stackops.runbooks.plugins.modules.pg_backup_group_info")
globals_restore = importlib.import_module("ansible_collections.stackops.runbooks.plugins.modules.pg_globals_restore")


def test_sql_ascii_text_round_trips_every_byte():
    raw = bytes(range(1, 256))
    text = pg.from_sql_ascii(raw)
    assert isinstance(text, str) and pg.to_sql_ascii(text) == raw
    assert pg.from_sql_ascii("täb".encode("utf-8")) == "täb"  # valid UTF-8 reads as what it says
    # psycopg encodes queries and sql.Identifier with the codec mapped to SQL_ASCII: the same bytes
    assert "sch\udce9ma".encode(pg.SQL_ASCII_CODEC) == b"sch\xe9ma"
    assert b"sch\xe9ma".decode(pg.SQL_ASCII_CODEC) == "sch\udce9ma"


def test_json_safe_escapes_only_what_is_not_utf8():
    value = {"sch\udce9ma": ["t\u00e4b", b"c\xff", ("ok", 1)], "n": None, "x": 1.5}
    safe = pg.json_safe(value)
    assert safe == {"sch\\xe9ma": ["t\u00e4b", "c\\xff", ["ok", 1]], "n": None, "x": 1.5}
    json.dumps(safe).encode("utf-8")  # what Ansible needs: no lone surrogates left
    assert pg.json_safe("plain") == "plain"


def entry(set_id, database, group, started, verified=True, planned=(), has_globals=True):
    return dict(id=set_id, database=database, group=group, started_at=started, verified=verified,
                group_databases=list(planned), has_globals=has_globals, size_bytes=10)


def test_groups_know_when_a_database_is_missing():
    sets = [  # newest first, as catalog() returns them
        entry("b-2", "b", "run-2", "2026-01-02T00:00:02.000000Z", planned=["a", "b", "c"]),
        entry("a-2", "a", "run-2", "2026-01-02T00:00:01.000000Z", planned=["a", "b", "c"]),
        entry("b-1", "b", "run-1", "2026-01-01T00:00:02.000000Z", verified=False, planned=["a", "b"]),
        entry("a-1", "a", "run-1", "2026-01-01T00:00:01.000000Z", planned=["a", "b"]),
        entry("solo", "a", None, "2026-01-03T00:00:00.000000Z"),
    ]
    groups = group_info.groups_of(sets)
    assert [g["id"] for g in groups] == ["run-2", "run-1"]
    newest, older = groups
    assert newest["missing"] == ["c"] and newest["complete"] is False and newest["verified"] is True
    assert newest["databases"] == ["a", "b"] and newest["started_at"] == "2026-01-02T00:00:01.000000Z"
    assert older["complete"] is True and older["verified"] is False
    assert older["globals_backup_id"] == "a-1"


def test_globals_plan_skips_creates_of_what_exists():
    script = b"\n".join([
        b"CREATE ROLE postgres;",
        b"ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;",
        b'CREATE ROLE "App ""Owner""";',
        b"CREATE ROLE reader;",
        b"CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';",
        b"GRANT reader TO \"App \"\"Owner\"\"\" GRANTED BY postgres;",
    ])
    kept, plan = globals_restore.plan_script(script, roles={"postgres", "reader"}, tablespaces={"pg_default"})
    assert plan == dict(created_roles=['App "Owner"'], existing_roles=["postgres", "reader"],
                        created_tablespaces=["fast"], existing_tablespaces=[])
    lines = kept.split(b"\n")
    assert lines[0] == b"-- exists already: CREATE ROLE postgres;"
    assert lines[2] == b'CREATE ROLE "App ""Owner""";' and lines[3].startswith(b"-- exists already")
    assert lines[1].startswith(b"ALTER ROLE postgres") and lines[5].startswith(b"GRANT reader")
