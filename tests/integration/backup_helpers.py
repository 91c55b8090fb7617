"""Shared setup for the backup/restore integration tests: a schema that exercises what dumps get wrong."""
import json
from pathlib import Path

from support.runner import run_module

RICH_SCHEMA = r"""
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SCHEMA "Sales Ünïcode";
CREATE TABLE "Sales Ünïcode"."MixedCase" (
    id bigserial PRIMARY KEY,
    "Name" citext NOT NULL,
    doc jsonb,
    blob bytea,
    big text,
    at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00'
);
INSERT INTO "Sales Ünïcode"."MixedCase" ("Name", doc, blob, big)
SELECT 'Ünïcødé ' || i || ' 😀 日本',
       jsonb_build_object('i', i, 'emoji', '😀', 'nested', jsonb_build_array(i, 'ü', NULL, 1.5e10)),
       decode(md5(i::text) || md5((i * 7)::text), 'hex') || '\x00ff'::bytea,
       repeat(md5(i::text), 300)
FROM generate_series(1, 1500) AS i;
CREATE TABLE public.plain (id int PRIMARY KEY, note text, CONSTRAINT note_len CHECK (length(note) < 100));
INSERT INTO public.plain SELECT i, 'row; ''quoted'' "x" ' || i FROM generate_series(1, 300) AS i;
CREATE TABLE public.empty_one (x int);
CREATE SEQUENCE public.counter START 42;
SELECT nextval('public.counter'), nextval('public.counter');
CREATE VIEW public.v_summary AS SELECT count(*) AS n, max(id) AS top FROM "Sales Ünïcode"."MixedCase";
CREATE FUNCTION public.name_digest(t text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT encode(digest(t, 'sha256'), 'hex') $$;
"""


def create_db(cluster, name, schema_sql=RICH_SCHEMA):
    from psycopg import sql
    with cluster.connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if schema_sql:
        with cluster.connect(name) as conn:
            conn.execute(schema_sql)


def fingerprint(cluster, name):
    """Independent of the code under test: ordered md5 of every table's rows, plus sequences, view, function."""
    out = {}
    with cluster.connect(name) as conn:
        tables = conn.execute(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1").fetchall()
        for (table,) in tables:
            out[table] = conn.execute(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM %s t" % table
            ).fetchone()
        out["sequences"] = conn.execute(
            "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2").fetchall()
        out["view"] = conn.execute("SELECT * FROM public.v_summary").fetchall() if _has(conn, "public.v_summary") else None
        out["function"] = conn.execute("SELECT public.name_digest('ü')").fetchall() if _has_fn(conn) else None
        out["extensions"] = conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()
    return out


def _has(conn, rel):
    return conn.execute("SELECT to_regclass(%s)", (rel,)).fetchone()[0] is not None


def _has_fn(conn):
    return conn.execute("SELECT to_regprocedure('public.name_digest(text)')").fetchone()[0] is not None


def db_exists(cluster, name):
    return bool(cluster.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(name,)))


def module(name, cluster, backup_dir, check=False, **args):
    params = cluster.params(backup_dir=str(backup_dir), **args)
    return run(name, params, check=check)


def run(name, params, check=False):
    """run_module, with ``failed`` set from the event type (ignored failures do not always carry it)."""
    res = run_module("stackops.runbooks.%s" % name, params, check=check)
    res["failed"] = any(e.get("event") == "runner_on_failed" for e in res["_run"].events)
    return res


def backup_sets(backup_dir):
    """Directory names in backup_dir other than lock files."""
    return sorted(p.name for p in Path(backup_dir).iterdir() if not p.name.startswith("."))


def manifest(backup_dir, backup_id):
    return json.loads((Path(backup_dir) / backup_id / "manifest.json").read_text())


def scratch_databases(cluster):
    return [r[0] for r in cluster.sql("SELECT datname FROM pg_database WHERE datname ~ '_(verify|restore|old)_[0-9a-f]{8}$'")]
