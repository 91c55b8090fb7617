"""Fingerprints of a database's content, read with plain SQL and never through the code under test, so a restore,
a rollback or a recovery is judged by what is in the database, not by what the procedure reports."""
from psycopg import sql

USER_TABLES = (
    "SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2")
ROWS = "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"


def table_digests(conn, owners=False):
    """{schema.table: (rows, md5 of the sorted rows)} of every user table; with ``owners``, (owner, rows, md5)."""
    out = {}
    for schema, table, owner in conn.execute(USER_TABLES).fetchall():
        rows = tuple(conn.execute(sql.SQL(ROWS).format(sql.Identifier(schema, table))).fetchone())
        out["%s.%s" % (schema, table)] = ((owner,) if owners else ()) + rows
    return out


def content_fingerprint(conn):
    """Every table's rows, the sequences' positions, the installed extensions, and what the rich schema's view and
    function (support/backup.py RICH_SCHEMA) answer where they exist."""
    out = table_digests(conn)
    out["sequences"] = conn.execute(
        "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2").fetchall()
    has_view = conn.execute("SELECT to_regclass('public.v_summary')").fetchone()[0] is not None
    out["view"] = conn.execute("SELECT * FROM public.v_summary").fetchall() if has_view else None
    has_function = conn.execute("SELECT to_regprocedure('public.name_digest(text)')").fetchone()[0] is not None
    out["function"] = conn.execute("SELECT public.name_digest('ü')").fetchall() if has_function else None
    out["extensions"] = conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()
    return out


def grants(conn):
    """Table privileges outside the system schemas: (table, ACL) where one is set."""
    return conn.execute("SELECT relname, relacl::text FROM pg_class WHERE relacl IS NOT NULL "
                        "AND relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema') "
                        "ORDER BY 1").fetchall()
